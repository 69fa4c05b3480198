"""Training batches for the lens optimizer: blind correction of aberration and diffraction blur.

A teacher is a sharp patch of linear light; the student is what a lens makes of it at the patch's
place in a 24 MP frame (``FRAME``): per-channel Airy diffraction at the shot's f-number and the
sensor's pixel pitch, residual aberrations as a Gaussian whose width grows from the optical centre
to the corners, sometimes a little defocus, and lateral chromatic aberration (red and blue shifted
radially by their magnification error times the distance from the centre).  Over a patch this
small the blur is taken as constant; the network is told where the patch is (two planes: x and y
from the optical centre, in half-diagonals), so it can learn how blur and colour fringes grow
towards the corners.

What the correction must not do is taught by the data:

- noise stays as it was: the student's noise (what the demosaic + denoise left, a small white
  Gaussian) is added to the teacher too, so sharpening it is an error;
- clipped highlights stay without halos: some scenes are brighter than the sensor's white and clip
  after the blur (student) and unblurred (teacher), so ringing around them is an error;
- bokeh stays bokeh (``scene_defocus``): part of some scenes is out of focus in the scene itself
  (a disc blur of 1.5-6 px, wider than any lens blur here, ``data.defocus_part``), in teacher and
  student alike, so sharpening it is an error;
- a sharp photo stays as it is (``sharp_share``): some students had a perfect lens (noise only).

``PSF_RANGES`` are the training ranges; the evaluation draws its held-out PSFs from a disjoint seed
and includes f-numbers and aberrations at the edges of and beyond these ranges.
"""

from __future__ import annotations

import math

import numpy as np

from truepix.simulate.filters import bilinear_sample, convolve
from truepix.simulate.optics import WAVELENGTHS_UM, airy_psf, combine_psfs, defocus_psf, gaussian_psf

FRAME = (4000, 6000)  # rows, columns of the virtual frame the patches come from
PSF_RANGES = {
    "f_number": (2.8, 16.0),        # log-uniform
    "pitch_um": (3.5, 6.0),
    "sigma_centre_px": (0.2, 0.7),
    "sigma_extra_corner_px": (0.0, 1.0),
    "defocus_prob": 0.2, "defocus_px": (0.3, 1.2),
    "ca": 4e-4,                     # |magnification error| of R and B relative to G
    "noise_sd": (0.0, 0.01),        # linear light, what the denoiser left
    "highlight_prob": 0.15, "highlight_gain": (1.5, 4.0),
}


def lens_psfs(f_number: float, pitch_um: float, sigma_px: float, defocus_px: float) -> list[np.ndarray]:
    """R, G, B point-spread functions at one place in the frame."""
    shared = combine_psfs(gaussian_psf(sigma_px), defocus_psf(defocus_px)) if defocus_px > 0 else \
        gaussian_psf(sigma_px)
    return [combine_psfs(airy_psf(f_number, lam, pitch_um), shared) for lam in WAVELENGTHS_UM]


def field_planes(h: int, w: int, top: float, left: float, frame=FRAME) -> np.ndarray:
    """(h, w, 2) float32: x and y of each pixel from the frame's centre, in half-diagonals."""
    cy, cx = (frame[0] - 1) / 2, (frame[1] - 1) / 2
    r = math.hypot(cy, cx)
    ys = (top + np.arange(h, dtype=np.float32) - cy) / r
    xs = (left + np.arange(w, dtype=np.float32) - cx) / r
    return np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), axis=-1).astype(np.float32)


