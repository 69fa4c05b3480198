"""sRGB transfer curves (IEC 61966-2-1) and the sRGB ICC profile.

Inside truepix pixels are linear light; encoders and decoders convert at the
edge. Both curves take and return float32 arrays in 0..1 (values outside are
clipped first), any shape.
"""

from __future__ import annotations

import functools

import numpy as np

_A = np.float32(0.055)


def srgb_to_linear(x) -> np.ndarray:
    """Decode sRGB-encoded values (0..1) to linear light (0..1), float32, same shape."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    out = np.empty_like(x)
    low = x <= np.float32(0.04045)
    out[low] = x[low] / np.float32(12.92)
    hi = x[~low]
    out[~low] = np.power((hi + _A) / np.float32(1.055), np.float32(2.4))
    return out


def linear_to_srgb(x) -> np.ndarray:
    """Encode linear light (0..1) with the sRGB curve (0..1), float32, same shape."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    out = np.empty_like(x)
    low = x <= np.float32(0.0031308)
    out[low] = x[low] * np.float32(12.92)
    hi = x[~low]
    out[~low] = np.float32(1.055) * np.power(hi, np.float32(1 / 2.4)) - _A
    return out


@functools.cache
def srgb_icc() -> bytes:
    """An sRGB ICC profile (bytes) to embed in outputs whose source had none, e.g. RAW."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
