"""The independent camera for ``truepix eval --task upscale --degradation independent``.

A second, independent degradation family, built from settings the training family
(``truepix.simulate.family``) never draws, so a score on it says how an upscaler does on cameras
it has not been shaped for:

- lens: per image one of three PSF shapes training lacks -- a plateau-shaped generalised Gaussian
  (beta 3..6), a hexagonal or octagonal aperture defocus (polygon disc), or a catadioptric ring
  (an annulus convolved with a small Gaussian);
- pixel aperture with a fill factor 0.6..0.8: the scene is averaged over a square smaller than the
  pixel, then point-sampled at the pixel centre (training averages the whole pixel);
- sensor: ISO-800-like Poisson-Gaussian noise with a read/shot balance training lacks (read
  noise 24 e- against 8 000 e- per raw unit: a third of the variance at mid-grey) plus row
  (banding) noise, 12-bit raw;
- demosaic: Menon 2007 DDFAPD (``colour_demosaicing``; training uses bilinear or Malvar-He-Cutler);
- no in-camera noise reduction or sharpening;
- JPEG: 4:4:4 chroma (quality 50..95) or 4:2:0 at quality 50..58 (training: 4:2:0, 60..100);
- a DEFOCUSED THIRD of every frame: a smooth mask over one side, where the scene itself is
  blurred by a strong disc (``DEFOCUS_RADIUS`` low-resolution pixels) before the camera, so the
  ground truth and the input both carry it (the "nothing invented in bokeh" test).

All physics runs in linear light.  Every image's draw comes from a generator seeded by its index,
so every run and every method sees the same inputs.
"""

from __future__ import annotations

import math

import numpy as np

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.simulate.cfa import PATTERNS, cfa_masks, mosaic
from truepix.simulate.filters import as_float
from truepix.simulate.jpeg import jpeg_roundtrip
from truepix.simulate.optics import apply_psf, combine_psfs, defocus_psf, gaussian_psf
from truepix.simulate.sensor import NoiseModel, add_sensor_noise, normalise_raw, quantise_raw

ISO = 800.0
# 12-bit raw, 8 000 e- per raw unit at ISO 800 (64 000 e- at base ISO 100) and 24 e- of read noise
# independent of ISO: at mid-grey (0.18) read noise is about a quarter of the variance, where the
# training profiles' 1-3 e- make it well under one per cent.
NOISE = NoiseModel(base_iso=100, gain_e_per_dn_base=64000 / 3839, read_noise_e=24.0, full_well_e=64000,
                   bits=12, black_level_dn=256, read_noise_e_high=None)
ROW_SIGMA = 0.001            # row (banding) noise, normalised raw units, one offset per sensor row
DEFOCUS_RADIUS = 6.0         # the defocused third's disc radius, low-resolution pixels
KERNELS = ("plateau", "polygon", "ring")
SEED = 20_000                # the image index is added (the camera protocol uses 10 000)

FAMILY = {
    "kernels": "generalised Gaussian beta 3..6 | hexagon/octagon aperture | ring (annulus * Gaussian)",
    "fill_factor": "0.6..0.8 (box, point-sampled)",
    "noise": f"ISO {ISO:g}, read {NOISE.read_noise_e:g} e-, 8000 e-/unit, row sigma {ROW_SIGMA:g}, 12-bit",
    "demosaic": "Menon 2007 DDFAPD",
    "jpeg": "4:4:4 q50..95 or 4:2:0 q50..58",
    "defocused_third": f"disc radius {DEFOCUS_RADIUS:g} LR px, before the camera",
}


# -- the draw -------------------------------------------------------------------------------------


def sample_params(rng: np.random.Generator, index: int) -> dict:
    """One image's settings (lengths in low-resolution pixels), JSON-serialisable."""
    kernel = KERNELS[int(rng.integers(len(KERNELS)))]
    if kernel == "plateau":
        lens = {"alpha_px": float(rng.uniform(0.5, 1.0)), "beta": float(rng.uniform(3.0, 6.0))}
    elif kernel == "polygon":
        lens = {"radius_px": float(rng.uniform(0.6, 1.5)), "sides": int(rng.choice([6, 8])),
                "angle": float(rng.uniform(0, math.pi))}
    else:
        outer = float(rng.uniform(0.8, 1.6))
        lens = {"outer_px": outer, "inner_px": outer * float(rng.uniform(0.5, 0.65)),
                "sigma_px": float(rng.uniform(0.2, 0.4))}
    if rng.random() < 0.5:
        jpeg = {"jpeg_subsampling": "4:4:4", "jpeg_quality": int(rng.integers(50, 96))}
    else:
        jpeg = {"jpeg_subsampling": "4:2:0", "jpeg_quality": int(rng.integers(50, 59))}
    return {"kernel": kernel, **lens, "fill_factor": float(rng.uniform(0.6, 0.8)),
            "pattern": PATTERNS[int(rng.integers(len(PATTERNS)))],
            "wb_gains": [float(rng.uniform(1.5, 2.4)), 1.0, float(rng.uniform(1.3, 2.2))],
            "iso": ISO, **jpeg, "defocus_side": ["right", "left", "bottom", "top"][index % 4]}


