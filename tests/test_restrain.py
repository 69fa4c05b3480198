"""The lens optimizer's restraint: no overshoot past the input's local range, grain left alone."""

import numpy as np

from truepix.engine.restrain import local_range, noise_gate, restrain


def test_local_range_is_the_window_min_and_max():
    rng = np.random.default_rng(0)
    img = rng.random((13, 17, 3)).astype(np.float32)
    lo, hi = local_range(img, 2)
    p = np.pad(img, ((2, 2), (2, 2), (0, 0)), mode="edge")
    for y, x in ((0, 0), (6, 8), (12, 16), (3, 15)):
        win = p[y:y + 5, x:x + 5].reshape(-1, 3)
        np.testing.assert_array_equal(lo[y, x], win.min(axis=0))
        np.testing.assert_array_equal(hi[y, x], win.max(axis=0))


def test_a_sharpened_edge_loses_its_halo_but_keeps_its_steepness():
    x = np.arange(40, dtype=np.float32)
    blurred = np.clip((x - 17) / 6, 0, 1) * 0.8 + 0.1            # a soft edge from 0.1 to 0.9
    sharpened = blurred + 0.6 * (blurred - np.convolve(np.pad(blurred, 3, mode="edge"), np.ones(7) / 7, "valid"))
    inp = np.repeat(blurred[None, :, None], 5, axis=0).repeat(3, axis=2)
    out = np.repeat(sharpened[None, :, None], 5, axis=0).repeat(3, axis=2).astype(np.float32)
    assert out.min() < 0.08 and out.max() > 0.92                  # unsharp masking overshoots both sides
    restrain(out, inp, clamp_radius=3)
    assert out.min() >= 0.1 - 1e-6 and out.max() <= 0.9 + 1e-6    # no halo beyond the two levels
    mid = slice(18, 23)
    assert np.all(np.abs(np.diff(out[2, mid, 0])) >= np.abs(np.diff(inp[2, mid, 0])) - 1e-6)  # still as steep


def test_the_noise_gate_closes_on_flat_noise_and_opens_on_edges():
    rng = np.random.default_rng(1)
    sigma = 0.01
    img = np.full((40, 40, 3), 0.3, np.float32)
    img[:, 20:] = 0.7
    img += rng.normal(0, sigma, img.shape).astype(np.float32)
    g = noise_gate(img, sigma, k=2.0)[:, :, 0]
    assert g[5:35, 3:15].mean() < 0.05                             # flat: the correction is dropped
    assert g[5:35, 19:21].mean() > 0.95                            # at the edge it passes
    grain = rng.normal(0, sigma, img.shape).astype(np.float32)     # a "correction" that sharpens the grain
    out = img + grain
    restrain(out, img, gate=2.0, sigma=sigma)
    assert np.std((out - img)[5:35, 3:15]) < 0.1 * sigma
