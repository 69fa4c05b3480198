"""RAW development: reading mosaics, the Bayer network through the engine, linear DNG and rendered output."""

import shutil
import subprocess

import numpy as np
import pytest
import rawpy
import tifffile

from conftest import photo_like
from truepix import colour
from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.engine import models, rawnoise
from truepix.engine.develop import develop, to_rggb
from truepix.io import raw
from truepix.io.dng import write_cfa_dng
from truepix.process import process_file, read_raw
from truepix.recipes import BUILTIN, Recipe, Step, from_mapping
from truepix.simulate.cfa import PATTERNS, mosaic

BLACK, WHITE = 512, 16383


def smooth_scene(h=96, w=128, seed=0):
    """Linear light with soft colour gradients and a few edges: what a lens-blurred photo records."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.15 + 0.25 * x / w, 0.1 + 0.2 * y / h, 0.3 - 0.2 * x / w], axis=-1)
    img[h // 3:2 * h // 3, w // 4:w // 2] *= 1.8
    return np.clip(img, 0, 1).astype(np.float32)


def cfa_file(path, scene, pattern="RGGB", wb=(2.0, 1.0, 1.5), orientation=1, iso=None, noise=0.0, seed=0):
    """A 14-bit CFA DNG of ``scene`` (linear, white-balanced) as a camera with ``wb`` records it."""
    camera = np.clip(scene / np.asarray(wb, np.float32), 0, 1)
    m = mosaic(camera, pattern)
    if noise:
        m = m + np.random.default_rng(seed).normal(0, noise, m.shape)
    dn = np.clip(np.rint(BLACK + m * (WHITE - BLACK)), 0, WHITE).astype(np.uint16)
    write_cfa_dng(path, dn, pattern, white=WHITE, black=BLACK, neutral=1 / np.asarray(wb), iso=iso,
                  orientation=orientation)
    return path


@pytest.mark.parametrize("pattern", PATTERNS)
def test_read_mosaic_normalises_black_and_white_and_finds_the_pattern(tmp_path, pattern):
    scene = smooth_scene()
    path = cfa_file(tmp_path / f"{pattern}.dng", scene, pattern)
    mos = raw.read_mosaic(path)
    assert mos.pattern == pattern and mos.mosaic.dtype == np.float32 and mos.mosaic.shape == (96, 128)
    want = mosaic(np.clip(scene / np.float32([2, 1, 1.5]), 0, 1), pattern)
    assert np.abs(mos.mosaic - want).max() < 1e-4  # (DN - black) / (white - black)
    np.testing.assert_allclose(mos.wb, [2.0, 1.0, 1.5], rtol=1e-4)
    assert mos.cam_xyz is not None and mos.unique_camera_model  # ColorMatrix1 read from the DNG tags


@pytest.mark.parametrize("pattern", PATTERNS)
def test_to_rggb_puts_red_first_for_every_pattern(pattern):
    scene = np.zeros((6, 8, 3), np.float32)
    scene[..., 0] = 1.0  # only red light: red sites read 1, the others 0
    padded, top, left = to_rggb(mosaic(scene, pattern), pattern)
    assert padded.shape[0] % 2 == 0 and padded.shape[1] % 2 == 0
    assert padded[0::2, 0::2].min() == 1.0 and padded[1::2, 1::2].max() == 0.0 and padded[0::2, 1::2].max() == 0.0


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_the_shipped_demosaic_network_develops_a_raw_true_to_the_scene(tmp_path, pattern):
    scene = smooth_scene()
    mos = raw.read_mosaic(cfa_file(tmp_path / "s.dng", scene, pattern))
    dev = develop(mos, BUILTIN["develop"])
    assert dev.rgb.shape == (96, 128, 3) and dev.scale == 1 and dev.models == ["demosaic@" + str(
        models.get_model("demosaic").version)]
    inner = (slice(4, -4), slice(4, -4))
    err = linear_to_srgb(np.clip(dev.rgb, 0, 1))[inner] - linear_to_srgb(scene)[inner]
    psnr = 10 * np.log10(1 / np.mean(err ** 2))
    assert psnr > 30, psnr  # colour order right for every phase, brightness kept
    assert "noise" not in " ".join(dev.notes) or dev.noise_source


def test_develop_recipe_writes_a_linear_dng_raw_editors_read_as_a_raw(tmp_path):
    src = cfa_file(tmp_path / "shot.dng", smooth_scene(), "GRBG", iso=800, noise=0.002)
    before = src.read_bytes()
    res = process_file(src, BUILTIN["develop"])
    assert res.status == "done", res.error
    out = tmp_path / "shot-truepix-develop.dng"
    assert res.output == str(out) and src.read_bytes() == before
    with tifffile.TiffFile(out) as tif:
        tags = tif.pages.first.tags
        assert tags[262].value == 34892 and tags[277].value == 3  # LinearRaw, RGB
        assert bytes(tags[50706].value) == b"\x01\x04\x00\x00"
        assert tags[50717].value == (65535, 65535, 65535) and tags[50935].value == (1, 1)
        assert 50721 in tags and 50778 in tags and 50728 in tags and 50719 in tags and 50720 in tags
        xmp = tags[700].value.decode() if isinstance(tags[700].value, bytes) else tags[700].value
    assert "crs:Sharpness=\"0\"" in xmp.replace("'", '"') or "<crs:Sharpness>0<" in xmp
    assert "truepix:Enhanced" in xmp
    with rawpy.imread(str(out)) as r:
        assert r.raw_type == rawpy.RawType.Stack
        np.testing.assert_allclose(r.camera_whitebalance[:3], [2.0, 1.0, 1.5], rtol=1e-3)
        dev = r.postprocess(use_camera_wb=True, no_auto_bright=True, gamma=(1, 1), output_bps=16)
    with rawpy.imread(str(src)) as r:
        ref = r.postprocess(use_camera_wb=True, no_auto_bright=True, gamma=(1, 1), output_bps=16)
    # The same raw: white balance and colour applied by the reader give the same picture.
    np.testing.assert_allclose(dev.mean(axis=(0, 1)), ref.mean(axis=(0, 1)), rtol=0.03)
    assert res.fidelity["demosaic_anchor_max_correction"] >= 0
    assert any("raw noise" in n for n in res.notes)


def test_a_raw_recipe_can_add_the_lens_step_after_the_demosaic(tmp_path):
    src = cfa_file(tmp_path / "shot.dng", smooth_scene(), "RGGB", iso=400, noise=0.001)
    recipe = Recipe("raw-lens", (Step("demosaic"), Step("lens")), format="dng")
    res = process_file(src, recipe)
    assert res.status == "done", res.error
    assert [m.split("@")[0] for m in res.models] == ["demosaic", "lens"]
    with rawpy.imread(res.output) as r:
        dev = r.postprocess(use_camera_wb=True, no_auto_bright=True, gamma=(1, 1), output_bps=16)
    with rawpy.imread(str(src)) as r:
        ref = r.postprocess(use_camera_wb=True, no_auto_bright=True, gamma=(1, 1), output_bps=16)
    np.testing.assert_allclose(dev.mean(axis=(0, 1)), ref.mean(axis=(0, 1)), rtol=0.03)  # same light


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (libimage-exiftool-perl) is not installed")
def test_linear_dng_passes_exiftool_validate(tmp_path):
    src = cfa_file(tmp_path / "shot.dng", smooth_scene(), "RGGB", iso=400)
    res = process_file(src, BUILTIN["develop"])
    assert res.status == "done", res.error
    proc = subprocess.run(["exiftool", "-validate", "-error", "-warning", "-a", res.output],
                          capture_output=True, text=True, timeout=60)
    assert "Validate                        : OK" in proc.stdout, proc.stdout


@pytest.mark.skipif(shutil.which("darktable-cli") is None, reason="darktable is not installed")
def test_darktable_renders_the_linear_dng(tmp_path):
    src = cfa_file(tmp_path / "shot.dng", smooth_scene(192, 256), "RGGB")
    res = process_file(src, BUILTIN["develop"])
    assert res.status == "done", res.error
    jpg = tmp_path / "render.jpg"
    proc = subprocess.run(["darktable-cli", res.output, str(jpg), "--core", "--configdir", str(tmp_path / "dt"),
                           "--library", ":memory:"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0 and jpg.exists(), proc.stdout + proc.stderr
    from PIL import Image

    with Image.open(jpg) as im:
        assert im.size == (256, 192)
        px = np.asarray(im.convert("RGB"), np.float32)
    assert 10 < px.mean() < 245 and px.std() > 3  # a picture, not a blank frame


def test_develop_tiff_renders_in_the_recipes_colour_space_upright_with_its_icc(tmp_path):
    src = cfa_file(tmp_path / "shot.dng", smooth_scene(), "RGGB", orientation=6)
    recipe = from_mapping("pp", {"steps": [{"model": "demosaic"}], "colour_space": "prophoto"}, "test")
    res = process_file(src, recipe)
    assert res.status == "done", res.error
    with tifffile.TiffFile(res.output) as tif:
        page = tif.pages.first
        px = page.asarray()
        icc = bytes(page.tags[34675].value)
    assert px.shape == (128, 96, 3) and px.dtype == np.uint16  # turned upright: sensor 96x128, orientation 6
    assert icc == colour.icc("prophoto")


def test_icc_profiles_match_the_encoded_values():
    import io

    from PIL import Image, ImageCms

    lin = np.random.default_rng(0).uniform(0.05, 0.95, (16, 16, 3)).astype(np.float32)
    for space in ("adobe-rgb", "prophoto"):
        m = colour.xyz_d65_to(space) @ colour.SRGB_TO_XYZ
        enc = colour.encode(np.clip(lin @ m.T.astype(np.float32), 0, 1), space)
        prof = ImageCms.ImageCmsProfile(io.BytesIO(colour.icc(space)))
        im = Image.fromarray(np.round(enc * 255).astype(np.uint8))
        back = ImageCms.profileToProfile(im, prof, ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")),
                                         renderingIntent=1)
        got = np.asarray(back, np.float32) / 255
        assert np.abs(got - linear_to_srgb(lin)).max() < 3 / 255, space


def test_a_linear_dng_falls_back_to_librarys_data_with_a_note(tmp_path):
    src = cfa_file(tmp_path / "shot.dng", smooth_scene(), "RGGB")
    first = process_file(src, BUILTIN["develop"])
    linear = tmp_path / "linear.dng"
    shutil.copy(first.output, linear)
    with pytest.raises(raw.NotBayer) as e:
        raw.read_mosaic(linear)
    assert e.value.kind == "linear"
    mos = read_raw(linear)
    assert mos.mosaic is None and mos.rgb.shape == (96, 128, 3)
    assert "already demosaiced" in mos.notes[0] and "used as it is" in mos.notes[0]
    res = process_file(linear, BUILTIN["develop-tiff"], force=True)
    assert res.status == "done" and "already demosaiced" in res.notes[0]


def test_unreadable_raws_and_wrong_sources_get_actionable_messages(tmp_path):
    gpr = tmp_path / "GOPR0001.GPR"
    gpr.write_bytes(b"II*\0" + np.random.default_rng(0).bytes(5000))
    res = process_file(gpr, BUILTIN["develop"])
    assert res.status == "failed" and "GOPR0001.GPR" in res.error and "original untouched" in res.error
    jpg = tmp_path / "photo.jpg"
    from PIL import Image

    Image.fromarray(np.round(photo_like(32, 32) * 255).astype(np.uint8)).save(jpg)
    res = process_file(jpg, BUILTIN["develop"])
    assert res.status == "failed" and "not one" in res.error and "upscale" in res.error
    assert not list(tmp_path.glob("*-truepix*"))
    with pytest.raises(Exception, match="colour_space"):
        from_mapping("x", {"steps": [{"model": "demosaic"}], "colour_space": "cmyk"}, "test")


def test_the_noise_estimate_reads_a_simulated_sensor():
    from truepix.simulate.camera import PROFILES
    from truepix.simulate.cfa import pack
    from truepix.simulate.optics import apply_psf, gaussian_psf
    from truepix.simulate.sensor import add_sensor_noise, noise_variance, normalise_raw, quantise_raw

    nm = PROFILES["apsc24"].noise
    scene = apply_psf(srgb_to_linear(photo_like(256, 256, noise=0.0)), gaussian_psf(0.7)) * 0.4
    rng = np.random.default_rng(1)
    for iso in (1600, 6400):
        m = normalise_raw(quantise_raw(add_sensor_noise(mosaic(scene, "RGGB"), iso, nm, rng), nm), nm)
        scale, offset = rawnoise.estimate(pack(m, "RGGB"))
        for level in (0.02, 0.2):
            true = np.sqrt(noise_variance(level, iso, nm, quantised=True))
            assert 0.7 < np.sqrt(scale * level + offset) / true < 1.5, (iso, level)
    s0, o0 = rawnoise.from_iso(100)
    s1, o1 = rawnoise.from_iso(1600)
    assert s1 > s0 and o1 > o0  # higher ISO, noisier


def test_recipes_without_raw_steps_still_develop_raw_with_libraw(tmp_path):
    # The RGB path of RAW files is unchanged: `upscale` on a RAW goes through LibRaw's demosaic.
    src = cfa_file(tmp_path / "shot.dng", smooth_scene(48, 64), "RGGB")
    res = process_file(src, Recipe("u", (Step("upscale-x2"),)))
    assert res.status == "done" and (res.width, res.height) == (128, 96)


def test_simulated_raw_file_develops_and_benches(tmp_path):
    from PIL import Image

    from truepix.evaluate.bench import RAW_DEVELOP, RAW_LIBRAW, run_raw_bench
    from truepix.simulate import rawfile

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.round(photo_like(160, 240, seed=i) * 255).astype(np.uint8)).save(photos / f"{i}.png")
    dng = tmp_path / "sim.dng"
    assert rawfile.main(["--data", str(photos), "--out", str(dng), "--mp", "0.1", "--iso", "3200"]) == 0
    mos = raw.read_mosaic(dng)
    assert mos.pattern == "GBRG" and mos.iso == 3200 and mos.mosaic.shape == (256, 386)
    assert -0.05 < mos.mosaic.min() and mos.mosaic.max() <= 1.0
    cases = run_raw_bench([dng])
    assert [c["method"] for c in cases] == [RAW_DEVELOP, RAW_LIBRAW]
    for c in cases:
        assert "error" not in c, c
        assert c["input"] == "386x256" and c["seconds"] > 0 and c["peak_rss_mb"] > 0


def test_the_white_noise_estimate_reads_the_added_level():
    from truepix.engine.noiselevel import estimate_sigma

    clean = photo_like(200, 240, noise=0.0)
    rng = np.random.default_rng(3)
    for sigma in (5, 15, 25, 50):
        noisy = clean + rng.normal(0, sigma / 255, clean.shape).astype(np.float32)
        assert abs(estimate_sigma(noisy) * 255 - sigma) < 0.12 * sigma + 1.0, sigma


def test_an_xtrans_sensor_is_said_and_developed_by_libraw_instead(tmp_path):
    import tifffile as tf

    from truepix.io.dng import _rationals

    xtrans = np.array([[1, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 0], [2, 0, 1, 0, 2, 1],
                       [1, 1, 2, 1, 1, 0], [1, 1, 0, 1, 1, 2], [0, 2, 1, 2, 0, 1]])
    mosaic_dn = (np.random.default_rng(0).uniform(0.1, 0.5, (96, 120)) * 16383).astype(np.uint16)
    tags = [(50706, 1, 4, (1, 4, 0, 0), True), (50708, 2, 0, "X-Trans test body", True),
            (33421, 3, 2, (6, 6), True), (33422, 1, 36, tuple(int(v) for v in xtrans.ravel()), True),
            (50710, 1, 3, (0, 1, 2), True), (50711, 3, 1, 1, True), (50714, 4, 1, 0, True),
            (50717, 4, 1, 16383, True), (50721, 10, 9, _rationals(np.eye(3), True), True),
            (50778, 3, 1, 21, True), (50728, 5, 3, _rationals((0.5, 1, 0.6), False), True)]
    src = tmp_path / "DSCF0001.dng"
    with tf.TiffWriter(src) as tw:
        tw.write(mosaic_dn, photometric=32803, extratags=tags, metadata=None)
    with pytest.raises(raw.NotBayer) as e:
        raw.read_mosaic(src)
    assert e.value.kind == "xtrans"
    res = process_file(src, BUILTIN["develop-tiff"])
    assert res.status == "done", res.error
    assert "X-Trans" in res.notes[0] and "LibRaw" in res.notes[0] and (res.width, res.height) == (120, 96)


def test_demosaic_strength_keeps_more_of_the_grain():
    from truepix.engine.develop import demosaic

    scene = smooth_scene(128, 160)
    rng = np.random.default_rng(5)
    m = mosaic(np.clip(scene / np.float32([2, 1, 1.5]), 0, 1), "RGGB") + rng.normal(0, 0.02, (128, 160))
    mos = raw.RawMosaic(path=None, mosaic=m.astype(np.float32), pattern="RGGB", wb=np.array([2.0, 1.0, 1.5]),
                        cam_xyz=None, noise_profile=(0.0, 0.02 ** 2))
    info = models.get_model("demosaic")
    flat = (slice(8, 40), slice(8, 36))  # a smooth corner of the scene
    sd = {s: float((demosaic(mos, info, strength=s)[0] - scene)[flat].std()) for s in (0.0, 0.5, 1.0)}
    assert sd[1.0] < sd[0.5] < sd[0.0], sd