# -- lens kernels ---------------------------------------------------------------------------------


def _grid(radius: int, oversample: int) -> np.ndarray:
    """Sub-sample coordinates of a (2r+1)-pixel square, pixels from the centre, flattened per axis."""
    n = 2 * radius + 1
    return ((np.arange(n) - radius)[:, None] + (np.arange(oversample) + 0.5)[None, :] / oversample - 0.5).ravel()


def _integrate(inside: np.ndarray, radius: int, oversample: int) -> np.ndarray:
    n = 2 * radius + 1
    k = inside.reshape(n, oversample, n, oversample).sum(axis=(1, 3)).astype(np.float64)
    return k / k.sum()


def plateau_psf(alpha_px: float, beta: float, oversample: int = 5) -> np.ndarray:
    """Generalised Gaussian exp(-(r / alpha)^beta): a flat top with a soft edge (beta 3..6)."""
    r = max(1, math.ceil(2.6 * alpha_px))
    u = _grid(r, oversample)
    rho = np.hypot(u[:, None], u[None, :])
    return _integrate(np.exp(-((rho / alpha_px) ** beta)), r, oversample)


def polygon_psf(radius_px: float, sides: int, angle: float, oversample: int = 9) -> np.ndarray:
    """Defocus through a ``sides``-bladed aperture: a uniform regular polygon of circumradius ``radius_px``."""
    if radius_px < 0.5:
        return np.ones((1, 1))
    r = math.ceil(radius_px)
    u = _grid(r, oversample)
    y, x = u[:, None], u[None, :]
    phi = np.mod(np.arctan2(y, x) - angle, 2 * math.pi / sides) - math.pi / sides
    edge = radius_px * math.cos(math.pi / sides) / np.cos(phi)
    return _integrate((np.hypot(y, x) <= edge).astype(np.float64), r, oversample)


def ring_psf(outer_px: float, inner_px: float, sigma_px: float, oversample: int = 9) -> np.ndarray:
    """Catadioptric (mirror lens) bokeh: an annulus (central obstruction) blurred by a small Gaussian."""
    r = max(1, math.ceil(outer_px))
    u = _grid(r, oversample)
    rho2 = u[:, None] ** 2 + u[None, :] ** 2
    ring = _integrate(((rho2 <= outer_px ** 2) & (rho2 >= inner_px ** 2)).astype(np.float64), r, oversample)
    return combine_psfs(ring, gaussian_psf(sigma_px))


def lens_psf(params: dict, scale: int) -> np.ndarray:
    """The drawn lens kernel on the teacher grid (low-resolution lengths times ``scale``)."""
    if params["kernel"] == "plateau":
        return plateau_psf(params["alpha_px"] * scale, params["beta"])
    if params["kernel"] == "polygon":
        return polygon_psf(params["radius_px"] * scale, params["sides"], params["angle"])
    return ring_psf(params["outer_px"] * scale, params["inner_px"] * scale, params["sigma_px"] * scale)


# -- pixel aperture -------------------------------------------------------------------------------


def aperture_sample(linear: np.ndarray, scale: int, fill: float) -> np.ndarray:
    """Average over a square of ``fill`` x ``fill`` low-resolution pixels, sampled at each pixel's centre.

    The teacher grid is too coarse for a fractional box (at x2, a 0.7-pixel box is 1.4 teacher pixels),
    so the teacher is taken as samples of a band-limited scene and the box is applied as its exact
    transfer function, sinc(fill * scale * f) per axis, with the half-pixel shift to the low-resolution
    pixel centre (``area_downsample``'s convention) as a phase.  Reflect-padded; ``fill`` = 1 is
    (nearly) ``area_downsample``.
    """
    img = as_float(linear)
    h, w = img.shape[:2]
    pad = 8 * scale
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    ph, pw = padded.shape[:2]
    fy, fx = np.fft.fftfreq(ph)[:, None], np.fft.rfftfreq(pw)[None, :]
    width, shift = fill * scale, (scale - 1) / 2.0
    transfer = np.sinc(width * fy) * np.sinc(width * fx) * np.exp(2j * math.pi * (fy + fx) * shift)
    out = np.fft.irfft2(np.fft.rfft2(padded, axes=(0, 1)) * transfer[..., None], s=(ph, pw), axes=(0, 1))
    return np.ascontiguousarray(out[pad:pad + h:scale, pad:pad + w:scale]).astype(img.dtype)


