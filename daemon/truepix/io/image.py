"""Read any supported photo into float32 pixels 0..1 and their transfer; write pixels atomically.

``read_image`` finds the format from the file's first bytes (camera RAWs by extension, since
many are TIFF containers), refuses bad or oversized input with an ``ImageReadError`` naming
the file, scales and turns the pixels upright; it keeps them in the transfer they were stored in
(``Decoded.transfer``: sRGB-encoded for ordinary files, linear for a RAW), ``Decoded.linear()``
gives linear light. ``write_image`` encodes 16-bit TIFF,
16-bit PNG or 8-bit JPEG to a temporary name beside the destination, copies metadata into it,
fsyncs and renames (``atomic.output``): a destination either appears complete or not at all.
The formats, their suffixes, first bytes and encoders are those of the registry in ``formats``.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import numpy as np

from ..colour import linear_to_srgb, srgb_to_linear
from ..errors import ImageReadError, ImageWriteError
from . import atomic, formats, pil, png, raw, tiff
from .atomic import NAME_MAX, TEMP_MARK, fit_name, remove_temp_files, temp_path, temp_prefix  # noqa: F401 (re-exported)
from .hints import Hints, from_exif_bytes
from .orientation import apply_orientation, valid_orientation
from .regular import open_regular
from .resolution import KEEP
from .samples import ReadFailure, Samples

RAW_EXTENSIONS = formats.RAW_SUFFIXES
# Everything ``read_image`` may decode, by file name (the content is checked too).
SUPPORTED_SUFFIXES = formats.READ_SUFFIXES
# What a file that is none of them is said not to be (in the order messages have always named them).
_ANY = "a " + formats.words(f.label for f in (formats.JPEG, formats.PNG, formats.TIFF, formats.RAW))
# The stages write_image publishes with, named here so that a test can replace them (a crash before
# the rename, a full disk at the flush).


@dataclass
class Decoded:
    """A decoded photo.

    pixels:      float32 (H, W, C), C = 3 (RGB) or 1 (grey), 0..1, upright, in ``transfer``: the
                 values as stored, scaled (no transfer-curve pass; ``linear()`` for linear light).
    alpha:       float32 (H, W) 0..1 as stored (not linearised), or None.
    icc:         the source's ICC profile bytes, or None (= assume sRGB).
    bit_depth:   8 or 16, the source's sample depth (RAW and float TIFF -> 16).
    kind:        "jpeg" | "png" | "tiff" | "raw".
    orientation: EXIF/TIFF orientation (1..8) found and applied to ``pixels`` (1 = none).
    source:      the path read.
    hints:       what the EXIF says of the file's origin, for the upscaler's input-kind decision
                 (``hints.Hints``, with the decoded size; a RAW is marked as developed), or None.
    transfer:    the transfer of ``pixels``: "srgb" (sRGB-encoded: JPEG, PNG, TIFF, float TIFF too)
                 or "linear" (linear light: a RAW demosaiced by LibRaw).  "linear" by default, for
                 a ``Decoded`` built from linear pixels.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    icc: bytes | None
    bit_depth: int
    kind: str
    orientation: int
    source: pathlib.Path
    hints: Hints | None = None
    transfer: str = "linear"

    def linear(self) -> np.ndarray:
        """``pixels`` in linear light: a converted copy when they are sRGB-encoded, else ``pixels`` itself."""
        if self.transfer == "srgb":
            return srgb_to_linear(self.pixels)
        if self.transfer != "linear":
            raise ValueError(f"unknown transfer {self.transfer!r} (srgb or linear)")
        return self.pixels


def sniff(head: bytes) -> str | None:
    """The container format from a file's first bytes: "jpeg", "png", "tiff" or None."""
    fmt = formats.sniff(head)
    return fmt.name if fmt is not None else None


def read_image(path, *, max_pixels: int = 250_000_000, size_check=None) -> Decoded:
    """Decode a JPEG, PNG (8/16-bit), TIFF (8/16-bit/float) or camera RAW file.

    Raises ImageReadError (message starts with the file name) for anything it cannot decode
    fully: missing, unreadable, empty, truncated, not an image, or over ``max_pixels``
    (checked from the header, before the pixels are allocated).  ``size_check(width, height)``,
    when given, is called from the header too and may raise (the job's memory budget).
    """
    path = pathlib.Path(path)
    kind = "image"
    try:
        kind, head = _probe(path)
        samples = _decode(path, kind, head, max_pixels, size_check)
    except ReadFailure as err:
        raise ImageReadError(path, str(err)) from None
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this image") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot read file ({err.strerror or err})") from None
    except Exception as err:  # a decoder tripped over damaged data in a way it did not foresee
        raise ImageReadError(path, f"damaged {kind.upper()} file ({type(err).__name__}: {err})") from err
    return _finish(path, kind, samples)


