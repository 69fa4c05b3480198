"""Lens optics on the pixel grid: diffraction, defocus, residual aberrations, field curvature and lateral CA.

Point-spread functions (PSFs) are 2-D float64 kernels with odd sides, centred on the middle element and
normalised to sum to 1, sampled on the grid of the image they will blur (lengths in that grid's pixels).
Images are float arrays (H, W) or (H, W, 3) RGB in linear light (blur is a linear operation on light, so
sRGB-encoded data must be decoded first); their float dtype is kept.  Borders are reflect-padded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from truepix.simulate.filters import as_float, bilinear_sample, convolve
from truepix.simulate.special import bessel_j1

__all__ = [
    "WAVELENGTHS_UM", "airy_first_zero_um", "airy_psf", "defocus_psf", "gaussian_psf", "combine_psfs",
    "apply_psf", "field_blur", "lateral_ca", "bessel_j1",
]

#: Centre wavelengths (µm) of the R, G and B channels of a typical Bayer sensor's spectral responses.
WAVELENGTHS_UM = (0.61, 0.54, 0.465)

_J1_FIRST_ZERO = 3.8317059702075125


def _delta() -> np.ndarray:
    return np.ones((1, 1))


def _subpixel_offsets(oversample: int) -> np.ndarray:
    """Centres of an ``oversample`` x ``oversample`` grid inside one pixel, in pixels from the pixel centre."""
    return (np.arange(oversample) + 0.5) / oversample - 0.5


def airy_first_zero_um(f_number: float, wavelength_um: float) -> float:
    """Radius (µm, in the focal plane) of the first dark ring of the Airy pattern: 1.21967 λ N."""
    return _J1_FIRST_ZERO / math.pi * wavelength_um * f_number


def airy_psf(f_number: float, wavelength_um: float, pixel_pitch_um: float, radius_px: int | None = None,
             oversample: int = 9) -> np.ndarray:
    """Diffraction PSF of an aberration-free circular aperture, integrated over square pixels.

    f_number: the working f-number N (> 0).  wavelength_um: λ in µm (> 0).  pixel_pitch_um: width of one
    pixel of the target grid in µm.  The intensity at radius r (µm) is (2 J1(v) / v)^2 with
    v = π r / (λ N), whose first zero lies at 1.21967 λ N and whose FWHM is 1.029 λ N.

    Each pixel's value is the mean over ``oversample`` x ``oversample`` sub-samples (the pixel's area
    integral), so PSFs narrower than a pixel are still handled correctly.  radius_px: half-width of the
    kernel in pixels; by default 4 first-zero radii (about 96% of the energy; the truncated far rings are
    dropped and the rest renormalised), at least 2.  Returns a (2R+1, 2R+1) float64 kernel summing to 1.
    """
    if f_number <= 0 or wavelength_um <= 0 or pixel_pitch_um <= 0:
        raise ValueError("f_number, wavelength_um and pixel_pitch_um must be positive")
    if oversample < 1:
        raise ValueError(f"oversample must be >= 1, got {oversample}")
    if radius_px is None:
        radius_px = max(2, math.ceil(4.0 * airy_first_zero_um(f_number, wavelength_um) / pixel_pitch_um))
    radius_px = int(radius_px)
    n = 2 * radius_px + 1
    u = ((np.arange(n) - radius_px)[:, None] + _subpixel_offsets(oversample)[None, :]).ravel() * pixel_pitch_um
    v = np.hypot(u[:, None], u[None, :]) * (math.pi / (wavelength_um * f_number))
    safe = np.where(v == 0, 1.0, v)
    amplitude = np.where(v == 0, 1.0, 2.0 * bessel_j1(safe) / safe)
    kernel = (amplitude * amplitude).reshape(n, oversample, n, oversample).sum(axis=(1, 3))
    return kernel / kernel.sum()


def defocus_psf(radius_px: float, oversample: int = 9) -> np.ndarray:
    """Geometric defocus blur: a uniform disc (the circle of confusion) of ``radius_px`` pixels.

    The disc is anti-aliased by averaging ``oversample`` x ``oversample`` sub-samples per pixel.  A radius
    below 0.5 px fits inside one pixel and gives the 1x1 identity kernel.  Returns a (2R+1, 2R+1) float64
    kernel, R = ceil(radius - 0.5), summing to 1.
    """
    if radius_px < 0.5:
        return _delta()
    r = math.ceil(radius_px - 0.5)
    n = 2 * r + 1
    u = ((np.arange(n) - r)[:, None] + _subpixel_offsets(oversample)[None, :]).ravel()
    inside = (u[:, None] ** 2 + u[None, :] ** 2) <= radius_px * radius_px
    kernel = inside.reshape(n, oversample, n, oversample).sum(axis=(1, 3)).astype(np.float64)
    return kernel / kernel.sum()


def _discrete_variance(sigma: float, x: np.ndarray) -> float:
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return float((g * x * x).sum() / g.sum())


def gaussian_psf(sigma_px: float, radius_px: int | None = None) -> np.ndarray:
    """Isotropic Gaussian PSF (residual lens aberrations) with standard deviation ``sigma_px`` per axis.

    The kernel is a sampled Gaussian whose width parameter is tuned so that its discrete second moment
    along each axis is exactly ``sigma_px``² (a plain sampled Gaussian loses most of its variance below
    about 0.6 px and some to truncation).  radius_px: half-width, by default ceil(4 sigma), at least 1; it
    must leave room for the variance (sigma² < R(R+1)/3).  sigma_px <= 0 gives the 1x1 identity.
    Returns a (2R+1, 2R+1) float64 kernel summing to 1.
    """
    if sigma_px <= 0:
        return _delta()
    r = int(radius_px) if radius_px is not None else max(1, math.ceil(4.0 * sigma_px))
    x = np.arange(-r, r + 1, dtype=np.float64)
    target = sigma_px * sigma_px
    if target >= r * (r + 1) / 3.0 * 0.999:
        raise ValueError(f"radius_px={r} is too small for sigma_px={sigma_px}")
    lo, hi = 1e-3, max(1.0, 4.0 * sigma_px)
    while _discrete_variance(hi, x) < target:
        hi *= 2.0
    for _ in range(60):  # bisection in log space: the discrete variance grows monotonically with the width
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _discrete_variance(mid, x) < target else (lo, mid)
    g = np.exp(-0.5 * (x / math.sqrt(lo * hi)) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def combine_psfs(*psfs: np.ndarray) -> np.ndarray:
    """PSF of several blurs in sequence: the full convolution of the kernels (all with odd sides).

    Returns a float64 kernel of side sum(sides) - (count - 1), still odd and centred, summing to 1.
    With no arguments, the 1x1 identity.
    """
    out = _delta()
    for psf in psfs:
        k = np.asarray(psf, dtype=np.float64)
        if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
            raise ValueError(f"PSFs must be 2-D with odd sides, got shape {k.shape}")
        if k.size == 1:
            out = out * k[0, 0]
            continue
        shape = (out.shape[0] + k.shape[0] - 1, out.shape[1] + k.shape[1] - 1)
        out = np.fft.irfft2(np.fft.rfft2(out, s=shape) * np.fft.rfft2(k, s=shape), s=shape)
    out = np.clip(out, 0.0, None)  # FFT round-off leaves ~1e-18 negatives where the true kernel is zero
    return out / out.sum()


def apply_psf(image: np.ndarray, psf: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Blur ``image`` with ``psf``.

    image: (H, W) or (H, W, C) float array of linear light.  psf: one 2-D kernel applied to every channel,
    or a sequence of C kernels, one per channel (diffraction differs between R, G and B).  Kernels are
    used as given (not renormalised).  Returns the image's shape and float dtype.
    """
    img = as_float(image)
    if isinstance(psf, np.ndarray) and psf.ndim == 2:
        return convolve(img, psf)
    kernels = list(psf)
    if img.ndim != 3 or len(kernels) != img.shape[2]:
        raise ValueError(f"{len(kernels)} per-channel PSFs do not match an image of shape {img.shape}")
    out = np.empty_like(img)
    for c, k in enumerate(kernels):
        out[:, :, c] = convolve(img[:, :, c], k)
    return out


