"""``truepix eval --task lens``: correcting lens blur, side by side with deconvolution given the true PSF.

Each ground truth (8-bit sRGB, taken as linear light after decoding) is photographed through each
held-out lens (``HELD_OUT_LENSES``: f-numbers, pitches and aberrations drawn with a seed the training
never uses, plus settings beyond the training ranges), at the centre of a 24 MP frame and at a
corner: per-channel PSF (diffraction at the channel's wavelength, aberration growing with the field,
lateral CA folded in as a sub-pixel shift of red and blue), plus white noise of 0.003 (what a
denoised raw keeps).  Over one test image the PSF is uniform, so Wiener and Richardson-Lucy can be
given it exactly; truepix's lens model is blind (it is told only where in the frame the image is).

Scores: PSNR over RGB in sRGB against the sharp truth; the noise gain (standard deviation of the
output over that of the input, on a flat grey field photographed the same way: 1.0 = noise neither
amplified nor removed); the halo (the largest dark or bright overshoot, in sRGB code values of 255,
the deepest dark ring below the ground in a band 1..12 px around a clipped highlight disc on a
mid-grey ground: the ringing of deconvolution; 0 = none); and, for the blind model, the PSNR on a
sharp photograph (a perfect lens, the same noise), beside the uncorrected one's: a corrector that
changes what is already sharp invents structure.  Wiener and Richardson-Lucy run at a few
settings (noise-to-signal ratio, iterations), each its own row: the better of them is the bar.
"""

from __future__ import annotations

import math
import pathlib
import time

import numpy as np

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.errors import EvalError
from truepix.evaluate.demosaic import IMAGE_SUFFIXES, load_truth, psnr_rgb

FRAME = (4000, 6000)
NOISE_SD = 0.003


def _held_out_lenses() -> list[dict]:
    rng = np.random.default_rng(20261125)  # never the training seed
    lenses = []
    for _ in range(2):
        lenses.append({"f_number": float(math.exp(rng.uniform(math.log(4.0), math.log(11.0)))),
                       "pitch_um": float(rng.uniform(3.8, 5.8)), "sigma_centre_px": float(rng.uniform(0.3, 0.6)),
                       "sigma_extra_corner_px": float(rng.uniform(0.3, 0.9)), "defocus_px": 0.0,
                       "ca_red": 1 + float(rng.uniform(-3e-4, 3e-4)), "ca_blue": 1 + float(rng.uniform(-3e-4, 3e-4))})
    # Past the training ranges' middle: stopped down to f/16 on small pixels, and a soft corner.
    lenses.append({"f_number": 16.0, "pitch_um": 3.6, "sigma_centre_px": 0.4, "sigma_extra_corner_px": 1.0,
                   "defocus_px": 0.5, "ca_red": 1.0004, "ca_blue": 0.9996})
    return lenses


HELD_OUT_LENSES = _held_out_lenses()


def _shift_kernel(dy: float, dx: float) -> np.ndarray:
    """An odd-sided kernel moving an image by (dy, dx) pixels with bilinear weights."""
    n = 2 * int(math.ceil(max(abs(dy), abs(dx)))) + 1
    k = np.zeros((n, n))
    c = n // 2
    y0, x0 = math.floor(dy), math.floor(dx)
    fy, fx = dy - y0, dx - x0
    for yy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        for xx, wx in ((x0, 1 - fx), (x0 + 1, fx)):
            if 0 <= c + yy < n and 0 <= c + xx < n:
                k[c + yy, c + xx] += wy * wx
    return k / k.sum()


def _lens_psfs(f_number, pitch_um, sigma_px, defocus_px):
    from truepix.simulate.optics import WAVELENGTHS_UM, airy_psf, combine_psfs, defocus_psf, gaussian_psf

    shared = gaussian_psf(sigma_px)
    if defocus_px > 0:
        shared = combine_psfs(shared, defocus_psf(defocus_px))
    return [combine_psfs(airy_psf(f_number, lam, pitch_um), shared) for lam in WAVELENGTHS_UM]


def place(h: int, w: int, position: str) -> tuple[float, float]:
    """(top, left) of an h x w image at the centre or the (top-left) corner of the frame."""
    cy, cx = (FRAME[0] - 1) / 2, (FRAME[1] - 1) / 2
    return (cy - h / 2, cx - w / 2) if position == "centre" else (0.0, 0.0)


