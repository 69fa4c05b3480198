"""A broad, randomised family of cameras and files, for an upscaler that must be right on all of them.

``pipeline.camera_student`` simulates a handful of camera *profiles* faithfully; a network trained
on it learns those profiles.  Here every shot draws its own optics, sensor, development and file
handling from wide ranges (in the manner of BSRGAN and Real-ESRGAN's degradation models, but with
the photographic order of things where physics fixes it):

* ``resized`` students: a clean render downsized by a photo editor (MATLAB bicubic, Lanczos-3 or
  area averaging), sometimes saved as a good JPEG.  These are the files most users upscale.
* ``camera`` students: lens (Airy diffraction for a random f-number and pixel pitch, then one of an
  isotropic or anisotropic Gaussian, a defocus disc or a short motion streak), optical low-pass
  filter (none to strong), pixel aperture (box average onto the student grid), a Bayer mosaic with
  Poisson-Gaussian sensor noise from base ISO to 12800, a classical demosaic (bilinear or
  Malvar-He-Cutler: noise becomes spatially correlated, edges zipper), white balance and exposure
  undone, the sRGB curve, in-camera noise reduction and sharpening (in a random order; sharpening
  leaves halos), and JPEG from quality 60 to none.
* ``camera-resized``: the same camera at the teacher's own resolution, developed, then downsized
  by an editor (a camera photo exported smaller: noise averaged down, blur shrunk).

Scene defocus (bokeh) is not drawn here: it belongs to the scene, so the caller applies it to the
teacher before calling (``models.train.data.scene_defocus``); the network then learns that out of
focus stays out of focus.  Lengths are in *student* pixels.

The noise level a network is told is not a simulator secret but what ``level_of`` reads from the
student itself (``engine.noiselevel.estimate_level``): exactly what the engine can measure on a
user's photo, so a model conditioned on it sees the same statistic in training and in use.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.simulate.camera import sample_profile
from truepix.simulate.cfa import PATTERNS, cfa_masks, demosaic_bilinear, mosaic
from truepix.simulate.filters import area_downsample, convolve
from truepix.simulate.jpeg import jpeg_roundtrip
from truepix.simulate.olpf import apply_olpf
from truepix.simulate.optics import WAVELENGTHS_UM, airy_psf, apply_psf, combine_psfs, defocus_psf, gaussian_psf
from truepix.simulate.sensor import add_sensor_noise, expose, normalise_raw, quantise_raw

__all__ = ["BroadShot", "sample_shot", "broad_student", "resize_down", "demosaic_malvar", "anisotropic_gaussian_psf",
           "motion_psf", "KINDS", "RESIZERS", "BLURS"]

KINDS = ("resized", "camera", "camera-resized")
RESIZERS = ("bicubic", "lanczos", "area")
RESIZER_WEIGHTS = (0.5, 0.3, 0.2)  # Photoshop and Lightroom resize bicubically by default
BLURS = ("none", "gaussian", "anisotropic", "disc", "motion")
HELD_OUT_PROFILES = ("apsc24",)  # the camera protocol's held-out profile is never drawn


@dataclass
class BroadShot:
    """One draw from the family.  Lengths in student pixels.

    kind: one of KINDS.  resizer: the editor's downsizing filter (resized kinds).  f_number,
    pitch_um: Airy diffraction (f_number 0 = none).  blur: one of BLURS, with ``blur_a`` (sigma,
    radius or length), ``blur_b`` (second sigma of an anisotropic Gaussian) and ``blur_angle``
    (radians).  olpf: two-dot split distance (0 = none).  profile: the sensor family's base profile
    (jittered by ``sample_profile``).  iso, exposure_ev, wb_gains as in ``pipeline.Degradation``.
    pattern: Bayer phase.  demosaic: "bilinear" or "malvar".  nr_luma / nr_chroma: Gaussian sigma of
    the in-camera noise reduction (0 = off); sharpen_amount / sharpen_sigma: its unsharp mask;
    sharpen_first: the order of the two.  jpeg_quality: None = no JPEG; jpeg_subsampling.
    """

    kind: str
    resizer: str = "bicubic"
    f_number: float = 0.0
    pitch_um: float = 4.0
    blur: str = "none"
    blur_a: float = 0.0
    blur_b: float = 0.0
    blur_angle: float = 0.0
    olpf: float = 0.0
    profile: str = ""
    iso: float = 100.0
    exposure_ev: float = 0.0
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pattern: str = "RGGB"
    demosaic: str = "bilinear"
    nr_luma: float = 0.0
    nr_chroma: float = 0.0
    sharpen_amount: float = 0.0
    sharpen_sigma: float = 1.0
    sharpen_first: bool = False
    jpeg_quality: int | None = None
    jpeg_subsampling: str = "4:2:0"
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["wb_gains"] = [float(g) for g in self.wb_gains]
        return d


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_shot(rng: np.random.Generator, *, resized_share: float = 0.3, camera_resized_share: float = 0.15,
                clean_share: float = 0.15, max_iso: float = 12800.0) -> BroadShot:
    """Draw one shot.  ``resized_share`` of them are editor-downsized clean renders,
    ``camera_resized_share`` camera photos downsized by an editor, the rest camera files; of the
    camera shots, ``clean_share`` are at base ISO, well exposed and without JPEG."""
    u = rng.random()
    kind = "resized" if u < resized_share else "camera-resized" if u < resized_share + camera_resized_share \
        else "camera"
    shot = BroadShot(kind=kind, resizer=RESIZERS[int(rng.choice(len(RESIZERS), p=RESIZER_WEIGHTS))],
                     seed=int(rng.integers(2**31)))
    if kind == "resized":
        if rng.random() < 0.3:
            shot.jpeg_quality = int(rng.integers(85, 101))
        return shot
    # Optics: diffraction for a random aperture and pitch (the pitch of the *camera*: for
    # camera-resized shots the teacher grid), then one extra blur shape.
    if rng.random() < 0.7:
        shot.f_number = _log_uniform(rng, 1.4, 22.0)
        shot.pitch_um = _log_uniform(rng, 1.2, 6.5)
    shot.blur = BLURS[int(rng.integers(len(BLURS)))]
    if shot.blur == "gaussian":
        shot.blur_a = float(rng.uniform(0.2, 1.2))
    elif shot.blur == "anisotropic":
        shot.blur_a = float(rng.uniform(0.3, 1.5))
        shot.blur_b = float(rng.uniform(0.2, shot.blur_a))
        shot.blur_angle = float(rng.uniform(0, math.pi))
    elif shot.blur == "disc":
        shot.blur_a = float(rng.uniform(0.5, 1.6))
    elif shot.blur == "motion":
        shot.blur_a = float(rng.uniform(0.5, 2.0))
        shot.blur_angle = float(rng.uniform(0, math.pi))
    shot.olpf = float(rng.uniform(0.15, 0.5)) if rng.random() < 0.6 else 0.0
    profile = sample_profile(rng, exclude=HELD_OUT_PROFILES)
    shot.profile = profile.name
    shot.extra["profile"] = profile
    shot.pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    base = profile.noise.base_iso
    clean = rng.random() < clean_share
    shot.iso = base if clean else _log_uniform(rng, base, max(max_iso, base))
    shot.exposure_ev = 0.0 if clean else float(rng.uniform(-1.0, 0.3))
    shot.wb_gains = (float(rng.uniform(1.4, 2.6)), 1.0, float(rng.uniform(1.2, 2.6)))
    shot.demosaic = "malvar" if rng.random() < 0.5 else "bilinear"
    # In-camera processing: noise reduction grows with ISO (cameras do that), sharpening often.
    if rng.random() < 0.6:
        strength = min(1.0, math.log2(max(shot.iso / base, 1.0)) / 6.0)
        shot.nr_luma = float(rng.uniform(0.0, 1.2) * strength)
        shot.nr_chroma = float(rng.uniform(0.5, 2.5) * max(strength, 0.2))
    if rng.random() < 0.6:
        shot.sharpen_amount = float(rng.uniform(0.2, 1.5))
        shot.sharpen_sigma = float(rng.uniform(0.6, 1.6))
    shot.sharpen_first = bool(rng.random() < 0.3)
    if not clean and rng.random() < 0.65:
        shot.jpeg_quality = int(rng.integers(60, 101))
        shot.jpeg_subsampling = "4:2:0" if rng.random() < 0.8 else "4:4:4"
    return shot


# -- kernels ----------------------------------------------------------------------------------------


def anisotropic_gaussian_psf(sigma_major: float, sigma_minor: float, angle: float) -> np.ndarray:
    """A Gaussian with standard deviations ``sigma_major`` along ``angle`` and ``sigma_minor`` across it
    (pixels; both > 0), sampled on a square grid of radius ceil(4 sigma_major); sums to 1."""
    r = max(1, math.ceil(4.0 * sigma_major))
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    c, s = math.cos(angle), math.sin(angle)
    u, v = x * c + y * s, -x * s + y * c
    k = np.exp(-0.5 * ((u / sigma_major) ** 2 + (v / max(sigma_minor, 1e-3)) ** 2))
    return k / k.sum()


def motion_psf(length: float, angle: float, oversample: int = 16) -> np.ndarray:
    """A straight motion streak of ``length`` pixels at ``angle`` (radians), centred, anti-aliased by
    spreading ``oversample`` points per pixel of length bilinearly; sums to 1."""
    r = max(1, math.ceil(length / 2 + 1))
    k = np.zeros((2 * r + 1, 2 * r + 1))
    n = max(2, int(length * oversample))
    for t in np.linspace(-length / 2, length / 2, n):
        x, y = r + t * math.cos(angle), r + t * math.sin(angle)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return k / k.sum()


def _extra_blur(shot: BroadShot, unit: float) -> np.ndarray:
    """The shot's extra blur kernel with lengths in units of ``unit`` grid pixels per student pixel."""
    a, b = shot.blur_a * unit, shot.blur_b * unit
    if shot.blur == "gaussian":
        return gaussian_psf(a)
    if shot.blur == "anisotropic":
        return anisotropic_gaussian_psf(a, b, shot.blur_angle)
    if shot.blur == "disc":
        return defocus_psf(a)
    if shot.blur == "motion":
        return motion_psf(a, shot.blur_angle)
    return np.ones((1, 1))