def _field_radius(shape, centre, corner_radius_px) -> np.ndarray:
    """Distance of every pixel from ``centre``, divided by ``corner_radius_px``, clipped to 0..1."""
    h, w = shape[:2]
    cy, cx = ((h - 1) / 2.0, (w - 1) / 2.0) if centre is None else centre
    if corner_radius_px is None:
        corner_radius_px = math.hypot((h - 1) / 2.0, (w - 1) / 2.0)
    y = np.arange(h, dtype=np.float64)[:, None] - cy
    x = np.arange(w, dtype=np.float64)[None, :] - cx
    return np.clip(np.hypot(y, x) / max(corner_radius_px, 1e-12), 0.0, 1.0)


def field_blur(image: np.ndarray, sigma_center_px: float, sigma_corner_px: float, zones: int = 4, *,
               centre: tuple[float, float] | None = None, corner_radius_px: float | None = None) -> np.ndarray:
    """Gaussian blur that grows from the image centre to the corners (field curvature, off-axis aberrations).

    The normalised field radius is 0 at ``centre`` (row, column in pixels; default the image centre) and 1
    at ``corner_radius_px`` (default the distance from the centre to the corner pixels), clipped beyond.
    The image is blurred with ``zones`` (>= 2) Gaussian sigmas spaced evenly from ``sigma_center_px`` (at
    radius 0) to ``sigma_corner_px`` (at radius 1); each pixel linearly interpolates between the two zones
    nearest its radius.  Pass ``centre``/``corner_radius_px`` to place a crop within a larger frame.
    image: (H, W) or (H, W, C) float array; returns its shape and float dtype.
    """
    if zones < 2:
        raise ValueError(f"zones must be >= 2, got {zones}")
    img = as_float(image)
    t = _field_radius(img.shape, centre, corner_radius_px) * (zones - 1)
    out = np.zeros_like(img)
    for k in range(zones):
        weight = np.clip(1.0 - np.abs(t - k), 0.0, 1.0).astype(img.dtype)
        if not weight.any():
            continue
        sigma = sigma_center_px + (sigma_corner_px - sigma_center_px) * k / (zones - 1)
        blurred = convolve(img, gaussian_psf(sigma)) if sigma > 1e-6 else img
        out += (weight[:, :, None] if img.ndim == 3 else weight) * blurred
    return out