def psfs_at(lens: dict, h: int, w: int, position: str):
    """(per-channel PSFs with CA folded in, top, left) for an h x w image at ``position`` of the frame."""
    from truepix.simulate.optics import combine_psfs

    cy, cx = (FRAME[0] - 1) / 2, (FRAME[1] - 1) / 2
    top, left = place(h, w, position)
    dy, dx = top + h / 2 - cy, left + w / 2 - cx
    field = min(math.hypot(dy, dx) / math.hypot(cy, cx), 1.0)
    sigma = lens["sigma_centre_px"] + lens["sigma_extra_corner_px"] * field
    psfs = _lens_psfs(lens["f_number"], lens["pitch_um"], sigma, lens["defocus_px"])
    for c, m in ((0, lens["ca_red"]), (2, lens["ca_blue"])):
        psfs[c] = combine_psfs(psfs[c], _shift_kernel(dy * (m - 1), dx * (m - 1)))
    return psfs, top, left


def photograph(linear: np.ndarray, psfs, rng) -> np.ndarray:
    from truepix.simulate.filters import convolve

    out = np.empty_like(linear)
    for c in range(3):
        out[:, :, c] = convolve(linear[:, :, c], psfs[c])
    out = np.clip(out, 0, 1)
    return (out + rng.normal(0, NOISE_SD, out.shape)).astype(np.float32)


