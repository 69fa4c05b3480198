"""The last stage of a photo's way: an engine result + the recipe's output spec -> a published file.

``encode_rgb`` for an enhanced RGB image (the input's ICC and metadata carried over);
``encode_raw`` for a developed RAW: a linear DNG (light before white balance, the original's
colour matrices and crop) or a rendered file in the recipe's colour space (default crop, camera
-> output colour, orientation, matching ICC).  Both publish atomically (``io.atomic``) and return
the path written and the output's (height, width).
"""

from __future__ import annotations

import pathlib

import numpy as np

from truepix import colour
from truepix.colour import linear_to_srgb, srgb_icc, srgb_to_linear
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

    def start(self, height: int, width: int) -> None:
        dtype = np.uint8 if self.depth == 8 else np.uint16
        self.samples = np.empty((height, width, (1 if self.grey else 3) + self.alpha), dtype)

    def write(self, y: int, rows: np.ndarray) -> None:
        if self.grey:
            rows = linear_to_srgb(srgb_to_linear(rows, out=rows).mean(axis=2, keepdims=True, dtype=np.float32))
        rows *= np.float32(255 if self.depth == 8 else 65535)
        np.rint(rows, out=rows)
        self.samples[y:y + len(rows), :, :rows.shape[2]] = rows

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


def samples_for(recipe, decoded, dest=None) -> Samples:
    """The sink for ``decoded``'s output in ``recipe``'s format."""
    jpeg = output_format(dest or "output", recipe.format, recipe.bit_depth).name == "jpeg"  # no alpha there
    return Samples(recipe.format, recipe.bit_depth, grey=decoded.pixels.shape[2] == 1,
                   alpha=decoded.alpha is not None and not jpeg, dest=dest)


def encode_rgb(dest: pathlib.Path, enhanced, decoded, recipe, source: pathlib.Path, *,
               overwrite: bool = False, sink: Samples | None = None) -> tuple[pathlib.Path, tuple[int, int]]:
    """Write ``enhanced`` (its ``pixels``, or the rows ``sink`` took while the engine ran)."""
    icc = decoded.icc if decoded.icc is not None else (srgb_icc() if decoded.kind == "raw" else None)
    xmp = {"recipe": recipe.name, "models": ", ".join(enhanced.models), "source": source.name}
    if enhanced.pixels is not None:
        written = write_image(dest, enhanced.pixels, alpha=enhanced.alpha, fmt=recipe.format, icc=icc,
                              bits=recipe.bit_depth, metadata_source=source, overwrite=overwrite, xmp_info=xmp)
        return written, enhanced.pixels.shape[:2]
    if sink.alpha:
        sink.put_alpha(enhanced.alpha)
    written = write_samples(dest, sink.take(), sink.alpha, fmt=recipe.format, icc=icc, metadata_source=source,
                            overwrite=overwrite, xmp_info=xmp)
    return written, enhanced.shape


def encode_raw(dest: pathlib.Path, dev, mos, recipe, source: pathlib.Path, *,
               overwrite: bool = False) -> tuple[pathlib.Path, tuple[int, int]]:
    from truepix.io.dng import write_linear_dng
    from truepix.io.orientation import apply_orientation

    s = dev.scale
    crop = None if mos.crop is None else tuple(v * s for v in mos.crop)
    xmp = {"recipe": recipe.name, "models": ", ".join(dev.models), "source": source.name}
    rgb = dev.rgb
    if recipe.format == "dng":
        rgb /= np.asarray(mos.wb, np.float32)  # a raw stores light before white balance
        written = write_linear_dng(dest, rgb, mos, crop=crop, orientation=mos.orientation, metadata_source=source,
                                   xmp_info=xmp, overwrite=overwrite)
    else:
        space = recipe.colour_space
        if crop is not None:
            top, left, h, w = crop
            rgb = rgb[top:top + h, left:left + w]
        rgb = colour.from_camera(np.ascontiguousarray(rgb), mos.rgb_cam(), space)
        rgb = np.ascontiguousarray(apply_orientation(rgb, mos.orientation))
        written = write_image(dest, rgb, fmt=recipe.format, icc=colour.icc(space), bits=recipe.bit_depth,
                              metadata_source=source, overwrite=overwrite, xmp_info=xmp,
                              encode=lambda x: colour.encode(x, space))
    return written, rgb.shape[:2]