# -- development ------------------------------------------------------------------------------------

# Malvar, He & Cutler (ICASSP 2004) gradient-corrected bilinear interpolation, the 5x5 filters x 8.
_G_AT_RB = np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]) / 8
_RB_AT_G_ROW = np.array([[0, 0, .5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0],
                         [0, 0, .5, 0, 0]]) / 8  # the colour sits left and right of this green
_RB_AT_G_COL = _RB_AT_G_ROW.T
_RB_AT_BR = np.array([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0],
                      [0, 0, -1.5, 0, 0]]) / 8


def _filter5(m: np.ndarray, k: np.ndarray) -> np.ndarray:
    p = np.pad(m, 2, mode="reflect")
    h, w = m.shape
    out = np.zeros_like(m)
    for dy in range(5):
        for dx in range(5):
            if k[dy, dx]:
                out += m.dtype.type(k[dy, dx]) * p[dy:dy + h, dx:dx + w]
    return out


def demosaic_malvar(m: np.ndarray, pattern: str) -> np.ndarray:
    """Malvar-He-Cutler demosaic of an (H, W) mosaic (H, W even) into (H, W, 3); recorded sites kept."""
    m = np.asarray(m, np.float32)
    masks = cfa_masks(pattern, *m.shape)
    r_site, g_site, b_site = masks[..., 0], masks[..., 1], masks[..., 2]
    # A green site on a red row has red to its left and right.
    red_row = np.zeros(m.shape, bool)
    red_row[r_site.any(axis=1)] = True
    g_at_rb = _filter5(m, _G_AT_RB)
    row, col, cross = _filter5(m, _RB_AT_G_ROW), _filter5(m, _RB_AT_G_COL), _filter5(m, _RB_AT_BR)
    out = np.empty(m.shape + (3,), np.float32)
    out[..., 1] = np.where(g_site, m, g_at_rb)
    out[..., 0] = np.where(r_site, m, np.where(b_site, cross, np.where(red_row, row, col)))
    out[..., 2] = np.where(b_site, m, np.where(r_site, cross, np.where(red_row, col, row)))
    return out


