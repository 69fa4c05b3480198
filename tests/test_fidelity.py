"""The fidelity guard: low frequencies re-anchored, detail kept, honest report."""

import numpy as np
import pytest

from conftest import photo_like
from truepix.engine import fidelity


def _nearest(img, s):
    return img.repeat(s, axis=0).repeat(s, axis=1)


def test_reanchor_removes_colour_and_brightness_drift_but_keeps_detail():
    inp = photo_like(96, 80)
    out = _nearest(inp, 2)
    detail = np.zeros_like(out)
    detail[::2, ::2] = 0.02
    detail[1::2, 1::2] = -0.02  # zero-mean checkerboard: pure high frequency
    drifted = out + detail + np.array([0.04, -0.03, 0.0], np.float32)  # colour cast + brightness
    before = fidelity.report(np.clip(drifted, 0, 1), inp, 2)
    corrected = drifted.copy()
    fidelity.reanchor(corrected, inp, 2)
    after = fidelity.report(np.clip(corrected, 0, 1), inp, 2)
    assert before["colour_shift_mean"] > 2.0
    assert after["colour_shift_mean"] < 0.3
    assert after["backprojection_psnr_db"] > before["backprojection_psnr_db"] + 10
    # Each channel's mean is back on the input's.
    np.testing.assert_allclose(corrected.mean(axis=(0, 1)), inp.mean(axis=(0, 1)), atol=2e-3)
    # The high-frequency detail the "network" added is still there.
    residual = corrected - fidelity.area_downscale(corrected, 2).repeat(2, 0).repeat(2, 1)
    assert np.corrcoef(residual[..., 0].ravel(), detail[..., 0].ravel())[0, 1] > 0.9


def test_report_of_a_faithful_output():
    inp = photo_like(64, 64)
    rep = fidelity.report(_nearest(inp, 2), inp, 2)
    assert rep["colour_shift_mean"] < 1e-3
    assert rep["backprojection_psnr_db"] >= 100


def test_block_means_with_partial_edge_blocks():
    img = np.arange(5 * 7, dtype=np.float32).reshape(5, 7, 1)
    m = fidelity.block_means(img, 4)
    assert m.shape == (2, 2, 1)
    assert m[1, 1, 0] == img[4:, 4:, 0].mean()
    assert m[0, 0, 0] == img[:4, :4, 0].mean()


def test_delta_e2000_reference_pairs():
    from truepix.colour import delta_e2000

    # Sharma, Wu & Dalal (2005) test data, pairs 1, 7 and 17.
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [73.0, 25.0, -18.0]])
    np.testing.assert_allclose(delta_e2000(lab1, lab2), [2.0425, 2.3669, 27.1492], atol=1e-4)


def test_transfer_curves_in_place_on_any_layout():
    from truepix.colour import linear_to_srgb, srgb_to_linear

    a = np.asfortranarray(np.random.default_rng(0).random((40, 30, 3), dtype=np.float32))
    want = srgb_to_linear(np.ascontiguousarray(a))
    got = srgb_to_linear(a, out=a)
    assert got is a
    np.testing.assert_array_equal(a, want)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(0.5)), 0.5, atol=1e-6)


def test_reanchor_tolerance_keeps_small_corrections_and_removes_the_excess():
    inp = np.full((32, 32, 3), 0.5, np.float32)
    small = np.full((64, 64, 3), 0.52, np.float32)  # 4% off: a denoiser's legitimate bias correction
    fidelity.reanchor(small, inp, 2, block=16, tolerance=0.1)
    assert np.allclose(small, 0.52, atol=1e-6)
    big = np.full((64, 64, 3), 0.8, np.float32)  # 60% off: a drift the guard must pull back
    fidelity.reanchor(big, inp, 2, block=16, tolerance=0.1)
    assert np.allclose(big, 0.5 * 1.1 + 0.0005, atol=1e-5)  # down to the edge of the tolerance
    exact = np.full((64, 64, 3), 0.8, np.float32)
    fidelity.reanchor(exact, inp, 2, block=16)
    assert np.allclose(exact, 0.5, atol=1e-6)


def test_camera_models_are_anchored_in_linear_light(tmp_path):
    """A row with anchor = "linear" makes the guard keep linear means (within its tolerance)."""
    import shutil

    from truepix.engine import models
    from truepix.engine.pipeline import enhance
    from truepix.recipes import Recipe, Step

    src = models.default_model_dir()
    shutil.copy(src / "upscale-x2.onnx", tmp_path)
    text = (src / "manifest.toml").read_text()
    (tmp_path / "manifest.toml").write_text(text.replace('name = "upscale-x2"\n', 'name = "upscale-x2"\n'
                                                         'anchor = "linear"\nanchor_block = 8\n', 1))
    info = models.load_manifest(tmp_path)["upscale-x2"]
    assert info.anchor == "linear"
    img = np.clip(np.random.default_rng(0).normal(0.05, 0.03, (48, 48, 3)), 0, 1).astype(np.float32)
    out = enhance(img, None, Recipe("r", (Step("upscale-x2"),)), model_dir=tmp_path).pixels
    lin_in = img.reshape(6, 8, 6, 8, 3).mean(axis=(1, 3))
    lin_out = out.reshape(6, 16, 6, 16, 3).mean(axis=(1, 3))
    assert np.abs(lin_out - lin_in).max() < 2e-3  # linear block means kept (the output is linear)


