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
- ``independent`` degradation: a camera family built from settings training never
  draws (evaluate/independent.py), with a defocused third in every frame; reports
  the high-frequency energy there relative to plain bicubic's ("nothing invented in bokeh").
- ``rawbin`` degradation: real RAW files (evaluate/rawbin.py): the full mosaic's render is
  the truth, the 2x2-binned mosaic's render (same developer) the input.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
from PIL import Image

from truepix.engine import models as engine_models
from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.engine.pipeline import EngineOptions, enhance
from truepix.errors import EvalError
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


def _model_upscaler(name: str, options: EngineOptions, guard: bool, params: dict | None = None):
    """The model through the real engine, with ``params`` as its step's parameters (a fresh copy per
    image, so nothing the engine notes in them about one image carries over to the next)."""

    def up(img: np.ndarray) -> np.ndarray:
        recipe = Recipe(name, (Step(name, dict(params or {})),), guard=guard)
        lin = srgb_to_linear(img)
        result = enhance(lin, None, recipe, options)
        up.report = result.fidelity  # the last image's: what "input = auto" decided, for the JSON
        return linear_to_srgb(result.pixels, out=result.pixels)

    up.report = {}
    return up


DEGRADATIONS = ("bicubic", "camera", "independent", "rawbin")
HF_FLOOR = (1 / 255) ** 2 / 12  # 8-bit quantisation noise: high-frequency energy below it is invisible


def _image_cases(files, scale, degradation):
    """(name, truth, lr, defocus mask or None, noise-free lr or None) for the protocols that start from
    ground-truth images."""
    for index, path in enumerate(files):
        if degradation == "bicubic":
            truth = load_truth(path, scale)
            lr = np.round(np.clip(imresize(truth, 1.0 / scale), 0, 1) * 255.0).astype(np.float32) / 255.0
            yield path.name, truth, lr, None, None
        elif degradation == "camera":
            from truepix.evaluate import camera

            truth = camera.crop_for(load_truth(path, 1), scale)
            yield path.name, truth, camera.camera_lr(truth, scale, index)[0], None, None
        else:
            from truepix.evaluate import camera, independent

            crop = camera.crop_for(load_truth(path, 1), scale)
            truth, lr, mask, _ = independent.independent_lr(crop, scale, index)
            yield path.name, truth, lr, mask, independent.independent_lr(crop, scale, index, noise=False)[1]


def _unsharp_baseline(unsharp_from: pathlib.Path, scale: int, degradation: str):
    """(label, upscaler, note) of bicubic + unsharp mask tuned on the first 12 training images under
    ``degradation`` (rawbin: under the independent camera, which has no RAW training images)."""
    from truepix.evaluate import camera, independent

    train = sorted(p for p in unsharp_from.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:12]
    if not train:
        raise EvalError(f"eval: no training images in {unsharp_from}")
    degrade = None if degradation == "camera" else independent.degrade_for_tuning(scale)
    amount, sigma = camera.tune_unsharp(train, scale, lambda p: load_truth(p, 1), degrade)
    under = "held-out camera" if degradation == "camera" else "independent camera"
    note = f"{unsharp_from.name}: first {len(train)} images"
    if degradation != "camera":
        note += f", tuned under the {under}"
    return f"bicubic + unsharp ({amount:g}, {sigma:g} px)", camera.unsharp(scale, amount, sigma), note


