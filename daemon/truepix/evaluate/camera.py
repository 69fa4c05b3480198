"""The camera protocol for ``truepix eval --task upscale --degradation camera``.

The low-resolution input is what a held-out camera (``HELD_OUT``, never seen in training)
records of the ground-truth scene: lens, OLPF, pixel aperture, CFA, shot and read noise,
demosaic and, for half the images, JPEG (``truepix.simulate.pipeline``).  Each image gets its
own degradation, drawn from a generator seeded by the image's index, so every run and every
method sees the same inputs.

Also here: the true-to-life measures the camera protocol reports next to PSNR/SSIM, the
"no invention" test set (parts of each image strongly defocused before the camera sees it),
and the bicubic + unsharp-mask baseline tuned on the training set.
"""

from __future__ import annotations

import pathlib

import numpy as np

from truepix.engine.fidelity import area_downscale, report
from truepix.evaluate.metrics import psnr, rgb_to_y
from truepix.resize import imresize

HELD_OUT = "apsc24"          # the built-in profile training never samples
EVAL_ISO = (100, 3200)       # ISO range of the evaluation images (log-uniform)
DEFOCUS_RADIUS = 6.0         # "strong defocus": disc radius in low-resolution pixels


def camera_lr(truth: np.ndarray, scale: int, index: int, *, iso_range=EVAL_ISO, jpeg_prob: float = 0.5,
              defocus_prob: float = 0.0) -> tuple[np.ndarray, dict]:
    """The held-out camera's image of ``truth`` (sRGB float32, (H, W, 3), H and W multiples of 2*scale).

    Returns (lr float32 sRGB (H/scale, W/scale, 3), the degradation's parameters).
    """
    from truepix.simulate.camera import PROFILES
    from truepix.simulate.pipeline import camera_student, sample_degradation

    rng = np.random.default_rng(10_000 + index)
    profile = PROFILES[HELD_OUT]
    deg = sample_degradation(profile, rng, iso_range=iso_range, jpeg_prob=jpeg_prob, defocus_prob=defocus_prob)
    return camera_student(truth, scale, deg, profile, rng), deg.as_dict()


def crop_for(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop to a multiple of 2*scale (the CFA needs even sizes on the low-resolution grid)."""
    m = 2 * scale
    h, w = (img.shape[0] // m) * m, (img.shape[1] // m) * m
    return np.ascontiguousarray(img[:h, :w])


COLOUR_BLOCK = 8  # input pixels per side of the blocks the colour shift compares, as in the daemon's report


def fidelity_scores(out: np.ndarray, truth: np.ndarray, lr: np.ndarray, scale: int,
                    quiet: np.ndarray | None = None) -> dict[str, float]:
    """Colour shift of the output against the ground truth (CIEDE2000 between the means of light over
    blocks of ``COLOUR_BLOCK`` input pixels, i.e. both downscaled to a grid the input resolves, as the
    daemon's fidelity report does) and back-projection PSNR of the output against its own input (dB).
    ``quiet``: the same camera's input without sensor noise; adds the colour shift against it."""
    block = COLOUR_BLOCK * scale
    clipped = np.clip(out, 0, 1).astype(np.float32)
    shift = report(clipped, truth.astype(np.float32), 1, block=block)
    # against the input the method was given, as the daemon's report measures it: what the method
    # itself changed (the colour error of the degradation, which no upscaler is asked to undo, aside)
    own = report(clipped, np.asarray(lr, np.float32), scale, block=COLOUR_BLOCK)
    back = area_downscale(clipped, scale)
    scores = {"colour_shift": shift["colour_shift_mean"], "colour_shift_input": own["colour_shift_mean"],
              "backprojection_psnr": psnr(back, lr)}
    if quiet is not None:
        scores["colour_shift_quiet_input"] = report(clipped, np.asarray(quiet, np.float32), scale,
                                                    block=COLOUR_BLOCK)["colour_shift_mean"]
    return scores


# -- "no invention" -------------------------------------------------------------------------------


def defocus_mask(h: int, w: int, index: int) -> np.ndarray:
    """A smooth 0..1 mask covering about half of the frame (a side, alternating per image), 1 = defocused."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = [x / w, 1 - x / w, y / h, 1 - y / h][index % 4]
    return np.clip((t - 0.45) / 0.1, 0, 1)  # 10% of the frame blends sharp into blurred


def defocused_truth(truth: np.ndarray, scale: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """``truth`` with a strong lens defocus (disc of ``DEFOCUS_RADIUS`` low-res pixels) over the masked part,
    blurred in linear light as a lens does.  Returns (image, mask)."""
    from truepix.colour import linear_to_srgb, srgb_to_linear
    from truepix.simulate.optics import apply_psf, defocus_psf

    lin = srgb_to_linear(truth.astype(np.float32))
    blurred = apply_psf(lin, defocus_psf(DEFOCUS_RADIUS * scale))
    mask = defocus_mask(*truth.shape[:2], index)[..., None]
    return linear_to_srgb((lin * (1 - mask) + blurred * mask).astype(np.float32)), mask[..., 0]


def high_frequency_energy(img: np.ndarray, mask: np.ndarray, scale: int) -> float:
    """Mean squared luma detail finer than the low-resolution grid can hold, where ``mask`` is 1.

    Detail = Y minus its bicubic down-and-up at ``scale`` (what a perfect upscaler would have to
    add); measured on the fully defocused part only (``mask`` == 1, eroded by 2*scale pixels).
    """
    y = rgb_to_y(np.clip(img, 0, 1)) / 255.0
    smooth = imresize(imresize(y, 1.0 / scale), float(scale))
    detail = (y - smooth[: y.shape[0], : y.shape[1]]) ** 2
    inner = mask >= 1.0
    e = 2 * scale
    inner[:e], inner[-e:], inner[:, :e], inner[:, -e:] = False, False, False, False
    return float(detail[inner].mean()) if inner.any() else float("nan")


# -- the unsharp-mask baseline --------------------------------------------------------------------


def unsharp(scale: int, amount: float, sigma: float):
    """Bicubic, then an unsharp mask (Gaussian ``sigma`` output pixels, ``amount`` of the detail added)."""
    from truepix.simulate.optics import apply_psf, gaussian_psf

    kernel = gaussian_psf(sigma)

    def up(img: np.ndarray) -> np.ndarray:
        big = imresize(img, float(scale))
        return np.clip(big + amount * (big - apply_psf(big, kernel)), 0, 1).astype(np.float32)

    return up


def tune_unsharp(train_files: list[pathlib.Path], scale: int, load, degrade=None) -> tuple[float, float]:
    """The (amount, sigma) with the best mean PSNR-Y on camera-degraded training images.

    Training images get degradations from the held-out camera too (the baseline is tuned for the
    conditions it is tested in, which favours it).  ``degrade(truth, i) -> (truth, lr)`` replaces the
    held-out camera with another degradation (e.g. ``independent.degrade_for_tuning``); it may change
    the truth too (a defocused part).
    """
    from truepix.evaluate.metrics import sr_scores

    if degrade is None:
        def degrade(truth, i):
            return truth, camera_lr(truth, scale, 50_000 + i)[0]

    cases = []
    for i, path in enumerate(train_files):
        cases.append(degrade(crop_for(load(path), scale), i))
    best, best_score = (0.0, 1.0), -np.inf
    for sigma in (0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0):
        for amount in (0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.2):
            up = unsharp(scale, amount, sigma)
            score = float(np.mean([sr_scores(up(lr), truth, border=scale)[0] for truth, lr in cases]))
            if score > best_score:
                best, best_score = (amount, sigma), score
    return best
