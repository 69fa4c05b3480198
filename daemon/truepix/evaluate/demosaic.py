"""``truepix eval --task demosaic``: demosaicing (and joint demosaic + denoise) quality.

Clean protocol (the published one for McMaster and Kodak): each 8-bit ground truth is sampled
through an RGGB mosaic, no noise, and every method rebuilds the full image; PSNR over all three
RGB channels of the 8-bit result, ``border`` pixels shaved.  Classical methods work on the
sRGB-encoded mosaic, as published: bilinear, Malvar-He-Cutler 2004 and Menon 2007
(``colour-demosaicing``), and LibRaw's own AHD, DCB, DHT, AAHD, VNG and PPG (the mosaic goes
through a CFA DNG file, as a camera's would).  truepix's network works on light, so it gets the
same mosaic decoded to linear light (decoding commutes with sampling: same information) and its
result is encoded back to sRGB; it runs through the real engine (tiled ONNX Runtime, the guard on).

Noise protocol (``iso``): the ground truth is taken as linear light and photographed by the
held-out camera profile (``apsc24``, never seen in training) at each ISO: white balance
(2.0, 1, 1.5) divided out, RGGB mosaic, shot and read noise, 14-bit quantisation; every method
develops it back (white balance re-applied) and is scored against the truth in sRGB.  The network
gets the profile's noise level map; the classical methods demosaic the noisy data as it is, with
and bilinear also with CBM3D (``bm3d``) after it, told the true noise level (``--cbm3d``: about
15 s per image and ISO).
"""

from __future__ import annotations

import math
import pathlib
import tempfile
import time

import numpy as np
from PIL import Image

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.errors import EvalError

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}
LIBRAW_ALGORITHMS = ("AHD", "DCB", "DHT", "AAHD", "VNG", "PPG")
HELD_OUT = "apsc24"
EVAL_GAINS = (2.0, 1.0, 1.5)


def load_truth(path: pathlib.Path) -> np.ndarray:
    """8-bit image -> float32 sRGB (H, W, 3), cropped to even sides."""
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"), np.float32) / 255.0
    return np.ascontiguousarray(img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2])


def psnr_rgb(out: np.ndarray, truth: np.ndarray, border: int) -> float:
    """PSNR over R, G and B of the 8-bit rounded ``out`` against ``truth`` (both sRGB 0..1)."""
    o = np.round(np.clip(out, 0, 1) * 255.0)
    t = np.round(truth * 255.0)
    if border:
        o, t = o[border:-border, border:-border], t[border:-border, border:-border]
    mse = float(np.mean((o - t) ** 2))
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


def colour_demosaicing_methods() -> dict:
    """bilinear, Malvar 2004 and Menon 2007 from ``colour-demosaicing`` ({} when it is not installed,
    said in one line: ``extras.missing_note``)."""
    from truepix.evaluate import extras

    cd = extras.load("colour_demosaicing")
    if cd is None:
        return {}

    return {
        "bilinear": lambda m: cd.demosaicing_CFA_Bayer_bilinear(m, "RGGB"),
        "Malvar 2004": lambda m: cd.demosaicing_CFA_Bayer_Malvar2004(m, "RGGB"),
        "Menon 2007": lambda m: cd.demosaicing_CFA_Bayer_Menon2007(m, "RGGB"),
    }


def libraw_methods(workdir: pathlib.Path) -> dict:
    """LibRaw's demosaics present in this rawpy wheel, each reading the mosaic from a CFA DNG."""
    import rawpy

    from truepix.io.dng import write_cfa_dng

    def make(algorithm: str):
        def run(m: np.ndarray) -> np.ndarray:
            path = workdir / "mosaic.dng"
            write_cfa_dng(path, np.round(np.clip(m, 0, 1) * 65535).astype(np.uint16), "RGGB")
            with rawpy.imread(str(path)) as raw:
                rgb = raw.postprocess(demosaic_algorithm=rawpy.DemosaicAlgorithm[algorithm], gamma=(1, 1),
                                      no_auto_bright=True, output_bps=16, output_color=rawpy.ColorSpace.raw,
                                      user_wb=[1.0, 1.0, 1.0, 1.0], user_flip=0, user_black=0)
            return rgb.astype(np.float32) / 65535.0
        return run

    found = {}
    probe = np.random.default_rng(0).uniform(0, 1, (32, 32)).astype(np.float32)
    for alg in LIBRAW_ALGORITHMS:
        try:
            if not rawpy.DemosaicAlgorithm[alg].isSupported:
                continue
            make(alg)(probe)
        except Exception:  # absent from this LibRaw build (the GPL packs) or failing: not a baseline
            continue
        found[f"LibRaw {alg}"] = make(alg)
    return found


