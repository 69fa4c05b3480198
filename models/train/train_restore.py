"""Train the same-size restorers on CPU: the RGB denoiser (``--task denoise``) and the lens
optimizer (``--task lens``).  Resumable, checkpointed, cosine-decayed Adam.

    python -m models.train.train_restore --task denoise --name denoise --iters 20000 \
        --data ../shared/data/train/T91 ../shared/data/train/BSD200 --threads 2
    python -m models.train.train_restore --task lens --name lens --iters 20000 \
        --data ../shared/data/train/T91 ../shared/data/train/BSD200 --threads 2

Both are ``FoldedRLFN`` networks (half-resolution body, residual); the lens optimizer's two condition
planes are the pixel's place in the frame, its batches come from ``models.train.lens`` (see there),
its loss is L1 on the sRGB encoding of its linear output, and it is validated on the held-out images
blurred by fixed lens settings at the centre and a corner of the frame.

The denoiser:

Batches (``NoiseSampler``): clean 8-bit sRGB patches with random flips/rotations, and noise added
to their sRGB values the way the evaluation and the photographs have it:

- most samples (1 - ``--signal-share``): additive white Gaussian noise, sigma ~ U(0, ``--sigma-max``)
  on the 0..255 scale, unclipped (the AWGN protocol of DnCNN, FFDNet and CBM3D);
- the rest: signal-dependent noise, Gaussian in linear light with variance a * x + b (shot and read
  noise of an undeveloped file), then the sRGB curve: brighter areas noisier in light, shadows
  noisier in code values.  Its noise map is the true per-pixel deviation in sRGB values.

The network gets the noise map (times ``NOISE_MAP_SCALE``) as an extra input channel, so one model
serves every level and a photographer can turn it down.  Loss: L1 on sRGB values.  Validation: the
held-out images at sigma 25 (fixed noise).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np
import torch
from PIL import Image

from models.train import archs, loop
from models.train.data import list_images
from truepix.colour import linear_to_srgb, srgb_to_linear

NOISE_MAP_SCALE = 4.0  # sigma on the 0..1 scale, times this: sigma 25/255 -> 0.39


class NoiseSampler:
    def __init__(self, images: list[np.ndarray], patch: int, seed: int = 0, sigma_max: float = 55.0,
                 signal_share: float = 0.2):
        self.images = [im for im in images if min(im.shape[:2]) >= patch]
        self.patch, self.sigma_max, self.signal_share = patch, sigma_max, signal_share
        self.rng = np.random.default_rng(seed)
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], np.float64)
        self.prob = areas / areas.sum()

    def noisy(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(noisy sRGB, per-pixel sigma map (H, W)) for one clean sRGB image."""
        if rng.random() >= self.signal_share:
            sigma = rng.uniform(0, self.sigma_max) / 255.0
            noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
            return noisy.astype(np.float32), np.full(clean.shape[:2], sigma, np.float32)
        lin = srgb_to_linear(clean)
        a = 10 ** rng.uniform(-4.5, -2.0)   # shot noise: variance per unit of light
        b = 10 ** rng.uniform(-7.0, -4.0)   # read noise floor
        sd_lin = np.sqrt(a * lin + b)
        noisy_lin = lin + rng.normal(0, 1, lin.shape).astype(np.float32) * sd_lin
        noisy = linear_to_srgb(np.clip(noisy_lin, 0, 1))
        # the deviation in sRGB values: the curve's slope at the clean value times the linear deviation
        eps = 1e-3
        slope = (linear_to_srgb(np.clip(lin + eps, 0, 1)) - linear_to_srgb(np.clip(lin - eps, 0, 1))) / (2 * eps)
        sigma = np.clip((slope * sd_lin).mean(axis=2), 0, 0.5).astype(np.float32)
        return noisy.astype(np.float32), sigma

    def batch(self, size: int):
        p = self.patch
        xs = np.empty((size, 4, p, p), np.float32)
        ys = np.empty((size, 3, p, p), np.float32)
        for i, j in enumerate(self.rng.choice(len(self.images), size=size, p=self.prob)):
            im = self.images[j]
            y = int(self.rng.integers(0, im.shape[0] - p + 1))
            x = int(self.rng.integers(0, im.shape[1] - p + 1))
            crop = im[y:y + p, x:x + p]
            t = int(self.rng.integers(0, 8))
            if t & 4:
                crop = crop[:, ::-1]
            crop = np.ascontiguousarray(np.rot90(crop, t & 3))
            noisy, sigma = self.noisy(crop, self.rng)
            xs[i, :3] = noisy.transpose(2, 0, 1)
            xs[i, 3] = sigma * NOISE_MAP_SCALE
            ys[i] = crop.transpose(2, 0, 1)
        return xs, ys


def load_srgb(paths) -> list[np.ndarray]:
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB"), np.float32) / 255.0)
    return out


def validate(model, images, sigma: float = 25.0) -> float:
    model.eval()
    rng = np.random.default_rng(7)
    scores = []
    with torch.no_grad():
        for im in images:
            h, w = im.shape[0] // 2 * 2, im.shape[1] // 2 * 2
            clean = im[:h, :w]
            noisy = clean + rng.normal(0, sigma / 255, clean.shape).astype(np.float32)
            x = np.concatenate([noisy, np.full((h, w, 1), sigma / 255 * NOISE_MAP_SCALE, np.float32)], axis=2)
            out = model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
            mse = float(np.mean((np.clip(out, 0, 1) - clean) ** 2))
            scores.append(10 * math.log10(1 / max(mse, 1e-12)))
    model.train()
    return float(np.mean(scores))