# -- sensor and development -----------------------------------------------------------------------


def record(raw: np.ndarray, rng: np.random.Generator, noise: bool = True) -> np.ndarray:
    """Shot + read noise (``NOISE`` at ``ISO``), one row offset per sensor row, 12-bit quantisation.

    raw: (H, W) normalised raw units.  ``noise`` False: the same sensor without noise (quantised only).
    Returns float32, unclipped below black.
    """
    if not noise:
        return normalise_raw(quantise_raw(raw, NOISE), NOISE)
    noisy = add_sensor_noise(raw, ISO, NOISE, rng)
    noisy = noisy + rng.normal(0.0, ROW_SIGMA, size=(raw.shape[0], 1)).astype(noisy.dtype)
    return normalise_raw(quantise_raw(noisy, NOISE), NOISE)


def menon_demosaic(raw: np.ndarray, pattern: str) -> np.ndarray:
    """Menon 2007 DDFAPD demosaic (``colour_demosaicing``), float32 (H, W, 3)."""
    from truepix.evaluate.extras import require

    cd = require("colour_demosaicing", "the Menon 2007 demosaic")
    return cd.demosaicing_CFA_Bayer_Menon2007(raw, pattern).astype(np.float32)


# -- the defocused third --------------------------------------------------------------------------


def defocus_third(h: int, w: int, index: int) -> np.ndarray:
    """A smooth 0..1 mask over one third of the frame (a side, alternating per image), 1 = defocused."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = [x / w, 1 - x / w, y / h, 1 - y / h][index % 4]
    return np.clip((t - (2 / 3 - 0.05)) / 0.1, 0, 1)  # 10% of the frame blends sharp into blurred


# -- the whole camera -----------------------------------------------------------------------------


def independent_lr(truth: np.ndarray, scale: int, index: int,
                   noise: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The independent camera's image of ``truth`` (sRGB float32 (H, W, 3), H and W multiples of 2*scale).
    ``noise`` False: the same draw (lens, aperture, white balance, JPEG) from a sensor without noise —
    the reference that tells a colour change from the noise a method removed.

    Returns (teacher: ``truth`` with its defocused third, sRGB float32 (H, W, 3); lr: sRGB float32
    (H/scale, W/scale, 3); mask: the defocused third (H, W), 1 = fully defocused; the draw's parameters).
    """
    h, w = truth.shape[:2]
    if h % (2 * scale) or w % (2 * scale):
        raise ValueError(f"truth size {h}x{w} must be a multiple of 2*scale={2 * scale}")
    rng = np.random.default_rng(SEED + index)
    params = sample_params(rng, index)
    lin = srgb_to_linear(truth.astype(np.float32))
    mask = defocus_third(h, w, index)
    blurred = apply_psf(lin, defocus_psf(DEFOCUS_RADIUS * scale))
    scene = (lin * (1 - mask[..., None]) + blurred * mask[..., None]).astype(np.float32)
    light = aperture_sample(apply_psf(scene, lens_psf(params, scale)), scale, params["fill_factor"])
    gains = np.asarray(params["wb_gains"], np.float32)
    pattern = params["pattern"]
    raw = record(mosaic(np.clip(light, 0, None) / gains, pattern), rng, noise)
    raw *= cfa_masks(pattern, *raw.shape).astype(np.float32) @ gains
    srgb = linear_to_srgb(np.clip(menon_demosaic(raw, pattern), 0.0, 1.0))
    lr = jpeg_roundtrip(srgb, params["jpeg_quality"], params["jpeg_subsampling"])
    return linear_to_srgb(scene), np.ascontiguousarray(lr, dtype=np.float32), mask, params


def degrade_for_tuning(scale: int):
    """``(truth, i) -> (teacher, lr)`` for ``camera.tune_unsharp``: training images under this family
    (indices from 50 000, never those of the evaluation images)."""

    def degrade(truth: np.ndarray, i: int):
        teacher, lr, _, _ = independent_lr(truth, scale, 50_000 + i)
        return teacher, lr

    return degrade
