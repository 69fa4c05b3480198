"""Train and export the input-kind estimator: is a photo a camera file or a downsized clean render?

The default upscaler (``archs.RLFNCond``) is told what it upscales: 0 for a clean render that an
editor downsized (sharp, aliased, noise-free: the bicubic protocol's kind), 1 for a camera file at
its native resolution (lens blur, demosaiced and correlated sensor noise, in-camera sharpening,
JPEG).  A noise-level estimate cannot tell these apart on real photos (Immerkær's estimator reads a
downsized render's texture as more "noise" than a demosaiced ISO 3200 shot: docs/benchmarks.md), so
the engine asks this small network instead.  It sees the high frequencies a 3x3 stack can, averages
its per-position logits over the whole input (any size), and returns the probability of "camera".
The engine runs it on a few crops of the photo (``engine.inputkind``) and takes the mean logit.

    PYTHONPATH=daemon:. python -m models.train.train_kind --name input-kind --iters 3000 \
        --data ../shared/data/train/T91 ../shared/data/train/BSD200 --export

Training pairs come from the same broad family as the upscaler (``data.make_broad_pairs``, no
mislabelling), crops of ``--patch`` pixels of the students.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import pathlib
import sys

import numpy as np
import torch
from torch import nn

from models.train import loop
from models.train.data import list_images, make_broad_pairs


class KindNet(nn.Module):
    """Per-position logits of "camera file" (3x3 convolutions, two stride-2), averaged: (N, 1).

    The cues (demosaic zipper and correlated noise, sharpening halos, JPEG blocks against a
    resampler's aliasing) are a few code values high; the image's own content is a hundred times
    stronger.  So the first layer is fixed: each colour minus its 3x3 mean, times 16 (the detail
    alone, at a scale the ReLU stack trains on), beside the colours themselves."""

    def __init__(self, width: int = 24):
        super().__init__()
        box = torch.full((3, 1, 3, 3), -1.0 / 9)
        box[:, :, 1, 1] += 1.0
        self.detail = nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate", groups=3, bias=False)
        self.detail.weight.data.copy_(box * 16)
        self.detail.weight.requires_grad_(False)
        self.body = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 1, 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, self.detail(x)], dim=1)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The exported graph: the mean logit (the engine averages it over crops, then the sigmoid)."""
        return self.logits(x)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="input-kind")
    p.add_argument("--data", nargs="+", type=pathlib.Path, required=True)
    p.add_argument("--extra-data", nargs="*", type=pathlib.Path, default=[])
    p.add_argument("--val-count", type=int, default=8)
    p.add_argument("--scale", type=int, default=2, help="the upscaler's scale the students are made for")
    p.add_argument("--variants", type=int, default=4)
    p.add_argument("--width", type=int, default=24)
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=pathlib.Path, default=pathlib.Path("runs"))
    p.add_argument("--export", action="store_true", help="write models/NAME.onnx and its manifest row at the end")
    p.add_argument("--export-only", action="store_true", help="export runs/NAME/last.pt as it is, without training")
    p.add_argument("--training-command", default="", help="(export) the command that trained the checkpoint")
    p.add_argument("--models-dir", type=pathlib.Path, default=None)
    return p.parse_args(argv)