def _probe(path: pathlib.Path) -> tuple[str, bytes]:
    if not path.exists():
        raise ReadFailure("no such file")
    if path.is_dir():
        raise ReadFailure("is a folder, not an image file")
    with open_regular(path) as fh:  # never blocks on a FIFO; PermissionError surfaces here, before any decoder
        head = fh.read(64)
    if not head:
        raise ReadFailure("empty file (0 bytes)")
    if path.suffix.lower() in RAW_EXTENSIONS:
        return formats.RAW.name, head
    kind = sniff(head)
    if kind is None:
        named = formats.by_suffix(path.suffix)
        expected = f"a {named.label}" if named is not None else _ANY
        # Say what the file is not, never what it holds (its bytes may be private: a text or a key).
        raise ReadFailure(f"not {expected} (no image or camera RAW format recognised in its first bytes; "
                          f"{_size_words(path)})")
    return kind, head


def _size_words(path: pathlib.Path) -> str:
    try:
        return f"{path.stat().st_size} bytes"
    except OSError:
        return "size unknown"


def _decode(path: pathlib.Path, kind: str, head: bytes, max_pixels: int, size_check=None) -> Samples:
    def check_size(width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ReadFailure(f"image has no pixels ({width} x {height})")
        if width * height > max_pixels:
            raise ReadFailure(
                f"image too large: {width} x {height} pixels ({width * height / 1e6:.0f} MP), "
                f"the limit is {max_pixels / 1e6:.0f} MP")
        if size_check is not None:
            size_check(width, height)

    if kind == "raw":
        return raw.decode(path, check_size)
    if kind == "tiff":
        return tiff.decode(path, check_size)
    if kind == "png":
        width, height, depth, _ = png.header(head)
        if depth == 16:
            check_size(width, height)
            data = path.read_bytes()
            samples = png.decode16(data)
            samples.icc, exif = png.icc_and_exif(data)
            samples.orientation = _exif_orientation(exif)
            samples.hints = from_exif_bytes(exif)
            return samples
    return pil.decode(path, check_size)


def _exif_orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    from PIL import Image

    ex = Image.Exif()
    try:
        ex.load(exif)
    except Exception:  # a damaged eXIf chunk loses only the orientation hint
        return 1
    return valid_orientation(ex.get(0x0112))


def _finish(path: pathlib.Path, kind: str, s: Samples) -> Decoded:
    """Scale to 0..1, split alpha, turn upright; the values keep their transfer (``Decoded.transfer``)."""
    a = s.data
    if a.dtype in (np.uint8, np.uint16):
        depth = 8 if a.dtype == np.uint8 else 16
        values = a.astype(np.float32)
        values /= np.float32(255 if depth == 8 else 65535)
    else:
        depth, values = 16, np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    alpha = None
    if s.has_alpha:
        values, alpha = values[:, :, :-1], values[:, :, -1]
        alpha = np.ascontiguousarray(apply_orientation(alpha, s.orientation))
    values = np.ascontiguousarray(apply_orientation(values, s.orientation))
    orientation = s.applied if s.applied != 1 else s.orientation
    hints = s.hints.sized(values.shape[1], values.shape[0]) if s.hints is not None else None
    return Decoded(values, alpha, s.icc, depth, kind, orientation, path, hints,
                   transfer="linear" if s.linear else "srgb")


def write_image(dest, pixels, *, alpha=None, fmt="tiff", icc=None, metadata_source=None,
                xmp_info: dict | None = None, overwrite=False, bits: int = 16, encode=linear_to_srgb,
                resolution=KEEP) -> pathlib.Path:
    """Encode linear float32 ``pixels`` (H, W, C), C = 1 or 3, 0..1, and write them to ``dest``.

    fmt:  "tiff" (deflate) or "png", ``bits`` 16 (default) or 8; "jpeg" is always 8-bit,
          quality 95, alpha dropped.
    alpha: float32 (H, W) 0..1, written as stored (no transfer curve).
    icc: profile bytes to embed (pass ``srgb_icc()`` for RAW-sourced outputs).
    encode: the transfer curve, linear float -> encoded 0..1 (sRGB's by default; a developed RAW
    in Adobe RGB or ProPhoto passes its own, matching ``icc``).
    metadata_source / xmp_info: when either is given, EXIF/IPTC/XMP are copied from the source
    and the truepix XMP record is written (see metadata.copy_metadata).
    resolution: the output's print resolution (``resolution.Resolution``, or None for none), in the
    file's own tags and its EXIF alike; ``KEEP`` (default): none of its own, the source's EXIF copied.
    Atomic: temp file beside ``dest``, fsync, rename, fsync folder. Refuses an existing ``dest``
    unless ``overwrite``. Raises ImageWriteError and leaves no file behind on failure.
    Returns the final path.
    """
    dest = pathlib.Path(dest)
    out = output_format(dest, fmt, bits)
    atomic.refuse_existing(dest, overwrite)
    samples, has_alpha = _quantise(dest, pixels, alpha, out.bit_depth(bits), encode)
    return write_samples(dest, samples, has_alpha, fmt=fmt, icc=icc, metadata_source=metadata_source,
                         xmp_info=xmp_info, overwrite=overwrite, resolution=resolution)


def output_format(dest, fmt: str, bits: int) -> formats.Format:
    """The encoder for ``fmt`` at ``bits``, or ImageWriteError naming ``dest``."""
    out = formats.encoded(fmt)
    if out is None:
        names = formats.words(f.name for f in formats.FORMATS.values() if f.encoder is not None)
        raise ImageWriteError(dest, f"unknown output format {fmt!r} ({names})")
    if bits not in formats.BIT_DEPTHS:
        raise ImageWriteError(dest, f"bit depth must be {formats.words(formats.BIT_DEPTHS)}, not {bits!r}")
    return out


def write_samples(dest, samples: np.ndarray, has_alpha: bool, *, fmt="tiff", icc=None, metadata_source=None,
                  xmp_info: dict | None = None, overwrite=False, resolution=KEEP) -> pathlib.Path:
    """``write_image`` for samples already quantised and encoded: uint8/uint16 (H, W, C[+alpha]).
    ``samples`` is released (``del``) before the metadata is copied: pass the only reference."""
    dest = pathlib.Path(dest)
    out = output_format(dest, fmt, 8 if samples.dtype == np.uint8 else 16)
    atomic.refuse_existing(dest, overwrite)
    with atomic.output(dest, overwrite=overwrite) as tmp:
        with open(tmp, "xb") as fh:
            out.encoder(fh, samples, has_alpha, icc, None if resolution == KEEP else resolution)
        height, width = samples.shape[:2]
        # Exiv2 holds the whole encoded file in memory while it edits the metadata:
        # let the samples go first (a 96 MP output: 576 MB less at the peak).
        del samples
        if metadata_source is not None or xmp_info is not None:
            from .metadata import copy_metadata

            copy_metadata(metadata_source, tmp, width=width, height=height, xmp_info=xmp_info, resolution=resolution)
    return dest


def _quantise(dest, pixels, alpha, bits: int, encode=linear_to_srgb) -> tuple[np.ndarray, bool]:
    """Linear float (H, W[, C]) + alpha -> encoded (sRGB by default) uint8/uint16 (H, W, C[+1]), rounded."""
    p = np.asarray(pixels, dtype=np.float32)
    if p.ndim == 2:
        p = p[:, :, None]
    if p.ndim != 3 or p.shape[2] not in (1, 3) or 0 in p.shape:
        raise ImageWriteError(dest, f"pixels must be (H, W, 1|3), got shape {p.shape}")
    full = np.float32(255 if bits == 8 else 65535)
    dtype = np.uint8 if bits == 8 else np.uint16
    al = None
    if alpha is not None:
        al = np.asarray(alpha, dtype=np.float32)
        if al.ndim == 3 and al.shape[2] == 1:
            al = al[:, :, 0]
        if al.shape != p.shape[:2]:
            raise ImageWriteError(dest, f"alpha shape {al.shape} does not match pixels {p.shape[:2]}")
    c = p.shape[2]
    out = np.empty(p.shape[:2] + (c + (al is not None),), dtype)
    # Row strips: a 100-megapixel output needs its integer samples, not several float copies.
    rows = max(1, (1 << 22) // (p.shape[1] * c))
    for y in range(0, p.shape[0], rows):
        out[y:y + rows, :, :c] = np.rint(encode(p[y:y + rows]) * full)
        if al is not None:
            out[y:y + rows, :, c] = np.rint(np.clip(np.nan_to_num(al[y:y + rows]), 0, 1) * full)
    return out, al is not None


def unique_path(path) -> pathlib.Path:
    """``path`` if free, else ``stem-1.ext``, ``stem-2.ext``, ... (first name not in use)."""
    path = pathlib.Path(path)
    n = 0
    candidate = path
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
