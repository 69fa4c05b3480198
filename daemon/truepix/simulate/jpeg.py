"""JPEG compression artefacts, by a round trip through Pillow's encoder in memory."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["SUBSAMPLINGS", "jpeg_roundtrip"]

SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")


def jpeg_roundtrip(srgb: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Encode and decode an image as JPEG, returning what a viewer of the file would see.

    srgb: (H, W, 3) RGB or (H, W) grey, sRGB-encoded floats nominally 0..1 (clipped to 0..1 and rounded to
    8 bits first).  quality: Pillow/libjpeg quality 1..100.  subsampling: chroma subsampling, one of
    "4:4:4", "4:2:2", "4:2:0" (ignored for grey).  Returns float32 in 0..1 of the input's shape, in steps
    of 1/255.
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be an integer 1..100, got {quality!r}")
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
    a = np.asarray(srgb, dtype=np.float64)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"jpeg_roundtrip needs (H, W) or (H, W, 3), got shape {a.shape}")
    u8 = np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    options = {"quality": int(quality)}
    if a.ndim == 3:
        options["subsampling"] = subsampling
    Image.fromarray(u8).save(buf, format="JPEG", **options)
    buf.seek(0)
    with Image.open(buf) as im:
        decoded = np.asarray(im.convert("RGB" if a.ndim == 3 else "L"))
    return decoded.astype(np.float32) / np.float32(255.0)
