"""Image sensor: exposure, photon shot noise, read noise, and the raw file's quantisation.

Signals are in *normalised raw units*: 0 is the black level and 1 the white (clipping) level of the raw
data, i.e. DN = black + signal * (2**bits - 1 - black).  At ISO ``iso`` the camera's conversion gain
(electrons per DN) is ``gain_e_per_dn_base * base_iso / iso``: doubling the ISO halves the electrons that
fill the raw range, which is why high-ISO images are noisier at the same output brightness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from truepix.simulate.filters import as_float

__all__ = ["NoiseModel", "noise_variance", "expose", "add_sensor_noise", "quantise_raw", "normalise_raw"]


@dataclass(frozen=True)
class NoiseModel:
    """Noise and raw-encoding parameters of one sensor.

    base_iso: the ISO at which the raw range spans the full well.
    gain_e_per_dn_base: conversion gain at base ISO, electrons per DN of the ``bits``-bit raw data
        (usually about full_well_e / white_dn).
    read_noise_e: RMS read noise at base ISO, in electrons (input-referred).
    full_well_e: electrons a photosite holds before it saturates.
    bits: raw bit depth (10, 12 or 14).
    black_level_dn: DN of zero light.
    read_noise_e_high: the input-referred read noise floor at high ISO, in electrons, or None for a
        read noise independent of ISO.  Read noise has a part before the ISO amplifier (constant in
        electrons, this floor) and a part after it (constant in DN, so it shrinks in electrons as the gain
        rises); with both, the read noise is sqrt(high² + (read_noise_e² - high²) * (base_iso / iso)²).
    """

    base_iso: float
    gain_e_per_dn_base: float
    read_noise_e: float
    full_well_e: float
    bits: int
    black_level_dn: int
    read_noise_e_high: float | None = None

    def __post_init__(self) -> None:
        if not 8 <= self.bits <= 16:
            raise ValueError(f"bits must be 8..16, got {self.bits}")
        if not 0 <= self.black_level_dn < 2 ** self.bits - 1:
            raise ValueError(f"black_level_dn {self.black_level_dn} outside the {self.bits}-bit range")
        if self.base_iso <= 0 or self.gain_e_per_dn_base <= 0 or self.full_well_e <= 0 or self.read_noise_e < 0:
            raise ValueError("base_iso, gain_e_per_dn_base and full_well_e must be positive, read_noise_e >= 0")

    @property
    def white_dn(self) -> int:
        """Clipping level of the raw data, 2**bits - 1 (DN)."""
        return 2 ** self.bits - 1

    @property
    def range_dn(self) -> int:
        """DN between black and white: one normalised unit."""
        return self.white_dn - self.black_level_dn

    def gain(self, iso: float) -> float:
        """Conversion gain at ``iso``, electrons per DN: gain_e_per_dn_base * base_iso / iso."""
        if iso <= 0:
            raise ValueError(f"iso must be positive, got {iso}")
        return self.gain_e_per_dn_base * self.base_iso / iso

    def read_noise(self, iso: float) -> float:
        """Input-referred RMS read noise at ``iso``, electrons (see the class docstring)."""
        if self.read_noise_e_high is None:
            return self.read_noise_e
        floor = min(self.read_noise_e_high, self.read_noise_e)
        post = (self.read_noise_e ** 2 - floor ** 2) * (self.base_iso / max(iso, self.base_iso)) ** 2
        return math.sqrt(floor ** 2 + post)


def noise_variance(signal, iso: float, model: NoiseModel, quantised: bool = False):
    """Variance of a pixel of mean ``signal`` (normalised raw units), in normalised units squared.

    With the white range W = 2**bits - 1 - black (DN) and the gain g = model.gain(iso) (e-/DN), a signal s
    collects n = s W g electrons.  Shot noise is Poisson, variance n e-²; read noise adds r² e-²
    (r = model.read_noise(iso)).  In DN² the variance is (n + r²) / g², and in normalised units

        var(s) = (s W g + r²) / (g W)² = s / (g W) + (r / (g W))².

    Negative signals count as zero for the shot noise; saturation at the full well is ignored.
    quantised=True adds the rounding noise of the raw encoding, 1/12 DN² = 1 / (12 W²) (accurate when the
    noise exceeds about 0.5 DN).  Returns a float or an array of the signal's shape.
    """
    g = model.gain(iso)
    gw = g * model.range_dn
    s = np.maximum(np.asarray(signal, dtype=np.float64), 0.0)
    var = s / gw + (model.read_noise(iso) / gw) ** 2
    if quantised:
        var = var + 1.0 / (12.0 * model.range_dn ** 2)
    return float(var) if var.ndim == 0 else var


def expose(linear: np.ndarray, exposure_ev: float) -> np.ndarray:
    """Scale linear light by 2**exposure_ev (positive EV brightens).  Keeps the float dtype; no clipping."""
    img = as_float(linear)
    return img * img.dtype.type(2.0 ** exposure_ev)


def add_sensor_noise(linear: np.ndarray, iso: float, model: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """Record ``linear`` (normalised raw units, any shape) with photon shot noise and read noise.

    The mean electron count s W g (see :func:`noise_variance`) is drawn from a Poisson distribution,
    capped at the full well, and Gaussian read noise of model.read_noise(iso) electrons is added; the
    result is converted back to normalised units.  It is neither clipped nor quantised (values may be
    negative or exceed 1; see :func:`quantise_raw`).  Returns the input's float dtype.
    """
    img = as_float(linear)
    g = model.gain(iso)
    e_per_unit = g * model.range_dn
    mean_e = np.clip(img.astype(np.float64) * e_per_unit, 0.0, None)
    electrons = np.minimum(rng.poisson(mean_e).astype(np.float64), model.full_well_e)
    electrons += rng.normal(0.0, model.read_noise(iso), size=img.shape)
    return (electrons / e_per_unit).astype(img.dtype)


def quantise_raw(normalised: np.ndarray, model: NoiseModel) -> np.ndarray:
    """Encode normalised raw values as the camera's DN: black + x W, rounded, clipped to 0..2**bits - 1; uint16.

    Values below black are kept down to DN 0 (raw files keep the noise below black) and everything above
    the white level clips at 2**bits - 1.
    """
    x = np.asarray(normalised, dtype=np.float64)
    dn = np.rint(model.black_level_dn + x * model.range_dn)
    return np.clip(dn, 0, model.white_dn).astype(np.uint16)


def normalise_raw(dn: np.ndarray, model: NoiseModel) -> np.ndarray:
    """Decode raw DN to normalised units, (dn - black) / (white - black), as float32 (may be slightly negative)."""
    d = np.asarray(dn, dtype=np.float64)
    return ((d - model.black_level_dn) / model.range_dn).astype(np.float32)
