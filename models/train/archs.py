"""Network architectures, one small ``nn.Module`` each; ``build`` makes one by its ``ARCHS`` name.

Each is mostly plain 3x3 convolutions + ReLU around a depth-to-space (cheap graphs that ONNX Runtime
runs fast on any execution provider), and learns only a residual on top of a fixed or initialised
guess, which trains fast on a CPU:

- ``AnchorSR`` (``anchor_sr``): ABPN ("anchor-based plain net", Du et al., MAI 2021 mobile real-time
  SR winner), a plain 3x3 stack at low resolution, then a PixelShuffle, with the input added as an
  "anchor" (each pixel repeated scale^2 times in channel space: nearest-neighbour upsampling).
- ``RLFNAnchor`` (``rlfn_anchor``): RLFN's residual blocks (``RLFB``, Kong et al., NTIRE 2022,
  without ESA) with ABPN's anchor.
- ``RLFNCond`` (``rlfn_cond``): ``RLFNAnchor`` with one more input plane, the input kind (clean
  render or camera file) the engine tells it.
- ``BayerRLFN`` (``bayer_rlfn``): joint demosaic + denoise of packed RGGB + noise planes at half
  resolution, anchored on a nearest-neighbour guess.
- ``BayerGammaRLFN`` (``bayer_gamma_rlfn``): the same in the sRGB-curve domain, its anchor a
  learnable convolution initialised to Malvar-He-Cutler.
- ``FoldedRLFN`` (``denoise_rlfn``, ``lens_rlfn``): same-size restoration FFDNet-style (the image
  folded to half resolution, condition planes beside it): the RGB denoiser and the lens optimizer.
- ``GammaFoldedRLFN`` (``lens_gamma_rlfn``): ``FoldedRLFN`` in the sRGB-curve domain.
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
        # the convolutions that take the image in and that write the output pixels (models.train.qat)
        self.input_convs, self.output_convs = ("body.0",), (f"body.{len(layers) - 1}",)
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
        scale: 2, 3 or 4.  channels: feature width.  blocks: RLFB count.  extra: condition planes
        after the colours (``rlfn_cond``: one, the input kind the engine tells the network; the
        anchor takes the colours only).
    """

    # the convolutions that take the image in and that write the output pixels (models.train.qat)
    input_convs, output_convs = ("head",), ("tail",)

    def __init__(self, scale: int = 2, channels: int = 48, blocks: int = 5, colors: int = 3, extra: int = 0):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(colors + extra, channels, 3, padding=1)
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

    input_convs, output_convs = ("head",), ("tail",)

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