def _network(name: str, options, guard: bool):
    from truepix.engine import models
    from truepix.engine.develop import demosaic
    from truepix.io.raw import RawMosaic

    info = models.get_model(name)

    def run(planes_mosaic: np.ndarray, wb=(1.0, 1.0, 1.0), noise=(0.0, 0.0)) -> np.ndarray:
        mos = RawMosaic(path=pathlib.Path("eval"), mosaic=planes_mosaic, pattern="RGGB",
                        wb=np.asarray(wb, np.float64), cam_xyz=None, noise_profile=noise)
        rgb, *_ = demosaic(mos, info, options, guard=guard)
        return rgb

    return run


def _noisy_mosaic(truth_linear: np.ndarray, iso: float, seed: int):
    """The held-out camera's raw of ``truth_linear`` at ``iso``: (normalised mosaic, noise (scale, offset),
    the same mosaic without noise)."""
    from truepix.simulate.camera import PROFILES
    from truepix.simulate.cfa import mosaic
    from truepix.simulate.sensor import add_sensor_noise, noise_variance, normalise_raw, quantise_raw

    nm = PROFILES[HELD_OUT].noise
    rng = np.random.default_rng(seed)
    g = np.asarray(EVAL_GAINS, np.float32)
    clean = mosaic(np.clip(truth_linear / g, 0, 1), "RGGB")
    raw = normalise_raw(quantise_raw(add_sensor_noise(clean, iso, nm, rng), nm), nm)
    offset = noise_variance(0.0, iso, nm, quantised=True)
    return raw, (float(noise_variance(1.0, iso, nm, quantised=True) - offset), float(offset)), clean


