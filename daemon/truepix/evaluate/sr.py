"""``truepix eval --task upscale``: the standard super-resolution protocol.

For every ground-truth image: crop to a multiple of the scale, make the
low-resolution input with MATLAB-compatible bicubic antialiased downscaling
(quantised to 8 bits, as the benchmark LR files are), upscale it with each
method, and score PSNR and SSIM on the BT.601 Y channel with ``scale`` pixels
shaved from each border.  truepix's models run through the real engine
(tiled ONNX Runtime, fidelity guard on), and also with the guard off so the
guard's own effect is visible.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
from PIL import Image

from truepix.engine import models as engine_models
from truepix.colorimetry import linear_to_srgb, srgb_to_linear
from truepix.engine.pipeline import EngineOptions, enhance
from truepix.evaluate import baselines
from truepix.evaluate.metrics import sr_scores
from truepix.recipes import Recipe, Step
from truepix.resize import imresize

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


def load_truth(path: pathlib.Path, scale: int) -> np.ndarray:
    """8-bit image -> float32 sRGB RGB in [0, 1], cropped to a multiple of ``scale``."""
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    h, w = (img.shape[0] // scale) * scale, (img.shape[1] // scale) * scale
    return np.ascontiguousarray(img[:h, :w])


def _model_upscaler(name: str, options: EngineOptions, guard: bool):
    recipe = Recipe(name, (Step(name),), guard=guard)

    def up(img: np.ndarray) -> np.ndarray:
        lin = srgb_to_linear(img)
        out = enhance(lin, None, recipe, options).pixels
        return linear_to_srgb(out, out=out)

    return up


def evaluate_upscale(
    data: pathlib.Path,
    scale: int,
    models: list[str] | None = None,
    peer_dir: pathlib.Path | None = None,
    options: EngineOptions = EngineOptions(),
    limit: int | None = None,
) -> dict:
    """Score every method on every image in ``data``.

    Returns ``{"task", "scale", "dataset", "images", "results": {METHOD:
    {"psnr", "ssim", "seconds"}}}``: mean PSNR-Y (dB), mean SSIM-Y and total
    seconds spent upscaling.
    """
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise SystemExit(f"truepix: eval: no images in {data}")
    methods = {"bicubic": baselines.bicubic(scale), "lanczos": baselines.lanczos(scale)}
    table = engine_models.load_manifest()
    names = models or [m.name for m in table.values() if m.task == "upscale" and m.scale == scale]
    for name in names:
        methods[name] = _model_upscaler(name, options, guard=True)
        methods[f"{name} (no guard)"] = _model_upscaler(name, options, guard=False)
    if peer_dir is not None:
        for peer, path in baselines.find_peers(peer_dir, scale).items():
            methods[f"opencv {peer}"] = baselines.opencv_peer(path, scale)
    scores = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    for path in files:
        truth = load_truth(path, scale)
        lr = np.round(np.clip(imresize(truth, 1.0 / scale), 0, 1) * 255.0).astype(np.float32) / 255.0
        for name, up in methods.items():
            t0 = time.perf_counter()
            out = up(lr)
            seconds[name] += time.perf_counter() - t0
            scores[name].append(sr_scores(out, truth, border=scale))
    results = {
        name: {"psnr": round(float(np.mean([s[0] for s in v])), 3),
               "ssim": round(float(np.mean([s[1] for s in v])), 4),
               "seconds": round(seconds[name], 3)}
        for name, v in scores.items()
    }
    return {"task": "upscale", "scale": scale, "dataset": data.name, "images": len(files), "results": results}


def format_table(result: dict) -> str:
    """Markdown table of an ``evaluate_upscale`` result."""
    lines = [f"{result['dataset']} x{result['scale']} ({result['images']} images)", "",
             "| method | PSNR-Y (dB) | SSIM-Y | seconds |", "|---|---:|---:|---:|"]
    for name, r in result["results"].items():
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.2f} |")
    return "\n".join(lines)
