"""Network architectures, one small ``nn.Module`` each.

``AnchorSR`` follows ABPN ("anchor-based plain net", Du et al., MAI 2021
challenge winner for mobile real-time SR): a plain stack of 3x3 convolutions at
low resolution, then a PixelShuffle, with the input itself added as an
"anchor" (each input pixel repeated scale^2 times in channel space, which after
the shuffle is nearest-neighbour upsampling).  The network therefore only
learns the residual detail, which trains fast on a CPU, and everything it does
is convolutions + ReLU + one depth-to-space: the cheapest graph ONNX Runtime
runs on any execution provider.
"""

from __future__ import annotations

import torch
from torch import nn


class AnchorSR(nn.Module):
    """x``scale`` super-resolution of RGB in [0, 1].

    Args:
        scale: upscaling factor (2, 3 or 4).
        channels: feature width of the body.
        body: number of 3x3 conv + ReLU layers between head and tail.
        colors: image channels (3 for RGB).
    """

    def __init__(self, scale: int = 2, channels: int = 32, body: int = 6, colors: int = 3):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(colors, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(body):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(channels, colors * scale * scale, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)
        # Channel c*s^2 + k of the shuffle input lands in colour c: repeat each colour s^2 times.
        index = torch.arange(colors).repeat_interleave(scale * scale)
        self.register_buffer("anchor_index", index, persistent=False)
        # He initialisation keeps the signal alive through the plain ReLU stack
        # (PyTorch's default shrinks it ~0.6x per layer and the body never learns);
        # a near-zero tail makes the untrained network the nearest-neighbour anchor.
        for conv in self.body[:-1]:
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        nn.init.normal_(self.body[-1].weight, std=1e-3)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.body(x)
        anchor = x.index_select(1, self.anchor_index)
        return self.shuffle(residual + anchor)


class RLFB(nn.Module):
    """Residual local feature block of RLFN (Kong et al., NTIRE 2022 efficient SR), without its ESA:
    three 3x3 conv + ReLU with one local residual, then a 1x1 fuse.

    ESA (strided conv, 7x7/3 max-pool, bilinear resize to the input's size) was left out on
    purpose: its resize ratio depends on the input's size, so the net is not shift-equivariant
    and a tiled photo would not equal the whole one (and training patches would see another
    ratio than 512-pixel tiles).  Plain convolutions keep the receptive field exact and finite.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.fuse = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.convs(x) + x)


class RLFNAnchor(nn.Module):
    """RLFN-style residual blocks with ABPN's anchor: x``scale`` SR of RGB in [0, 1].

    RLFN spends its compute on plain 3x3 convolutions, which ONNX Runtime runs fast on every
    provider (IMDN/RFDN's channel splits and concatenations cost memory traffic for few FLOPs);
    the anchor (nearest-neighbour input added before the shuffle) means the net learns only the
    residual, which trains quickly on a CPU.

    Args:
        scale: 2, 3 or 4.  channels: feature width.  blocks: RLFB count.
    """

    def __init__(self, scale: int = 2, channels: int = 48, blocks: int = 5, colors: int = 3):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(colors, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[RLFB(channels) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, colors * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.register_buffer("anchor_index", torch.arange(colors).repeat_interleave(scale * scale),
                             persistent=False)
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        f = self.body_tail(self.blocks(f)) + f
        return self.shuffle(self.tail(f) + x.index_select(1, self.anchor_index))


def bayer_anchor_weights() -> torch.Tensor:
    """(12, 4, 1, 1) weights mapping packed R, G1, G2, B planes to a nearest-neighbour RGB guess
    in PixelShuffle(2) order (channel c * 4 + 2 * i + j is colour c at sub-pixel (i, j) of the
    RGGB tile): R and B repeat their plane; green keeps G1 at (0, 1) and G2 at (1, 0) and takes
    their mean at the red and blue sites."""
    w = torch.zeros(12, 4, 1, 1)
    w[0:4, 0] = 1.0
    w[4, 1] = w[4, 2] = w[7, 1] = w[7, 2] = 0.5
    w[5, 1] = 1.0
    w[6, 2] = 1.0
    w[8:12, 3] = 1.0
    return w


class BayerRLFN(nn.Module):
    """Joint demosaic + denoise: packed RGGB planes + noise planes (N, 8, h, w) -> linear RGB (N, 3, 2h, 2w).

    The body works at half resolution on the packed planes (a quarter of the positions of a full-
    resolution net), RLFN blocks as in ``RLFNAnchor``; its output is added to the nearest-neighbour
    guess of ``bayer_anchor_weights`` and shuffled to full resolution, so the network learns only
    what interpolation and noise removal change.
    """

    def __init__(self, channels: int = 48, blocks: int = 4, in_channels: int = 8):
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[RLFB(channels) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.register_buffer("anchor", bayer_anchor_weights(), persistent=False)
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        f = self.body_tail(self.blocks(f)) + f
        return self.shuffle(self.tail(f) + nn.functional.conv2d(x[:, :4], self.anchor))


class FoldedRLFN(nn.Module):
    """Same-size image restoration at half resolution, in the manner of FFDNet (Zhang, Zuo & Zhang,
    TIP 2018): the image is folded into four half-resolution sub-images (PixelUnshuffle), ``extra``
    condition planes join them (averaged over each 2x2 cell), RLFN blocks work at half resolution,
    and the unfolded result is added to the input (the network predicts the correction only).

    The RGB denoiser (``denoise_rlfn``) has one extra plane, the noise standard deviation map (times
    the model's ``noise_map_scale``); the lens optimizer (``lens_rlfn``) two, the pixel's x and y
    from the optical centre in half-diagonals.  Input (N, colors + extra, H, W), H and W even; output
    (N, colors, H, W).
    """

    def __init__(self, channels: int = 64, blocks: int = 4, colors: int = 3, extra: int = 1):
        super().__init__()
        self.colors = colors
        self.unshuffle = nn.PixelUnshuffle(2)
        self.head = nn.Conv2d(4 * colors + extra, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[RLFB(channels) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 4 * colors, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img, sigma = x[:, :self.colors], x[:, self.colors:]
        f = self.head(torch.cat([self.unshuffle(img), nn.functional.avg_pool2d(sigma, 2)], dim=1))
        f = self.body_tail(self.blocks(f)) + f
        return img + self.shuffle(self.tail(f))


ARCHS = {"anchor_sr": AnchorSR, "rlfn_anchor": RLFNAnchor, "bayer_rlfn": BayerRLFN, "denoise_rlfn": FoldedRLFN,
         "lens_rlfn": FoldedRLFN}


def build(name: str, **kwargs) -> nn.Module:
    """Instantiate architecture ``name`` with its keyword arguments."""
    try:
        return ARCHS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}") from None
