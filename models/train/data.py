"""Training pairs for the upscalers.

Two degradations:

- ``bicubic`` (``make_pairs``), the classic SR protocol: the teacher is the
  original image, the student its MATLAB-compatible bicubic antialiased
  downscale (``truepix.resize.imresize``).
- ``camera`` (``make_camera_pairs``): the student is what a simulated camera
  records of the teacher's scene (``truepix.simulate``: lens, OLPF, pixel
  aperture, CFA, noise, demosaic, JPEG), a different random camera, exposure
  and white balance for each of an image's variants.

Pairs are built once from whole images (so field-dependent lens blur and patch
borders see what a real frame would), kept in memory as float32, and random
aligned patches are cut from them with flips and 90-degree rotations.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from truepix.resize import imresize

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


def list_images(roots: list[pathlib.Path]) -> list[pathlib.Path]:
    """All image files under ``roots`` (recursively), sorted for reproducibility."""
    files: list[pathlib.Path] = []
    for root in roots:
        files += [p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    return files


def load_rgb(path: pathlib.Path) -> np.ndarray:
    """8-bit image file -> float32 RGB (H, W, 3) in [0, 1]."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def quantise8(x: np.ndarray) -> np.ndarray:
    """Round to 8-bit levels like a saved PNG (the eval protocol's LR is 8-bit)."""
    return np.round(np.clip(x, 0, 1) * 255.0) / 255.0


@dataclass
class Pair:
    hr: np.ndarray  # (H*s, W*s, 3) float32
    lr: np.ndarray  # (H, W, 3) float32


def make_pairs(paths: list[pathlib.Path], scale: int, jitter: tuple[float, ...] = (1.0,)) -> list[Pair]:
    """Bicubic pairs for each image and each down-scale jitter factor."""
    pairs = []
    for path in paths:
        img = load_rgb(path)
        for f in jitter:
            hr = img if f == 1.0 else quantise8(imresize(img, f))
            h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
            hr = np.ascontiguousarray(hr[:h, :w])
            lr = quantise8(imresize(hr, 1.0 / scale)).astype(np.float32)
            pairs.append(Pair(hr=hr.astype(np.float32), lr=lr))
    return pairs