def validate_lens(model, scenes) -> float:
    """Mean sRGB PSNR on the held-out scenes, each blurred at f/8 with mid aberrations, at the frame's
    centre and at a corner."""
    from models.train.lens import FRAME, degrade, field_planes

    model.eval()
    rng = np.random.default_rng(11)
    params = {"f_number": 8.0, "pitch_um": 4.5, "sigma_centre_px": 0.45, "sigma_extra_corner_px": 0.6,
              "defocus_px": 0.0, "ca_red": 1.0003, "ca_blue": 0.9997, "noise_sd": 0.003}
    scores = []
    with torch.no_grad():
        for scene in scenes:
            m = 16
            h, w = (scene.shape[0] - 2 * m) // 2 * 2, (scene.shape[1] - 2 * m) // 2 * 2
            crop = scene[:h + 2 * m, :w + 2 * m]
            for top, left in ((FRAME[0] / 2 - h / 2, FRAME[1] / 2 - w / 2), (0.0, 0.0)):
                student, teacher = degrade(crop, top, left, params, rng, m)
                x = np.concatenate([student, field_planes(h, w, top, left)], axis=2)
                out = model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
                a, b = linear_to_srgb(np.clip(out, 0, 1)), linear_to_srgb(np.clip(teacher, 0, 1))
                scores.append(10 * math.log10(1 / max(float(np.mean((a - b) ** 2)), 1e-12)))
    model.train()
    return float(np.mean(scores))


def srgb_encode(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["denoise", "lens"], default="denoise")
    p.add_argument("--name", required=True)
    p.add_argument("--data", nargs="+", type=pathlib.Path, required=True)
    p.add_argument("--val-count", type=int, default=8)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--iters", type=int, default=20000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=96, help="patch side in pixels (even)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-5)
    p.add_argument("--sigma-max", type=float, default=55.0)
    p.add_argument("--signal-share", type=float, default=0.2)
    p.add_argument("--gamma", action="store_true",
                   help="(lens) correct in the sRGB-curve domain (archs.GammaFoldedRLFN)")
    p.add_argument("--scene-defocus", type=float, default=0.0,
                   help="(lens) share of scenes with part out of focus in teacher and student (bokeh kept)")
    p.add_argument("--sharp-share", type=float, default=0.0,
                   help="(lens) share of students from a perfect lens (a sharp photo stays as it is)")
    p.add_argument("--init", type=pathlib.Path, default=None, help="start from these weights (not resuming)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=pathlib.Path, default=pathlib.Path("runs"))
    p.add_argument("--qat", action="store_true",
                   help="quantisation-aware fine-tune (models.train.qat) of the shipped model of --task, ranges "
                        "measured on the patches models.train.quantize calibrates it on; the head float "
                        "(quantize --float-head); start it with --init")
    p.add_argument("--qat-recalibrate", type=int, default=100)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    run, config, files = loop.start_run(args, "train_restore", list_images)
    if args.task == "lens":
        from models.train.bayer import load_linear
        from models.train.lens import LensSampler

        images, val_images = load_linear(files[:-args.val_count]), load_linear(files[-args.val_count:])
        sampler = LensSampler(images, args.patch, args.seed, scene_defocus=args.scene_defocus,
                              sharp_share=args.sharp_share)
        arch = "lens_gamma_rlfn" if args.gamma else "lens_rlfn"
        arch_kwargs = {"channels": args.channels, "blocks": args.blocks, "extra": 2}
        val_name = "val_psnr_lens"

        def loss_fn(out, target):
            return torch.nn.functional.l1_loss(srgb_encode(out), srgb_encode(target))

        def val_fn(m):
            return validate_lens(m, val_images)
    else:
        images, val_images = load_srgb(files[:-args.val_count]), load_srgb(files[-args.val_count:])
        sampler = NoiseSampler(images, args.patch, args.seed, args.sigma_max, args.signal_share)
        arch, arch_kwargs = "denoise_rlfn", {"channels": args.channels, "blocks": args.blocks}
        val_name = "val_psnr_sigma25"
        loss_fn = torch.nn.functional.l1_loss

        def val_fn(m):
            return validate(m, val_images)
    model = archs.build(arch, **arch_kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start, best = loop.begin(run, model, opt, sampler, args.seed, args.init)
    print(f"{len(images)} training images, {len(val_images)} held out; {arch} {arch_kwargs}: "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)

    rounding = None
    if args.qat:
        from models.train import qat

        calib = qat.calibration_batches(args.task, args.data, None, 1, args.patch, args.seed)
        rounding = qat.Rounding(model, calib, args.qat_recalibrate, float_input=True)

    def step():
        if rounding is not None:
            rounding.tick()
        x, y = sampler.batch(args.batch)
        return loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))

    label = "val lens" if args.task == "lens" else "val sigma25"
    best = loop.fit(model, opt, step, lambda: [(val_name, label, val_fn(model))], run,
                    loop.Schedule(args.iters, args.lr, args.lr_min, args.ckpt_every),
                    {"arch": arch, "arch_kwargs": arch_kwargs, "config": config}, start, best)
    print(f"done: best val {best:.3f} dB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