def evaluate_demosaic(data: pathlib.Path, models: list[str] | None = None, iso: list[float] | None = None,
                      options=None, limit: int | None = None, border: int = 8, libraw: bool = True,
                      cbm3d: bool = False) -> dict:
    """Score every method on every image of ``data`` (see the module docstring).

    Returns {"task", "dataset", "images", "border", "conditions": ["clean", "ISO 800", ...],
    "results": {method: {condition: mean PSNR dB, "seconds": s}}, "best_classical": {condition: name}}.
    """
    from truepix.engine import models as engine_models
    from truepix.engine.pipeline import EngineOptions
    from truepix.simulate.cfa import mosaic as cfa_mosaic

    options = options or EngineOptions()
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise EvalError(f"eval: no images in {data}")
    table = engine_models.load_manifest()
    names = models or [m.name for m in table.values() if m.task == "demosaic"]
    for n in names:
        if n not in table or not table[n].kind.needs_raw:
            raise EvalError(f"eval: {n!r} is not an installed Bayer (demosaic) model")
    from truepix.evaluate import extras

    if cbm3d:
        extras.require("bm3d", "--cbm3d")
    notes = [n for n in [extras.missing_note("colour_demosaicing", "bilinear, Malvar 2004 and Menon 2007")] if n]
    classical = colour_demosaicing_methods()
    tmp = tempfile.TemporaryDirectory(prefix="truepix-eval-")
    if libraw:
        classical.update(libraw_methods(pathlib.Path(tmp.name)))
    nets = {n: _network(n, options, guard=True) for n in names}
    conditions = ["clean"] + [f"ISO {v:g}" for v in (iso or [])]
    scores: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}

    def record(method: str, cond: str, value: float, dt: float) -> None:
        scores.setdefault(method, {}).setdefault(cond, []).append(value)
        seconds[method] = seconds.get(method, 0.0) + dt

    try:
        for index, path in enumerate(files):
            truth = load_truth(path)
            m_srgb = cfa_mosaic(truth, "RGGB")
            for name, fn in classical.items():
                t0 = time.perf_counter()
                out = fn(m_srgb)
                record(name, "clean", psnr_rgb(out, truth, border), time.perf_counter() - t0)
            m_lin = srgb_to_linear(m_srgb)
            for name, fn in nets.items():
                t0 = time.perf_counter()
                out = linear_to_srgb(fn(m_lin))
                record(name, "clean", psnr_rgb(out, truth, border), time.perf_counter() - t0)
            truth_lin = srgb_to_linear(truth)
            g = np.asarray(EVAL_GAINS, np.float32)
            site_gain = np.ones_like(m_lin)
            site_gain[0::2, 0::2], site_gain[1::2, 1::2] = g[0], g[2]
            for v, cond in zip(iso or [], conditions[1:], strict=True):
                raw, noise, clean = _noisy_mosaic(truth_lin, v, seed=1000 * index + int(v))
                wb_raw = raw * site_gain
                for name in [n for n in ("bilinear", "Menon 2007") if n in classical]:
                    t0 = time.perf_counter()
                    out = np.clip(classical[name](wb_raw), 0, 1)
                    record(name, cond, psnr_rgb(linear_to_srgb(out), truth, border), time.perf_counter() - t0)
                    if cbm3d and name == "bilinear":  # the better of the two on noisy mosaics
                        import bm3d

                        t0 = time.perf_counter()
                        enc = linear_to_srgb(out)
                        # CBM3D is told the true level: the deviation of this development from that
                        # of the noise-free mosaic (the noise as bilinear left it, in sRGB values)
                        truth_dev = linear_to_srgb(np.clip(classical[name](clean * site_gain), 0, 1))
                        sigma = float(np.std(enc - truth_dev))
                        den = bm3d.bm3d_rgb(enc, max(sigma, 1e-3))
                        record(f"{name} + CBM3D (true sigma)", cond, psnr_rgb(den, truth, border),
                               time.perf_counter() - t0)
                for name, fn in nets.items():
                    t0 = time.perf_counter()
                    out = fn(raw, wb=EVAL_GAINS, noise=noise)
                    record(name, cond, psnr_rgb(linear_to_srgb(np.clip(out, 0, 1)), truth, border),
                           time.perf_counter() - t0)
    finally:
        tmp.cleanup()
    results = {}
    for method, by_cond in scores.items():
        results[method] = {c: round(float(np.mean(v)), 3) for c, v in by_cond.items()}
        results[method]["seconds"] = round(seconds[method], 2)
    best = {}
    for cond in conditions:
        cands = {m: r[cond] for m, r in results.items() if m not in nets and cond in r}
        if cands:
            best[cond] = max(cands, key=cands.get)
    return {"task": "demosaic", "dataset": data.name, "images": len(files), "border": border,
            "conditions": conditions, "held_out_camera": HELD_OUT, "results": results, "best_classical": best,
            "networks": list(nets), "left_out": notes}


def format_table(result: dict) -> str:
    conds = result["conditions"]
    lines = [f"{result['dataset']} demosaic ({result['images']} images, RGGB, PSNR over RGB in dB, "
             f"{result['border']} px border shaved" + (f"; noise: held-out camera {result['held_out_camera']}"
                                                       if len(conds) > 1 else "") + ")", "",
             "| method | " + " | ".join(conds) + " | seconds |", "|---|" + "---:|" * (len(conds) + 1)]
    for name, r in result["results"].items():
        cells = [f"{r[c]:.2f}" if c in r else "" for c in conds]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['seconds']:.1f} |")
    for net in result["networks"]:
        gains = []
        for c in conds:
            b = result["best_classical"].get(c)
            if b and c in result["results"][net]:
                gains.append(f"{c}: {result['results'][net][c] - result['results'][b][c]:+.2f} dB over {b}")
        lines.append(f"\n{net}: " + "; ".join(gains))
    lines += [f"\n{note}" for note in result.get("left_out", [])]
    return "\n".join(lines)
