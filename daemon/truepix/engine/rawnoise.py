"""The noise of a raw file: variance = scale * signal + offset, in normalised raw units.

Raw noise is signal dependent (photon shot noise grows with the light, read noise does not), so
one ``(scale, offset)`` pair describes a sensor at one ISO (Foi et al., "Practical Poissonian-
Gaussian noise modeling and fitting for single-image raw-data", IEEE TIP 2008).  Where it comes
from, best first:

1. the DNG ``NoiseProfile`` tag the camera or converter wrote;
2. an estimate from the mosaic itself (``estimate``): smooth cells of each Bayer plane, binned by
   brightness, give the variance at each level; a line through them gives scale and offset;
3. the ISO with a typical APS-C sensor (``from_iso``) when the mosaic shows too few smooth cells.
"""

from __future__ import annotations

import numpy as np

from truepix.simulate.camera import PROFILES
from truepix.simulate.sensor import noise_variance


def from_iso(iso: float) -> tuple[float, float]:
    """(scale, offset) of a typical 24 MP APS-C sensor at ``iso`` (100 when unknown)."""
    iso = float(iso) if iso and iso > 0 else 100.0
    model = PROFILES["apsc24"].noise
    offset = noise_variance(0.0, iso, model, quantised=True)
    return float(noise_variance(1.0, iso, model, quantised=True) - offset), float(offset)


def _cells(plane: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and noise variance of each ``cell`` x ``cell`` block of one plane.

    The variance comes from the mixed second difference x[i,j] - x[i,j+1] - x[i+1,j] + x[i+1,j+1]
    over disjoint 2x2 groups, which cancels any plane a + b*i + c*j and has variance 4 sigma^2.
    """
    h, w = (plane.shape[0] // cell) * cell, (plane.shape[1] // cell) * cell
    p = plane[:h, :w].astype(np.float64)
    d = (p[0::2, 0::2] - p[0::2, 1::2] - p[1::2, 0::2] + p[1::2, 1::2]) / 2.0
    k = cell // 2
    d = d.reshape(h // cell, k, w // cell, k)
    var = (d ** 2).mean(axis=(1, 3))
    mean = p.reshape(h // cell, cell, w // cell, cell).mean(axis=(1, 3))
    return mean.ravel(), var.ravel()


def estimate(planes: np.ndarray, cell: int = 8, bins: int = 12) -> tuple[float, float] | None:
    """(scale, offset) fitted to packed Bayer planes (h, w, 4) in camera units (not white-balanced).

    Each brightness bin keeps its smoothest cells (the lowest twentieth of the variances: texture only
    adds variance) and corrects for taking a low quantile of a scaled chi-square; a least-squares
    line through the bins' (mean, variance), weighted by how many cells they had, gives the pair.
    Returns None when fewer than three bins are usable (a tiny or featureless crop).
    """
    means, variances = [], []
    for c in range(planes.shape[2]):
        m, v = _cells(planes[:, :, c], cell)
        means.append(m)
        variances.append(v)
    m, v = np.concatenate(means), np.concatenate(variances)
    keep = (m > 0.0) & (m < 0.9)
    m, v = m[keep], v[keep]
    if m.size < 200:
        return None
    edges = np.quantile(m, np.linspace(0, 1, bins + 1))
    dof = (cell // 2) ** 2
    # The 5th percentile of chi-square(dof)/dof, by simulation (dof = 16: about 0.5).
    q = float(np.quantile(np.random.default_rng(0).chisquare(dof, 20000) / dof, 0.05))
    xs, ys, ws = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (m >= lo) & (m <= hi)
        if sel.sum() < 20:
            continue
        xs.append(float(np.median(m[sel])))
        ys.append(float(np.quantile(v[sel], 0.05)) / q)
        ws.append(float(sel.sum()))
    if len(xs) < 3:
        return None
    x, y, w = np.asarray(xs), np.asarray(ys), np.sqrt(np.asarray(ws))
    a = np.stack([x, np.ones_like(x)], axis=1)
    scale, offset = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)[0]
    if scale < 0:  # no visible shot noise: a flat level
        scale, offset = 0.0, float(np.average(y, weights=w))
    return float(scale), float(max(offset, 1e-10))
