"""The broad camera family (truepix.simulate.family): each stage's physics or statistics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from truepix.colour import srgb_to_linear
from truepix.resize import imresize
from truepix.simulate import family
from truepix.simulate.cfa import demosaic_bilinear, mosaic


def _scene(h=96, w=96, seed=0):
    """A smooth colourful scene with a few edges (sRGB 0..1)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    img = np.stack([0.5 + 0.3 * np.sin(6 * x + 1), 0.5 + 0.3 * np.cos(5 * y), 0.4 + 0.3 * np.sin(4 * (x + y))], 2)
    img[h // 3:h // 2, :] *= 0.5
    return np.clip(img + rng.normal(0, 0.0, img.shape), 0, 1).astype(np.float32)


def test_draws_are_reproducible_and_span_every_kind_blur_and_demosaic():
    shots = [family.sample_shot(np.random.default_rng(s)) for s in range(400)]
    again = [family.sample_shot(np.random.default_rng(s)) for s in range(3)]
    assert [s.as_dict() for s in shots[:3]] == [s.as_dict() for s in again]
    kinds = {k: sum(s.kind == k for s in shots) / len(shots) for k in family.KINDS}
    assert abs(kinds["resized"] - 0.3) < 0.07 and abs(kinds["camera-resized"] - 0.15) < 0.06
    cams = [s for s in shots if s.kind != "resized"]
    assert {s.blur for s in cams} == set(family.BLURS)
    assert {s.demosaic for s in cams} == {"bilinear", "malvar"}
    assert {s.resizer for s in shots} == set(family.RESIZERS)
    isos = [s.iso for s in cams]
    assert min(isos) < 150 and max(isos) > 6400 and max(isos) <= 12800
    assert any(s.olpf == 0 for s in cams) and any(s.olpf > 0.3 for s in cams)
    assert any(s.jpeg_quality is None for s in cams) and min(s.jpeg_quality or 100 for s in cams) < 65
    assert "apsc24" not in {s.profile for s in cams}  # the camera protocol's held-out profile


def test_anisotropic_gaussian_has_the_asked_second_moments():
    k = family.anisotropic_gaussian_psf(2.0, 0.8, math.pi / 6)
    assert k.sum() == pytest.approx(1.0)
    r = k.shape[0] // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    u = x * math.cos(math.pi / 6) + y * math.sin(math.pi / 6)
    v = -x * math.sin(math.pi / 6) + y * math.cos(math.pi / 6)
    assert (k * u * u).sum() == pytest.approx(4.0, rel=0.03)
    assert (k * v * v).sum() == pytest.approx(0.64, rel=0.1)


def test_motion_streak_spreads_its_length_along_its_angle_only():
    k = family.motion_psf(6.0, 0.0)
    assert k.sum() == pytest.approx(1.0)
    r = k.shape[0] // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    assert (k * x * x).sum() == pytest.approx(36 / 12, rel=0.1)  # a uniform streak of length L: L^2/12
    assert (k * y * y).sum() < 1e-9


def test_malvar_keeps_recorded_sites_and_flat_colours_and_beats_bilinear_on_a_smooth_scene():
    flat = np.full((16, 16, 3), (0.2, 0.5, 0.7), np.float32)
    for pattern in ("RGGB", "BGGR", "GRBG", "GBRG"):
        m = mosaic(flat, pattern)
        np.testing.assert_allclose(family.demosaic_malvar(m, pattern), flat, atol=1e-6)
    scene = srgb_to_linear(_scene(128, 128))
    m = mosaic(scene, "GRBG")
    out = family.demosaic_malvar(m, "GRBG")
    np.testing.assert_array_equal(mosaic(out, "GRBG"), m)
    inner = (slice(4, -4), slice(4, -4))
    err_malvar = np.mean((out[inner] - scene[inner]) ** 2)
    err_bilinear = np.mean((demosaic_bilinear(m, "GRBG")[inner] - scene[inner]) ** 2)
    assert err_malvar < 0.8 * err_bilinear  # the same filters as colour-demosaicing's Malvar2004 (checked to 3e-7)


def test_resized_students_are_the_editor_filters_in_8_bit_steps():
    t = _scene(96, 64)
    s = family.broad_student(t, 2, family.BroadShot(kind="resized", resizer="bicubic"))
    np.testing.assert_allclose(s, np.round(np.clip(imresize(t, 0.5), 0, 1) * 255) / 255, atol=1e-6)
    area = family.broad_student(t, 2, family.BroadShot(kind="resized", resizer="area"))
    np.testing.assert_allclose(area, np.round(t.reshape(48, 2, 32, 2, 3).mean((1, 3)) * 255) / 255, atol=1e-6)
    lanczos = family.broad_student(t, 2, family.BroadShot(kind="resized", resizer="lanczos"))
    assert lanczos.shape == (48, 32, 3) and np.abs(lanczos - s).max() < 0.05
    assert np.allclose(s * 255, np.round(s * 255), atol=1e-4)


def _camera_shot(**kw):
    rng = np.random.default_rng(3)
    base = family.sample_shot(rng, resized_share=0.0, camera_resized_share=0.0, clean_share=1.0)
    plain = dict(kind="camera", f_number=0.0, blur="none", olpf=0.0, nr_luma=0.0, nr_chroma=0.0, sharpen_amount=0.0,
                 jpeg_quality=None, exposure_ev=0.0)
    return dataclasses.replace(base, **{**plain, **kw})


def test_sensor_noise_grows_with_iso_and_keeps_the_light_of_a_grey_scene():
    grey = np.full((128, 128, 3), 0.5, np.float32)
    shot = _camera_shot()
    base = shot.extra["profile"].noise.base_iso
    sds, means = [], []
    for iso in (base, base * 16, base * 64):
        out = family.broad_student(grey, 2, dataclasses.replace(shot, iso=iso))
        sds.append(float(out[8:-8, 8:-8].std()))
        means.append(float(srgb_to_linear(out).mean()))
    assert sds[0] < sds[1] < sds[2]
    assert all(abs(m - float(srgb_to_linear(grey).mean())) < 0.01 for m in means)


@pytest.mark.parametrize("blur", family.BLURS)
def test_every_blur_keeps_the_light_and_softens_an_edge(blur):
    t = np.full((64, 64, 3), 0.3, np.float32)
    t[:, 32:] = 0.7
    shot = _camera_shot(blur=blur, blur_a=1.2, blur_b=0.5, blur_angle=0.3)
    shot.iso = shot.extra["profile"].noise.base_iso
    out = family.broad_student(t, 2, shot)
    sharp = family.broad_student(t, 2, _camera_shot())
    assert abs(float(srgb_to_linear(out)[4:-4, 4:-4].mean()) - float(srgb_to_linear(sharp)[4:-4, 4:-4].mean())) < 0.01
    def steepest(img):  # in light, where a blur is an average
        return np.abs(np.diff(srgb_to_linear(img)[8:-8, :, 1].mean(axis=0))).max()

    if blur != "none":
        assert steepest(out) < 0.9 * steepest(sharp)


def test_noise_reduction_smooths_flat_noise_and_sharpening_leaves_a_halo():
    rng = np.random.default_rng(1)
    noisy = np.clip(0.5 + rng.normal(0, 0.03, (64, 64, 3)), 0, 1).astype(np.float32)
    smoothed = family.noise_reduction(noisy, 1.0, 2.0)
    assert smoothed.std() < 0.6 * noisy.std()
    edge = np.full((32, 32, 3), 0.3, np.float32)
    edge[:, 16:] = 0.6
    sharp = family.sharpen(edge, 1.0, 1.0)
    assert sharp[:, 17].mean() > 0.61 and sharp[:, 14].mean() < 0.29  # overshoot on both sides: halos


def test_camera_students_are_deterministic_and_jpeg_only_when_drawn():
    t = _scene(96, 96)
    rng = np.random.default_rng(7)
    shot = family.sample_shot(rng, resized_share=0.0, camera_resized_share=0.0)
    a, b = family.broad_student(t, 2, shot), family.broad_student(t, 2, shot)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (48, 48, 3) and a.dtype == np.float32
    plain = family.broad_student(t, 2, dataclasses.replace(shot, jpeg_quality=None))
    jpeg = family.broad_student(t, 2, dataclasses.replace(shot, jpeg_quality=60))
    assert np.abs(plain - jpeg).mean() > 1e-3
    resized = family.broad_student(t, 2, dataclasses.replace(shot, kind="camera-resized"))
    assert resized.shape == (48, 48, 3)
    # a camera photo downsized by an editor is less noisy than the camera's own file at that size
    grey = np.full((96, 96, 3), 0.4, np.float32)
    loud = dataclasses.replace(_camera_shot(), iso=6400)
    assert family.broad_student(grey, 2, dataclasses.replace(loud, kind="camera-resized")).std() < \
        family.broad_student(grey, 2, loud).std()


def test_the_student_must_fit_the_grid():
    with pytest.raises(ValueError, match="multiples"):
        family.broad_student(np.zeros((90, 96, 3), np.float32), 2, family.BroadShot(kind="resized"))
