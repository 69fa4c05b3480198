"""Physics and contract tests for truepix.simulate (small arrays; the whole file runs in a few seconds)."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np
import pytest

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.simulate import camera, cfa, filters, jpeg, olpf, optics, pipeline, sensor
from truepix.simulate.special import bessel_j1

SIMULATE_DIR = pathlib.Path(__file__).resolve().parents[1] / "daemon" / "truepix" / "simulate"


def _moments(k: np.ndarray) -> tuple[float, float, float, float]:
    """Centroid (y, x) and per-axis variance (y, x) of a kernel, in pixels from its centre."""
    k = k / k.sum()
    y = np.arange(k.shape[0]) - k.shape[0] // 2
    x = np.arange(k.shape[1]) - k.shape[1] // 2
    my, mx = (k.sum(1) * y).sum(), (k.sum(0) * x).sum()
    return my, mx, (k.sum(1) * (y - my) ** 2).sum(), (k.sum(0) * (x - mx) ** 2).sum()


def _smooth_image(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return np.stack([0.45 + 0.2 * np.sin(2.0 * x + 1.0 * y), 0.5 + 0.15 * np.cos(1.5 * y),
                     0.4 + 0.2 * x * y], axis=-1).astype(np.float32)


# --- special functions and PSFs -------------------------------------------------------------------------------


def test_bessel_j1_known_values():
    got = bessel_j1(np.array([0.0, 1.0, 3.8317059702, 5.0, -1.0]))
    np.testing.assert_allclose(got, [0.0, 0.4400505857, 0.0, -0.3275791376, -0.4400505857], atol=1e-7)
    # Against the integral J1(x) = (1/π) ∫_0^π cos(τ - x sin τ) dτ (midpoint rule, exact to ~1e-12 here).
    x = np.linspace(0, 40, 401)
    tau = (np.arange(400) + 0.5) * np.pi / 400
    ref = np.cos(tau[None, :] - x[:, None] * np.sin(tau[None, :])).mean(axis=1)
    np.testing.assert_allclose(bessel_j1(x), ref, atol=1e-7)


@pytest.mark.parametrize("kernel", [
    optics.airy_psf(2.8, 0.54, 3.0), optics.airy_psf(16, 0.61, 1.4), optics.airy_psf(4, 0.465, 0.5, radius_px=5),
    optics.defocus_psf(0.3), optics.defocus_psf(2.7), optics.gaussian_psf(0.3), optics.gaussian_psf(2.0),
    optics.combine_psfs(optics.airy_psf(8, 0.54, 1.0), optics.defocus_psf(1.5), optics.gaussian_psf(0.7)),
    olpf.olpf_kernel(0.0), olpf.olpf_kernel(0.7), olpf.olpf_kernel(2.0), olpf.olpf_kernel(1.3, centred=False),
], ids=["airy-f2.8", "airy-f16", "airy-r5", "disc-0.3", "disc-2.7", "gauss-0.3", "gauss-2", "combined", "olpf-0",
        "olpf-0.7", "olpf-2", "olpf-1.3-literal"])
def test_every_kernel_sums_to_one_and_is_odd(kernel):
    assert abs(kernel.sum() - 1.0) < 1e-6
    assert kernel.min() >= 0
    assert kernel.shape[0] % 2 == 1 and kernel.shape[1] % 2 == 1


def test_airy_first_dark_ring_at_1_22_lambda_n():
    pitch, n, lam = 0.1, 8.0, 0.55
    k = optics.airy_psf(n, lam, pitch, radius_px=70, oversample=3)
    row = k[70, 70:]
    expected = 1.21967 * lam * n / pitch  # 53.7 samples
    assert optics.airy_first_zero_um(n, lam) == pytest.approx(1.21967 * lam * n, rel=1e-5)
    ring = int(np.argmin(row[30:65])) + 30
    assert abs(ring - expected) <= 1.0
    assert row[ring] < 1e-4 * row[0]


def test_airy_fwhm_is_1_029_lambda_n():
    pitch, n, lam = 0.1, 8.0, 0.55
    k = optics.airy_psf(n, lam, pitch, radius_px=40, oversample=3)
    row = k[40, 40:] / k[40, 40]
    i = int(np.argmax(row < 0.5))
    half = (i - 1) + (row[i - 1] - 0.5) / (row[i - 1] - row[i])  # linear interpolation of the crossing
    assert 2 * half * pitch == pytest.approx(1.029 * lam * n, rel=0.02)


def test_airy_grows_with_wavelength_and_f_number():
    var = [_moments(optics.airy_psf(8, lam, 1.0, radius_px=12))[2] for lam in optics.WAVELENGTHS_UM]
    assert var[0] > var[1] > var[2]
    assert _moments(optics.airy_psf(16, 0.54, 1.0, radius_px=12))[2] > var[1]


def test_defocus_disc_energy_inside_radius():
    for r in (1.0, 2.0, 3.0, 5.5, 10.0):
        k = optics.defocus_psf(r)
        c = k.shape[0] // 2
        yy, xx = np.mgrid[-c:c + 1, -c:c + 1]
        assert k[np.hypot(yy, xx) <= r + 0.5].sum() >= 0.99
        if r >= 2:  # a uniform disc has var r²/4 per axis; integrating over the pixel adds 1/12
            assert _moments(k)[2] == pytest.approx(r * r / 4 + 1 / 12, rel=0.03)
    np.testing.assert_array_equal(optics.defocus_psf(0.4), [[1.0]])


@pytest.mark.parametrize("sigma", [0.3, 0.8, 1.5, 3.0])
def test_gaussian_second_moment_is_sigma_squared(sigma):
    my, mx, vy, vx = _moments(optics.gaussian_psf(sigma))
    assert abs(my) < 1e-12 and abs(mx) < 1e-12
    assert vy == pytest.approx(sigma ** 2, rel=1e-3) and vx == pytest.approx(sigma ** 2, rel=1e-3)


def test_combine_psfs_adds_variances():
    a, b = optics.gaussian_psf(1.0), optics.defocus_psf(2.0)
    k = optics.combine_psfs(a, b)
    assert k.shape == (a.shape[0] + b.shape[0] - 1,) * 2
    assert _moments(k)[2] == pytest.approx(_moments(a)[2] + _moments(b)[2], rel=1e-6)
    np.testing.assert_array_equal(optics.combine_psfs(), [[1.0]])


# --- convolution and lens effects -------------------------------------------------------------------------------


def test_convolve_shifts_and_does_not_wrap():
    img = np.zeros((20, 24), np.float32)
    img[5, 7] = 1.0
    k = np.zeros((5, 5))
    k[2 + 1, 2 + 2] = 1.0  # offset (+1, +2)
    out = filters.convolve(img, k)
    assert out.dtype == np.float32
    assert out[6, 9] == pytest.approx(1.0, abs=1e-6) and abs(out).sum() == pytest.approx(1.0, abs=1e-5)
    edge = np.zeros((16, 16))
    edge[:, 0] = 1.0  # a bright left column must not leak into the right border through the FFT
    blurred = filters.convolve(edge, optics.gaussian_psf(2.0))
    assert blurred[:, -1].max() < 1e-9
    flat = np.full((9, 11, 3), 0.3)
    np.testing.assert_allclose(filters.convolve(flat, optics.airy_psf(4, 0.5, 0.2)), flat, atol=1e-12)


def test_apply_psf_per_channel():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16, 3)).astype(np.float32)
    psfs = [optics.gaussian_psf(s) for s in (0.0, 1.0, 2.0)]
    out = optics.apply_psf(img, psfs)
    np.testing.assert_allclose(out[:, :, 0], img[:, :, 0], atol=1e-6)
    np.testing.assert_allclose(out[:, :, 2], filters.convolve(img[:, :, 2], psfs[2]), atol=1e-6)
    with pytest.raises(ValueError):
        optics.apply_psf(img, psfs[:2])


def test_field_blur_centre_sharper_than_corners():
    rng = np.random.default_rng(1)
    img = rng.random((96, 96)).astype(np.float32)
    out = optics.field_blur(img, 0.0, 2.5)

    def grad_energy(a):
        return float(np.mean(np.diff(a, axis=0) ** 2) + np.mean(np.diff(a, axis=1) ** 2))

    centre = grad_energy(out[40:56, 40:56])
    corners = [grad_energy(out[s]) for s in (np.s_[:16, :16], np.s_[:16, -16:], np.s_[-16:, :16], np.s_[-16:, -16:])]
    assert centre > 5 * max(corners)
    np.testing.assert_allclose(out[47:49, 47:49], img[47:49, 47:49], atol=0.05)  # nearly untouched on axis
    uniform = optics.field_blur(img, 1.5, 1.5)
    np.testing.assert_allclose(uniform, filters.convolve(img, optics.gaussian_psf(1.5)), atol=1e-5)


def test_lateral_ca_identity_and_outward_shift():
    img = np.zeros((64, 64, 3), np.float32)
    img[31:33, 51:53, :] = 1.0  # a dot right of the centre (31.5, 31.5)
    np.testing.assert_array_equal(optics.lateral_ca(img, 1.0, 1.0), img)
    out = optics.lateral_ca(img, 1.05, 0.95)
    x = np.arange(64)

    def cx(plane):
        return (plane.sum(0) * x).sum() / plane.sum()

    assert cx(out[:, :, 0]) == pytest.approx(31.5 + 1.05 * 20, abs=0.05)  # red moved outward
    assert cx(out[:, :, 2]) == pytest.approx(31.5 + 0.95 * 20, abs=0.05)  # blue inward
    np.testing.assert_array_equal(out[:, :, 1], img[:, :, 1])


# --- OLPF -------------------------------------------------------------------------------------------------------


def test_olpf_kernel_four_equal_dots():
    for d in (2, 4):  # centred: the dots sit at ±d/2, on pixels for even d
        k = olpf.olpf_kernel(d)
        nz = np.argwhere(k > 0) - k.shape[0] // 2
        assert len(nz) == 4 and np.allclose(k[k > 0], 0.25)
        assert sorted(map(tuple, nz)) == [(-d // 2, -d // 2), (-d // 2, d // 2), (d // 2, -d // 2), (d // 2, d // 2)]
    for d in (1, 2, 3):  # the literal layout: dots at (0,0), (d,0), (0,d), (d,d)
        k = olpf.olpf_kernel(d, centred=False)
        nz = np.argwhere(k > 0) - k.shape[0] // 2
        assert sorted(map(tuple, nz)) == [(0, 0), (0, d), (d, 0), (d, d)] and np.allclose(k[k > 0], 0.25)
    np.testing.assert_array_equal(olpf.olpf_kernel(0), [[1.0]])


def test_olpf_fractional_strength_keeps_centroid_and_spread():
    for d in (0.35, 0.7, 1.3):
        my, mx, vy, _ = _moments(olpf.olpf_kernel(d))
        assert abs(my) < 1e-12 and abs(mx) < 1e-12  # the centred filter does not shift the image
        assert vy >= (d / 2) ** 2 - 1e-12  # four dots at ±d/2 give var = d²/4 before bilinear spreading
        my, mx, _, _ = _moments(olpf.olpf_kernel(d, centred=False))
        assert my == pytest.approx(d / 2) and mx == pytest.approx(d / 2)
    img = np.random.default_rng(2).random((12, 12, 3))
    np.testing.assert_array_equal(olpf.apply_olpf(img, 0), img)


# --- CFA --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", cfa.PATTERNS)
def test_cfa_sampling_exact_and_pack_roundtrip(pattern):
    rng = np.random.default_rng(3)
    rgb = rng.random((8, 10, 3)).astype(np.float32)
    masks = cfa.cfa_masks(pattern, 8, 10)
    assert masks.dtype == bool and (masks.sum(-1) == 1).all()
    assert masks[:, :, 1].sum() == 40 and masks[:, :, 0].sum() == masks[:, :, 2].sum() == 20
    m = cfa.mosaic(rgb, pattern)
    np.testing.assert_array_equal(m.ravel(), rgb[masks])  # masks has one True per site, in raster order
    planes = cfa.pack(m, pattern)
    assert planes.shape == (4, 5, 4)
    np.testing.assert_array_equal(cfa.unpack(planes, pattern), m)
    r_site = tuple(np.argwhere(masks[:2, :2, 0])[0])
    b_site = tuple(np.argwhere(masks[:2, :2, 2])[0])
    assert planes[0, 0, 0] == m[r_site] and planes[0, 0, 3] == m[b_site]
    assert planes[0, 0, 1] == m[r_site[0], 1 - r_site[1]]  # G1 shares the red row
    assert planes[0, 0, 2] == m[b_site[0], 1 - b_site[1]]  # G2 shares the blue row
    demosaiced = cfa.demosaic_bilinear(m, pattern)
    np.testing.assert_array_equal(demosaiced[masks], rgb[masks])
    flat = np.broadcast_to(np.array([0.2, 0.5, 0.7], np.float32), (8, 10, 3))
    np.testing.assert_allclose(cfa.demosaic_bilinear(cfa.mosaic(flat, pattern), pattern), flat, atol=1e-6)


def test_cfa_odd_sizes_and_bad_pattern_raise():
    with pytest.raises(ValueError, match="even"):
        cfa.pack(np.zeros((7, 8)), "RGGB")
    with pytest.raises(ValueError, match="pattern"):
        cfa.cfa_masks("RGBG", 4, 4)


# --- sensor -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("iso", [100, 3200])
@pytest.mark.parametrize("signal", [0.2, 0.02])
@pytest.mark.parametrize("profile", ["ff24", "phone12"])
def test_measured_noise_variance_matches_model(iso, signal, profile):
    model = camera.PROFILES[profile].noise
    rng = np.random.default_rng(4)
    noisy = sensor.add_sensor_noise(np.full((256, 256), signal, np.float32), iso, model, rng)
    assert noisy.dtype == np.float32
    assert noisy.mean() == pytest.approx(signal, rel=0.01)
    assert noisy.var(dtype=np.float64) == pytest.approx(sensor.noise_variance(signal, iso, model), rel=0.05)


def test_noise_model_units():
    m = camera.PROFILES["ff24"].noise
    assert m.white_dn == 16383 and m.range_dn == 16383 - 512
    assert m.gain(100) * m.range_dn == pytest.approx(m.full_well_e)
    assert m.gain(400) == pytest.approx(m.gain(100) / 4)
    assert m.read_noise(100) == pytest.approx(3.0) and m.read_noise(100) > m.read_noise(3200) > 1.3
    # Doubling ISO at fixed normalised signal halves the electrons: shot variance doubles.
    assert sensor.noise_variance(0.5, 200, m) == pytest.approx(2 * sensor.noise_variance(0.5, 100, m), rel=1e-3)
    assert sensor.expose(np.float32([0.25]), 2.0)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("bits,black", [(12, 256), (14, 512)])
def test_quantisation_step_roundtrip_and_clipping(bits, black):
    model = sensor.NoiseModel(base_iso=100, gain_e_per_dn_base=1.0, read_noise_e=2.0, full_well_e=3e4, bits=bits,
                              black_level_dn=black)
    step = 1.0 / (2 ** bits - 1 - black)
    x = np.linspace(-0.01, 1.0, 20 * 2 ** bits)
    dn = sensor.quantise_raw(x, model)
    assert dn.dtype == np.uint16
    back = sensor.normalise_raw(dn, model)
    assert np.abs(back - x).max() <= 0.5 * step + 1e-6
    levels = np.unique(back).astype(np.float64)
    assert len(levels) == int(round(1.01 / step)) + 1
    np.testing.assert_allclose(np.diff(levels), step, atol=1e-6)
    assert sensor.quantise_raw(np.array([1.5, 1.0]), model).tolist() == [2 ** bits - 1] * 2
    assert sensor.quantise_raw(np.array([-1.0]), model)[0] == 0


# --- JPEG -------------------------------------------------------------------------------------------------------


def test_jpeg_roundtrip_quality():
    img = linear_to_srgb(srgb_to_linear(_smooth_image(64, 64)))
    rng = np.random.default_rng(5)
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)
    q100 = jpeg.jpeg_roundtrip(img, 100, subsampling="4:4:4")  # per-pixel colour noise needs full chroma
    q30 = jpeg.jpeg_roundtrip(img, 30, subsampling="4:4:4")
    assert q100.dtype == np.float32 and q100.shape == img.shape
    err100, err30 = np.abs(q100 - img).mean(), np.abs(q30 - img).mean()
    assert err100 < 2 / 255 and err30 > 2 * err100
    smooth = _smooth_image(64, 64)
    err100 = np.abs(jpeg.jpeg_roundtrip(smooth, 100) - smooth).mean()
    err30 = np.abs(jpeg.jpeg_roundtrip(smooth, 30) - smooth).mean()
    assert err100 < 1 / 255 and err30 > 1.5 * err100
    assert jpeg.jpeg_roundtrip(img[:, :, 0], 90).shape == (64, 64)
    for bad in (0, 101, 50.0, True):
        with pytest.raises(ValueError):
            jpeg.jpeg_roundtrip(img, bad)


# --- cameras and the pipeline -----------------------------------------------------------------------------------


def test_profiles_and_sampled_family():
    assert set(camera.PROFILES) == {"ff24", "apsc24", "oneinch20", "phone12"}
    assert {p.cfa_pattern for p in camera.PROFILES.values()} == set(cfa.PATTERNS)
    rng = np.random.default_rng(6)
    drawn = [camera.sample_profile(rng, exclude=("phone12",)) for _ in range(60)]
    assert {p.name for p in drawn} == {"ff24", "apsc24", "oneinch20"}
    for p in drawn:
        base = camera.PROFILES[p.name]
        assert 0.9 <= p.pixel_pitch_um / base.pixel_pitch_um <= 1.1
        assert 0.8 <= p.noise.read_noise_e / base.noise.read_noise_e <= 1.2
        assert p.olpf_strength == 0 if base.olpf_strength == 0 else 0.7 <= p.olpf_strength / base.olpf_strength <= 1.3
    with pytest.raises(ValueError):
        camera.sample_profile(rng, exclude=tuple(camera.PROFILES))


def test_sample_degradation_is_reproducible_and_in_range():
    prof = camera.PROFILES["apsc24"]
    a = pipeline.sample_degradation(prof, np.random.default_rng(7))
    b = pipeline.sample_degradation(prof, np.random.default_rng(7))
    assert a == b and a.as_dict()["profile"] == "apsc24"
    for seed in range(20):
        d = pipeline.sample_degradation(prof, np.random.default_rng(seed), iso_range=(200, 800))
        assert 200 <= d.iso <= 800 and prof.f_number_range[0] <= d.f_number <= prof.f_number_range[1]
        assert d.aberration_sigma_corner_px >= d.aberration_sigma_center_px
        assert d.jpeg_quality is None or 40 <= d.jpeg_quality <= 95


def _clean(profile: camera.CameraProfile, **kw) -> pipeline.Degradation:
    """No noise, no blur (a vanishing f-number makes the Airy disc far smaller than a pixel), no JPEG."""
    return pipeline.Degradation(profile=profile.name, f_number=1e-3, noise=False, **kw)


@pytest.mark.parametrize("name", list(camera.PROFILES))
def test_pipeline_shapes_and_dtype(name):
    prof = camera.PROFILES[name]
    rng = np.random.default_rng(8)
    teacher, student, deg = pipeline.teacher_and_student(_smooth_image(37, 45), 2, prof, rng)
    assert teacher.shape == (36, 44, 3) and student.shape == (18, 22, 3)
    assert student.dtype == np.float32 and 0 <= student.min() and student.max() <= 1
    assert deg.profile == name
    with pytest.raises(ValueError, match="multiple"):
        pipeline.camera_student(_smooth_image(30, 32), 4, deg, prof, rng)


@pytest.mark.parametrize("scale", [2, 3])
def test_clean_pipeline_equals_area_downsample(scale):
    prof = camera.PROFILES["ff24"]
    rng = np.random.default_rng(9)
    flat = np.broadcast_to(np.float32([0.3, 0.6, 0.8]), (24, 36, 3))
    student = pipeline.camera_student(flat, scale, _clean(prof), prof, rng)
    np.testing.assert_allclose(student, flat[::scale, ::scale], atol=1 / 255)
    teacher = _smooth_image(48, 60)
    student = pipeline.camera_student(teacher, scale, _clean(prof, wb_gains=(2.0, 1.0, 1.5)), prof, rng)
    expected = linear_to_srgb(filters.area_downsample(srgb_to_linear(teacher), scale))
    error = np.abs(student - expected)
    assert error[1:-1, 1:-1].max() < 1 / 255
    assert error.max() < 10 / 255  # the outermost ring is demosaiced from one side only


def test_pipeline_preserves_block_means():
    prof = camera.PROFILES["apsc24"]
    rng = np.random.default_rng(10)
    deg = dataclasses.replace(pipeline.sample_degradation(prof, rng, iso_range=(400, 400)), jpeg_quality=None,
                              exposure_ev=-0.5)
    teacher = _smooth_image(128, 128)
    student = pipeline.camera_student(teacher, 2, deg, prof, rng)
    expected = filters.area_downsample(teacher, 2)
    blocks = filters.area_downsample(student - expected, 8)
    assert np.abs(blocks).max() < 2 / 255


def test_noise_grows_with_iso():
    prof = camera.PROFILES["oneinch20"]
    flat = np.full((64, 64, 3), 0.4, np.float32)
    stds = []
    for iso in (125, 800, 6400):
        deg = pipeline.Degradation(profile=prof.name, f_number=4.0, iso=iso)
        stds.append(float(pipeline.camera_student(flat, 2, deg, prof, np.random.default_rng(11))[4:-4, 4:-4].std()))
    assert stds[0] < stds[1] < stds[2]
    assert stds[2] > 3 * stds[0]


def test_simulate_is_independent_of_engine_and_service():
    for path in SIMULATE_DIR.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "truepix.engine" not in text and "truepix.service" not in text, path.name
        assert not re.search(r"^\s*(import|from)\s+scipy", text, re.M), path.name
