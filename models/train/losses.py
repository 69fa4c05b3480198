"""Training losses: L1, MS-SSIM and a CIELAB term, on sRGB-encoded tensors (N, 3, H, W) in [0, 1].

``lab_msssim`` is the combination the PyNET follow-up work found best for camera pipelines:
``(1 - alpha) * L1(Lab) / 100 + alpha * (1 - MS-SSIM(L / 100))`` — colour errors are measured
where they are perceived (Lab, D65) and structure on lightness only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# sRGB (D65) -> XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values -> linear light (IEC 61966-2-1), clamped to [0, 1] first."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(1e-8) ** 2.4)


def srgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded (N, 3, H, W) in [0, 1] -> CIELAB (N, 3, H, W): L in 0..100, a/b about -128..127."""
    lin = srgb_to_linear(x)
    xyz = torch.einsum("ij,njhw->nihw", _RGB_TO_XYZ.to(x), lin) / _WHITE.to(x).view(1, 3, 1, 1)
    eps = (6 / 29) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float, c2: float):
    ch = x.shape[1]
    mu_x = F.conv2d(x, window, groups=ch)
    mu_y = F.conv2d(y, window, groups=ch)
    sxx = F.conv2d(x * x, window, groups=ch) - mu_x ** 2
    syy = F.conv2d(y * y, window, groups=ch) - mu_y ** 2
    sxy = F.conv2d(x * y, window, groups=ch) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    return (lum * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, scales: int | None = None,
            window: int = 11) -> torch.Tensor:
    """Mean MS-SSIM (Wang, Simoncelli & Bovik 2003) of (N, C, H, W) tensors; as many scales (<= 5) as
    the size allows with an 11-pixel window (a 96-pixel patch gets 3)."""
    side = min(x.shape[-2:])
    fit = 1
    while fit < 5 and side // (2 ** fit) >= window:
        fit += 1
    scales = min(scales or 5, fit)
    weights = torch.tensor(MS_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    win = _gaussian_window(window, 1.5, x.shape[1], x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(scales):
        ssim, cs = _ssim_parts(x, y, win, c1, c2)
        values.append((ssim if i == scales - 1 else cs).clamp_min(1e-6))
        if i < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values, dim=0)  # (scales, N)
    return torch.prod(stacked ** weights[:, None], dim=0).mean()


def lab_msssim(out: torch.Tensor, target: torch.Tensor, alpha: float = 0.25) -> torch.Tensor:
    """``(1 - alpha) * L1(Lab)/100 + alpha * (1 - MS-SSIM(L/100))``."""
    lab_o, lab_t = srgb_to_lab(out), srgb_to_lab(target)
    l1 = (lab_o - lab_t).abs().mean() / 100
    return (1 - alpha) * l1 + alpha * (1 - ms_ssim(lab_o[:, :1] / 100, lab_t[:, :1] / 100))


def light_means(out: torch.Tensor, target: torch.Tensor, block: int) -> torch.Tensor:
    """L1 between the means of light (linear RGB) over ``block`` x ``block`` cells.

    A per-pixel loss on encoded values (sRGB, Lab) pulls texture the network cannot resolve toward
    the median of its encoded values, which sends less light than the texture did (the curves are
    concave): the output comes out darker where detail is lost.  This term asks for the same light
    per cell, as the fidelity guard and the colour-shift measure do.
    """
    return (F.avg_pool2d(srgb_to_linear(out), block) - F.avg_pool2d(srgb_to_linear(target), block)).abs().mean()


def build(name: str, scale: int = 2):
    """A loss by name: ``l1`` (RGB), ``l1+msssim`` (0.84 MS-SSIM + 0.16 L1, Zhao et al. 2017), ``lab``,
    ``lab+light`` (``lab`` + 2 x ``light_means`` over cells of 4 x ``scale`` output pixels)."""
    if name == "l1":
        return F.l1_loss
    if name == "l1+msssim":
        return lambda o, t: 0.16 * F.l1_loss(o, t) + 0.84 * (1 - ms_ssim(o, t))
    if name == "lab":
        return lab_msssim
    if name == "lab+light":
        return lambda o, t: lab_msssim(o, t) + 2.0 * light_means(o, t, 4 * scale)
    raise ValueError(f"unknown loss {name!r}; known: l1, l1+msssim, lab, lab+light")