def degrade(scene: np.ndarray, top: float, left: float, params: dict, rng: np.random.Generator,
            margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(student, teacher) of a linear ``scene`` crop whose inner part (``margin`` cut from each side)
    sits at (top, left) in the frame."""
    h, w = scene.shape[0] - 2 * margin, scene.shape[1] - 2 * margin
    cy, cx = (FRAME[0] - 1) / 2, (FRAME[1] - 1) / 2
    r_px = math.hypot(top + h / 2 - cy, left + w / 2 - cx)
    field = min(r_px / math.hypot(cy, cx), 1.0)
    sigma = params["sigma_centre_px"] + params["sigma_extra_corner_px"] * field
    psfs = lens_psfs(params["f_number"], params["pitch_um"], sigma, params["defocus_px"])
    gain = params.get("highlight_gain", 1.0)
    lit = scene * np.float32(gain)
    blurred = np.empty_like(lit)
    for c in range(3):
        blurred[:, :, c] = convolve(lit[:, :, c], psfs[c])
    # lateral CA: R and B sampled from where their magnified image puts the detail
    dy, dx = top + h / 2 - cy, left + w / 2 - cx
    yy, xx = np.mgrid[0:blurred.shape[0], 0:blurred.shape[1]].astype(np.float64)
    for c, m in ((0, params["ca_red"]), (2, params["ca_blue"])):
        if m != 1.0:
            blurred[:, :, c] = bilinear_sample(blurred[:, :, c], yy - dy * (m - 1), xx - dx * (m - 1))
    inner = (slice(margin, margin + h), slice(margin, margin + w))
    student, teacher = np.clip(blurred[inner], 0, 1), np.clip(lit[inner], 0, 1)
    noise = rng.normal(0, params["noise_sd"], student.shape).astype(np.float32)
    return (student + noise).astype(np.float32), (teacher + noise).astype(np.float32)


def draw_params(rng: np.random.Generator, ranges=PSF_RANGES) -> dict:
    lo, hi = ranges["f_number"]
    return {
        "f_number": float(math.exp(rng.uniform(math.log(lo), math.log(hi)))),
        "pitch_um": float(rng.uniform(*ranges["pitch_um"])),
        "sigma_centre_px": float(rng.uniform(*ranges["sigma_centre_px"])),
        "sigma_extra_corner_px": float(rng.uniform(*ranges["sigma_extra_corner_px"])),
        "defocus_px": float(rng.uniform(*ranges["defocus_px"])) if rng.random() < ranges["defocus_prob"] else 0.0,
        "ca_red": 1.0 + float(rng.uniform(-ranges["ca"], ranges["ca"])),
        "ca_blue": 1.0 + float(rng.uniform(-ranges["ca"], ranges["ca"])),
        "noise_sd": float(rng.uniform(*ranges["noise_sd"])),
        "highlight_gain": float(rng.uniform(*ranges["highlight_gain"])) if rng.random() < ranges["highlight_prob"]
        else 1.0,
    }


class LensSampler:
    """(input (N, 5, p, p): linear RGB + field x, y; target (N, 3, p, p)) batches."""

    def __init__(self, scenes: list[np.ndarray], patch: int, seed: int = 0, margin: int = 16,
                 scene_defocus: float = 0.0, sharp_share: float = 0.0):
        self.scenes = [s for s in scenes if min(s.shape[:2]) >= patch + 2 * margin]
        self.patch, self.margin = patch, margin
        self.scene_defocus, self.sharp_share = scene_defocus, sharp_share
        self.rng = np.random.default_rng(seed)
        areas = np.array([s.shape[0] * s.shape[1] for s in self.scenes], np.float64)
        self.prob = areas / areas.sum()

    def batch(self, size: int):
        p, m = self.patch, self.margin
        xs = np.empty((size, 5, p, p), np.float32)
        ys = np.empty((size, 3, p, p), np.float32)
        for i, j in enumerate(self.rng.choice(len(self.scenes), size=size, p=self.prob)):
            s = self.scenes[j]
            y = int(self.rng.integers(0, s.shape[0] - p - 2 * m + 1))
            x = int(self.rng.integers(0, s.shape[1] - p - 2 * m + 1))
            crop = s[y:y + p + 2 * m, x:x + p + 2 * m]
            t = int(self.rng.integers(0, 8))
            if t & 4:
                crop = crop[:, ::-1]
            crop = np.ascontiguousarray(np.rot90(crop, t & 3))
            top = float(self.rng.uniform(0, FRAME[0] - p))
            left = float(self.rng.uniform(0, FRAME[1] - p))
            if self.scene_defocus and self.rng.random() < self.scene_defocus:
                from models.train.data import defocus_part

                crop = defocus_part(crop, float(self.rng.uniform(1.5, 6.0)), self.rng)
            params = draw_params(self.rng)
            if self.sharp_share and self.rng.random() < self.sharp_share:
                inner = np.clip(crop[m:m + p, m:m + p], 0, 1)
                noise = self.rng.normal(0, params["noise_sd"], inner.shape).astype(np.float32)
                student = teacher = (inner + noise).astype(np.float32)
            else:
                student, teacher = degrade(crop, top, left, params, self.rng, m)
            xs[i, :3] = student.transpose(2, 0, 1)
            xs[i, 3:] = field_planes(p, p, top, left).transpose(2, 0, 1)
            ys[i] = teacher.transpose(2, 0, 1)
        return xs, ys