def test_colour_shift_averages_light_so_detail_is_not_a_colour_shift():
    # Input: flat mid-grey, 0.5 in linear light.  Output: a checkerboard of 0.2 and 0.8 linear,
    # which sends every block exactly the same light, only sharper.  Averaging sRGB code values
    # would call it ~3 dE00 darker (the curve is concave); averaging light calls it what it is.
    from truepix.colour import linear_to_srgb

    inp = np.full((32, 32, 3), linear_to_srgb(np.float32(0.5)), np.float32)
    lin = np.full((64, 64, 3), 0.2, np.float32)
    lin[::2, ::2] = lin[1::2, 1::2] = 0.8
    rep = fidelity.report(linear_to_srgb(lin), inp, 2)
    assert rep["colour_shift_mean"] < 0.05
    # A real change of light in one channel is still seen.
    lin[..., 2] *= 0.8
    assert fidelity.report(linear_to_srgb(lin), inp, 2)["colour_shift_mean"] > 3.0


def test_linear_reanchor_converts_only_what_it_corrects_and_equals_the_dense_path():
    """reanchor(linear=True) on sRGB-encoded arrays = decode everything, anchor light, encode —
    but pixels whose correction is zero are left exactly as they were (that is what makes the
    guard of a 96 MP camera output cheap)."""
    from truepix.colour import linear_to_srgb, srgb_to_linear

    rng = np.random.default_rng(3)
    inp = rng.uniform(0.2, 0.8, (128, 192, 3)).astype(np.float32)
    out = np.repeat(np.repeat(inp, 2, axis=0), 2, axis=1)
    out += rng.normal(0, 0.01, out.shape).astype(np.float32)
    out[40:72, 120:152] *= 1.4  # one drifted region, well past a 10% tolerance
    np.clip(out, 0, 1, out=out)
    dense = srgb_to_linear(out.copy())
    fidelity.reanchor(dense, srgb_to_linear(inp.copy()), 2, block=16, tolerance=0.1)
    dense = linear_to_srgb(np.clip(dense, 0, 1))
    sparse = out.copy()
    fidelity.reanchor(sparse, inp, 2, block=16, tolerance=0.1, linear=True)
    np.testing.assert_allclose(sparse, dense, atol=2e-4)
    changed = np.any(sparse != out, axis=2)
    assert changed[40:72, 120:152].all()  # the drift was pulled back...
    assert changed.mean() < 0.25  # ...and most of the image was never converted
    assert np.array_equal(sparse[:, :64], out[:, :64])


def test_guard_and_report_row_by_row_equal_the_whole_image():
    """Issue 16.7: the guard and its report take the output in bands as the tiles finish them
    (``Anchor``/``Report``), holding about two rows of blocks; the result is the whole-image one,
    whatever the band heights (the engine's bands are tile rows, not block multiples)."""
    rng = np.random.default_rng(5)
    inp = rng.uniform(0.05, 0.95, (75, 61, 3)).astype(np.float32)  # partial edge blocks both ways
    out = np.repeat(np.repeat(inp, 2, axis=0), 2, axis=1)
    out += rng.normal(0, 0.02, out.shape).astype(np.float32)
    out[30:90, 10:70] *= 1.3
    np.clip(out, 0, 1, out=out)
    for linear, tol in ((False, 0.0), (True, 0.1)):
        whole = out.copy()
        biggest = fidelity.reanchor(whole, inp, 2, block=16, tolerance=tol, linear=linear)
        anchor, rep = fidelity.Anchor(inp, 2, 16, tol, linear), fidelity.Report(inp, 2)
        streamed, y, held = np.full_like(out, np.nan), 0, 0
        for size in (1, 7, 33, 2, 64, 5, 150, 1000):
            band = out[y:y + size].copy()
            y += len(band)
            for y0, rows in anchor.push(band):
                streamed[y0:y0 + len(rows)] = rows
                rep.push(np.clip(rows, 0, 1))
            held = max(held, y - int(np.isfinite(streamed[:, 0, 0]).sum()))
            if y >= len(out):
                break
        assert y == len(out) and np.isfinite(streamed).all()
        np.testing.assert_allclose(streamed, whole, atol=1e-6)
        assert anchor.max_correction == pytest.approx(biggest)
        assert held <= 2 * 16 * 2  # never more than two rows of blocks held back
        assert rep.result() == fidelity.report(np.clip(whole, 0, 1), inp, 2)