def colour_jitter(img_srgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness (x0.7..1.3) and white balance (R, B x0.9..1.1) changed in linear light, clipped."""
    from truepix.colour import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(img_srgb.astype(np.float32))
    gains = rng.uniform(0.7, 1.3) * np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.9, 1.1)], np.float32)
    return linear_to_srgb(np.clip(lin * gains, 0, 1).astype(np.float32))


def defocus_part(lin: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Linear ``lin`` with one side of a soft straight edge (random angle, offset and softness) out
    of focus: a disc blur of ``radius`` pixels, in linear light."""
    from truepix.simulate.optics import apply_psf, defocus_psf

    h, w = lin.shape[:2]
    blurred = apply_psf(lin, defocus_psf(radius))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = ((x / w - 0.5) * np.cos(angle) + (y / h - 0.5) * np.sin(angle)) + rng.uniform(-0.3, 0.3)
    mask = np.clip(t / rng.uniform(0.02, 0.2) + 0.5, 0, 1)[..., None]  # a soft edge between the planes
    return (lin * (1 - mask) + blurred * mask).astype(np.float32)


def scene_defocus(img_srgb: np.ndarray, scale: int, rng: np.random.Generator, prob: float = 0.3,
                  max_radius: float = 6.0) -> np.ndarray:
    """With probability ``prob``, part of the scene out of focus (``defocus_part``, radius U(1,
    ``max_radius``) low-resolution pixels).

    It is applied to the *scene*, so teacher and student both carry it: the network learns that bokeh
    stays bokeh — it must not sharpen what the photo never had in focus.
    """
    if rng.random() >= prob:
        return img_srgb
    from truepix.colour import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(img_srgb.astype(np.float32))
    return linear_to_srgb(defocus_part(lin, rng.uniform(1.0, max_radius) * scale, rng))


def make_camera_pairs(paths: list[pathlib.Path], scale: int, variants: int, seed: int,
                      exclude: tuple[str, ...] = (), log=print, defocus_prob: float = 0.3,
                      defocus_max: float = 6.0, clean_share: float = 0.0, bicubic_share: float = 0.0) -> list[Pair]:
    """``variants`` camera-degraded pairs per image, each from a random camera profile (not in ``exclude``);
    ``defocus_prob`` of them with part of the scene out of focus (``scene_defocus``, radius up to
    ``defocus_max`` low-resolution pixels).

    Not every input is a pushed high-ISO JPEG: ``clean_share`` of the shots are well exposed at the
    camera's base ISO with no JPEG (a clean raw, developed without noise reduction), and
    ``bicubic_share`` of the students are the teacher bicubically downscaled (an already developed,
    sharpened file), so the network learns to tell real detail from noise instead of smoothing
    everything fine as if it were noise.
    """
    from truepix.simulate.camera import sample_profile
    from truepix.simulate.pipeline import sample_degradation, teacher_and_student

    rng = np.random.default_rng(seed)
    pairs = []
    for i, path in enumerate(paths):
        img = load_rgb(path)
        for _ in range(variants):
            profile = sample_profile(rng, exclude=exclude)
            # Defocus belongs to the scene (both sides, above), never to the student alone: a
            # student-only defocus would teach the network to invent sharpness in bokeh.
            # Drawn only when a share is asked for, so the default pairs stay those of earlier runs.
            kind = rng.random() if clean_share or bicubic_share else 1.0
            if kind < clean_share:
                base = profile.noise.base_iso
                deg = sample_degradation(profile, rng, defocus_prob=0.0, iso_range=(base, base), jpeg_prob=0.0,
                                         exposure_range=(0.0, 0.0))
            else:
                deg = sample_degradation(profile, rng, defocus_prob=0.0)
            scene = scene_defocus(colour_jitter(img, rng), scale, rng, defocus_prob, defocus_max)
            if clean_share <= kind < clean_share + bicubic_share:
                h, w = (scene.shape[0] // scale) * scale, (scene.shape[1] // scale) * scale
                teacher = np.ascontiguousarray(scene[:h, :w])
                student = quantise8(imresize(teacher, 1.0 / scale))
            else:
                teacher, student, _ = teacher_and_student(scene, scale, profile, rng, deg=deg)
            pairs.append(Pair(hr=np.ascontiguousarray(teacher, np.float32),
                              lr=np.ascontiguousarray(student, np.float32)))
        if log and (i + 1) % 50 == 0:
            log(f"camera pairs: {i + 1}/{len(paths)} images")
    return pairs


def kind_plane(lr: np.ndarray, camera: float) -> np.ndarray:
    """``lr`` with the input-kind plane (``archs.RLFNCond``) appended as a fourth channel."""
    return np.concatenate([lr, np.full(lr.shape[:2] + (1,), camera, np.float32)], axis=2)


def make_broad_pairs(paths: list[pathlib.Path], scale: int, variants: int, seed: int, log=print,
                     defocus_prob: float = 0.3, defocus_max: float = 6.0, max_side: int = 480,
                     resized_share: float = 0.35, mislabel: float = 0.25, validation: bool = False) -> list[Pair]:
    """``variants`` pairs per image from the broad camera family (``truepix.simulate.family``), each
    student with its input-kind plane (0 editor-downsized render, 1 camera file; ``kind_plane``).

    ``mislabel`` of the downsized renders are labelled 1 too, so that a clean file upscaled as a
    camera file is still upscaled well (the user's ``input = "camera"`` on a clean file must not
    ruin it).  Images larger than ``max_side`` are cut to a random ``max_side`` square per variant
    (the wallpapers are large).  ``validation``: per image one bicubic-downsized pair labelled 0 and
    one camera pair labelled 1, fixed by ``seed``.
    """
    from truepix.simulate.family import BroadShot, broad_student, sample_shot

    rng = np.random.default_rng(seed)
    pairs = []
    m = 2 * scale
    for i, path in enumerate(paths):
        img = load_rgb(path)
        for v in range(variants if not validation else 2):
            h, w = img.shape[:2]
            ch, cw = min(h, max_side) // m * m, min(w, max_side) // m * m
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])
            if validation:
                shot = BroadShot(kind="resized") if v == 0 else sample_shot(rng, resized_share=0.0)
                scene = crop
            else:
                shot = sample_shot(rng, resized_share=resized_share)
                scene = scene_defocus(colour_jitter(crop, rng), scale, rng, defocus_prob, defocus_max)
            student = broad_student(scene, scale, shot)
            camera = 0.0 if shot.kind == "resized" and (validation or rng.random() >= mislabel) else 1.0
            pairs.append(Pair(hr=np.ascontiguousarray(scene, np.float32), lr=kind_plane(student, camera)))
        if log and (i + 1) % 50 == 0:
            log(f"broad pairs: {i + 1}/{len(paths)} images")
    return pairs


class PatchSampler:
    """Random aligned (lr, hr) patches with the 8 dihedral augmentations.

    Args:
        pairs: from ``make_pairs``.
        scale: upscaling factor.
        lr_patch: LR patch side in pixels (HR side is ``lr_patch * scale``).
        seed: RNG seed.
    """

    def __init__(self, pairs: list[Pair], scale: int, lr_patch: int, seed: int = 0):
        self.pairs = [p for p in pairs if min(p.lr.shape[:2]) >= lr_patch]
        self.scale, self.lr_patch = scale, lr_patch
        self.rng = np.random.default_rng(seed)
        # Sample images in proportion to their area so every pixel is equally likely.
        areas = np.array([p.lr.shape[0] * p.lr.shape[1] for p in self.pairs], dtype=np.float64)
        self.prob = areas / areas.sum()

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (lr, hr) as float32 NCHW arrays."""
        s, p = self.scale, self.lr_patch
        lrs = np.empty((size, self.pairs[0].lr.shape[2], p, p), np.float32)
        hrs = np.empty((size, 3, p * s, p * s), np.float32)
        for i, k in enumerate(self.rng.choice(len(self.pairs), size=size, p=self.prob)):
            pair = self.pairs[k]
            y = int(self.rng.integers(0, pair.lr.shape[0] - p + 1))
            x = int(self.rng.integers(0, pair.lr.shape[1] - p + 1))
            lr = pair.lr[y:y + p, x:x + p]
            hr = pair.hr[y * s:(y + p) * s, x * s:(x + p) * s]
            t = int(self.rng.integers(0, 8))
            lr, hr = _dihedral(lr, t), _dihedral(hr, t)
            lrs[i] = lr.transpose(2, 0, 1)
            hrs[i] = hr.transpose(2, 0, 1)
        return lrs, hrs


def _dihedral(a: np.ndarray, t: int) -> np.ndarray:
    if t & 4:
        a = a[:, ::-1]
    return np.rot90(a, t & 3)
