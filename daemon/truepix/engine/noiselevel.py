"""The noise level of an RGB image, for a denoiser when the recipe does not give it.

Immerkær's estimator ("Fast noise variance estimation", CVIU 1996): the image convolved with the
3x3 mask [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] (which cancels every plane and most smooth shading)
has a mean absolute value of sigma * 6 * sqrt(2 / pi) where the image is flat.  Edges and texture
add to it, so only the pixels with the weakest gradients are used (the quietest ``keep`` share,
gradients from 3x3 Sobel filters), as in Tai & Yang's edge-excluding refinement (2008).  It works on
white noise; the correlated noise of a demosaiced raw reads low, so a photographer can always set
the level in the recipe instead.
"""

from __future__ import annotations

import math

import numpy as np


def _conv3(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    h, w = a.shape
    out = np.zeros((h - 2, w - 2), np.float32)
    for dy in range(3):
        for dx in range(3):
            if k[dy, dx]:
                out += np.float32(k[dy, dx]) * a[dy:dy + h - 2, dx:dx + w - 2]
    return out


_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def estimate_sigma(img: np.ndarray, keep: float = 0.5, max_pixels: int = 4_000_000) -> float:
    """Standard deviation of white noise in ``img`` (H, W[, C], 0..1 values), averaged over channels.

    Large images are estimated on a centred crop of at most ``max_pixels`` (the level is global).
    """
    a = np.asarray(img, np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w = a.shape[:2]
    if h * w > max_pixels:
        side = int(math.sqrt(max_pixels))
        y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        a = a[y0:y0 + side, x0:x0 + side]
    if min(a.shape[:2]) < 8:
        return 0.0
    sigmas = []
    for c in range(a.shape[2]):
        ch = a[:, :, c]
        resp = np.abs(_conv3(ch, _MASK))
        grad = np.abs(_conv3(ch, _SOBEL_X)) + np.abs(_conv3(ch, _SOBEL_X.T))
        quiet = resp[grad <= np.quantile(grad, keep)]
        sigmas.append(float(np.mean(quiet)) * math.sqrt(math.pi / 2) / 6)
    return float(np.mean(sigmas))
