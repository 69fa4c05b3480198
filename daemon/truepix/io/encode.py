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
from truepix.colour import srgb_icc
from truepix.io.image import write_image


def encode_rgb(dest: pathlib.Path, enhanced, decoded, recipe, source: pathlib.Path, *,
               overwrite: bool = False) -> tuple[pathlib.Path, tuple[int, int]]:
    icc = decoded.icc if decoded.icc is not None else (srgb_icc() if decoded.kind == "raw" else None)
    written = write_image(
        dest, enhanced.pixels, alpha=enhanced.alpha, fmt=recipe.format, icc=icc, bits=recipe.bit_depth,
        metadata_source=source, overwrite=overwrite,
        xmp_info={"recipe": recipe.name, "models": ", ".join(enhanced.models), "source": source.name},
    )
    return written, enhanced.pixels.shape[:2]


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
