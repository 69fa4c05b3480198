"""What a format reader hands back before the common steps (orientation, scaling, the transfer noted)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .hints import Hints


@dataclass
class Samples:
    """Decoded samples exactly as stored, before any truepix conversion.

    data:        (H, W, C) array, C = 1 or 3 colour channels plus 1 alpha channel when
                 ``has_alpha``; uint8, uint16 or float32 (float: 0..1 nominal).
    has_alpha:   the last channel of ``data`` is (unassociated) alpha.
    icc:         ICC profile bytes, or None.
    orientation: EXIF/TIFF orientation still to apply (1..8); 1 when the decoder applied it.
    applied:     orientation the decoder itself applied (RAW: LibRaw's flip), reported as-is.
    linear:      ``data`` is already linear light (RAW); otherwise sRGB-encoded.
    hints:       what the file's EXIF says of its origin (``hints.Hints``, without the size), or None.
    """

    data: np.ndarray
    has_alpha: bool = False
    icc: bytes | None = None
    orientation: int = 1
    applied: int = 1
    linear: bool = False
    hints: Hints | None = None


class ReadFailure(Exception):
    """A reader's reason for refusing a file; ``image.read_image`` adds the path."""
