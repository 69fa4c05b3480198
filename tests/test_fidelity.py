"""The fidelity guard: low frequencies re-anchored, detail kept, honest report."""

import numpy as np

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
    from truepix.colorimetry import delta_e2000

    # Sharma, Wu & Dalal (2005) test data, pairs 1, 7 and 17.
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [73.0, 25.0, -18.0]])
    np.testing.assert_allclose(delta_e2000(lab1, lab2), [2.0425, 2.3669, 27.1492], atol=1e-4)


def test_transfer_curves_in_place_on_any_layout():
    from truepix.colorimetry import linear_to_srgb, srgb_to_linear

    a = np.asfortranarray(np.random.default_rng(0).random((40, 30, 3), dtype=np.float32))
    want = srgb_to_linear(np.ascontiguousarray(a))
    got = srgb_to_linear(a, out=a)
    assert got is a
    np.testing.assert_array_equal(a, want)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(0.5)), 0.5, atol=1e-6)
