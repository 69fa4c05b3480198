"""Train an upscaler on CPU: resumable, checkpointed, cosine-decayed Adam.

Example (the shipped ``upscale-x2``)::

    python -m models.train.train --name upscale-x2 --scale 2 --iters 16000 \
        --data ../shared/data/train/T91 ../shared/data/train/BSD200 --threads 2

Checkpoints go to ``runs/<name>/last.pt`` every ``--ckpt-every`` iterations;
re-running the same command resumes from there.  ``runs/<name>/log.tsv`` has
the loss and the validation PSNR-Y over time; ``best.pt`` keeps the weights
with the best validation PSNR-Y.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
import torch

from models.train import archs, loop, losses
from models.train.data import PatchSampler, list_images, make_broad_pairs, make_camera_pairs, make_pairs
from truepix.evaluate.metrics import sr_scores


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="run name; output in runs/NAME")
    p.add_argument("--arch", default="anchor_sr")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--body", type=int, default=6, help="depth: conv layers (anchor_sr) or blocks (rlfn_anchor)")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--data", nargs="+", type=pathlib.Path, required=True)
    p.add_argument("--val-count", type=int, default=8, help="images held out (last N in sort order)")
    p.add_argument("--jitter", type=float, nargs="+", default=[1.0, 0.85, 0.7, 0.55])
    p.add_argument("--degradation", choices=["bicubic", "camera", "broad"], default="bicubic",
                   help="bicubic: the classic protocol; camera: simulated cameras (truepix.simulate); broad: "
                        "the broad family (truepix.simulate.family) with the input-kind plane (arch rlfn_cond)")
    p.add_argument("--resized-share", type=float, default=0.35,
                   help="(broad) share of students that are editor-downsized clean renders")
    p.add_argument("--mislabel", type=float, default=0.25,
                   help="(broad) share of downsized renders labelled as camera files")
    p.add_argument("--extra-data", nargs="*", type=pathlib.Path, default=[],
                   help="more teacher folders, for training only (the held-out images stay the last of --data)")
    p.add_argument("--max-side", type=int, default=480, help="(broad) teacher crop side for large images")
    p.add_argument("--camera-variants", type=int, default=4, help="(camera) degraded copies per image")
    p.add_argument("--defocus-prob", type=float, default=0.3,
                   help="(camera) share of images with part of the scene out of focus (teacher and student)")
    p.add_argument("--defocus-max", type=float, default=6.0,
                   help="(camera) largest scene defocus disc radius, low-resolution pixels")
    p.add_argument("--clean-share", type=float, default=0.0,
                   help="(camera) share of shots at base ISO, well exposed, no JPEG")
    p.add_argument("--bicubic-share", type=float, default=0.0,
                   help="(camera) share of students made by bicubic downscaling instead of the camera")
    p.add_argument("--exclude-profile", nargs="*", default=["apsc24"],
                   help="(camera) built-in profiles never sampled: held out for evaluation")
    p.add_argument("--loss", choices=["l1", "l1+msssim", "lab", "lab+light"], default="l1")
    p.add_argument("--iters", type=int, default=16000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48, help="LR patch side")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-min", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", type=pathlib.Path, default=None,
                   help="start from this checkpoint's weights where names and shapes match (e.g. an x4 run from the "
                        "x2 model: all but the upsampling layer); ignored when resuming")
    p.add_argument("--runs", type=pathlib.Path, default=pathlib.Path("runs"))
    p.add_argument("--qat", action="store_true",
                   help="quantisation-aware fine-tune (models.train.qat): weights and activations rounded as the "
                        "int8 file will round them, the tail conv's weights float; start it with --init")
    p.add_argument("--qat-recalibrate", type=int, default=100,
                   help="(qat) iterations between measurements of the activation ranges")
    p.add_argument("--qat-model", default=None,
                   help="(qat) the manifest model being made int8: the ranges are measured on the very patches "
                        "models.train.quantize calibrates it on (default: training patches)")
    return p.parse_args(argv)


def validate(model: torch.nn.Module, pairs, scale: int) -> float:
    return float(np.mean(validate_each(model, pairs, scale)))


def validate_each(model: torch.nn.Module, pairs, scale: int) -> list[float]:
    """PSNR-Y of each held-out pair."""
    model.eval()
    scores = []
    with torch.no_grad():
        for pair in pairs:
            x = torch.from_numpy(pair.lr.transpose(2, 0, 1)[None].copy())
            y = model(x).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
            scores.append(sr_scores(y, pair.hr, border=scale)[0])
    model.train()
    return scores


def validation_scores(model: torch.nn.Module, pairs, scale: int, broad: bool) -> list[tuple[str, str, float]]:
    """The loop's validation rows; a broad run also reports its clean (bicubic, kind 0) and camera
    (kind 1) held-out pairs apart (``make_broad_pairs(validation=True)`` alternates them)."""
    each = validate_each(model, pairs, scale)
    rows = [("val_psnr_y", "val PSNR-Y", float(np.mean(each)))]
    if broad:
        rows += [("val_clean", "clean", float(np.mean(each[0::2]))),
                 ("val_camera", "camera", float(np.mean(each[1::2])))]
    return rows


def init_from(model: torch.nn.Module, checkpoint: pathlib.Path) -> str:
    """Copy the checkpoint's tensors whose name and shape match ``model``'s; returns what was copied.

    A first convolution that takes more input planes than the checkpoint's (condition planes added
    after the colours) gets the checkpoint's weights for the colours and zeros for the new planes,
    so the new network starts as the old one whatever the condition says."""
    theirs = loop.load_weights(checkpoint)
    ours = model.state_dict()
    for k, v in list(theirs.items()):
        if k in ours and v.ndim == 4 and ours[k].shape[0] == v.shape[0] and ours[k].shape[1] > v.shape[1] \
                and ours[k].shape[2:] == v.shape[2:]:
            wider = torch.zeros_like(ours[k])
            wider[:, :v.shape[1]] = v
            theirs[k] = wider
    taken = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    if not taken:
        sys.exit(f"train: {checkpoint} shares no tensor of matching shape with this model")
    model.load_state_dict(taken, strict=False)
    grown = _identity_blocks(model, taken)
    return f"{len(taken)} of {len(ours)} tensors ({sum(v.numel() for v in taken.values())} parameters)" + \
        (f"; blocks {grown} added as identities" if grown else "")


def _identity_blocks(model: torch.nn.Module, taken: dict) -> list[int]:
    """A deeper network started from a shallower one: each residual block the checkpoint lacks is made
    an identity (its last convolution zero, its 1x1 fuse the identity matrix), so the grown network
    computes what the checkpoint did and training starts from its quality, not from noise."""
    from models.train.archs import RLFB

    grown = []
    for i, block in enumerate(getattr(model, "blocks", [])):
        if not isinstance(block, RLFB) or f"blocks.{i}.fuse.weight" in taken:
            continue
        with torch.no_grad():
            last = block.convs[4]
            last.weight.zero_()
            last.bias.zero_()
            eye = torch.eye(block.fuse.weight.shape[0], dtype=block.fuse.weight.dtype)
            block.fuse.weight.copy_(eye[:, :, None, None])
            block.fuse.bias.zero_()
        grown.append(i)
    return grown


def main(argv=None) -> int:
    args = parse_args(argv)
    run, config, files = loop.start_run(args, "train", list_images)
    train_files, val_files = files[:-args.val_count], files[-args.val_count:]
    train_files += list_images(args.extra_data)
    t0 = time.time()
    if args.degradation == "camera":
        train_pairs = make_camera_pairs(train_files, args.scale, args.camera_variants, args.seed,
                                        tuple(args.exclude_profile), defocus_prob=args.defocus_prob,
                                        defocus_max=args.defocus_max, clean_share=args.clean_share,
                                        bicubic_share=args.bicubic_share)
        val_pairs = make_camera_pairs(val_files, args.scale, 1, args.seed + 1, tuple(args.exclude_profile))
    elif args.degradation == "broad":
        train_pairs = make_broad_pairs(train_files, args.scale, args.camera_variants, args.seed,
                                       defocus_prob=args.defocus_prob, defocus_max=args.defocus_max,
                                       max_side=args.max_side, resized_share=args.resized_share,
                                       mislabel=args.mislabel)
        val_pairs = make_broad_pairs(val_files, args.scale, 1, args.seed + 1, max_side=args.max_side,
                                     validation=True)
    else:
        train_pairs = make_pairs(train_files, args.scale, tuple(args.jitter))
        val_pairs = make_pairs(val_files, args.scale)
    print(f"{len(train_files)} training images ({len(train_pairs)} pairs), {len(val_files)} held out; "
          f"built in {time.time() - t0:.0f}s", flush=True)
    sampler = PatchSampler(train_pairs, args.scale, args.patch, seed=args.seed)

    depth = "blocks" if args.arch in ("rlfn_anchor", "rlfn_cond") else "body"
    arch_kwargs = {"scale": args.scale, "channels": args.channels, depth: args.body}
    model = archs.build(args.arch, **arch_kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = losses.build(args.loss, args.scale)
    start, best = loop.resume(run, model, opt)
    if start:
        loop.reseed(sampler, args.seed, start)
        print(f"resumed at iteration {start} (best val PSNR-Y {best:.3f} dB)", flush=True)
    elif args.init is not None:
        print(f"initialised {init_from(model, args.init)} from {args.init}", flush=True)

    nparams = sum(p.numel() for p in model.parameters())
    print(f"{args.arch} {arch_kwargs}: {nparams} parameters", flush=True)

    rounding = None
    if args.qat:
        from models.train import qat

        calib = qat.calibration_batches(args.qat_model, args.data, train_pairs, args.scale, args.patch, args.seed)
        rounding = qat.Rounding(model, calib, args.qat_recalibrate)

    def step():
        if rounding is not None:
            rounding.tick()
        lr_np, hr_np = sampler.batch(args.batch)
        return loss_fn(model(torch.from_numpy(lr_np)), torch.from_numpy(hr_np))

    broad = args.degradation == "broad"
    best = loop.fit(model, opt, step, lambda: validation_scores(model, val_pairs, args.scale, broad),
                    run, loop.Schedule(args.iters, args.lr, args.lr_min, args.ckpt_every),
                    {"arch": args.arch, "arch_kwargs": arch_kwargs, "config": config}, start, best)
    print(f"done: best val PSNR-Y {best:.3f} dB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
