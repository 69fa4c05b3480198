"""Engine: manifest + sha256, providers, tiled inference, the pipeline."""

import shutil

import numpy as np
import pytest

from conftest import photo_like
from truepix.engine import models
from truepix.engine.pipeline import EngineOptions, enhance, run_model
from truepix.engine.tiling import run_tiled, tile_starts
from truepix.errors import ModelError
from truepix.recipes import Recipe, Step

# The lens test below measured +1.33 dB on the soft photo and -1.60 dB on the sharp one (lens v1; the
# model before its bokeh/sharp fine-tune lost 2.3 dB there): a regression bound, and the known limit
# that keeps the lens step out of the default `develop` recipe (models/README.md).
LENS_GAIN_DB, LENS_SHARP_COST_DB = 0.9, 2.2


def _net(name="upscale-x2"):
    info = models.get_model(name)
    sess = models.session(info, "cpu", 2)
    inp = sess.get_inputs()[0].name
    return info, (lambda patch: sess.run(None, {inp: patch})[0])


def test_tiled_output_matches_whole_image():
    info, net = _net()
    img = photo_like(384, 512)
    whole = net(np.ascontiguousarray(img.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
    shapes = []

    def spy(patch):
        shapes.append(patch.shape)
        return net(patch)

    tiled = run_tiled(spy, img, info.scale, tile=128, pad=info.receptive_radius, overlap=8)
    assert tiled.shape == whole.shape == (768, 1024, 3)
    assert np.abs(tiled - whole).max() < 1e-3
    # Memory follows the tile: no call ever saw more than tile + 2 * pad pixels a side.
    assert len(shapes) > 4
    assert max(max(s[2], s[3]) for s in shapes) <= 128 + 2 * info.receptive_radius


def test_feathering_hides_seams_when_context_is_short():
    """With less context than the receptive field, tiles disagree a little; the blend leaves no seam."""
    info, net = _net()
    img = photo_like(256, 256, seed=3)
    whole = net(np.ascontiguousarray(img.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
    tiled = run_tiled(net, img, 2, tile=96, pad=2, overlap=16)
    err = np.abs(tiled - whole).mean(axis=2)
    assert err.max() < 0.05
    # The error along seams stays as small as a 1/255 step on average.
    starts = tile_starts(256, 96, 16)
    seam_cols = np.concatenate([np.arange(2 * s, 2 * s + 32) for s in starts[1:]])
    assert err[:, seam_cols].mean() < 1 / 255


@pytest.mark.parametrize("h,w,tile,overlap", [(37, 53, 16, 4), (100, 100, 100, 8), (129, 61, 32, 8), (5, 300, 64, 16)])
def test_blend_weights_are_a_partition_of_unity(h, w, tile, overlap, rng):
    img = rng.random((h, w, 2), dtype=np.float32)

    def nearest_x3(patch):
        return patch.repeat(3, axis=2).repeat(3, axis=3)

    out = run_tiled(nearest_x3, img, 3, tile=tile, pad=0, overlap=overlap)
    np.testing.assert_allclose(out, img.repeat(3, axis=0).repeat(3, axis=1), atol=1e-6)


def test_tile_must_exceed_overlap():
    with pytest.raises(ValueError):
        run_tiled(lambda p: p, np.zeros((10, 10, 3), np.float32), 1, tile=16, overlap=8)


def test_manifest_sha256_is_checked(tmp_path):
    src = models.default_model_dir()
    shutil.copy(src / "manifest.toml", tmp_path / "manifest.toml")
    info = models.load_manifest(src)["upscale-x2"]
    data = bytearray(info.path.read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / info.path.name).write_bytes(bytes(data))
    broken = models.load_manifest(tmp_path)["upscale-x2"]
    with pytest.raises(ModelError, match="sha256"):
        models.verify(broken)
    (tmp_path / info.path.name).unlink()
    with pytest.raises(ModelError, match="missing"):
        models.verify(broken)


def test_unknown_model_lists_the_installed_ones():
    with pytest.raises(ModelError, match="upscale-x2"):
        models.get_model("no-such-model")


def test_provider_choice_falls_back_to_cpu_with_a_reason():
    providers, why = models.choose_providers("cuda")
    if "CUDAExecutionProvider" not in models.available_providers():
        assert providers == ["CPUExecutionProvider"]
        assert "falling back" in why and "CUDAExecutionProvider" in why
    providers, why = models.choose_providers("auto")
    assert providers[-1] == "CPUExecutionProvider" and why


def test_enhance_doubles_size_keeps_colour_and_beats_bicubic():
    from truepix.resize import imresize

    truth = photo_like(128, 160, seed=5)
    lin_truth = truth ** 2.2
    small = imresize(lin_truth, 0.5).clip(0, 1).astype(np.float32)
    res = enhance(small, None, Recipe("t", (Step("upscale-x2"),)), EngineOptions(tile=64))
    assert res.pixels.shape == (128, 160, 3) and res.pixels.dtype == np.float32
    assert res.models == ["upscale-x2@1"]
    assert res.fidelity["colour_shift_mean"] < 0.5
    assert res.fidelity["backprojection_psnr_db"] > 35
    assert abs(res.pixels.mean() - small.mean()) < 2e-3


def test_enhance_greyscale_and_alpha():
    grey = photo_like(40, 48)[..., :1].copy()
    alpha = np.zeros((40, 48), np.float32)
    alpha[10:30, 12:36] = 1.0
    res = enhance(grey, alpha, Recipe("t", (Step("upscale-x2"),)))
    assert res.pixels.shape == (80, 96, 1)
    assert res.alpha.shape == (80, 96)
    assert res.alpha.min() >= 0 and res.alpha.max() <= 1
    assert res.alpha[40, 48] == pytest.approx(1.0, abs=1e-3) and res.alpha[2, 2] == pytest.approx(0.0, abs=1e-3)


def test_every_built_in_recipe_runs_on_shipped_models():
    from truepix.recipes import BUILTIN

    shipped = models.load_manifest()
    for recipe in BUILTIN.values():
        for step in recipe.steps:
            models.verify(shipped[step.model])  # present, and its sha256 matches the manifest
    scales = {name: np.prod([shipped[s.model].scale for s in r.steps]) for name, r in BUILTIN.items()}
    assert scales == {"upscale": 2, "upscale-x4": 4, "upscale-camera": 2, "upscale-x4-camera": 4, "denoise": 1,
                      "lens": 1, "develop": 2, "develop-tiff": 2}  # a demosaic's scale counts from the packed planes


def test_the_camera_trained_model_beats_bicubic_on_what_a_camera_records():
    from PIL import Image

    from conftest import REPO
    from truepix.evaluate.camera import camera_lr, crop_for
    from truepix.evaluate.metrics import psnr, rgb_to_y
    from truepix.resize import imresize

    # A real photo (the bundled sample), recorded by the held-out simulated camera: lens, OLPF,
    # Bayer CFA, ISO 110 noise, 14-bit raw, demosaic.
    photo = np.asarray(Image.open(REPO / "samples" / "colorchart.jpg").convert("RGB"), np.float32) / 255
    truth = crop_for(photo[200:392, 300:556], 2)
    lr, _ = camera_lr(truth, 2, index=1)
    res = enhance(lr, None, Recipe("t", (Step("upscale-x2-camera"),)), EngineOptions(tile=48))

    def y(a):
        return rgb_to_y(a[4:-4, 4:-4])

    ours = psnr(y(res.pixels), y(truth), peak=255.0)
    bicubic = psnr(y(imresize(lr, 2.0).clip(0, 1)), y(truth), peak=255.0)
    assert ours > bicubic + 1.5  # measured: 37.2 against 33.3 dB (v1: 37.0)


def test_the_shipped_denoiser_removes_the_noise_it_is_told_of_or_estimates():
    from PIL import Image

    from conftest import REPO
    from truepix.evaluate.metrics import psnr

    photo = np.asarray(Image.open(REPO / "samples" / "colorchart.jpg").convert("RGB"), np.float32) / 255
    truth = photo[200:328, 300:428]
    noisy = (truth + np.random.default_rng(0).normal(0, 25 / 255, truth.shape)).astype(np.float32)
    info = models.get_model("denoise")

    def score(params):
        out = run_model(info, noisy, EngineOptions(tile=64), params=params)
        return psnr(np.clip(out, 0, 1) * 255, truth * 255, peak=255.0)

    told, blind = score({"noise": 25}), score({})
    before = psnr(np.clip(noisy, 0, 1) * 255, truth * 255, peak=255.0)
    assert told > before + 12 and abs(blind - told) < 0.5  # measured: 21.5 -> 36.6 dB, blind the same
    assert before < score({"noise": 25, "strength": 0.5}) < told - 5  # half strength keeps half the noise
    assert score({"noise": 5}) < told - 5  # told of less noise, it removes less


def test_the_shipped_lens_optimizer_sharpens_a_soft_photo_without_halos_or_more_grain():
    from PIL import Image

    from conftest import REPO
    from truepix.colorimetry import linear_to_srgb, srgb_to_linear
    from truepix.evaluate.demosaic import psnr_rgb
    from truepix.evaluate.lens import HELD_OUT_LENSES, flat_field, highlight_disc, photograph, psfs_at
    from truepix.recipes import BUILTIN

    photo = np.asarray(Image.open(REPO / "samples" / "colorchart.jpg").convert("RGB"), np.float32) / 255
    truth = photo[230:358, 450:578]  # the chart's printed edge and lettering
    rng = np.random.default_rng(3)
    psfs, _, _ = psfs_at(HELD_OUT_LENSES[0], *truth.shape[:2], "corner")  # a held-out lens, at a corner
    recipe, opts = BUILTIN["lens"], EngineOptions(tile=64)

    def lens(linear):  # the built-in recipe, through the tiled engine and the fidelity guard
        return np.clip(enhance(np.clip(linear, 0, 1), None, recipe, opts).pixels, 0, 1)

    soft = photograph(srgb_to_linear(truth), psfs, rng)
    before = psnr_rgb(linear_to_srgb(np.clip(soft, 0, 1)), truth, 8)
    after = psnr_rgb(linear_to_srgb(lens(soft)), truth, 8)
    assert after > before + LENS_GAIN_DB, (before, after)
    flat, _ = flat_field(psfs, rng)
    assert np.std(lens(flat)[8:-8, 8:-8]) <= 1.1 * np.std(flat[8:-8, 8:-8])  # the grain is not amplified
    disc, _, ring = highlight_disc(psfs, rng)
    ground = float(linear_to_srgb(np.float32(0.18)))
    halo = max(0.0, ground - float(linear_to_srgb(lens(disc))[ring].min())) * 255
    uncorrected = max(0.0, ground - float(linear_to_srgb(np.clip(disc, 0, 1))[ring].min())) * 255
    assert halo <= uncorrected + 2, (halo, uncorrected)  # no dark ring around a clipped highlight
    sharp = np.clip(srgb_to_linear(truth) + rng.normal(0, 0.003, truth.shape), 0, 1).astype(np.float32)
    kept = psnr_rgb(linear_to_srgb(sharp), truth, 8)
    assert psnr_rgb(linear_to_srgb(lens(sharp)), truth, 8) > kept - LENS_SHARP_COST_DB  # a sharp photo stays


def test_unknown_model_in_recipe_is_a_clear_error():
    from truepix.errors import RecipeError

    with pytest.raises(RecipeError, match="unknown model 'nope'"):
        enhance(np.zeros((8, 8, 3), np.float32), None, Recipe("bad", (Step("nope"),)))
