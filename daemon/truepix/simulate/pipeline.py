"""Teacher/student degradation: what a lower-resolution camera records of the scene a sharp image shows.

The teacher is a clean sRGB image taken as the scene; the student is the same scene photographed by a
``scale`` times coarser camera (lens, OLPF, pixel aperture, Bayer CFA, sensor noise, raw quantisation,
bilinear demosaic, sRGB rendering, optional JPEG).  Lengths in a Degradation are in *student* pixels (the
simulated camera's pixels); the pipeline converts them to teacher pixels (x scale) itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.simulate.camera import CameraProfile
from truepix.simulate.cfa import cfa_masks, demosaic_bilinear, mosaic
from truepix.simulate.filters import area_downsample
from truepix.simulate.jpeg import jpeg_roundtrip
from truepix.simulate.olpf import apply_olpf
from truepix.simulate.optics import (
    WAVELENGTHS_UM, airy_psf, apply_psf, combine_psfs, defocus_psf, field_blur, gaussian_psf, lateral_ca,
)
from truepix.simulate.sensor import add_sensor_noise, expose, normalise_raw, quantise_raw

__all__ = ["Degradation", "sample_degradation", "camera_student", "camera_raw", "teacher_and_student"]


@dataclass
class Degradation:
    """The parameters of one simulated shot (lengths in student pixels).

    profile: name of the CameraProfile.  f_number: aperture (sets the diffraction PSF).  defocus_px:
    radius of the defocus disc (0 = in focus).  aberration_sigma_center_px / _corner_px: Gaussian sigma of
    residual aberrations on axis and at the frame corner (corner >= center; the excess grows with field
    radius).  ca_red_scale, ca_blue_scale: lateral CA magnifications of R and B relative to G (1 = none).
    olpf_strength: OLPF split distance (0 = none).  iso: sensor ISO.  exposure_ev: exposure error applied
    at the sensor and undone in development, like a raw converter's exposure slider (negative = under-
    exposed and pushed, noisier; positive = over-exposed, highlights clip to grey).  jpeg_quality: 1..100,
    or None for no JPEG.  demosaic: only "bilinear".  wb_gains: white-balance multipliers (R, G, B) of the
    development; the raw channels see the scene divided by them, so R and B get fewer electrons (noisier).
    noise: False skips shot and read noise (quantisation still happens).
    """

    profile: str
    f_number: float
    defocus_px: float = 0.0
    aberration_sigma_center_px: float = 0.0
    aberration_sigma_corner_px: float = 0.0
    ca_red_scale: float = 1.0
    ca_blue_scale: float = 1.0
    olpf_strength: float = 0.0
    iso: float = 100.0
    exposure_ev: float = 0.0
    jpeg_quality: int | None = None
    demosaic: str = "bilinear"
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: bool = True

    def as_dict(self) -> dict:
        """The parameters as a JSON-serialisable dict (wb_gains as a list)."""
        d = dataclasses.asdict(self)
        d["wb_gains"] = [float(g) for g in self.wb_gains]
        return d


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)


def sample_degradation(profile: CameraProfile, rng: np.random.Generator, *, iso_range=(100, 6400),
                       jpeg_prob: float = 0.5, defocus_prob: float = 0.2, exposure_range=(-1.0, 0.0),
                       jpeg_quality_range=(40, 95)) -> Degradation:
    """Draw the parameters of one shot with ``profile``.

    f-number: log-uniform over profile.f_number_range.  Defocus: with probability ``defocus_prob`` a disc
    radius U(0.5, 2.5) px, else 0.  Aberrations: centre sigma U(0.2, 0.6) px, corner = centre + U(0, 0.8) px.
    Lateral CA: each of R and B magnified by 1 + U(-4e-4, 4e-4) (about ±1.5 px at the corners of a 24 MP
    frame; small in a crop).  OLPF: the profile's.  ISO: log-uniform over ``iso_range`` (raised to the
    profile's base ISO).  Exposure: U(exposure_range) EV.  JPEG: with probability ``jpeg_prob`` a quality
    drawn uniformly from ``jpeg_quality_range`` (inclusive), else None.  White balance: R x U(1.4, 2.6),
    B x U(1.2, 2.6), G 1 (daylight to tungsten raw multipliers).
    """
    f_number = _log_uniform(rng, *profile.f_number_range)
    defocus = float(rng.uniform(0.5, 2.5)) if rng.random() < defocus_prob else 0.0
    sigma_c = float(rng.uniform(0.2, 0.6))
    sigma_e = sigma_c + float(rng.uniform(0.0, 0.8))
    ca_r, ca_b = (1.0 + float(v) for v in rng.uniform(-4e-4, 4e-4, size=2))
    base = profile.noise.base_iso
    iso = _log_uniform(rng, max(iso_range[0], base), max(iso_range[1], base))
    ev = float(rng.uniform(*exposure_range))
    jpeg = int(rng.integers(jpeg_quality_range[0], jpeg_quality_range[1] + 1)) if rng.random() < jpeg_prob else None
    wb = (float(rng.uniform(1.4, 2.6)), 1.0, float(rng.uniform(1.2, 2.6)))
    return Degradation(profile=profile.name, f_number=f_number, defocus_px=defocus,
                       aberration_sigma_center_px=sigma_c, aberration_sigma_corner_px=sigma_e,
                       ca_red_scale=ca_r, ca_blue_scale=ca_b, olpf_strength=profile.olpf_strength, iso=iso,
                       exposure_ev=ev, jpeg_quality=jpeg, wb_gains=wb)


def _lens(linear: np.ndarray, scale: int, deg: Degradation, profile: CameraProfile, centre, corner_radius_px):
    """Lens blur on the teacher grid, whose pixels are 1/scale of the camera's (pitch = pitch_um / scale)."""
    pitch = profile.pixel_pitch_um / scale
    shared = combine_psfs(defocus_psf(deg.defocus_px * scale), gaussian_psf(deg.aberration_sigma_center_px * scale))
    psfs = [combine_psfs(airy_psf(deg.f_number, lam, pitch), shared) for lam in WAVELENGTHS_UM]
    out = apply_psf(linear, psfs)
    # Gaussian blurs add in variance, so the field term only supplies the corner's excess over the centre.
    extra = math.sqrt(max(deg.aberration_sigma_corner_px ** 2 - deg.aberration_sigma_center_px ** 2, 0.0)) * scale
    if extra > 0:
        out = field_blur(out, 0.0, extra, centre=centre, corner_radius_px=corner_radius_px)
    if deg.ca_red_scale != 1.0 or deg.ca_blue_scale != 1.0:
        out = lateral_ca(out, deg.ca_red_scale, deg.ca_blue_scale, centre=centre)
    return out


