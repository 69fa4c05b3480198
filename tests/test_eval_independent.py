"""The independent-camera and real-RAW (rawbin) upscale protocols: their physics, determinism and a smoke run."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, photo_like
from truepix.evaluate import camera, independent, rawbin
from truepix.evaluate.sr import evaluate_upscale, format_table
from truepix.simulate.camera import PROFILES
from truepix.simulate.cfa import PATTERNS, pack
from truepix.simulate.filters import area_downsample
from truepix.simulate.sensor import noise_variance

# The independent family demosaics with Menon 2007 from colour-demosaicing (the `eval` extra).
needs_menon = pytest.mark.skipif(importlib.util.find_spec("colour_demosaicing") is None,
                                 reason="the independent family needs colour-demosaicing: pip install -e '.[eval]'")

RAW = SHARED / "raw"


# -- the independent camera -----------------------------------------------------------------------


@needs_menon
def test_independent_lr_is_deterministic_per_index():
    truth = camera.crop_for(photo_like(64, 80, seed=1, noise=0.0), 2)
    a = independent.independent_lr(truth, 2, 3)
    b = independent.independent_lr(truth, 2, 3)
    c = independent.independent_lr(truth, 2, 4)
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3], strict=True)) and a[3] == b[3]
    assert a[1].shape == (32, 40, 3) and a[0].shape == truth.shape and a[1].dtype == np.float32
    assert not np.array_equal(a[1], c[1])


def test_the_draw_stays_outside_the_training_family():
    for i in range(60):
        p = independent.sample_params(np.random.default_rng(independent.SEED + i), i)
        assert p["kernel"] in ("plateau", "polygon", "ring")
        if p["kernel"] == "plateau":
            assert 3 <= p["beta"] <= 6
        if p["kernel"] == "polygon":
            assert p["sides"] in (6, 8)
        assert 0.6 <= p["fill_factor"] <= 0.8
        # training: JPEG 4:2:0 at quality 60..100
        assert p["jpeg_subsampling"] == "4:4:4" or 50 <= p["jpeg_quality"] <= 58
        assert p["iso"] == 800 and p["pattern"] in PATTERNS


def test_kernels_are_normalised_and_not_gaussian_discs():
    for k in (independent.plateau_psf(2.0, 5.0), independent.polygon_psf(3.0, 6, 0.3),
              independent.ring_psf(3.0, 1.8, 0.5)):
        assert k.shape[0] % 2 == 1 and abs(k.sum() - 1) < 1e-9 and k.min() >= 0
    ring = independent.ring_psf(4.0, 2.4, 0.3)
    c = ring.shape[0] // 2
    assert ring[c, c] < 0.3 * ring.max()  # the central obstruction: a dark centre
    hexagon = independent.polygon_psf(6.0, 6, 0.0)
    c = hexagon.shape[0] // 2
    # a hexagon with a vertex on the x axis reaches 6 px there but only 6 cos 30° = 5.2 px along y
    assert hexagon[c, c + 5] > 0 and hexagon[c + 6, c] == 0


def test_flat_grey_noise_has_the_expected_variance_and_row_banding():
    rng = np.random.default_rng(0)
    s = 0.2
    out = independent.record(np.full((400, 400), s, np.float32), rng)
    expected = noise_variance(s, independent.ISO, independent.NOISE, quantised=True) + independent.ROW_SIGMA ** 2
    assert abs(out.var() / expected - 1) < 0.05
    assert abs(out.mean() - s) < 1e-3
    rows = out.mean(axis=1)  # per-row offsets survive averaging along the row; white noise does not
    assert abs(rows.std() / independent.ROW_SIGMA - 1) < 0.25
    # a different read/shot balance from every training profile at the same ISO
    read = noise_variance(0.0, 800, independent.NOISE)
    assert read / noise_variance(0.18, 800, independent.NOISE) > 0.2
    for profile in PROFILES.values():
        assert noise_variance(0.0, 800, profile.noise) / noise_variance(0.18, 800, profile.noise) < 0.05


def test_fill_factor_below_one_keeps_more_contrast_than_the_full_pixel():
    x = np.arange(256, dtype=np.float64)
    f = 0.3  # cycles per low-resolution pixel (x2: 0.15 per teacher pixel)
    img = np.repeat((0.5 + 0.2 * np.sin(2 * np.pi * f / 2 * x))[None, :, None], 64, axis=0)
    img = np.repeat(img, 3, axis=2)

    def amplitude(lr):
        row = lr[16, 16:-16, 0] - 0.5
        return np.sqrt(2 * np.mean(row ** 2))

    full = amplitude(independent.aperture_sample(img, 2, 1.0))
    # fill 1 is about area_downsample (its 2-tap average on the teacher grid passes cos(pi f/2), the
    # continuous box sinc(f): 0.891 against 0.858 here)
    assert abs(full / amplitude(area_downsample(img, 2)) - 1) < 0.05
    small = amplitude(independent.aperture_sample(img, 2, 0.7))
    assert abs(small / 0.2 - np.sinc(0.7 * f)) < 0.01 and abs(full / 0.2 - np.sinc(f)) < 0.01


@needs_menon
def test_defocused_third_covers_about_a_third():
    for index in range(4):
        m = independent.defocus_third(120, 160, index)
        assert 0.3 < m.mean() < 0.37 and m.max() == 1.0 and m.min() == 0.0
    truth = camera.crop_for(photo_like(96, 120, seed=2, noise=0.0), 2)
    teacher, _, mask, _ = independent.independent_lr(truth, 2, 0)
    sharp = camera.high_frequency_energy(truth, mask, 2)
    assert camera.high_frequency_energy(teacher, mask, 2) < 0.1 * sharp  # the truth carries the defocus too


# -- rawbin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
def test_binning_keeps_per_plane_constants_and_the_pattern(pattern):
    planes = np.broadcast_to(np.array([0.1, 0.2, 0.3, 0.4], np.float32), (16, 24, 4))
    from truepix.simulate.cfa import unpack

    full = unpack(np.ascontiguousarray(planes), pattern)
    for registered in (False, True):
        half = rawbin.bin_mosaic(full, pattern, registered)
        assert half.shape == (16, 24) and half.dtype == np.float32
        np.testing.assert_allclose(pack(half, pattern), planes[:8, :12], atol=1e-7)


def test_binning_halves_the_noise():
    rng = np.random.default_rng(1)
    full = (0.3 + 0.01 * rng.standard_normal((512, 512))).astype(np.float32)
    assert abs(rawbin.bin_mosaic(full, "RGGB", registered=False).std() / 0.005 - 1) < 0.05
    assert abs(rawbin.bin_mosaic(full, "RGGB", registered=True).std() / (0.01 * 0.625) - 1) < 0.05


def test_registered_binning_puts_samples_on_the_half_pixel_centres():
    x = np.tile(np.arange(64, dtype=np.float64), (32, 1))  # each site records its own column
    nominal = 2 * np.arange(32) + 0.5  # half-resolution column j covers full columns 2j, 2j+1
    plain = rawbin.bin_mosaic(x, "RGGB", registered=False)
    assert np.allclose(np.abs(plain[0] - nominal), 0.5)  # plain averaging: half a full pixel off
    assert np.allclose(rawbin.bin_mosaic(x, "RGGB", registered=True)[0], nominal)


def test_centred_crop_keeps_the_pattern_and_the_limit():
    m = np.zeros((1001, 1503), np.float32)
    crop, (top, left, h, w) = rawbin.centred_crop(m, 50_000)
    assert top % 2 == 0 and left % 2 == 0 and h % 4 == 0 and w % 4 == 0
    assert (h // 2) * (w // 2) <= 50_000 and crop.shape == (h, w)
    assert abs(top - (1001 - h) / 2) <= 2 and abs(left - (1503 - w) / 2) <= 2


# -- smoke runs -----------------------------------------------------------------------------------


@needs_menon
def test_evaluate_upscale_independent_smoke(tmp_path):
    data = tmp_path / "set"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.round(photo_like(64, 80, seed=i) * 255).astype(np.uint8)).save(data / f"{i}.png")
    result = evaluate_upscale(data, 2, models=["upscale-x2"], degradation="independent", params={"input": "auto"})
    assert result["degradation"] == "independent" and result["images"] == 2
    assert result["params"] == {"input": "auto"} and "kernels" in result["independent_family"]
    methods = result["results"]
    assert {"bicubic", "lanczos", "upscale-x2", "upscale-x2 (no guard)"} == set(methods)
    for r in methods.values():
        assert set(r) == {"psnr", "ssim", "seconds", "colour_shift", "colour_shift_input", "backprojection_psnr",
                          "bokeh_hf_ratio", "colour_shift_quiet_input"}
        assert r["bokeh_hf_ratio"] > 0 and 0 < r["ssim"] <= 1
    assert methods["bicubic"]["bokeh_hf_ratio"] == 1.0
    assert 0 < result["bokeh_truth_ratio"]
    # the same camera without sensor noise: its input differs from the noisy one, and bicubic keeps the
    # noisy input's means (about 0 against it) while sitting that far from the noise-free one
    assert result["input_noise_colour_shift"] > 0
    assert methods["bicubic"]["colour_shift_input"] < methods["bicubic"]["colour_shift_quiet_input"]
    table = format_table(result)
    assert "bokeh HF / bicubic" in table and "the noise-free input vs the noisy input itself" in table


@needs_menon
def test_the_noise_free_twin_is_the_same_draw_without_noise():
    y, x = np.mgrid[0:64, 0:80].astype(np.float32)  # a smooth scene: what varies pixel to pixel is noise
    truth = np.stack([0.3 + 0.3 * x / 80, 0.4 + 0.2 * y / 64, 0.35 + 0 * x], -1).astype(np.float32)
    _, noisy, _, params = independent.independent_lr(truth, 2, 3)
    _, quiet, _, quiet_params = independent.independent_lr(truth, 2, 3, noise=False)
    assert params == quiet_params and quiet.shape == noisy.shape
    # noise shows as fine variance the quiet twin lacks; the picture underneath is the same
    hp = lambda x: np.var(x[1:, :, 1] - x[:-1, :, 1])  # noqa: E731
    assert hp(noisy) > hp(quiet) and np.abs(noisy.mean((0, 1)) - quiet.mean((0, 1))).max() < 0.02


@pytest.mark.skipif(not RAW.is_dir(), reason="the shared RAW samples are not beside the repo")
def test_evaluate_upscale_rawbin_smoke():
    # sorted: Blackmagic.dng (evaluated, tiny crop), GOPR0024.GPR (skipped: LibRaw cannot read it)
    result = evaluate_upscale(RAW, 2, models=["upscale-x2"], degradation="rawbin", limit=2, max_half_pixels=20_000)
    assert result["degradation"] == "rawbin"
    assert result["images"] + len(result["skipped"]) == 2 and result["images"] >= 1
    for name, crop in result["crops"].items():
        top, left, h, w = crop["crop"]
        assert (h // 2) * (w // 2) <= 20_000 and name in result["per_file"]
    for r in result["results"].values():
        assert set(r) == {"psnr", "ssim", "seconds", "colour_shift", "colour_shift_input", "backprojection_psnr"}
        assert 20 < r["psnr"] < 60
    table = format_table(result)
    assert "per file" in table and all(f"skipped {f}" in table for f in result["skipped"])
