"""The default upscaler told what it upscales (engine/inputkind.py): input = auto | camera | clean, grain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.engine import models
from truepix.engine.fidelity import area_downscale
from truepix.engine import inputkind
from truepix.engine.inputkind import camera_weight, estimate
from truepix.engine.pipeline import enhance
from truepix.errors import RecipeError
from truepix.evaluate.metrics import psnr, sr_scores
from truepix.service.app import sample_photo
from truepix.recipes import BUILTIN, Recipe, Step
from truepix.resize import imresize

MODEL = "upscale-x2-adaptive"


def _sample() -> np.ndarray:
    """The bundled sample, sRGB float, cropped to a multiple of 4."""
    with Image.open(sample_photo()) as im:
        a = np.asarray(im.convert("RGB"), np.float32) / 255
    return np.ascontiguousarray(a[:a.shape[0] // 4 * 4, :a.shape[1] // 4 * 4])


def _up(lr_srgb: np.ndarray, guard: bool = True, **params) -> tuple[np.ndarray, dict]:
    result = enhance(srgb_to_linear(lr_srgb), None, Recipe("t", (Step(MODEL, params),), guard=guard))
    return linear_to_srgb(result.pixels), result.fidelity


def _camera_file(teacher: np.ndarray, iso: float = 3200) -> np.ndarray:
    """What a noisy camera (broad family, JPEG 80) records of ``teacher`` at half its resolution."""
    import dataclasses

    from truepix.simulate import family

    shot = family.sample_shot(np.random.default_rng(5), resized_share=0.0, camera_resized_share=0.0)
    shot = dataclasses.replace(shot, iso=iso, jpeg_quality=80, exposure_ev=0.0)
    return family.broad_student(teacher, 2, shot)


def test_the_default_recipe_runs_the_adaptive_upscaler_on_auto():
    assert [s.model for s in BUILTIN["upscale"].steps] == [MODEL]
    info = models.get_model(MODEL)
    assert info.input == "rgb+kind" and info.scale == 2 and info.kind_model == "input-kind"


def test_told_clean_it_restores_a_downsized_render_better_than_told_camera_and_than_bicubic():
    truth = _sample()
    lr = np.round(np.clip(imresize(truth, 0.5), 0, 1) * 255) / 255
    clean, report = _up(lr, input="clean")
    camera, _ = _up(lr, input="camera")
    bicubic = np.clip(imresize(lr, 2.0), 0, 1)
    p_clean = sr_scores(clean, truth, 2)[0]
    assert p_clean > sr_scores(camera, truth, 2)[0]
    assert p_clean > sr_scores(bicubic, truth, 2)[0] + 0.5
    assert report["input_kind_camera"] == 0.0 and "input_kind_p" not in report


def test_told_camera_it_removes_a_camera_files_noise_better_than_told_clean():
    truth = _sample()
    lr = _camera_file(truth)
    camera, _ = _up(lr, input="camera")
    clean, _ = _up(lr, input="clean")
    assert sr_scores(camera, truth, 2)[0] > sr_scores(clean, truth, 2)[0] + 0.3


def test_auto_tells_a_downsized_render_from_a_noisy_camera_file():
    truth = _sample()
    info = models.get_model(MODEL)
    rendered = np.round(np.clip(imresize(truth, 0.5), 0, 1) * 255) / 255
    assert estimate(info, rendered) < 0.5
    assert estimate(info, _camera_file(truth)) > 0.5
    _, report = _up(_camera_file(truth))
    p = report["input_kind_p"]
    assert p > 0.5 and report["input_kind_camera"] == round(camera_weight(p), 4)


def test_the_camera_share_is_0_below_the_unsure_band_1_above_it_and_linear_within():
    assert camera_weight(0.0) == camera_weight(0.49) == 0.0
    assert camera_weight(0.9) == camera_weight(1.0) == 1.0
    assert camera_weight(0.7) == pytest.approx(0.5) and camera_weight(0.6) == pytest.approx(0.25)


def test_an_unsure_estimate_blends_the_clean_and_the_camera_upscales(monkeypatch):
    lr = np.round(np.clip(imresize(_sample()[:128, :160], 0.5), 0, 1) * 255) / 255
    clean, _ = _up(lr, guard=False, input="clean")
    camera, _ = _up(lr, guard=False, input="camera")
    monkeypatch.setattr(inputkind, "estimate", lambda *a, **k: 0.6)  # a quarter of the way into the band
    result = enhance(srgb_to_linear(lr), None, Recipe("t", (Step(MODEL, {}),), guard=False))
    blended = linear_to_srgb(result.pixels)
    assert result.fidelity == {"input_kind_camera": 0.25, "input_kind_p": 0.6}
    assert result.models == ["upscale-x2@1 x0.75 + upscale-x2-adaptive@1 x0.25"]
    inside = ((np.minimum(clean, camera) > 1e-3) & (np.maximum(clean, camera) < 1 - 1e-3)).all(axis=2)  # unclipped
    assert inside.mean() > 0.9
    assert np.abs(blended - (0.75 * clean + 0.25 * camera))[inside].max() < 1e-4
    assert np.abs(blended - clean).max() > 0.01  # and it is neither of the two


def test_grain_puts_back_a_share_of_what_was_removed():
    truth = _sample()[:192, :256]
    lr = _camera_file(truth)
    outs = {g: _up(lr, input="camera", grain=g)[0] for g in (0.0, 0.5, 1.0)}
    back = {g: psnr(area_downscale(np.clip(o, 0, 1).astype(np.float32), 2), lr) for g, o in outs.items()}
    assert back[0.0] < back[0.5] < back[1.0]
    assert back[1.0] > 40  # all of it back: the output averages to the input (the guard's clipping aside)


@pytest.mark.parametrize("params, message", [({"input": "film"}, "input must be"), ({"grain": 2}, "grain must be"),
                                             ({"grain": True}, "grain must be")])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(RecipeError, match=message):
        _up(np.full((32, 32, 3), 0.5, np.float32), **params)