def lateral_ca(image: np.ndarray, red_scale: float, blue_scale: float, *,
               centre: tuple[float, float] | None = None) -> np.ndarray:
    """Lateral chromatic aberration: magnify the red and blue planes radially about the optical centre.

    image: (H, W, 3) float RGB.  red_scale, blue_scale: magnifications relative to green (e.g. 1.0005
    moves red detail 0.05% further from the centre; 1.0 leaves the plane untouched).  centre: (row,
    column) in pixels, default the image centre.  Planes are resampled bilinearly; samples that would
    come from outside the image repeat the edge.  The green plane is returned unchanged.
    """
    img = as_float(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"lateral_ca needs an (H, W, 3) RGB image, got shape {img.shape}")
    out = img.copy()
    h, w = img.shape[:2]
    cy, cx = ((h - 1) / 2.0, (w - 1) / 2.0) if centre is None else centre
    y = np.arange(h, dtype=np.float64)[:, None] - cy
    x = np.arange(w, dtype=np.float64)[None, :] - cx
    for c, scale in ((0, red_scale), (2, blue_scale)):
        if scale <= 0:
            raise ValueError(f"CA scales must be positive, got {scale}")
        if scale == 1.0:
            continue
        ys = np.broadcast_to(cy + y / scale, (h, w))
        xs = np.broadcast_to(cx + x / scale, (h, w))
        out[:, :, c] = bilinear_sample(img[:, :, c], ys, xs)
    return out