def encode_gamma(x: torch.Tensor) -> torch.Tensor:
    """The sRGB curve, mirrored for negative values (raw noise below black) and unclipped above 1."""
    a = x.abs()
    return torch.sign(x) * torch.where(a <= 0.0031308, 12.92 * a, 1.055 * a.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def decode_gamma(y: torch.Tensor) -> torch.Tensor:
    """The inverse of ``encode_gamma``."""
    a = y.abs()
    return torch.sign(y) * torch.where(a <= 0.04045, a / 12.92, ((a.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


# Malvar, He & Cutler (ICASSP 2004), "high-quality linear interpolation": 5x5 kernels (times 1/8) for
# each missing colour, indexed [row offset + 2][column offset + 2] around the output pixel.
_MALVAR_G_AT_RB = [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]
_MALVAR_ROW = [[0, 0, .5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, .5, 0, 0]]
_MALVAR_COL = [list(r) for r in zip(*_MALVAR_ROW, strict=True)]
_MALVAR_DIAG = [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]


def malvar_packed_weights() -> torch.Tensor:
    """(12, 4, 3, 3): Malvar-He-Cutler demosaicing as one 3x3 convolution of the packed RGGB planes
    (R, G1, G2, B), in PixelShuffle(2) order like ``bayer_anchor_weights``.

    Output (c, i, j) at packed cell (y, x) is full-resolution pixel (2y + i, 2x + j); input plane p
    at packed offset (dy, dx) is the site (2(y + dy) + pi, 2(x + dx) + pj).  Each pixel's kernel
    is chosen by the colour it needs and the colour its site records; full-resolution offsets span
    -3..3, and the 5x5 kernels are zero beyond +-2, so a 3x3 packed footprint holds them exactly.
    """
    site = [(0, 0), (0, 1), (1, 0), (1, 1)]          # R, G1, G2, B positions inside the tile
    site_colour = [0, 1, 1, 2]
    w = torch.zeros(12, 4, 3, 3)
    for c in range(3):
        for i in range(2):
            for j in range(2):
                here = site.index((i, j))
                if site_colour[here] == c:
                    kernel = None
                elif c == 1:                                   # green at a red or blue site
                    kernel = _MALVAR_G_AT_RB
                elif site_colour[here] == 1:                   # red/blue at a green site
                    row_has = 0 if i == 0 else 2               # RGGB: row 0 holds red, row 1 blue
                    kernel = _MALVAR_ROW if row_has == c else _MALVAR_COL
                else:                                          # red at blue, blue at red
                    kernel = _MALVAR_DIAG
                o = c * 4 + 2 * i + j
                for p, (pi, pj) in enumerate(site):
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            oy, ox = 2 * dy + pi - i, 2 * dx + pj - j
                            if kernel is None:
                                w[o, p, dy + 1, dx + 1] = float(p == here and oy == 0 and ox == 0)
                            elif abs(oy) <= 2 and abs(ox) <= 2:
                                # the kernel applies to the mosaic as it is: each tap weighs whatever
                                # site lies there (its zeros fall on the colours it does not use)
                                w[o, p, dy + 1, dx + 1] = kernel[oy + 2][ox + 2] / 8.0
    return w


class BayerGammaRLFN(nn.Module):
    """Joint demosaic + denoise like ``BayerRLFN``, working in a perceptual (gamma) domain.

    Demosaicing in linear light spends its errors where the developed photo shows them most (in the
    shadows, which the tone curve opens up): Malvar's linear filter scores 30.3 dB on McMaster in
    linear light, 34.5 dB on the sRGB-encoded mosaic.  So the planes are encoded with the sRGB curve
    (mirrored below zero, unclipped above one: an exposure scales the encoded values by ``k ** (1/2.4)``,
    the same for every scene), the noise deviation is carried into that domain, the body starts from
    Malvar-He-Cutler (a learnable 3x3 convolution of the packed planes initialised to it, so the
    untrained network already demosaics as well as Malvar), and the result is decoded to light.

    Input and output as ``BayerRLFN``: (N, 8, h, w) packed planes + noise planes (times the manifest's
    ``noise_map_scale``) -> linear RGB (N, 3, 2h, 2w).
    """

    input_convs, output_convs = ("head",), ("tail", "anchor")

    def __init__(self, channels: int = 48, blocks: int = 4, noise_map_scale: float = 10.0):
        super().__init__()
        self.noise_map_scale = noise_map_scale
        self.head = nn.Conv2d(8, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[RLFB(channels) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 12, 3, padding=1)
        self.anchor = nn.Conv2d(4, 12, 3, padding=1, bias=False)
        self.shuffle = nn.PixelShuffle(2)
        with torch.no_grad():
            self.anchor.weight.copy_(malvar_packed_weights())
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        planes, sigma = x[:, :4], x[:, 4:] / self.noise_map_scale
        enc = encode_gamma(planes)
        # the deviation in the encoded domain, at the local level (3x3 cells) of each plane
        level = nn.functional.avg_pool2d(planes.clamp_min(0.0), 3, stride=1, padding=1, count_include_pad=False)
        sigma_enc = (encode_gamma(level + sigma) - encode_gamma(level)) * 4.0
        f = self.head(torch.cat([enc, sigma_enc], dim=1))
        f = self.body_tail(self.blocks(f)) + f
        return decode_gamma(self.shuffle(self.tail(f) + self.anchor(enc)))


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

    input_convs, output_convs = ("head",), ("tail",)

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


class GammaFoldedRLFN(FoldedRLFN):
    """``FoldedRLFN`` working on the sRGB-curve encoding of a linear image (``encode_gamma``): the
    correction is predicted and added there, and the sum decoded back to light.

    The lens optimizer's loss is taken on sRGB values, where a shadow's error counts as much as a
    highlight's; in linear light the same correction spans three orders of magnitude, which the
    plain network learned poorly (held-out validation flat at 29.9 dB from 1,750 iterations on).
    Input and output as ``FoldedRLFN``: linear RGB + ``extra`` condition planes -> linear RGB.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img, cond = encode_gamma(x[:, :self.colors]), x[:, self.colors:]
        f = self.head(torch.cat([self.unshuffle(img), nn.functional.avg_pool2d(cond, 2)], dim=1))
        f = self.body_tail(self.blocks(f)) + f
        return decode_gamma(img + self.shuffle(self.tail(f)))


class RLFNCond(RLFNAnchor):
    """``RLFNAnchor`` told what kind of file it upscales: input (N, 4, H, W), RGB in [0, 1] and one
    plane of the input kind, 0 for a clean render downsized by an editor (the bicubic protocol's
    kind: aliased, noise-free, keep every edge) and 1 for a camera file (lens blur, demosaiced sensor
    noise, in-camera processing, JPEG: restore and denoise).  One network serves both without
    guessing, which a blind network trained on the mixture does poorly (docs/benchmarks.md)."""

    def __init__(self, scale: int = 2, channels: int = 48, blocks: int = 3, colors: int = 3, extra: int = 1):
        super().__init__(scale, channels, blocks, colors, extra)


ARCHS = {"anchor_sr": AnchorSR, "rlfn_anchor": RLFNAnchor, "rlfn_cond": RLFNCond, "bayer_rlfn": BayerRLFN,
         "bayer_gamma_rlfn": BayerGammaRLFN, "denoise_rlfn": FoldedRLFN, "lens_rlfn": FoldedRLFN,
         "lens_gamma_rlfn": GammaFoldedRLFN}


def build(name: str, **kwargs) -> nn.Module:
    """Instantiate architecture ``name`` with its keyword arguments."""
    try:
        return ARCHS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}") from None
