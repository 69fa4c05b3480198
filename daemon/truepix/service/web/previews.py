"""Small images for the web page, rendered here from the real files and cached on disk.

The browser never decodes a full-size photo (a 24 MP TIFF would take it seconds and hundreds of MB,
and it cannot read a RAW or a DNG at all): the daemon decodes with truepix's own readers
(``io.read_image``: JPEG, PNG, TIFF, RAW, DNG, upright) and sends

- a thumbnail: JPEG, its longest side ``THUMB_SIDE`` px;
- a crop: PNG, ``CROP_SIDE`` px square at most, around a point the user chose, of the output ("after")
  or of the original resized to the output's size with a plain bicubic resize ("before"), so the two
  line up pixel for pixel; at 200% each output pixel is shown as 2 x 2 (nearest), as an editor's
  zoom does;
- the fidelity figures (engine/fidelity.py's ``report``) measured between the original and the output.

Every result is a file in the cache folder, named by a hash of what it was made from: each file's
path, size and mtime (a changed file is a new key) and the parameters.  A second request reads the
file; nothing is decoded again.  One render at a time (``_lock``): each decode holds a whole photo
in memory, and the worker needs the memory more.  The cache keeps its newest ``MAX_CACHED`` files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import threading
from collections.abc import Callable

import numpy as np

from truepix.errors import TruepixError

log = logging.getLogger("truepix.web")

THUMB_SIDE = 360
CROP_SIDE = 320  # shown at 100% and 200% alike: the 200% crop covers a quarter of the area
ZOOMS = (1, 2)
MAX_MEASURE_PIXELS = 50_000_000  # output pixels; the measure holds both photos as float32 (~1.2 GB at 50 MP)
MAX_CACHED = 2000  # files; a thumbnail is ~20 KB, a crop ~200 KB


def default_folder() -> pathlib.Path:
    """``<user cache dir>/truepix/previews`` (e.g. ~/.cache/truepix/previews): safe to delete at any time."""
    from platformdirs import user_cache_path

    return user_cache_path("truepix", appauthor=False) / "previews"


class PreviewError(TruepixError):
    """A preview that cannot be made; the message says why in the page's words."""


def _identity(path: pathlib.Path) -> list:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PreviewError(f"{path.name}: the file is no longer there (moved or deleted)") from None
    except OSError as e:
        raise PreviewError(f"{path.name}: cannot read the file ({e.strerror or e})") from None
    return [str(path), st.st_size, st.st_mtime_ns]


def _display(path: pathlib.Path) -> np.ndarray:
    """``path`` as 8-bit sRGB, (H, W, 3) uint8, upright; PreviewError when truepix cannot read it."""
    from truepix.colour import linear_to_srgb
    from truepix.io import read_image

    try:
        decoded = read_image(path)
    except TruepixError as e:
        raise PreviewError(str(e)) from None
    px = decoded.pixels if decoded.transfer == "srgb" else linear_to_srgb(decoded.pixels)
    if px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    return (np.clip(px, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {"compress_level": 1}))
    return buf.getvalue()


def crop_box(width: int, height: int, x: float, y: float, zoom: int) -> tuple[int, int, int, int]:
    """The output pixels (left, top, right, bottom) a crop shows: ``CROP_SIDE / zoom`` square (less for a
    small photo) centred on (``x``, ``y``), fractions 0..1 of the width and height, kept inside."""
    side = CROP_SIDE // zoom
    w, h = min(side, width), min(side, height)
    left = min(max(round(x * width - w / 2), 0), width - w)
    top = min(max(round(y * height - h / 2), 0), height - h)
    return left, top, left + w, top + h


