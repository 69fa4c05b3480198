"""Restraint for sharpening networks (the lens optimizer): no ringing, no noise made louder.

A deblurring network may put back what the lens spread out; it must not draw what was never
there.  Two classic failures of sharpening are stopped here, after the network, on each tile:

- **ringing** (dark or bright halos beside edges, worst around clipped highlights): the result is
  clamped to the range of the input over a small window (``clamp_to_local_range``), the
  "anti-ringing" clamp of video scalers.  A blur is a weighted mean of the sharp values around a
  pixel, so the input's local range already spans the levels an edge has on its two sides; what
  lies outside it is overshoot.
- **noise amplification**: a correction is let through in proportion to how much the input's local
  variance exceeds its noise variance (``noise_gate``, a Wiener-like gain): on flat, noisy areas it
  is ~0, so the grain stays as it was; on edges and texture it is ~1.

Plain numpy on float32 (H, W, C) arrays, any value range; the window radii are in pixels.
"""

from __future__ import annotations

import numpy as np


def local_range(img: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of ``img`` over the (2r+1)^2 window around each pixel, per channel (edges repeated)."""
    lo, hi = img, img
    for axis in (0, 1):  # separable: rows, then columns
        pad = [(0, 0)] * img.ndim
        pad[axis] = (radius, radius)
        plo, phi = np.pad(lo, pad, mode="edge"), np.pad(hi, pad, mode="edge")
        n = img.shape[axis]

        def shifted(a, k, axis=axis, n=n):
            return a[(slice(None),) * axis + (slice(k, k + n),)]

        lo, hi = shifted(plo, 0).copy(), shifted(phi, 0).copy()
        for k in range(1, 2 * radius + 1):
            np.minimum(lo, shifted(plo, k), out=lo)
            np.maximum(hi, shifted(phi, k), out=hi)
    return lo, hi


def clamp_to_local_range(out: np.ndarray, inp: np.ndarray, radius: int) -> np.ndarray:
    """``out`` clipped, in place, to ``inp``'s range over the window of ``radius`` around each pixel."""
    lo, hi = local_range(inp, radius)
    return np.clip(out, lo, hi, out=out)


def _box_mean(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window (reflected at the edges), per channel: separable sums of
    shifted slices in float32 (25 terms at radius 2: exact enough for a variance of 1e-6 next to
    values near 1, where running sums would not be)."""
    out = a
    for axis in (0, 1):
        pad = [(0, 0)] * a.ndim
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="reflect")
        n = a.shape[axis]
        acc = p[(slice(None),) * axis + (slice(0, n),)].copy()
        for k in range(1, 2 * radius + 1):
            acc += p[(slice(None),) * axis + (slice(k, k + n),)]
        out = acc
    out *= np.float32(1.0 / (2 * radius + 1) ** 2)
    return out


def noise_gate(inp: np.ndarray, sigma: float, k: float = 2.0, radius: int = 2) -> np.ndarray:
    """(H, W, 1) float32 in 0..1: how much of a correction to keep at each pixel.

    ``max(0, v - k sigma^2) / v``, with v the input's local variance over the window (mean over
    channels) and ``sigma`` the noise deviation in the same units: 0 where the input varies no more
    than noise would, towards 1 where structure dominates.
    """
    mean = _box_mean(inp, radius)
    var = _box_mean(inp * inp, radius) - mean * mean
    v = np.maximum(var, 0.0).mean(axis=2, keepdims=True)
    return (np.maximum(v - np.float32(k * sigma * sigma), 0.0) / np.maximum(v, np.float32(1e-12))).astype(np.float32)


def restrain(out: np.ndarray, inp: np.ndarray, clamp_radius: int = 0, gate: float = 0.0,
             sigma: float = 0.0) -> np.ndarray:
    """A sharpening network's ``out`` (same shape as ``inp``), restrained in place: the correction
    ``out - inp`` gated by ``noise_gate(inp, sigma, gate)`` (when ``gate`` > 0), then clamped to the
    input's local range (when ``clamp_radius`` > 0)."""
    if gate > 0:
        out -= inp
        out *= noise_gate(inp, sigma, gate)
        out += inp
    if clamp_radius > 0:
        clamp_to_local_range(out, inp, clamp_radius)
    return out
