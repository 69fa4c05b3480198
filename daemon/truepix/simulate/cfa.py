"""Colour filter arrays: Bayer sampling, packing into colour planes, and bilinear demosaicing.

A pattern names the colours of the 2x2 tile's sites in raster order: "RGGB" means R at (0, 0), G at (0, 1)
and (1, 0), B at (1, 1).  Mosaics are (H, W) float arrays; RGB images are (H, W, 3) float arrays.
"""

from __future__ import annotations

import numpy as np

from truepix.simulate.filters import as_float

__all__ = ["PATTERNS", "cfa_masks", "mosaic", "pack", "unpack", "demosaic_bilinear"]

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))
_INDEX = {"R": 0, "G": 1, "B": 2}


def _check(pattern: str) -> str:
    p = str(pattern).upper()
    if p not in PATTERNS:
        raise ValueError(f"unknown CFA pattern {pattern!r}; expected one of {PATTERNS}")
    return p


def _site_offsets(pattern: str) -> tuple[tuple[int, int], ...]:
    """Tile offsets (row, col) of R, G1, G2, B: G1 is the green on the red row (LibRaw's G), G2 on the blue row."""
    p = _check(pattern)
    where = {c: [o for o, pc in zip(_OFFSETS, p, strict=True) if pc == c] for c in "RGB"}
    r, b = where["R"][0], where["B"][0]
    g1 = next(o for o in where["G"] if o[0] == r[0])
    g2 = next(o for o in where["G"] if o[0] == b[0])
    return r, g1, g2, b


def cfa_masks(pattern: str, height: int, width: int) -> np.ndarray:
    """Boolean (height, width, 3) array: ``masks[y, x, c]`` is True where site (y, x) records colour c (R, G, B).

    Exactly one channel is True at every site.  Any height and width (odd ones too) are allowed.
    """
    p = _check(pattern)
    masks = np.zeros((height, width, 3), dtype=bool)
    for (dy, dx), colour in zip(_OFFSETS, p, strict=True):
        masks[dy::2, dx::2, _INDEX[colour]] = True
    return masks


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an (H, W, 3) RGB image through the CFA: an (H, W) array where each site keeps exactly its colour's value.

    Keeps the image's float dtype (other dtypes become float64); any H and W.
    """
    img = as_float(rgb)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"mosaic needs an (H, W, 3) image, got shape {img.shape}")
    p = _check(pattern)
    out = np.empty(img.shape[:2], dtype=img.dtype)
    for (dy, dx), colour in zip(_OFFSETS, p, strict=True):
        out[dy::2, dx::2] = img[dy::2, dx::2, _INDEX[colour]]
    return out


def _check_even(h: int, w: int) -> None:
    if h % 2 or w % 2:
        raise ValueError(f"a CFA mosaic must have even height and width to pack, got {h}x{w}; crop it first")


def pack(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Pack an (H, W) mosaic (H, W even) into (H/2, W/2, 4) planes ordered R, G1, G2, B for every pattern.

    G1 is the green sharing a row with red, G2 the green sharing a row with blue.  Keeps the float dtype.
    Raises ValueError for odd sizes.
    """
    m = as_float(mosaic)
    if m.ndim != 2:
        raise ValueError(f"pack needs an (H, W) mosaic, got shape {m.shape}")
    _check_even(*m.shape)
    return np.stack([m[dy::2, dx::2] for dy, dx in _site_offsets(pattern)], axis=-1)


def unpack(planes: np.ndarray, pattern: str) -> np.ndarray:
    """Exact inverse of :func:`pack`: (h, w, 4) planes R, G1, G2, B -> (2h, 2w) mosaic in ``pattern``."""
    pl = as_float(planes)
    if pl.ndim != 3 or pl.shape[2] != 4:
        raise ValueError(f"unpack needs (h, w, 4) planes, got shape {pl.shape}")
    h, w = pl.shape[:2]
    out = np.empty((2 * h, 2 * w), dtype=pl.dtype)
    for i, (dy, dx) in enumerate(_site_offsets(pattern)):
        out[dy::2, dx::2] = pl[:, :, i]
    return out


# Bilinear interpolation weights: G sites form a quincunx (4 nearest neighbours), R and B a square lattice.
_K_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=np.float64) / 4
_K_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 4


def _correlate3(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """3x3 correlation with zero padding (so normalised convolution ignores missing neighbours at borders)."""
    p = np.pad(a, 1)
    h, w = a.shape
    out = np.zeros_like(a)
    for dy in range(3):
        for dx in range(3):
            if k[dy, dx]:
                out += k[dy, dx] * p[dy:dy + h, dx:dx + w]
    return out


def demosaic_bilinear(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Classic bilinear demosaicing of an (H, W) mosaic into (H, W, 3) RGB, by normalised convolution.

    Each missing colour is the average of that colour's nearest recorded neighbours (2 or 4 of them);
    recorded values are kept exactly.  At the borders only neighbours inside the image are averaged.
    Keeps the mosaic's float dtype.
    """
    m = as_float(mosaic)
    if m.ndim != 2:
        raise ValueError(f"demosaic needs an (H, W) mosaic, got shape {m.shape}")
    masks = cfa_masks(pattern, *m.shape)
    out = np.empty(m.shape + (3,), dtype=m.dtype)
    for c in range(3):
        k = _K_GREEN if c == 1 else _K_RB
        sel = masks[:, :, c]
        weight = sel.astype(np.float64)
        num = _correlate3(np.where(sel, m, 0.0).astype(np.float64), k)
        den = _correlate3(weight, k)
        plane = num / np.maximum(den, 1e-12)
        plane[sel] = m[sel]
        out[:, :, c] = plane
    return out
