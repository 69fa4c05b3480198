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


ARCHS = {"anchor_sr": AnchorSR}


def build(name: str, **kwargs) -> nn.Module:
    """Instantiate architecture ``name`` with its keyword arguments."""
    try:
        return ARCHS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}") from None