class Previews:
    """The renders and their cache in ``folder`` (created 0700: the previews show the user's photos)."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = pathlib.Path(folder)
        self._lock = threading.Lock()
        self._written = 0
        self.renders = 0  # decodes done (a test sees that a cached answer decoded nothing)

    def _cached(self, kind: str, identity: list, ext: str, make: Callable[[], dict[str, bytes]], want: str) -> bytes:
        """The cached file for (``kind``, ``identity``, ``want``); else ``make()``'s files (name -> bytes,
        each saved under its own key: one decode may give several) are written first."""
        target = self.cache_file(kind, identity, want, ext)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            pass
        with self._lock:
            try:  # made by the request this one waited for
                return target.read_bytes()
            except FileNotFoundError:
                pass
            self.renders += 1
            made = make()
            for name, data in made.items():
                self._store(self.cache_file(kind, identity, name, ext), data)
        return made[want]

    def _store(self, path: pathlib.Path, data: bytes) -> None:
        from truepix.service.paths import private_dir

        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reader sees the whole file or none
        self._written += 1
        if self._written % 100 == 0:
            self._prune()

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*/*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[MAX_CACHED:]:
            old.unlink(missing_ok=True)

    def cache_file(self, kind: str, identity: list, name: str, ext: str) -> pathlib.Path:
        """Where the render of (``kind``, ``identity``, ``name``) is cached: a hash of them, so a changed file
        (another size or mtime) or another crop is another file."""
        key = hashlib.sha256(json.dumps([kind, identity, name]).encode()).hexdigest()
        return self.folder / key[:2] / f"{key}{ext}"

    # -- what the page asks for ----------------------------------------------------------------------------

    def thumbnail(self, path: pathlib.Path) -> bytes:
        """A JPEG of ``path``, its longest side ``THUMB_SIDE`` px at most."""
        def make() -> dict[str, bytes]:
            from PIL import Image

            img = Image.fromarray(_display(path))
            img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
            return {"thumb": _encoded(np.asarray(img), "JPEG")}

        return self._cached("thumb", _identity(path), ".jpg", make, "thumb")

    def crop(self, source: pathlib.Path, output: pathlib.Path, x: float, y: float, zoom: int, side: str) -> bytes:
        """A PNG crop of ``output`` ("after") or of ``source`` resized to its size ("before") around
        (``x``, ``y``) (fractions 0..1 of the output, kept to 1/1000), at ``zoom`` 1 or 2.  Both sides and
        both zooms are made by one decode of the two files, so the page's next requests are cache reads."""
        if zoom not in ZOOMS or side not in ("before", "after"):
            raise ValueError(f"zoom must be 1 or 2 and side before or after, not {zoom!r}, {side!r}")
        x, y = round(min(max(x, 0.0), 1.0), 3), round(min(max(y, 0.0), 1.0), 3)
        identity = [_identity(source), _identity(output), x, y]

        def make() -> dict[str, bytes]:
            from PIL import Image

            after, before = _display(output), Image.fromarray(_display(source))
            height, width = after.shape[:2]
            fx, fy = before.width / width, before.height / height
            made = {}
            for z in ZOOMS:
                left, top, right, bottom = crop_box(width, height, x, y, z)
                size = (right - left, bottom - top)
                shown = (size[0] * z, size[1] * z)
                out = Image.fromarray(after[top:bottom, left:right]).resize(shown, Image.Resampling.NEAREST)
                # box: the same area of the original, read with the filter's support around it
                orig = before.resize(size, Image.Resampling.BICUBIC, box=(left * fx, top * fy, right * fx, bottom * fy))
                made[f"after-{z}"] = _encoded(np.asarray(out), "PNG")
                made[f"before-{z}"] = _encoded(np.asarray(orig.resize(shown, Image.Resampling.NEAREST)), "PNG")
            return made

        return self._cached("crop", identity, ".png", make, f"{side}-{zoom}")

    def measure(self, source: pathlib.Path, output: pathlib.Path) -> dict:
        """engine/fidelity.py's figures for ``output`` against ``source`` (colour_shift_mean/max in dE00,
        backprojection_psnr_db), or {"unmeasured": why} when they do not apply or cannot be had."""
        def make() -> dict[str, bytes]:
            return {"figures": json.dumps(_measure(source, output)).encode()}

        return json.loads(self._cached("measure", [_identity(source), _identity(output)], ".json", make, "figures"))


def _measure(source: pathlib.Path, output: pathlib.Path) -> dict:
    from truepix.colour import linear_to_srgb
    from truepix.engine import fidelity
    from truepix.io import RAW_EXTENSIONS, read_image

    if source.suffix.lower() in RAW_EXTENSIONS:
        return {"unmeasured": "a RAW is developed, not only enlarged: its colours are made from the sensor data, "
                              "so there is no earlier picture to compare them with"}
    try:
        src = read_image(source)
        h, w = src.pixels.shape[:2]
        out = read_image(output, max_pixels=MAX_MEASURE_PIXELS)
    except TruepixError as e:
        return {"unmeasured": f"cannot read the files to measure them ({e})"}
    oh, ow = out.pixels.shape[:2]
    scale = ow // w
    if scale < 1 or (oh, ow) != (h * scale, w * scale):
        return {"unmeasured": f"the output ({ow} x {oh}) is not a whole multiple of the original ({w} x {h})"}

    def srgb(d) -> np.ndarray:
        px = d.pixels if d.transfer == "srgb" else linear_to_srgb(d.pixels)
        return np.repeat(px, 3, axis=2) if px.shape[2] == 1 else px

    return fidelity.report(srgb(out), srgb(src), scale)
