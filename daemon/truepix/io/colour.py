"""sRGB transfer curves (IEC 61966-2-1) and the sRGB ICC profile.

Inside truepix pixels are linear light; encoders and decoders convert at the
edge.  The curves themselves live in ``truepix.colorimetry`` (the engine uses
them too) and are re-exported here.
"""

from __future__ import annotations

import functools

from truepix.colorimetry import linear_to_srgb, srgb_to_linear

__all__ = ["linear_to_srgb", "srgb_icc", "srgb_to_linear"]

@functools.cache
def srgb_icc() -> bytes:
    """An sRGB ICC profile (bytes) to embed in outputs whose source had none, e.g. RAW."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
