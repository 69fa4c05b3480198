"""``truepix eval --task upscale``: the super-resolution protocols.

For every ground-truth image: crop, make the low-resolution input, upscale it
with each method, and score PSNR and SSIM on the BT.601 Y channel with
``scale`` pixels shaved from each border.  truepix's models run through the
real engine (tiled ONNX Runtime, fidelity guard on), and also with the guard
off so the guard's own effect is visible.

- ``bicubic`` degradation: the classic protocol, MATLAB-compatible bicubic
  antialiased downscaling quantised to 8 bits (as the benchmark LR files are).
- ``camera`` degradation: a held-out simulated camera (evaluate/camera.py);
  adds the true-to-life measures: colour shift against the ground truth,
  back-projection PSNR, and the "no invention" ratio on defocused regions.
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
    degradation: str = "bicubic",
    unsharp_from: pathlib.Path | None = None,
) -> dict:
    """Score every method on every image in ``data``.

    ``unsharp_from``: (camera protocol) training images to tune the bicubic +
    unsharp-mask baseline on.

    Returns ``{"task", "scale", "dataset", "degradation", "images", "results":
    {METHOD: {"psnr", "ssim", "seconds"[, "colour_shift", "backprojection_psnr",
    "invention_ratio"]}}}``: means over the images (dB, SSIM, CIEDE2000) and
    total seconds spent upscaling.
    """
    if degradation not in ("bicubic", "camera"):
        raise SystemExit(f"truepix: eval: unknown degradation {degradation!r} (bicubic or camera)")
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise SystemExit(f"truepix: eval: no images in {data}")
    methods = {"bicubic": baselines.bicubic(scale), "lanczos": baselines.lanczos(scale)}
    extra: dict = {}
    if degradation == "camera" and unsharp_from is not None:
        from truepix.evaluate import camera

        train = sorted(p for p in unsharp_from.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:12]
        amount, sigma = camera.tune_unsharp(train, scale, lambda p: load_truth(p, 1))
        methods[f"bicubic + unsharp ({amount:g}, {sigma:g} px)"] = camera.unsharp(scale, amount, sigma)
        extra["unsharp_tuned_on"] = f"{unsharp_from.name}: first {len(train)} images"
    table = engine_models.load_manifest()
    names = models or [m.name for m in table.values() if m.task == "upscale" and m.scale == scale]
    for name in names:
        methods[name] = _model_upscaler(name, options, guard=True)
        methods[f"{name} (no guard)"] = _model_upscaler(name, options, guard=False)
    if peer_dir is not None:
        for peer, path in baselines.find_peers(peer_dir, scale).items():
            methods[f"opencv {peer}"] = baselines.opencv_peer(path, scale)
    scores: dict[str, list[dict]] = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    for index, path in enumerate(files):
        if degradation == "bicubic":
            truth = load_truth(path, scale)
            lr = np.round(np.clip(imresize(truth, 1.0 / scale), 0, 1) * 255.0).astype(np.float32) / 255.0
        else:
            from truepix.evaluate import camera

            truth = camera.crop_for(load_truth(path, 1), scale)
            lr, _ = camera.camera_lr(truth, scale, index)
        for name, up in methods.items():
            t0 = time.perf_counter()
            out = up(lr)
            seconds[name] += time.perf_counter() - t0
            p, s = sr_scores(out, truth, border=scale)
            row = {"psnr": p, "ssim": s}
            if degradation == "camera":
                row.update(camera.fidelity_scores(out, truth, lr, scale))
            scores[name].append(row)
        if degradation == "camera":
            _no_invention(truth, scale, index, methods, scores)
    results = {}
    for name, rows in scores.items():
        results[name] = {key: round(float(np.nanmean([r[key] for r in rows])), 4) for key in rows[0]}
        results[name]["seconds"] = round(seconds[name], 3)
    out = {"task": "upscale", "scale": scale, "dataset": data.name, "degradation": degradation,
           "images": len(files), "results": results, **extra}
    if degradation == "camera":
        from truepix.evaluate import camera

        out["held_out_camera"] = camera.HELD_OUT
    return out


def _no_invention(truth, scale, index, methods, scores) -> None:
    """Each method's high-frequency energy over the ground truth's, in a strongly defocused region.

    The camera here is at ISO 100 without JPEG: the test is about structure, not about noise.
    Energies below 8-bit quantisation noise ((1/255)^2 / 12) are invisible, so that floor is added
    to both sides; 1.0 = exactly as much fine detail as the (blurred) truth.
    """
    from truepix.evaluate import camera

    blurred, mask = camera.defocused_truth(truth, scale, index)
    lr, _ = camera.camera_lr(blurred, scale, index, iso_range=(100, 100), jpeg_prob=0.0)
    floor = (1 / 255) ** 2 / 12
    ref = camera.high_frequency_energy(blurred, mask, scale)
    for name, up in methods.items():
        got = camera.high_frequency_energy(up(lr), mask, scale)
        scores[name][-1]["invention_ratio"] = (got + floor) / (ref + floor)


def format_table(result: dict) -> str:
    """Markdown table of an ``evaluate_upscale`` result."""
    camera = result.get("degradation") == "camera"
    title = f"{result['dataset']} x{result['scale']} ({result['images']} images"
    title += f", camera protocol, held-out profile {result['held_out_camera']})" if camera else ")"
    head = "| method | PSNR-Y (dB) | SSIM-Y |"
    rule = "|---|---:|---:|"
    if camera:
        head += " colour shift (ΔE00) | back-projection (dB) | invention ratio |"
        rule += "---:|---:|---:|"
    lines = [title, "", head + " seconds |", rule + "---:|"]
    for name, r in result["results"].items():
        line = f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} |"
        if camera:
            line += f" {r['colour_shift']:.2f} | {r['backprojection_psnr']:.1f} | {r['invention_ratio']:.2f} |"
        lines.append(line + f" {r['seconds']:.2f} |")
    return "\n".join(lines)
