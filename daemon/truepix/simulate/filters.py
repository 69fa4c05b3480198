"""Linear filtering and resampling on the pixel grid: FFT convolution, area downsampling, bilinear sampling.

Images are float arrays of shape (H, W) or (H, W, C); kernels are 2-D float arrays with odd sides whose
centre element is the origin.  Results keep the input's float dtype (float32 stays float32; anything else
becomes float64).  Nothing here clips values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["convolve", "area_downsample", "bilinear_sample", "as_float"]


def as_float(image) -> np.ndarray:
    """``image`` as a float32 or float64 array (float32 stays float32; other types become float64, unscaled)."""
    a = np.asarray(image)
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    return a.astype(np.float64)


def _fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n: pocketfft is several times faster on those than on large primes."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel of ``image`` with ``kernel`` (true convolution, not correlation).

    image: (H, W) or (H, W, C) float array, any value range.
    kernel: (kh, kw) float array with odd kh and kw; element (kh // 2, kw // 2) is the origin, so a kernel
        whose only non-zero element sits at offset (dy, dx) from the centre moves the image by (+dy, +dx).
    Returns an array of the image's shape and float dtype.

    Borders are reflect-padded (``np.pad(mode="reflect")``, mirror without repeating the edge pixel) by
    the kernel radius before the FFT, so the result does not wrap around: each border pixel sees a mirror
    image of its neighbourhood, as if the scene continued symmetrically.
    """
    img = as_float(image)
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be 2-D with odd sides, got shape {k.shape}")
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    if k.size == 1:
        return (img * img.dtype.type(k[0, 0])).astype(img.dtype, copy=False)
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    h, w = img.shape[:2]
    pad = [(ry, ry), (rx, rx)] + [(0, 0)] * (img.ndim - 2)
    padded = np.pad(img, pad, mode="reflect" if min(h, w) > 1 else "edge")
    # Output pixel y needs padded samples y .. y + 2*ry only, so a transform as long as the padded image
    # is already free of wrap-around for the rows we keep (see the slice below).
    n0, n1 = _fast_len(padded.shape[0]), _fast_len(padded.shape[1])
    f_img = np.fft.rfft2(padded, s=(n0, n1), axes=(0, 1))
    f_k = np.fft.rfft2(k, s=(n0, n1))
    if img.ndim == 3:
        f_k = f_k[:, :, None]
    full = np.fft.irfft2(f_img * f_k, s=(n0, n1), axes=(0, 1))
    return full[2 * ry:2 * ry + h, 2 * rx:2 * rx + w].astype(img.dtype, copy=False)


def area_downsample(image: np.ndarray, scale: int) -> np.ndarray:
    """Average non-overlapping ``scale`` x ``scale`` blocks: the pixel aperture of a sensor ``scale`` times coarser.

    image: (H, W) or (H, W, C) float array with H and W multiples of ``scale``.
    Returns (H // scale, W // scale[, C]) in the image's float dtype.  Output pixel (i, j) is centred on
    input coordinate (i * scale + (scale - 1) / 2, j * scale + (scale - 1) / 2), the same convention as
    Pillow's BOX and OpenCV's INTER_AREA reductions.
    """
    img = as_float(image)
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not a multiple of scale {scale}; crop it first")
    if scale == 1:
        return img.copy()
    blocks = img.reshape(h // scale, scale, w // scale, scale, *img.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(img.dtype, copy=False)


def bilinear_sample(plane: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample a 2-D ``plane`` at fractional pixel coordinates by bilinear interpolation.

    plane: (H, W) float array.  ys, xs: float arrays of one shape, in pixels (row, column; (0, 0) is the
    centre of the top-left pixel).  Coordinates outside the plane are clamped to its edge (the edge
    pixel is repeated).  Returns an array of the shape of ``ys`` in the plane's float dtype.
    """
    p = as_float(plane)
    h, w = p.shape
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0 = np.minimum(np.floor(ys).astype(np.intp), max(h - 2, 0))
    x0 = np.minimum(np.floor(xs).astype(np.intp), max(w - 2, 0))
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0).astype(p.dtype)
    fx = (xs - x0).astype(p.dtype)
    top = p[y0, x0] * (1 - fx) + p[y0, x1] * fx
    bottom = p[y1, x0] * (1 - fx) + p[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