def camera_student(teacher_srgb: np.ndarray, scale: int, deg: Degradation, profile: CameraProfile,
                   rng: np.random.Generator, *, centre: tuple[float, float] | None = None,
                   corner_radius_px: float | None = None) -> np.ndarray:
    """The image the camera ``profile`` with settings ``deg`` records of the scene ``teacher_srgb`` shows.

    teacher_srgb: (H, W, 3) sRGB-encoded floats in 0..1, H and W multiples of 2 * scale.  scale: integer
    >= 1, the student's pixel width in teacher pixels.  rng: the only source of randomness (sensor noise).
    centre, corner_radius_px: optical centre (row, column) and corner distance in teacher pixels, for a
    crop of a larger frame; default the crop's centre and half-diagonal.
    Returns (H // scale, W // scale, 3) float32 sRGB-encoded in 0..1.

    Steps: sRGB -> linear; exposure; lens (per-channel Airy at R/G/B wavelengths ⊗ defocus disc ⊗ Gaussian
    aberration, then field-dependent extra blur, then lateral CA); OLPF; pixel aperture (scale x scale box
    average onto the student grid); white-balance sensitivities; CFA mosaic; shot + read noise; raw
    quantisation; white balance and exposure undone; bilinear demosaic; clip to 0..1; linear -> sRGB;
    optional JPEG.  Image borders are reflect-padded for the blurs and edge-clamped for CA.
    """
    t = np.asarray(teacher_srgb)
    if t.ndim != 3 or t.shape[2] != 3:
        raise ValueError(f"teacher must be (H, W, 3), got shape {t.shape}")
    scale = int(scale)
    if scale < 1 or t.shape[0] % (2 * scale) or t.shape[1] % (2 * scale):
        raise ValueError(f"teacher size {t.shape[0]}x{t.shape[1]} must be a multiple of 2*scale={2 * scale}")
    if deg.demosaic != "bilinear":
        raise ValueError(f"unsupported demosaic {deg.demosaic!r}; only 'bilinear'")
    linear = expose(srgb_to_linear(t), deg.exposure_ev)
    linear = _lens(linear, scale, deg, profile, centre, corner_radius_px)
    if deg.olpf_strength > 0:
        linear = apply_olpf(linear, deg.olpf_strength * scale)
    linear = area_downsample(linear, scale)
    gains = np.asarray(deg.wb_gains, dtype=np.float32)
    raw = mosaic(linear / gains, profile.cfa_pattern)
    if deg.noise:
        raw = add_sensor_noise(raw, deg.iso, profile.noise, rng)
    raw = normalise_raw(quantise_raw(raw, profile.noise), profile.noise)
    site_gain = cfa_masks(profile.cfa_pattern, *raw.shape).astype(np.float32) @ gains
    raw = expose(raw * site_gain, -deg.exposure_ev)
    rgb = np.clip(demosaic_bilinear(raw, profile.cfa_pattern), 0.0, 1.0)
    srgb = linear_to_srgb(rgb)
    if deg.jpeg_quality is not None:
        srgb = jpeg_roundtrip(srgb, deg.jpeg_quality)
    return np.ascontiguousarray(srgb, dtype=np.float32)


