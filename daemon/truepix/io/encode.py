"""The last stage of a photo's way: an engine result + the recipe's output spec -> a published file.

``encode_rgb`` for an enhanced RGB image (the input's ICC and metadata carried over);
``encode_raw`` for a developed RAW: a linear DNG (light before white balance, the original's
colour matrices and crop) or a rendered file in the recipe's colour space (default crop, camera
-> output colour, orientation, matching ICC).  Both publish atomically (``io.atomic``) and return
the path written, the output's (height, width) and notes for the job's report.

The print resolution goes with the pixels (``io.resolution``): an output gets the original's times
the scale factor, so it prints at the original's size ("print size kept: 300 → 600 ppi", in the
notes and the XMP record); an original that states none gives an output that states none.  The
caller's ``record`` (the original's sha256 and the recipe's, ``truepix.outputs``) joins truepix's
XMP record.
"""

from __future__ import annotations

import contextlib
import os
import pathlib

import numpy as np

from truepix import colour
from truepix.colour import linear_to_srgb, srgb_icc, srgb_to_linear
from truepix.errors import ImageWriteError
from truepix.io import atomic, resolution
from truepix.io.image import output_format, write_image, write_samples


class Samples:
    """The engine's sink (``engine.pipeline.Sink``) for an RGB photo's output file: each band of
    rows, sRGB-encoded as the engine finishes it, is rounded straight into the file's uint8/uint16
    samples — the output is never whole as float (12 bytes a pixel, and more while it was
    converted), and never decoded to linear light and encoded back (an RGB photo's values go out in
    the curve they came in).  A grey photo's rows are averaged in light.  Room for the alpha
    channel when the photo has one (``put_alpha``)."""

    def __init__(self, fmt: str, bits: int, *, grey: bool = False, alpha: bool = False, dest=None):
        self.depth = output_format(dest or "output", fmt, bits).bit_depth(bits)
        self.grey, self.alpha = grey, alpha
        self.samples: np.ndarray | None = None
        # the original's print resolution and (h, w), for the output's (``samples_for`` sets them)
        self.origin: tuple[resolution.Resolution | None, tuple[int, int]] | None = None

    def resolve(self, height: int, width: int):
        """The output's print resolution for a (height, width) output (``resolution.for_output``);
        ``resolution.KEEP`` when the original's is not known (a sink built without ``samples_for``)."""
        if self.origin is None:
            return resolution.KEEP
        return resolution.for_output(self.origin[0], self.origin[1], (height, width))

    def start(self, height: int, width: int) -> None:
        dtype = np.uint8 if self.depth == 8 else np.uint16
        self.samples = np.empty((height, width, (1 if self.grey else 3) + self.alpha), dtype)

    def _rounded(self, rows: np.ndarray) -> np.ndarray:
        """A band as the file's code values (float, rounded; averaged in light for a grey photo)."""
        if self.grey:
            rows = linear_to_srgb(srgb_to_linear(rows, out=rows).mean(axis=2, keepdims=True, dtype=np.float32))
        rows *= np.float32(255 if self.depth == 8 else 65535)
        return np.rint(rows, out=rows)

    def write(self, y: int, rows: np.ndarray) -> None:
        rows = self._rounded(rows)
        self.samples[y:y + len(rows), :, :rows.shape[2]] = rows

    def abort(self) -> None:
        """The job failed or stopped: nothing was written yet; the samples are let go."""
        self.samples = None

    def put_alpha(self, alpha: np.ndarray) -> None:
        """Alpha (H, W) float 0..1 as stored (no transfer curve) into the last channel."""
        full = np.float32(255 if self.depth == 8 else 65535)
        rows = max(1, (1 << 22) // alpha.shape[1])
        for y in range(0, alpha.shape[0], rows):
            self.samples[y:y + rows, :, -1] = np.rint(np.clip(np.nan_to_num(alpha[y:y + rows]), 0, 1) * full)

    def take(self) -> np.ndarray:
        """The samples; the sink lets go of them (so the encoder can free them before the metadata)."""
        samples, self.samples = self.samples, None
        return samples


class Streamed(Samples):
    """The engine's sink for a TIFF or PNG output without alpha: each band of rows is rounded and
    written to the output's temp file at once (``io.stream``), so neither the float output nor its
    samples are ever whole in memory.  ``finish`` closes the file, copies the metadata and publishes
    it (``atomic``); ``abort`` removes the temp file.  Write errors (a full disk) are ImageWriteErrors
    naming the output."""

    def __init__(self, dest: pathlib.Path, fmt: str, bits: int, icc: bytes | None, *, grey: bool = False,
                 overwrite: bool = False):
        super().__init__(fmt, bits, grey=grey, alpha=False, dest=dest)
        self.dest, self.fmt, self.icc, self.overwrite = dest, output_format(dest, fmt, bits).name, icc, overwrite
        self.tmp: pathlib.Path | None = None
        self.fh = self.writer = None
        self.shape = (0, 0)
        self.res = resolution.KEEP  # what the file's tags and its EXIF say (set at ``start``)

    def start(self, height: int, width: int) -> None:
        atomic.refuse_existing(self.dest, self.overwrite)
        self.shape = (height, width)
        self.tmp = atomic.temp_path(self.dest)
        writer = output_format(self.dest, self.fmt, self.depth).streamer
        self.res = res = self.resolve(height, width)
        with self._said():
            self.fh = open(self.tmp, "xb")
            self.writer = writer(self.fh, width, height, 1 if self.grey else 3, self.depth, False, self.icc,
                                 resolution=None if res == resolution.KEEP else res)

    def write(self, y: int, rows: np.ndarray) -> None:
        rows = self._rounded(rows)
        with self._said():
            self.writer.write(rows.astype(np.uint8 if self.depth == 8 else np.uint16))

    def finish(self, metadata_source, xmp_info: dict) -> pathlib.Path:
        with atomic.output(self.dest, overwrite=self.overwrite, tmp=self.tmp):
            self.writer.close()
            self.fh.close()
            from truepix.io.metadata import copy_metadata

            copy_metadata(metadata_source, self.tmp, width=self.shape[1], height=self.shape[0], xmp_info=xmp_info,
                          resolution=self.res)
        self.tmp = None
        return self.dest

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None

    @contextlib.contextmanager
    def _said(self):
        try:
            yield
        except OSError as err:
            self.abort()
            raise ImageWriteError(self.dest, atomic.why(err, self.dest)) from err


def samples_for(recipe, decoded, dest: pathlib.Path | None = None, *, overwrite: bool = False):
    """The sink for ``decoded``'s output in ``recipe``'s format: written as it comes (``Streamed``)
    when the format has a ``streamer`` (TIFF, PNG), the photo no alpha and ``dest`` is known, else
    gathered (``Samples``)."""
    out = output_format(dest or "output", recipe.format, recipe.bit_depth)
    grey = decoded.pixels.shape[2] == 1
    if dest is not None and decoded.alpha is None and out.streamer is not None:
        sink = Streamed(dest, recipe.format, recipe.bit_depth, icc_of(decoded), grey=grey, overwrite=overwrite)
    else:
        sink = Samples(recipe.format, recipe.bit_depth, grey=grey,
                       alpha=decoded.alpha is not None and out.name != "jpeg", dest=dest)  # JPEG: no alpha
    # the pixels are upright: the resolution is read as they are now (a quarter turn swaps it)
    sink.origin = resolution.read(decoded.source, decoded.orientation), decoded.pixels.shape[:2]
    return sink


def icc_of(decoded) -> bytes | None:
    """The output's ICC profile: the source's, sRGB's for a RAW rendered through LibRaw, else none."""
    return decoded.icc if decoded.icc is not None else (srgb_icc() if decoded.kind == "raw" else None)


def _print_size(xmp: dict, origin, res) -> list[str]:
    """The job's note (and the XMP record's PrintSize) when the resolution was scaled."""
    line = resolution.note(origin, res) if res != resolution.KEEP else None
    if line:
        xmp["print_size"] = line
    return [line] if line else []


def encode_rgb(dest: pathlib.Path, enhanced, decoded, recipe, source: pathlib.Path, *,
               overwrite: bool = False, sink: Samples | None = None,
               record: dict | None = None) -> tuple[pathlib.Path, tuple[int, int], list[str]]:
    """Write ``enhanced`` (its ``pixels``, or the rows ``sink`` took while the engine ran; a
    ``Streamed`` sink has written them already and is finished here).  ``record``: more of
    truepix's XMP record ({"source_sha256", "recipe_sha256"})."""
    icc = icc_of(decoded)
    xmp = {"recipe": recipe.name, "models": ", ".join(enhanced.models), "source": source.name, **(record or {})}
    shape = enhanced.pixels.shape[:2] if enhanced.pixels is not None else enhanced.shape
    if isinstance(sink, Streamed):
        notes = _print_size(xmp, sink.origin[0] if sink.origin else None, sink.res)
        return sink.finish(source, xmp), enhanced.shape, notes
    res = sink.resolve(*shape) if sink is not None else resolution.KEEP
    notes = _print_size(xmp, sink.origin[0] if sink is not None and sink.origin else None, res)
    if enhanced.pixels is not None:
        written = write_image(dest, enhanced.pixels, alpha=enhanced.alpha, fmt=recipe.format, icc=icc,
                              bits=recipe.bit_depth, metadata_source=source, overwrite=overwrite, xmp_info=xmp,
                              resolution=res)
        return written, shape, notes
    if sink.alpha:
        sink.put_alpha(enhanced.alpha)
    written = write_samples(dest, sink.take(), sink.alpha, fmt=recipe.format, icc=icc, metadata_source=source,
                            overwrite=overwrite, xmp_info=xmp, resolution=res)
    return written, shape, notes


def encode_raw(dest: pathlib.Path, dev, mos, recipe, source: pathlib.Path, *, overwrite: bool = False,
               record: dict | None = None) -> tuple[pathlib.Path, tuple[int, int], list[str]]:
    from truepix.io.dng import write_linear_dng
    from truepix.io.orientation import apply_orientation

    s = dev.scale
    crop = None if mos.crop is None else tuple(v * s for v in mos.crop)
    xmp = {"recipe": recipe.name, "models": ", ".join(dev.models), "source": source.name, **(record or {})}
    notes: list[str] = []
    if mos.colour_source:  # which colour matrix rendered it (io.rawcolour.COLOUR_SOURCES): a fallback is said
        xmp["extra"] = {**xmp.get("extra", {}), "Xmp.truepix.ColourSource": mos.colour_source}
    rgb = dev.rgb
    if recipe.format == "dng":
        rgb /= np.asarray(mos.wb, np.float32)  # a raw stores light before white balance
        written = write_linear_dng(dest, rgb, mos, crop=crop, orientation=mos.orientation, metadata_source=source,
                                   xmp_info=xmp, overwrite=overwrite, scale=s)
    else:
        space = recipe.colour_space
        if crop is not None:
            top, left, h, w = crop
            rgb = rgb[top:top + h, left:left + w]
        rgb = colour.from_camera(np.ascontiguousarray(rgb), mos.rgb_cam(), space)
        rgb = np.ascontiguousarray(apply_orientation(rgb, mos.orientation))
        # what the RAW's EXIF states, scaled by the upscalers after the demosaic (the crop is not a resize)
        origin = resolution.read(source, mos.orientation)
        res = origin.scaled(s, s) if origin is not None else None
        notes = _print_size(xmp, origin, res)
        written = write_image(dest, rgb, fmt=recipe.format, icc=colour.icc(space), bits=recipe.bit_depth,
                              metadata_source=source, overwrite=overwrite, xmp_info=xmp,
                              encode=lambda x: colour.encode(x, space), resolution=res)
    return written, rgb.shape[:2], notes