def batch(pairs, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Random crops of the students (flipped and rotated) and their labels (the kind plane)."""
    x = np.empty((size, 3, patch, patch), np.float32)
    y = np.empty((size, 1), np.float32)
    for i in range(size):
        pair = pairs[int(rng.integers(len(pairs)))]
        h, w = pair.lr.shape[:2]
        r, c = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
        crop = np.rot90(pair.lr[r:r + patch, c:c + patch], int(rng.integers(4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        x[i] = crop[..., :3].transpose(2, 0, 1)
        y[i] = crop[0, 0, 3]
    return x, y


def accuracy(model: KindNet, pairs) -> float:
    """Share of held-out students (whole images) whose mean logit has the right sign."""
    right = 0
    with torch.no_grad():
        for pair in pairs:
            logit = model(torch.from_numpy(pair.lr[..., :3].transpose(2, 0, 1)[None].copy()))
            right += int((float(logit) > 0) == (pair.lr[0, 0, 3] > 0.5))
    return right / len(pairs)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.export_only:
        export(args, args.runs / args.name / "last.pt")
        return 0
    run, config, files = loop.start_run(args, "train_kind", list_images)
    train_files, val_files = files[:-args.val_count], files[-args.val_count:]
    train_files += list_images(args.extra_data)
    pairs = [p for p in make_broad_pairs(train_files, args.scale, args.variants, args.seed, mislabel=0.0,
                                         resized_share=0.5) if min(p.lr.shape[:2]) >= args.patch]
    val = make_broad_pairs(val_files, args.scale, 1, args.seed + 1, validation=True)
    model = KindNet(args.width)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    bce = nn.BCEWithLogitsLoss()
    start, best = loop.resume(run, model, opt)

    def step():
        x, y = batch(pairs, rng, args.batch, args.patch)
        return bce(model(torch.from_numpy(x)), torch.from_numpy(y))

    # the loop ranks checkpoints by "dB"; here the score is an accuracy in percent
    best = loop.fit(model, opt, step, lambda: [("val_accuracy", "val accuracy %", 100 * accuracy(model, val))],
                    run, loop.Schedule(args.iters, args.lr, args.lr_min, args.ckpt_every),
                    {"arch": "kind_net", "arch_kwargs": {"width": args.width}, "config": config}, start, best)
    print(f"done: held-out accuracy {best:.1f}% on {len(val)} whole students", flush=True)
    if args.export:
        export(args, run / "last.pt")
    return 0


def export(args, checkpoint: pathlib.Path) -> None:
    """ONNX file and manifest row (task "classify": recipes never run it; upscalers name it)."""
    from models.train.export import MODELS_DIR, _rows, export_onnx, write_manifest

    state = torch.load(checkpoint, map_location="cpu")
    model = KindNet(**state["arch_kwargs"])
    model.load_state_dict(state["model"])
    model.eval()
    models_dir = args.models_dir or MODELS_DIR
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{args.name}.onnx"
    export_onnx(model, path)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 77, 53), dtype=np.float32)
    with torch.no_grad():
        diff = float(np.abs(model(torch.from_numpy(x)).numpy() - sess.run(None, {"input": x})[0]).max())
    if diff > 1e-4:
        sys.exit(f"train_kind: ONNX Runtime differs from PyTorch by {diff:.2e}")
    row = {
        "name": args.name, "version": 1, "task": "classify", "scale": 1, "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "input": "rgb", "transfer": "srgb",
        "receptive_radius": 0, "opset": 17, "arch": "kind_net",
        "parameters": sum(t.numel() for t in model.parameters()), "exported": datetime.date.today().isoformat(),
        "output": "mean logit of 'camera file' (1) against 'downsized clean render' (0)",
        "training": {
            "command": args.training_command or " ".join(["PYTHONPATH=daemon:. python -m models.train.train_kind"]
                                                         + sys.argv[1:]),
            "data": [str(d) for d in args.data] + [str(d) for d in args.extra_data],
            "degradation": "broad family (truepix.simulate.family), resized share 0.5, no mislabelling",
            "iterations": state["iter"], "batch": args.batch, "patch": args.patch, "loss": "BCE",
            "held_out": f"the last {args.val_count} images of --data, one bicubic and one camera student each",
            "held_out_accuracy": round(state["val_accuracy"] / 100, 4),
        },
    }
    manifest = models_dir / "manifest.toml"
    write_manifest([r for r in _rows(manifest) if r["name"] != args.name] + [row], manifest)
    print(f"exported {path} ({path.stat().st_size} bytes), max |torch-ort| {diff:.1e}")


if __name__ == "__main__":
    sys.exit(main())
