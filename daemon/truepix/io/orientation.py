"""EXIF/TIFF orientation (tag 274, values 1..8): turn stored pixels upright.

Values follow the TIFF 6.0 / EXIF 2.3 definition and match
``PIL.ImageOps.exif_transpose``. Works on (H, W) and (H, W, C) arrays and
returns a view where possible; the caller copies if it needs to.
"""

from __future__ import annotations

import numpy as np


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Return ``a`` as it should be displayed for EXIF ``orientation`` (1 = unchanged).

    Unknown values (0, 9, garbage) are treated as 1: a bad tag must not lose the photo.
    """
    o = orientation if orientation in range(1, 9) else 1
    if o == 1:
        return a
    if o == 2:
        return a[:, ::-1]
    if o == 3:
        return a[::-1, ::-1]
    if o == 4:
        return a[::-1]
    t = a.swapaxes(0, 1)  # transpose: rows <-> columns, channels untouched
    if o == 5:
        return t
    if o == 6:  # stored rotated 90 degrees counter-clockwise: rotate 90 clockwise
        return t[:, ::-1]
    if o == 7:
        return t[::-1, ::-1]
    return t[::-1]  # 8: rotate 90 counter-clockwise


def valid_orientation(value) -> int:
    """Coerce a tag value (int, str, tuple, None) to 1..8; anything else gives 1."""
    try:
        if isinstance(value, (tuple, list)):
            value = value[0]
        v = int(value)
    except (TypeError, ValueError, IndexError):
        return 1
    return v if 1 <= v <= 8 else 1