def _ycc(srgb: np.ndarray) -> np.ndarray:
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
    return srgb @ m.T


def _rgb(ycc: np.ndarray) -> np.ndarray:
    m = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], np.float32)
    return ycc @ m.T


def noise_reduction(srgb: np.ndarray, luma_sigma: float, chroma_sigma: float) -> np.ndarray:
    """In-camera noise reduction: Gaussian smoothing of the chroma planes and, gated by the local
    contrast (edges kept, as cameras do), of the luma."""
    ycc = _ycc(srgb)
    if chroma_sigma > 0:
        ycc[..., 1:] = convolve(ycc[..., 1:], gaussian_psf(chroma_sigma))
    if luma_sigma > 0:
        y = ycc[..., 0]
        smooth = convolve(y, gaussian_psf(luma_sigma))
        edge = np.abs(y - smooth)
        weight = np.exp(-(edge / 0.04) ** 2)  # flat areas smoothed fully, edges hardly
        ycc[..., 0] = y + weight * (smooth - y)
    return _rgb(ycc).astype(np.float32)


def sharpen(srgb: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """An unsharp mask on the luma (leaves halos at edges, as camera sharpening does)."""
    ycc = _ycc(srgb)
    y = ycc[..., 0]
    ycc[..., 0] = y + amount * (y - convolve(y, gaussian_psf(sigma)))
    return _rgb(ycc).astype(np.float32)


def resize_down(srgb: np.ndarray, scale: int, method: str) -> np.ndarray:
    """Downsize an sRGB image by an integer ``scale`` as a photo editor does; float32 0..1 (unquantised)."""
    if method == "bicubic":
        from truepix.resize import imresize

        return np.clip(imresize(srgb, 1.0 / scale), 0, 1).astype(np.float32)
    if method == "area":
        return area_downsample(np.asarray(srgb, np.float32), scale)
    if method == "lanczos":
        h, w = srgb.shape[0] // scale, srgb.shape[1] // scale
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(srgb[..., c], np.float32), mode="F")
                             .resize((w, h), Image.LANCZOS)) for c in range(3)]
        return np.clip(np.stack(planes, axis=2), 0, 1).astype(np.float32)
    raise ValueError(f"unknown resizer {method!r}; one of {RESIZERS}")


