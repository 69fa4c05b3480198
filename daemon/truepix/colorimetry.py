"""Colour maths: the sRGB transfer curves, and CIELAB / CIEDE2000 for colour shifts.

Plain functions on float arrays.  The transfer curves work chunk by chunk,
optionally in place (``out=x``), so converting a 100-megapixel image costs a
few megabytes of temporaries, not gigabytes.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 20  # elements converted at a time
_A = np.float32(0.055)


def _chunked(x, out, fn) -> np.ndarray:
    """``out[...] = fn(x)`` in slabs along the first axis (works for any memory layout)."""
    x = np.asarray(x, dtype=np.float32)
    if out is None:
        out = np.empty(x.shape, np.float32)
    if x.ndim == 0:
        out[...] = fn(x.reshape(1))[0]
        return out
    rows = max(1, _CHUNK // max(1, x.size // max(1, x.shape[0])))
    for i in range(0, x.shape[0], rows):
        out[i:i + rows] = fn(x[i:i + rows])
    return out


def _decode(s: np.ndarray) -> np.ndarray:
    s = np.clip(np.nan_to_num(s), 0.0, 1.0)
    low = s <= np.float32(0.04045)
    r = np.power((s + _A) / np.float32(1.055), np.float32(2.4))
    r[low] = s[low] / np.float32(12.92)
    return r


def _encode(s: np.ndarray) -> np.ndarray:
    s = np.clip(np.nan_to_num(s), 0.0, 1.0)
    low = s <= np.float32(0.0031308)
    r = np.float32(1.055) * np.power(s, np.float32(1 / 2.4)) - _A
    r[low] = s[low] * np.float32(12.92)
    return r


def srgb_to_linear(x, out: np.ndarray | None = None) -> np.ndarray:
    """Decode sRGB-encoded values to linear light (IEC 61966-2-1), float32, any shape.

    Values are clipped to 0..1 first (NaN -> 0).  ``out`` may be ``x`` itself.
    """
    return _chunked(x, out, _decode)


def linear_to_srgb(x, out: np.ndarray | None = None) -> np.ndarray:
    """Encode linear light with the sRGB curve, float32 in 0..1, any shape.

    Values are clipped to 0..1 first (NaN -> 0).  ``out`` may be ``x`` itself.
    """
    return _chunked(x, out, _encode)

# IEC 61966-2-1 linear sRGB -> CIE XYZ (D65), and the D65 white point.
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375],
     [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def linear_srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Linear sRGB in [0, 1] -> CIELAB (L* in 0..100) under D65."""
    xyz = np.asarray(rgb, np.float64) @ _RGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), per pixel."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    cbar7 = ((c1 + c2) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(cbar7 / (cbar7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dLp, dCp = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dHp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    Lbar, Cbar = (L1 + L2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hbar = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, hsum + 360, hsum - 360), hsum) / 2
    hbar = np.where(c1p * c2p == 0, hsum, hbar)
    t = (1 - 0.17 * np.cos(np.radians(hbar - 30)) + 0.24 * np.cos(np.radians(2 * hbar))
         + 0.32 * np.cos(np.radians(3 * hbar + 6)) - 0.20 * np.cos(np.radians(4 * hbar - 63)))
    d_theta = 30 * np.exp(-(((hbar - 275) / 25) ** 2))
    rc = 2 * np.sqrt(Cbar**7 / (Cbar**7 + 25.0**7))
    sl = 1 + 0.015 * (Lbar - 50) ** 2 / np.sqrt(20 + (Lbar - 50) ** 2)
    sc = 1 + 0.045 * Cbar
    sh = 1 + 0.015 * Cbar * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dLp / sl) ** 2 + (dCp / sc) ** 2 + (dHp / sh) ** 2 + rt * (dCp / sc) * (dHp / sh))