def camera_raw(scene_srgb: np.ndarray, deg: Degradation, profile: CameraProfile,
               rng: np.random.Generator) -> np.ndarray:
    """The raw file's data when ``profile`` photographs the scene ``scene_srgb`` (one camera pixel per
    scene pixel): exposure, lens, OLPF, white-balance sensitivities, the CFA, shot + read noise and
    quantisation, as in :func:`camera_student`, stopped before development.

    scene_srgb: (H, W, 3) sRGB floats 0..1, H and W even.  Returns (H, W) uint16 DN in
    ``profile.cfa_pattern`` (black level ``profile.noise.black_level_dn``, white 2**bits - 1).
    """
    t = np.asarray(scene_srgb)
    if t.ndim != 3 or t.shape[2] != 3 or t.shape[0] % 2 or t.shape[1] % 2:
        raise ValueError(f"scene must be (H, W, 3) with even sides, got {t.shape}")
    linear = expose(srgb_to_linear(t), deg.exposure_ev)
    linear = _lens(linear, 1, deg, profile, None, None)
    if deg.olpf_strength > 0:
        linear = apply_olpf(linear, deg.olpf_strength)
    raw = mosaic(linear / np.asarray(deg.wb_gains, dtype=np.float32), profile.cfa_pattern)
    del linear
    if deg.noise:
        raw = add_sensor_noise(raw, deg.iso, profile.noise, rng)
    return quantise_raw(raw, profile.noise)


def _to_unit_float(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / np.float32(65535)
    return a.astype(np.float32)


def teacher_and_student(image_srgb: np.ndarray, scale: int, profile: CameraProfile, rng: np.random.Generator,
                        deg: Degradation | None = None, **kwargs) -> tuple[np.ndarray, np.ndarray, Degradation]:
    """Crop ``image_srgb`` to a multiple of 2*scale and simulate the camera on it.

    image_srgb: (H, W, 3) sRGB, float 0..1, uint8 or uint16.  The crop is centred (the odd rows/columns
    are dropped evenly from both sides).  deg: the shot's parameters, drawn with sample_degradation(profile,
    rng) when None.  kwargs go to camera_student (centre, corner_radius_px).
    Returns (teacher float32 (H', W', 3), student float32 (H'/scale, W'/scale, 3), deg).
    """
    img = _to_unit_float(image_srgb)
    m = 2 * int(scale)
    h, w = (img.shape[0] // m) * m, (img.shape[1] // m) * m
    if img.ndim != 3 or h == 0 or w == 0:
        raise ValueError(f"image of shape {img.shape} is too small for scale {scale}")
    y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    teacher = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
    if deg is None:
        deg = sample_degradation(profile, rng)
    return teacher, camera_student(teacher, scale, deg, profile, rng, **kwargs), deg