def wiener(img: np.ndarray, psfs, nsr: float) -> np.ndarray:
    """Per-channel Wiener deconvolution with the true PSF (reflect-padded FFT), noise-to-signal ``nsr``."""
    out = np.empty_like(img)
    h, w = img.shape[:2]
    for c in range(3):
        k = psfs[c]
        pad = k.shape[0]
        x = np.pad(img[:, :, c], pad, mode="reflect")
        H = np.fft.rfft2(k, s=x.shape)
        H = H * np.exp(2j * np.pi * (np.fft.fftfreq(x.shape[0])[:, None] * (k.shape[0] // 2)
                                     + np.fft.rfftfreq(x.shape[1])[None, :] * (k.shape[1] // 2)))
        X = np.fft.rfft2(x)
        y = np.fft.irfft2(X * np.conj(H) / (np.abs(H) ** 2 + nsr), s=x.shape)
        out[:, :, c] = y[pad:pad + h, pad:pad + w]
    return out


def richardson_lucy(img: np.ndarray, psfs, iterations: int) -> np.ndarray:
    """Per-channel Richardson-Lucy with the true PSF (the classic multiplicative update)."""
    from truepix.simulate.filters import convolve

    out = np.empty_like(img)
    for c in range(3):
        obs = np.maximum(img[:, :, c].astype(np.float64), 1e-6)
        k = psfs[c]
        k_flip = k[::-1, ::-1]
        est = obs.copy()
        for _ in range(iterations):
            ratio = obs / np.maximum(convolve(est, k), 1e-6)
            est *= convolve(ratio, k_flip)
        out[:, :, c] = est
    return out.astype(np.float32)


def _network(name: str, options):
    from truepix.engine import models
    from truepix.engine.pipeline import run_model

    info = models.get_model(name)

    def run(img: np.ndarray, top: float, left: float) -> np.ndarray:
        # the test image is a piece of a 24 MP frame: the model is told where
        return run_model(info, img, options, params={"frame": (top, left, FRAME[0], FRAME[1])})

    return run


def flat_field(psfs, rng, level: float = 0.2, side: int = 128) -> tuple[np.ndarray, np.ndarray]:
    clean = np.full((side, side, 3), level, np.float32)
    return photograph(clean, psfs, rng), clean


def highlight_disc(psfs, rng, side: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo, truth, ring mask): a disc four times brighter than white on 18% grey, clipped."""
    yy, xx = np.mgrid[0:side, 0:side]
    r = np.hypot(yy - side / 2, xx - side / 2)
    scene = np.full((side, side, 3), 0.18, np.float32)
    scene[r < side / 6] = 4.0
    blurred = photograph(scene, psfs, rng)  # clipped inside photograph
    ring = (r >= side / 6 + 1) & (r <= side / 6 + 12)
    return blurred, np.clip(scene, 0, 1), ring


NOISE_KEPT = 1.1  # a correction "keeps the noise" when it amplifies it by at most 10%


def evaluate_lens(data: pathlib.Path, models: list[str] | None = None, options=None, limit: int | None = None,
                  rl_iterations=(3, 10, 30), wiener_nsr=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1)) -> dict:
    """Returns {"task", "dataset", "images", "lenses", "results": {method: {"psnr", "noise_gain",
    "halo"}}, "best_classical", "best_classical_noise_kept"} (means over images, lenses and the two
    frame positions; the bests are the Wiener/Richardson-Lucy rows of highest PSNR, overall and among
    those whose noise gain is at most ``NOISE_KEPT``, or None)."""
    from truepix.engine import models as engine_models
    from truepix.engine.pipeline import EngineOptions

    options = options or EngineOptions()
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise EvalError(f"eval: no images in {data}")
    table = engine_models.load_manifest()
    names = models or [m.name for m in table.values() if m.task == "lens"]
    methods = {"uncorrected": lambda img, psfs, top, left: img}
    for nsr in wiener_nsr:
        methods[f"Wiener (true PSF, NSR {nsr:g})"] = lambda img, psfs, top, left, nsr=nsr: wiener(img, psfs, nsr)
    for its in rl_iterations:
        methods[f"Richardson-Lucy (true PSF, {its} iterations)"] = \
            lambda img, psfs, top, left, its=its: richardson_lucy(img, psfs, its)
    for n in names:
        net = _network(n, options)
        methods[f"{n} (blind)"] = lambda img, psfs, top, left, net=net: net(img, top, left)
    rows: dict[str, dict[str, list[float]]] = {m: {"psnr": [], "noise_gain": [], "halo": []} for m in methods}
    seconds = {m: 0.0 for m in methods}
    for index, path in enumerate(files):
        truth = load_truth(path)
        linear = srgb_to_linear(truth)
        for li, lens in enumerate(HELD_OUT_LENSES):
            for position in ("centre", "corner"):
                rng = np.random.default_rng(1000 * index + 10 * li + (position == "corner"))
                psfs, top, left = psfs_at(lens, *truth.shape[:2], position)
                photo = photograph(linear, psfs, rng)
                flat, _ = flat_field(psfs, rng)
                disc, disc_truth, ring = highlight_disc(psfs, rng)
                in_sd = float(np.std(flat[8:-8, 8:-8]))
                for name, fn in methods.items():
                    t0 = time.perf_counter()
                    out = fn(photo, psfs, top, left)
                    seconds[name] += time.perf_counter() - t0
                    rows[name]["psnr"].append(psnr_rgb(linear_to_srgb(np.clip(out, 0, 1)), truth, 8))
                    f = fn(flat, psfs, top, left)
                    rows[name]["noise_gain"].append(float(np.std(f[8:-8, 8:-8])) / in_sd)
                    d = linear_to_srgb(np.clip(fn(disc, psfs, top, left), 0, 1))
                    ground = float(linear_to_srgb(np.float32(0.18)))
                    rows[name]["halo"].append(max(0.0, float(ground - d[ring].min())) * 255)
        # A sharp photograph (a perfect lens: noise only) must come back as it went in: a blind
        # corrector that sharpens what is already sharp invents structure.
        for position in ("centre", "corner"):
            rng = np.random.default_rng(1000 * index + 999 + (position == "corner"))
            top, left = place(*truth.shape[:2], position)
            sharp = np.clip(linear + rng.normal(0, NOISE_SD, linear.shape).astype(np.float32), 0, 1)
            for name in ["uncorrected"] + [f"{n} (blind)" for n in names]:
                out = methods[name](sharp, None, top, left)
                rows[name].setdefault("sharp_psnr", []).append(psnr_rgb(linear_to_srgb(np.clip(out, 0, 1)), truth, 8))
    results = {m: {k: round(float(np.mean(v)), 3) for k, v in r.items()} for m, r in rows.items()}
    for m in results:
        results[m]["seconds"] = round(seconds[m], 2)
    classical = [m for m in results if m.startswith(("Wiener", "Richardson"))]
    kept = [m for m in classical if results[m]["noise_gain"] <= NOISE_KEPT]
    return {"task": "lens", "dataset": data.name, "images": len(files), "noise_sd": NOISE_SD,
            "lenses": HELD_OUT_LENSES, "results": results, "networks": list(names),
            "best_classical": max(classical, key=lambda m: results[m]["psnr"]),
            "best_classical_noise_kept": max(kept, key=lambda m: results[m]["psnr"]) if kept else None}


def format_table(result: dict) -> str:
    lines = [f"{result['dataset']} lens blur ({result['images']} images x {len(result['lenses'])} held-out lenses x "
             f"centre and corner of a 24 MP frame; noise {result['noise_sd']:g})", "",
             "| method | PSNR (dB) | noise gain (flat field) | dark halo at a clipped highlight (of 255) "
             "| PSNR on a sharp photo (dB) | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in result["results"].items():
        sharp = f"{r['sharp_psnr']:.2f}" if "sharp_psnr" in r else ""
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['noise_gain']:.2f} | {r['halo']:.1f} | {sharp} "
                     f"| {r['seconds']:.1f} |")
    res = result["results"]
    lines.append("")
    for name in (m for m in res if m.endswith("(blind)")):
        kept = f"the best keeping the noise (gain <= {NOISE_KEPT:g})"
        for what, best in (("the best classical setting", result["best_classical"]),
                           (kept, result["best_classical_noise_kept"])):
            if best:
                lines.append(f"{name}: {res[name]['psnr'] - res[best]['psnr']:+.2f} dB over {what}, {best}")
    return "\n".join(lines)
