"""Train the joint demosaic + denoise network on CPU: resumable, checkpointed, cosine-decayed Adam.

    python -m models.train.train_bayer --name demosaic --iters 20000 \
        --data ../shared/data/train/T91 ../shared/data/train/BSD200 --threads 2

Batches come from ``models.train.bayer.BayerSampler`` (simulated raws of random cameras, ISOs,
exposures and white balances).  The loss is L1 on the sRGB encoding of output and target divided
by the exposure factor: errors are weighed as the developed photo shows them, shadows included.
Checkpoints: ``runs/<name>/last.pt`` (resume by re-running the command), ``best.pt`` (best
validation PSNR, noise-free), ``log.tsv``.  Validation: the held-out images (last ``--val-count``
in sort order), whole, noise-free and at ISO 3200 on the held-out camera profile (apsc24).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import numpy as np
import torch

from models.train import archs, loop
from models.train.bayer import BayerSampler, load_linear
from models.train.data import list_images
from truepix.colour import linear_to_srgb
from truepix.simulate.camera import PROFILES


def srgb_encode(x: torch.Tensor) -> torch.Tensor:
    """The sRGB curve without the clip at 1 (so highlights keep a gradient); linear below 0.0031308."""
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def tone_l1(out: torch.Tensor, target: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    kk = k.view(-1, 1, 1, 1)
    return (srgb_encode(out / kk) - srgb_encode(target / kk)).abs().mean()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--data", nargs="+", type=pathlib.Path, required=True)
    p.add_argument("--val-count", type=int, default=8)
    p.add_argument("--arch", default="bayer_gamma_rlfn", choices=["bayer_gamma_rlfn", "bayer_rlfn"],
                   help="bayer_gamma_rlfn: gamma domain, Malvar start (archs.BayerGammaRLFN); bayer_rlfn: linear")
    p.add_argument("--channels", type=int, default=48)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--iters", type=int, default=20000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48, help="half-resolution input patch side")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-5)
    p.add_argument("--noise-free-share", type=float, default=0.25)
    p.add_argument("--iso-max", type=float, default=12800.0)
    p.add_argument("--colour-share", type=float, default=0.0,
                   help="share of patches with permuted channels and scaled saturation (bayer.vary_colour)")
    p.add_argument("--exclude-profile", nargs="*", default=["apsc24"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", type=pathlib.Path, default=None, help="start from these weights (not resuming)")
    p.add_argument("--runs", type=pathlib.Path, default=pathlib.Path("runs"))
    p.add_argument("--qat", action="store_true",
                   help="quantisation-aware fine-tune (models.train.qat), ranges measured on the patches "
                        "models.train.quantize calibrates the shipped demosaic on; start it with --init")
    p.add_argument("--qat-recalibrate", type=int, default=100)
    p.add_argument("--qat-quantise-head", action="store_true",
                   help="(qat) round the first convolution too (default float, as quantize --float-head: the "
                        "raw planes' precision goes into it)")
    return p.parse_args(argv)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def validate(model, scenes, sampler: BayerSampler, iso: float | None) -> float:
    """Mean sRGB PSNR of whole held-out scenes developed at k = 1, daylight gains (2, 1, 1.5)."""
    model.eval()
    rng = np.random.default_rng(123)
    scores = []
    with torch.no_grad():
        for scene in scenes:
            h, w = scene.shape[0] // 2 * 2, scene.shape[1] // 2 * 2
            inp, target, _ = sampler.sample(scene[:h, :w], rng, noisy=iso is not None, iso=iso, k=1.0,
                                            gains=(2.0, 1.0, 1.5), profile=PROFILES["apsc24"])
            out = model(torch.from_numpy(inp.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
            scores.append(psnr(linear_to_srgb(np.clip(out, 0, 1)), linear_to_srgb(np.clip(target, 0, 1))))
    model.train()
    return float(np.mean(scores))


def main(argv=None) -> int:
    args = parse_args(argv)
    run, config, files = loop.start_run(args, "train_bayer", list_images)
    t0 = time.time()
    scenes = load_linear(files[:-args.val_count])
    val_scenes = load_linear(files[-args.val_count:])
    sampler = BayerSampler(scenes, args.patch, seed=args.seed, noise_free_share=args.noise_free_share,
                           iso_range=(100.0, args.iso_max), exclude=tuple(args.exclude_profile),
                           colour_share=args.colour_share)
    print(f"{len(scenes)} training scenes, {len(val_scenes)} held out; loaded in {time.time() - t0:.0f}s", flush=True)

    arch_kwargs = {"channels": args.channels, "blocks": args.blocks}
    model = archs.build(args.arch, **arch_kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start, best = loop.begin(run, model, opt, sampler, args.seed, args.init)
    print(f"{args.arch} {arch_kwargs}: {sum(p.numel() for p in model.parameters())} parameters", flush=True)

    rounding = None
    if args.qat:
        from models.train import qat

        calib = qat.calibration_batches("demosaic", args.data, None, 2, args.patch, args.seed)
        rounding = qat.Rounding(model, calib, args.qat_recalibrate, float_input=not args.qat_quantise_head)

    def step():
        if rounding is not None:
            rounding.tick()
        x, y, k = sampler.batch(args.batch)
        return tone_l1(model(torch.from_numpy(x)), torch.from_numpy(y), torch.from_numpy(k))

    def scores():
        return [("val_psnr", "val clean", validate(model, val_scenes, sampler, None)),
                ("val_psnr_iso3200", "ISO3200", validate(model, val_scenes, sampler, 3200.0))]

    best = loop.fit(model, opt, step, scores, run, loop.Schedule(args.iters, args.lr, args.lr_min, args.ckpt_every),
                    {"arch": args.arch, "arch_kwargs": arch_kwargs, "config": config}, start, best)
    print(f"done: best val {best:.3f} dB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