def evaluate_upscale(
    data: pathlib.Path,
    scale: int,
    models: list[str] | None = None,
    peer_dir: pathlib.Path | None = None,
    options: EngineOptions = EngineOptions(),
    limit: int | None = None,
    degradation: str = "bicubic",
    unsharp_from: pathlib.Path | None = None,
    params: dict | None = None,
    max_half_pixels: int | None = None,
) -> dict:
    """Score every method on every image in ``data``.

    ``degradation``: bicubic, camera (evaluate/camera.py), independent (evaluate/independent.py) or
    rawbin (evaluate/rawbin.py: ``data`` holds RAW files).  ``unsharp_from``: (camera, independent,
    rawbin) training images to tune the bicubic + unsharp-mask baseline on.  ``params``: the step
    parameters every model runs with.  ``max_half_pixels``: (rawbin) the half render's crop limit.

    Returns ``{"task", "scale", "dataset", "degradation", "images", "results":
    {METHOD: {"psnr", "ssim", "seconds"[, "colour_shift", "colour_shift_input", "backprojection_psnr",
    "invention_ratio" | "bokeh_hf_ratio"]}}}``: means over the images (dB, SSIM, CIEDE2000) and
    total seconds spent upscaling.  independent adds "independent_family" and "bokeh_truth_ratio";
    rawbin adds "per_file", "skipped" {file: reason}, "crops" and "developer".  A model told the input
    kind (``input = "auto"``) adds "input_kind" {METHOD: counts of images upscaled as clean, blended
    and camera, and each image's estimate "p" and "camera_share"}.
    """
    if degradation not in DEGRADATIONS:
        raise EvalError(f"eval: unknown degradation {degradation!r} ({', '.join(DEGRADATIONS)})")
    extra: dict = {}
    if degradation == "rawbin":
        from truepix.evaluate import rawbin

        if scale != 2:
            raise EvalError("eval: the rawbin protocol bins 2x2 and tests x2 only (use --scale 2)")
        files = rawbin.raw_files(data)[:limit]
        if not files:
            raise EvalError(f"eval: no files in {data}")
        skipped, crops = {}, {}
        cases = ((n, t, lr, None, None) for n, t, lr in rawbin.cases(
            files, scale, skipped, crops, max_half_pixels or rawbin.MAX_HALF_PIXELS))
    else:
        files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
        if not files:
            raise EvalError(f"eval: no images in {data}")
        cases = _image_cases(files, scale, degradation)
    methods = {"bicubic": baselines.bicubic(scale), "lanczos": baselines.lanczos(scale)}
    if degradation != "bicubic" and unsharp_from is not None:
        label, up, extra["unsharp_tuned_on"] = _unsharp_baseline(unsharp_from, scale, degradation)
        methods[label] = up
    table = engine_models.load_manifest()
    names = models or [m.name for m in table.values() if m.task == "upscale" and m.scale == scale]
    for name in names:
        methods[name] = _model_upscaler(name, options, guard=True, params=params)
        methods[f"{name} (no guard)"] = _model_upscaler(name, options, guard=False, params=params)
    if peer_dir is not None:
        for peer, path in baselines.find_peers(peer_dir, scale).items():
            methods[f"opencv {peer}"] = baselines.opencv_peer(path, scale)
    scores: dict[str, list[dict]] = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    per_file: dict[str, dict] = {}
    truth_ratios = []
    kinds: dict[str, dict[str, list[float]]] = {}  # an input-kind model's estimate and camera share per image
    noise_shifts = []  # (independent) the noise-free input against the noisy one
    for index, (name_, truth, lr, mask, quiet) in enumerate(cases):
        outputs = {}
        if quiet is not None:
            from truepix.engine.fidelity import report
            from truepix.evaluate.camera import COLOUR_BLOCK

            noise_shifts.append(report(quiet, lr, 1, block=COLOUR_BLOCK)["colour_shift_mean"])
        for name, up in methods.items():
            t0 = time.perf_counter()
            out = up(lr)
            seconds[name] += time.perf_counter() - t0
            p, s = sr_scores(out, truth, border=scale)
            row = {"psnr": p, "ssim": s}
            if degradation != "bicubic":
                from truepix.evaluate import camera

                row.update(camera.fidelity_scores(out, truth, lr, scale, quiet))
            scores[name].append(row)
            if "input_kind_p" in getattr(up, "report", {}) and not name.endswith("(no guard)"):
                kinds.setdefault(name, {})[name_] = [up.report["input_kind_p"], up.report["input_kind_camera"]]
            if mask is not None:
                outputs[name] = out
        if degradation == "camera":
            _no_invention(truth, scale, index, methods, scores)
        elif mask is not None:
            truth_ratios.append(_bokeh_ratios(truth, mask, scale, outputs, scores))
        if degradation == "rawbin":
            per_file[name_] = {m: {k: round(float(v), 4) for k, v in rows[-1].items()} for m, rows in scores.items()}
    evaluated = len(scores["bicubic"])
    if not evaluated:
        raise EvalError(f"eval: nothing in {data} could be evaluated"
                        + (f" (skipped: {skipped})" if degradation == "rawbin" else ""))
    results = {}
    for name, rows in scores.items():
        results[name] = {key: round(float(np.nanmean([r[key] for r in rows])), 4) for key in rows[0]}
        results[name]["seconds"] = round(seconds[name], 3)
    if noise_shifts:
        extra["input_noise_colour_shift"] = round(float(np.mean(noise_shifts)), 4)
    out = {"task": "upscale", "scale": scale, "dataset": data.name, "degradation": degradation,
           "images": evaluated, "results": results, **extra}
    if params:
        out["params"] = params
    if kinds:
        out["input_kind"] = {name: {
            "clean": sum(w == 0 for _, w in per.values()), "blended": sum(0 < w < 1 for _, w in per.values()),
            "camera": sum(w == 1 for _, w in per.values()), "per_image": {k: {"p": p, "camera_share": w}
                                                                           for k, (p, w) in per.items()}}
            for name, per in kinds.items()}
    if degradation == "camera":
        from truepix.evaluate import camera

        out["held_out_camera"] = camera.HELD_OUT
    elif degradation == "independent":
        from truepix.evaluate import independent

        out["independent_family"] = independent.FAMILY
        out["bokeh_truth_ratio"] = round(float(np.nanmean(truth_ratios)), 4)
    elif degradation == "rawbin":
        from truepix.evaluate import rawbin

        out.update(per_file=per_file, skipped=skipped, crops=crops, developer=rawbin.DEVELOPER,
                   max_half_pixels=max_half_pixels or rawbin.MAX_HALF_PIXELS)
    return out