def _camera(teacher_srgb: np.ndarray, scale: int, shot: BroadShot, rng: np.random.Generator) -> np.ndarray:
    """The camera's developed sRGB image of the teacher's scene, one camera pixel per ``scale`` teacher pixels."""
    profile = shot.extra["profile"]
    lin = expose(srgb_to_linear(teacher_srgb), shot.exposure_ev)
    kernels = [_extra_blur(shot, scale)]
    if shot.f_number > 0:
        pitch = shot.pitch_um / scale
        lin = apply_psf(lin, [combine_psfs(airy_psf(shot.f_number, lam, pitch), kernels[0])
                              for lam in WAVELENGTHS_UM])
    elif kernels[0].size > 1:
        lin = apply_psf(lin, kernels[0])
    if shot.olpf > 0:
        lin = apply_olpf(lin, shot.olpf * scale)
    lin = area_downsample(lin, scale)
    gains = np.asarray(shot.wb_gains, np.float32)
    raw = mosaic(lin / gains, shot.pattern)
    raw = add_sensor_noise(raw, shot.iso, profile.noise, rng)
    raw = normalise_raw(quantise_raw(raw, profile.noise), profile.noise)
    raw = expose(raw * (cfa_masks(shot.pattern, *raw.shape).astype(np.float32) @ gains), -shot.exposure_ev)
    rgb = demosaic_malvar(raw, shot.pattern) if shot.demosaic == "malvar" else demosaic_bilinear(raw, shot.pattern)
    srgb = linear_to_srgb(np.clip(rgb, 0.0, 1.0).astype(np.float32))
    steps = [lambda x: noise_reduction(x, shot.nr_luma, shot.nr_chroma) if shot.nr_luma or shot.nr_chroma else x,
             lambda x: sharpen(x, shot.sharpen_amount, shot.sharpen_sigma) if shot.sharpen_amount else x]
    for step in (steps[::-1] if shot.sharpen_first else steps):
        srgb = step(srgb)
    return np.clip(srgb, 0.0, 1.0).astype(np.float32)


def broad_student(teacher_srgb: np.ndarray, scale: int, shot: BroadShot) -> np.ndarray:
    """The student the shot makes of ``teacher_srgb`` ((H, W, 3) sRGB float 0..1, H and W multiples of
    2 * scale): (H / scale, W / scale, 3) float32 sRGB in 8-bit steps (as a file holds it).
    Deterministic for a given shot (its ``seed`` drives the sensor noise)."""
    t = np.asarray(teacher_srgb, np.float32)
    if t.ndim != 3 or t.shape[2] != 3 or t.shape[0] % (2 * scale) or t.shape[1] % (2 * scale):
        raise ValueError(f"teacher must be (H, W, 3) with sides multiples of {2 * scale}, got {t.shape}")
    rng = np.random.default_rng(shot.seed)
    if shot.kind == "resized":
        out = resize_down(t, scale, shot.resizer)
    elif shot.kind == "camera":
        out = _camera(t, scale, shot, rng)
    elif shot.kind == "camera-resized":
        out = resize_down(_camera(t, 1, shot, rng), scale, shot.resizer)
    else:
        raise ValueError(f"unknown kind {shot.kind!r}; one of {KINDS}")
    if shot.jpeg_quality is not None and shot.jpeg_quality < 100:
        return jpeg_roundtrip(out, shot.jpeg_quality, shot.jpeg_subsampling)
    return (np.round(np.clip(out, 0, 1) * 255.0) / 255.0).astype(np.float32)
