"""Optical low-pass (anti-aliasing) filter: the birefringent 4-point beam splitter in front of the sensor.

Two crossed birefringent plates split every ray into four, displaced by ``d`` horizontally and vertically,
so the PSF is four equal dots at (0, 0), (d, 0), (0, d), (d, d).  ``d`` is the filter's strength in
pixels of the grid it is applied to; a fractional ``d`` is spread onto the grid bilinearly.
"""

from __future__ import annotations

import math

import numpy as np

from truepix.simulate.filters import as_float, convolve

__all__ = ["olpf_kernel", "apply_olpf"]


def _two_dots(positions: tuple[float, float], centre: int, n: int) -> np.ndarray:
    """1-D kernel of length ``n`` with two half-weight dots at ``positions`` (pixels from index ``centre``)."""
    k = np.zeros(n)
    for p in positions:
        x = centre + p
        i = math.floor(x)
        f = x - i
        k[i] += 0.5 * (1.0 - f)
        if f > 0:
            k[i + 1] += 0.5 * f
    return k


def olpf_kernel(strength_px: float, centred: bool = True) -> np.ndarray:
    """The 4-dot OLPF point-spread function as an odd square float64 kernel summing to 1.

    strength_px: the split distance d >= 0 in pixels (0 gives the 1x1 identity).  The four dots of 1/4
    each lie at (0, 0), (d, 0), (0, d), (d, d); a fractional d shares each dot bilinearly among the four
    nearest pixels (the kernel is separable: the outer product of two 1-D two-dot kernels).

    centred=True (default) places the dots' centroid on the kernel's origin, at (±d/2, ±d/2), so the filter
    blurs without shifting the image; this keeps a simulated low-resolution image registered with its
    source.  For an even integer d the four dots then fall exactly on pixels.  centred=False puts the first
    dot on the origin (the optical layout literally), which also shifts the image by (d/2, d/2); the dots
    fall exactly on pixels for any integer d.
    """
    d = float(strength_px)
    if d < 0:
        raise ValueError(f"strength_px must be >= 0, got {strength_px}")
    if d == 0:
        return np.ones((1, 1))
    if centred:
        r = math.ceil(d / 2.0)
        k1 = _two_dots((-d / 2.0, d / 2.0), r, 2 * r + 1)
    else:
        r = math.ceil(d)
        k1 = _two_dots((0.0, d), r, 2 * r + 1)
    k = np.outer(k1, k1)
    return k / k.sum()


def apply_olpf(image: np.ndarray, strength_px: float) -> np.ndarray:
    """Filter ``image`` ((H, W) or (H, W, C) float, linear light) with the centred OLPF of ``strength_px`` pixels.

    Returns the image's shape and float dtype; strength 0 returns a copy.
    """
    img = as_float(image)
    if strength_px == 0:
        return img.copy()
    return convolve(img, olpf_kernel(strength_px))