def _bokeh_ratios(truth, mask, scale, outputs, scores) -> float:
    """Each method's high-frequency energy in the defocused third over plain bicubic's (the
    independent protocol's "nothing invented in bokeh" measure: <= 1 means no more fine detail than
    bicubic makes there).  Returns the (blurred) truth's own ratio, for reference."""
    from truepix.evaluate import camera

    ref = camera.high_frequency_energy(outputs["bicubic"], mask, scale) + HF_FLOOR
    for name, out in outputs.items():
        scores[name][-1]["bokeh_hf_ratio"] = (camera.high_frequency_energy(out, mask, scale) + HF_FLOOR) / ref
    return (camera.high_frequency_energy(truth, mask, scale) + HF_FLOOR) / ref


def _no_invention(truth, scale, index, methods, scores) -> None:
    """Each method's high-frequency energy over the ground truth's, in a strongly defocused region.

    The camera here is at ISO 100 without JPEG: the test is about structure, not about noise.
    Energies below 8-bit quantisation noise ((1/255)^2 / 12) are invisible, so that floor is added
    to both sides; 1.0 = exactly as much fine detail as the (blurred) truth.
    """
    from truepix.evaluate import camera

    blurred, mask = camera.defocused_truth(truth, scale, index)
    lr, _ = camera.camera_lr(blurred, scale, index, iso_range=(100, 100), jpeg_prob=0.0)
    floor = HF_FLOOR
    ref = camera.high_frequency_energy(blurred, mask, scale)
    for name, up in methods.items():
        got = camera.high_frequency_energy(up(lr), mask, scale)
        scores[name][-1]["invention_ratio"] = (got + floor) / (ref + floor)


def format_table(result: dict) -> str:
    """Markdown table of an ``evaluate_upscale`` result (rawbin: also PSNR-Y per file, and what was skipped)."""
    deg = result.get("degradation", "bicubic")
    title = f"{result['dataset']} x{result['scale']} ({result['images']} images"
    title += {"camera": f", camera protocol, held-out profile {result.get('held_out_camera')})",
              "independent": ", independent camera protocol)",
              "rawbin": ", real RAWs binned 2x2, same developer for both)"}.get(deg, ")")
    head = "| method | PSNR-Y (dB) | SSIM-Y |"
    rule = "|---|---:|---:|"
    if deg != "bicubic":
        head += " colour shift vs truth (ΔE00) | colour shift vs input (ΔE00) | back-projection (dB) |"
        rule += "---:|---:|---:|"
    last = {"camera": ("invention ratio", "invention_ratio"),
            "independent": ("bokeh HF / bicubic", "bokeh_hf_ratio")}.get(deg)
    if last:
        head += f" {last[0]} |"
        rule += "---:|"
    lines = [title, "", head + " seconds |", rule + "---:|"]
    for name, r in result["results"].items():
        line = f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} |"
        if deg != "bicubic":
            line += f" {r['colour_shift']:.2f} | {r.get('colour_shift_input', float('nan')):.2f} |" \
                    f" {r['backprojection_psnr']:.1f} |"
        if last:
            line += f" {r[last[1]]:.2f} |"
        lines.append(line + f" {r['seconds']:.2f} |")
    if deg == "independent":
        lines += ["", f"ground truth's own bokeh HF / bicubic: {result['bokeh_truth_ratio']:.2f}"]
        if "input_noise_colour_shift" in result:
            lines += ["colour shift vs the noise-free input (the same camera without sensor noise), per method: "
                      + ", ".join(f"{n} {r['colour_shift_quiet_input']:.2f}" for n, r in result["results"].items()
                                  if "colour_shift_quiet_input" in r),
                      f"the noise-free input vs the noisy input itself: {result['input_noise_colour_shift']:.2f} ΔE00"]
    if result.get("unsharp_tuned_on"):
        lines += ["", f"unsharp mask tuned on {result['unsharp_tuned_on']}"]
    for name, k in result.get("input_kind", {}).items():
        lines += ["", f"{name}, input = auto: {k['clean']} upscaled as clean, {k['blended']} blended, "
                      f"{k['camera']} as camera files"]
    if deg == "rawbin":
        files = list(result["per_file"])
        lines += ["", "PSNR-Y (dB) / SSIM-Y per file (centred crop of the half render, top left height width "
                      "of the full mosaic's crop in brackets)", "",
                  "| method | " + " | ".join(f"{f} {tuple(result['crops'][f]['crop'])}" for f in files) + " |",
                  "|---|" + "---:|" * len(files)]
        for name in result["results"]:
            cells = [f"{result['per_file'][f][name]['psnr']:.2f} / {result['per_file'][f][name]['ssim']:.4f}"
                     for f in files]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for f, why in result["skipped"].items():
            lines.append(f"skipped {f}: {why}")
    return "\n".join(lines)
