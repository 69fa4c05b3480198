"""Image-quality metrics, the way the super-resolution literature computes them.

All functions take float arrays in [0, 1], shape (H, W, 3) RGB or (H, W) luma.
"""

from __future__ import annotations

import numpy as np


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB in [0, 1], returned on the 8-bit scale [16, 235].

    Same as MATLAB ``rgb2ycbcr(im)(:,:,1)`` for double input times 255, which is
    what published PSNR-Y/SSIM-Y tables use.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2])


def shave(a: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels on every side (no-op for 0)."""
    return a[border:-border, border:-border] if border > 0 else a


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of ``a`` against ``b``; inf when identical."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D image with 1-D kernel ``g``."""
    n = len(g)
    h, w = img.shape
    rows = sum(g[k] * img[k:h - n + 1 + k, :] for k in range(n))
    return sum(g[k] * rows[:, k:w - n + 1 + k] for k in range(n))


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004 reference code).

    11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, 'valid' borders.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    g = _gaussian_window()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    saa = _filter_valid(a * a, g) - mu_a**2
    sbb = _filter_valid(b * b, g) - mu_b**2
    sab = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))


def sr_scores(output: np.ndarray, truth: np.ndarray, border: int) -> tuple[float, float]:
    """(PSNR-Y dB, SSIM-Y) of an upscaled RGB image against the ground truth.

    Both images are quantised to 8 bits first (published results are measured
    on saved 8-bit images), converted to BT.601 Y, and ``border`` pixels are
    shaved from each side.
    """
    out8 = np.round(np.clip(output, 0, 1) * 255.0) / 255.0
    gt8 = np.round(np.clip(truth, 0, 1) * 255.0) / 255.0
    ya, yb = shave(rgb_to_y(out8), border), shave(rgb_to_y(gt8), border)
    return psnr(ya, yb, peak=255.0), ssim(ya, yb, peak=255.0)
