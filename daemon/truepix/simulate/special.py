"""Special functions the optics need, in pure numpy (no scipy)."""

from __future__ import annotations

import numpy as np

__all__ = ["bessel_j1"]

# Abramowitz & Stegun, Handbook of Mathematical Functions, 9.4.4 (|x| <= 3; |error| < 1.3e-8) and
# 9.4.6 (x >= 3; modulus f1 error < 4e-8, phase theta1 error < 9e-8).  Coefficients in ascending powers.
_SMALL = (0.5, -0.56249985, 0.21093573, -0.03954289, 0.00443319, -0.00031761, 0.00001109)
_F1 = (0.79788456, 0.00000156, 0.01659667, 0.00017105, -0.00249511, 0.00113653, -0.00020033)
_THETA1 = (-2.35619449, 0.12499612, 0.00005650, -0.00637879, 0.00074348, 0.00079824, -0.00029166)


def _poly(coeffs, t):
    acc = np.zeros_like(t) + coeffs[-1]
    for c in coeffs[-2::-1]:
        acc = acc * t + c
    return acc


def bessel_j1(x) -> np.ndarray:
    """Bessel function of the first kind of order one, J1(x), for real ``x`` of any shape.

    Returns float64 with an absolute error below 5e-8 everywhere (A&S 9.4.4 / 9.4.6 approximations),
    e.g. J1(1) = 0.44005059, J1(5) = -0.32757914, first zero at x = 3.83170597.  J1 is odd: J1(-x) = -J1(x).
    """
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x).ravel()
    out = np.empty_like(ax)
    small = ax <= 3.0
    xs = ax[small]
    out[small] = xs * _poly(_SMALL, (xs / 3.0) ** 2)
    xl = ax[~small]
    z = 3.0 / xl
    f1 = _poly(_F1, z)
    theta1 = xl + _poly(_THETA1, z)
    out[~small] = f1 * np.cos(theta1) / np.sqrt(xl)
    return np.where(x.ravel() < 0, -out, out).reshape(x.shape)
