"""``truepix eval --task denoise``: RGB denoising quality.

AWGN protocol (DnCNN, FFDNet, CBM3D): each 8-bit colour ground truth plus white Gaussian noise of
sigma 15, 25, 50 (on the 0..255 scale, unclipped, fixed seed per image); PSNR over RGB of the result
clipped to 0..1 and rounded to 8 bits.  truepix's denoiser runs through the engine's tiled ONNX
Runtime path with the true sigma (non-blind, as CBM3D is given it) and with its own estimate
(blind, ``engine.noiselevel``); CBM3D (``bm3d`` package, ``bm3d_rgb``) with the true sigma
(``--cbm3d``; about 10 s per image and level).

Realistic protocol (``iso``): the held-out camera profile (``apsc24``) photographs each ground
truth (taken as linear light) at each ISO; the raw is developed without noise reduction (white
balance, bilinear demosaic, sRGB) and that file is denoised: the denoiser with its own estimate,
CBM3D with the same estimate, and, for reference, truepix's joint demosaic network on the raw
itself (what a RAW file gets).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.errors import EvalError
from truepix.evaluate.demosaic import (
    EVAL_GAINS, HELD_OUT, IMAGE_SUFFIXES, _network, _noisy_mosaic, load_truth, psnr_rgb,
)


def _denoiser(name: str, options, blind: bool):
    from truepix.engine import models
    from truepix.engine.noiselevel import estimate_sigma
    from truepix.engine.pipeline import run_model

    info = models.get_model(name)

    def run(noisy: np.ndarray, sigma: float | None) -> np.ndarray:
        s = estimate_sigma(noisy) if blind or sigma is None else sigma
        return run_model(info, noisy.astype(np.float32), options, params={"noise": min(s * 255, 255.0)})

    return run


def _cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return np.asarray(bm3d.bm3d_rgb(noisy, max(sigma, 1e-4)), np.float32)


def _developed_without_nr(truth: np.ndarray, iso: float, seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(developed sRGB, raw mosaic, noise) of the held-out camera's shot of ``truth`` at ``iso``."""
    from truepix.simulate.cfa import demosaic_bilinear

    raw, noise, _ = _noisy_mosaic(srgb_to_linear(truth), iso, seed)
    site = np.ones_like(raw)
    site[0::2, 0::2], site[1::2, 1::2] = EVAL_GAINS[0], EVAL_GAINS[2]
    rgb = np.clip(demosaic_bilinear(raw * site, "RGGB"), 0, 1).astype(np.float32)
    return linear_to_srgb(rgb), raw, noise


def evaluate_denoise(data: pathlib.Path, models: list[str] | None = None, sigmas=(15, 25, 50), iso=(),
                     options=None, limit: int | None = None, cbm3d: bool = False) -> dict:
    """Returns {"task", "dataset", "images", "conditions", "results": {method: {condition: PSNR}}}."""
    from truepix.engine import models as engine_models
    from truepix.engine.noiselevel import estimate_sigma
    from truepix.engine.pipeline import EngineOptions

    options = options or EngineOptions()
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise EvalError(f"eval: no images in {data}")
    table = engine_models.load_manifest()
    names = models or [m.name for m in table.values() if m.task == "denoise"]
    from truepix.engine import kinds

    for n in names:
        if n not in table or not isinstance(table[n].kind, kinds.NoiseMap):
            raise EvalError(f"eval: {n!r} is not an installed RGB denoiser")
    conditions = [f"sigma {s:g}" for s in sigmas] + [f"ISO {v:g}" for v in iso]
    scores: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    estimates: dict[str, list[float]] = {}

    def record(method, cond, value, dt=0.0):
        scores.setdefault(method, {}).setdefault(cond, []).append(value)
        seconds[method] = seconds.get(method, 0.0) + dt

    demosaic_nets = {n: _network(n, options, guard=True) for n, m in table.items() if m.task == "demosaic"}
    for index, path in enumerate(files):
        truth = load_truth(path)
        for s in sigmas:
            cond = f"sigma {s:g}"
            rng = np.random.default_rng(10_000 + 100 * index + int(s))
            noisy = (truth + rng.normal(0, s / 255, truth.shape)).astype(np.float32)
            record("noisy input", cond, psnr_rgb(noisy, truth, 0))
            estimates.setdefault(cond, []).append(estimate_sigma(noisy) * 255)
            for n in names:
                for blind in (False, True):
                    t0 = time.perf_counter()
                    out = _denoiser(n, options, blind)(noisy, s / 255)
                    record(f"{n} ({'blind' if blind else 'true sigma'})", cond, psnr_rgb(out, truth, 0),
                           time.perf_counter() - t0)
            if cbm3d:
                t0 = time.perf_counter()
                record("CBM3D (true sigma)", cond, psnr_rgb(_cbm3d(noisy, s / 255), truth, 0), time.perf_counter() - t0)
        for v in iso:
            cond = f"ISO {v:g}"
            developed, raw, noise = _developed_without_nr(truth, v, 1000 * index + int(v))
            record("noisy input", cond, psnr_rgb(developed, truth, 0))
            est = estimate_sigma(developed)
            estimates.setdefault(cond, []).append(est * 255)
            for n in names:
                t0 = time.perf_counter()
                out = _denoiser(n, options, True)(developed, None)
                record(f"{n} (blind)", cond, psnr_rgb(out, truth, 0), time.perf_counter() - t0)
            if cbm3d:
                t0 = time.perf_counter()
                record("CBM3D (estimated sigma)", cond, psnr_rgb(_cbm3d(developed, est), truth, 0),
                       time.perf_counter() - t0)
            for n, net in demosaic_nets.items():
                t0 = time.perf_counter()
                out = linear_to_srgb(np.clip(net(raw, wb=EVAL_GAINS, noise=noise), 0, 1))
                record(f"{n} on the raw", cond, psnr_rgb(out, truth, 0), time.perf_counter() - t0)
    results = {}
    for method, by_cond in scores.items():
        results[method] = {c: round(float(np.mean(v)), 3) for c, v in by_cond.items()}
        results[method]["seconds"] = round(seconds.get(method, 0.0), 2)
    return {"task": "denoise", "dataset": data.name, "images": len(files), "conditions": conditions,
            "held_out_camera": HELD_OUT, "results": results, "networks": list(names),
            "estimated_sigma_mean": {c: round(float(np.mean(v)), 2) for c, v in estimates.items()}}


def format_table(result: dict) -> str:
    conds = result["conditions"]
    lines = [f"{result['dataset']} denoise ({result['images']} images, PSNR over RGB in dB, 8-bit"
             + (f"; ISO columns: held-out camera {result['held_out_camera']}, developed without noise reduction"
                if any(c.startswith("ISO") for c in conds) else "") + ")", "",
             "| method | " + " | ".join(conds) + " | seconds |", "|---|" + "---:|" * (len(conds) + 1)]
    for name, r in result["results"].items():
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.2f}" if c in r else "" for c in conds)
                     + f" | {r['seconds']:.1f} |")
    est = ", ".join(f"{c}: {v:.1f}" for c, v in result["estimated_sigma_mean"].items())
    lines.append(f"\nmean estimated sigma (0..255): {est}")
    return "\n".join(lines)
