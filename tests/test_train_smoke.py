"""A seconds-long training run, export to ONNX and a pass through the real engine."""

import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, photo_like

pytest.importorskip("torch")
pytest.importorskip("onnx")


def _images(folder, n, h, w):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.round(photo_like(h, w, seed=i) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "daemon")])}


def test_train_export_and_run_through_engine(tmp_path):
    data = _images(tmp_path / "data", 6, 80, 96)
    env = ENV
    train = [sys.executable, "-m", "models.train.train", "--name", "smoke", "--iters", "20", "--batch", "4",
             "--patch", "24", "--ckpt-every", "10", "--val-count", "2", "--jitter", "1.0", "--channels", "8",
             "--body", "2", "--threads", "1", "--data", str(data), "--runs", str(tmp_path / "runs")]
    proc = subprocess.run(train, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "iter 20" in proc.stdout
    # Resuming a finished run is a no-op, not a restart.
    proc = subprocess.run(train, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert "resumed at iteration 20" in proc.stdout
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    export = [sys.executable, "-m", "models.train.export", "--name", "smoke-x2",
              "--checkpoint", str(tmp_path / "runs" / "smoke" / "best.pt"), "--models-dir", str(models_dir),
              "--eval", str(data)]
    proc = subprocess.run(export, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = tomllib.loads((models_dir / "manifest.toml").read_text())["models"][0]
    assert row["name"] == "smoke-x2" and row["scale"] == 2 and len(row["sha256"]) == 64
    assert row["metrics"]["data"]["psnr_y"] > 0 and "truepix eval" in row["metrics"]["command"]

    from truepix.engine import models
    from truepix.engine.pipeline import enhance
    from truepix.recipes import Recipe, Step

    info = models.load_manifest(models_dir)["smoke-x2"]
    models.verify(info)
    out = enhance(photo_like(30, 40), None, Recipe("s", (Step("smoke-x2"),)), model_dir=models_dir)
    assert out.pixels.shape == (60, 80, 3)


def test_camera_degradation_training_with_the_lab_loss(tmp_path):
    """The camera protocol end to end for a few iterations: simulated pairs, rlfn_anchor, Lab+MS-SSIM loss."""
    data = _images(tmp_path / "data", 4, 96, 112)
    env = ENV
    train = [sys.executable, "-m", "models.train.train", "--name", "cam", "--iters", "6", "--batch", "2",
             "--patch", "24", "--ckpt-every", "3", "--val-count", "1", "--arch", "rlfn_anchor", "--channels", "8",
             "--body", "1", "--threads", "1", "--degradation", "camera", "--camera-variants", "2", "--loss", "lab",
             "--defocus-prob", "0.5", "--defocus-max", "8", "--clean-share", "0.3",
             "--bicubic-share", "0.3", "--data", str(data), "--runs", str(tmp_path / "runs")]
    proc = subprocess.run(train, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "iter 6" in proc.stdout and "3 training images (6 pairs)" in proc.stdout


def test_scene_defocus_blurs_part_of_the_scene_with_the_given_probability(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # models/ is the repository's, not an installed package
    from models.train.data import make_camera_pairs, scene_defocus

    def detail(a):
        return float(np.abs(np.diff(a, axis=1)).mean())

    img = photo_like(96, 112, seed=3)
    rng = np.random.default_rng(0)
    assert scene_defocus(img, 2, rng, prob=0.0) is img
    blurred = scene_defocus(img, 2, rng, prob=1.0)
    assert blurred.shape == img.shape and detail(blurred) < 0.9 * detail(img)
    # The same draw with a larger largest radius blurs more.
    slight = scene_defocus(img, 2, np.random.default_rng(5), prob=1.0, max_radius=1.0)
    strong = scene_defocus(img, 2, np.random.default_rng(5), prob=1.0, max_radius=10.0)
    assert detail(strong) < detail(slight) < detail(img)

    path = tmp_path / "a.png"
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)
    sharp = make_camera_pairs([path], 2, 3, seed=1, log=None, defocus_prob=0.0)
    soft = make_camera_pairs([path], 2, 3, seed=1, log=None, defocus_prob=1.0)
    # Defocus belongs to the scene: the teacher carries it too.
    assert all(detail(b.hr) < detail(a.hr) for a, b in zip(sharp, soft, strict=True))

    # A bicubic share: the student is the teacher downscaled, as a developed file would be.
    from models.train.data import quantise8
    from truepix.resize import imresize

    for pair in make_camera_pairs([path], 2, 2, seed=1, log=None, bicubic_share=1.0):
        np.testing.assert_array_equal(pair.lr, quantise8(imresize(pair.hr, 0.5)))


def test_losses_agree_with_the_reference_colour_science(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(REPO))  # models/ is the repository's, not an installed package

    from models.train.losses import lab_msssim, ms_ssim, srgb_to_lab
    from truepix.colour import linear_srgb_to_lab, srgb_to_linear

    x = torch.rand(2, 3, 40, 40)
    ref = linear_srgb_to_lab(srgb_to_linear(x.numpy().transpose(0, 2, 3, 1).copy()))
    assert np.abs(srgb_to_lab(x).numpy().transpose(0, 2, 3, 1) - ref).max() < 1e-3
    assert abs(ms_ssim(x, x).item() - 1) < 1e-6 and ms_ssim(x, x.flip(-1)).item() < 0.5
    assert lab_msssim(x, x).item() < 1e-6 < lab_msssim(x, (x + 0.05).clamp(0, 1)).item()


def test_the_light_term_asks_for_the_texture_s_light_not_its_median_code_value(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(REPO))
    from models.train.losses import build, light_means, srgb_to_linear

    # A fine texture of 0.1 and 0.9 linear: flat output at its mean code value is darker than the
    # texture; flat output at the code value of its mean light sends the same light.
    lin = torch.full((1, 3, 16, 16), 0.1)
    lin[..., ::2, ::2] = lin[..., 1::2, 1::2] = 0.9
    enc = lambda v: torch.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)  # noqa: E731
    texture = enc(lin)
    flat_code = torch.full_like(texture, texture.mean().item())
    flat_light = enc(torch.full_like(lin, 0.5))
    assert srgb_to_linear(flat_code).mean() < 0.45
    assert light_means(flat_light, texture, 8).item() < 1e-5
    assert light_means(flat_code, texture, 8).item() > 0.05
    loss = build("lab+light", scale=2)
    assert loss(texture, texture).item() < 1e-6


def test_init_takes_every_matching_tensor_of_an_x2_model_for_x4(tmp_path):
    import torch

    sys.path.insert(0, str(REPO))
    from models.train import archs
    from models.train.train import init_from

    x2 = archs.build("rlfn_anchor", scale=2, channels=8, blocks=2)
    torch.save({"model": x2.state_dict()}, tmp_path / "x2.pt")
    x4 = archs.build("rlfn_anchor", scale=4, channels=8, blocks=2)
    said = init_from(x4, tmp_path / "x2.pt")
    theirs, ours = x2.state_dict(), x4.state_dict()
    same = [k for k in ours if ours[k].shape == theirs[k].shape]
    assert 0 < len(same) < len(ours) and said.startswith(f"{len(same)} of {len(ours)} tensors")
    for k in ours:  # matching tensors copied, the x4 upsampler left as initialised
        assert torch.equal(ours[k], theirs[k]) == (k in same)


def test_the_gamma_demosaic_net_starts_as_malvar_and_its_gamma_curve_inverts(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(REPO))
    from models.train import archs
    from truepix.simulate.cfa import mosaic, pack

    cd = pytest.importorskip("colour_demosaicing")
    rng = np.random.default_rng(3)
    img = rng.random((32, 40, 3)).astype(np.float32)
    m = mosaic(img, "RGGB")
    planes = torch.from_numpy(pack(m, "RGGB").transpose(2, 0, 1)[None].copy())
    ours = torch.nn.functional.pixel_shuffle(
        torch.nn.functional.conv2d(planes, archs.malvar_packed_weights(), padding=1), 2)[0].numpy().transpose(1, 2, 0)
    theirs = cd.demosaicing_CFA_Bayer_Malvar2004(m, "RGGB")
    assert np.abs(ours - theirs)[4:-4, 4:-4].max() < 1e-5  # away from the edges, where padding differs
    x = torch.linspace(-0.5, 3.0, 2001)
    assert torch.allclose(archs.decode_gamma(archs.encode_gamma(x)), x, atol=1e-5)
    # untrained (tail at ~0), the network is Malvar in the gamma domain: a smooth scene comes back
    net = archs.build("bayer_gamma_rlfn", channels=8, blocks=1).eval()
    yy, xx = np.mgrid[0:32, 0:40] / 40.0
    scene = np.stack([0.2 + 0.5 * xx, 0.3 + 0.2 * yy, 0.1 + 0.3 * xx * yy], axis=-1).astype(np.float32)
    inp = np.concatenate([pack(mosaic(scene, "RGGB"), "RGGB"), np.zeros((16, 20, 4), np.float32)], axis=-1)
    with torch.no_grad():
        out = net(torch.from_numpy(inp.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    assert np.abs(out - scene)[4:-4, 4:-4].max() < 0.02


def test_bayer_training_export_and_demosaic_eval(tmp_path):
    pytest.importorskip("colour_demosaicing")
    data = _images(tmp_path / "data", 5, 96, 112)
    train = [sys.executable, "-m", "models.train.train_bayer", "--name", "smoke", "--iters", "12", "--batch", "4",
             "--patch", "16", "--ckpt-every", "6", "--val-count", "2", "--channels", "8", "--blocks", "1",
             "--threads", "1", "--data", str(data), "--runs", str(tmp_path / "runs")]
    proc = subprocess.run(train, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "iter 12" in proc.stdout and "ISO3200" in proc.stdout
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    export = [sys.executable, "-m", "models.train.export", "--name", "demosaic-smoke",
              "--checkpoint", str(tmp_path / "runs" / "smoke" / "last.pt"), "--models-dir", str(models_dir),
              "--eval", str(data)]
    proc = subprocess.run(export, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = tomllib.loads((models_dir / "manifest.toml").read_text())["models"][0]
    assert row["task"] == "demosaic" and row["input"] == "bayer" and row["transfer"] == "linear"
    metrics = row["metrics"]["data"]
    assert metrics["psnr_rgb"] > 10 and "psnr_rgb_iso3200" in metrics
    assert metrics["best_classical_clean"].split(":")[0] in ("bilinear", "Malvar 2004", "Menon 2007") or \
        metrics["best_classical_clean"].startswith("LibRaw")
    # The evaluation command itself, on the exported model, with JSON out.
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "truepix.cli", "eval", "--task", "demosaic", "--data", str(data),
                           "--model", "demosaic-smoke", "--iso", "3200", "--json", str(out)],
                          capture_output=True, text=True, env={**ENV, "TRUEPIX_MODELS": str(models_dir)},
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json

    res = json.loads(out.read_text())
    assert res["conditions"] == ["clean", "ISO 3200"] and "Menon 2007" in res["results"]
    assert set(res["results"]["demosaic-smoke"]) >= {"clean", "ISO 3200"}
    assert res["command"].startswith("truepix eval --task demosaic") and "--iso 3200" in res["command"]
    # That measurement becomes the row's metrics, with its command, only if it measured this very file.
    attach = [sys.executable, "-m", "models.train.metrics", "--name", "demosaic-smoke", "--models-dir",
              str(models_dir), str(out)]
    proc = subprocess.run(attach, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    row = tomllib.loads((models_dir / "manifest.toml").read_text())["models"][0]
    got = row["metrics"]["data"]
    assert got["command"] == res["command"] and got["clean"] == res["results"]["demosaic-smoke"]["clean"]
    assert got["iso_3200"] == res["results"]["demosaic-smoke"]["ISO 3200"]
    assert got["clean_best_classical"] == res["best_classical"]["clean"]
    res["model_files"]["demosaic-smoke"]["sha256"] = "0" * 64
    out.write_text(json.dumps(res))
    proc = subprocess.run(attach, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60)
    assert proc.returncode != 0 and "measured another demosaic-smoke.onnx" in proc.stderr
    assert tomllib.loads((models_dir / "manifest.toml").read_text())["models"][0]["metrics"] == row["metrics"]


def test_denoise_training_export_and_the_engine_feeds_its_noise_map(tmp_path):
    data = _images(tmp_path / "data", 5, 96, 112)
    train = [sys.executable, "-m", "models.train.train_restore", "--name", "smoke", "--iters", "10", "--batch", "4",
             "--patch", "32", "--ckpt-every", "5", "--val-count", "2", "--channels", "8", "--blocks", "1",
             "--threads", "1", "--data", str(data), "--runs", str(tmp_path / "runs")]
    proc = subprocess.run(train, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "iter 10" in proc.stdout and "sigma25" in proc.stdout
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    export = [sys.executable, "-m", "models.train.export", "--name", "denoise-smoke",
              "--checkpoint", str(tmp_path / "runs" / "smoke" / "last.pt"), "--models-dir", str(models_dir),
              "--eval", str(data)]
    proc = subprocess.run(export, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = tomllib.loads((models_dir / "manifest.toml").read_text())["models"][0]
    assert row["task"] == "denoise" and row["input"] == "rgb+noise" and row["scale"] == 1
    assert row["metrics"]["data"]["psnr_sigma25"] > 5 and "psnr_sigma25_blind" in row["metrics"]["data"]

    from truepix.engine import models
    from truepix.engine.pipeline import EngineOptions, run_model
    from truepix.errors import RecipeError

    info = models.get_model("denoise-smoke", models_dir)
    img = photo_like(45, 67, noise=0.05)  # odd sides: the folding network gets a mirrored row/column
    full = run_model(info, img, EngineOptions(tile=32, overlap=4), params={"noise": 12})
    assert full.shape == img.shape
    half = run_model(info, img, EngineOptions(tile=32, overlap=4), params={"noise": 12, "strength": 0.5})
    np.testing.assert_allclose(half, 0.5 * full + 0.5 * img, atol=1e-5)  # strength blends toward the input
    off = run_model(info, img, EngineOptions(tile=32, overlap=4), params={"strength": 0})
    np.testing.assert_allclose(off, img, atol=1e-6)
    for bad in ({"noise": -1}, {"noise": "high"}, {"strength": 1.5}):
        with pytest.raises(RecipeError):
            run_model(info, img, EngineOptions(), params=bad)


def test_lens_training_runs_and_resumes(tmp_path):
    data = _images(tmp_path / "data", 4, 96, 112)
    train = [sys.executable, "-m", "models.train.train_restore", "--task", "lens", "--gamma", "--name", "lens",
             "--iters", "6", "--scene-defocus", "0.3", "--sharp-share", "0.2",
             "--batch", "2", "--patch", "32", "--ckpt-every", "3", "--val-count", "1", "--channels", "8",
             "--blocks", "1", "--threads", "1", "--data", str(data), "--runs", str(tmp_path / "runs")]
    proc = subprocess.run(train, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "iter 6" in proc.stdout and "val lens" in proc.stdout
    import torch

    state = torch.load(tmp_path / "runs" / "lens" / "last.pt", map_location="cpu")
    assert state["arch"] == "lens_gamma_rlfn" and state["arch_kwargs"]["extra"] == 2 and state["iter"] == 6
    # a fine-tune starts from those weights with its own schedule (not a resume)
    tune = [a if a != "lens" or i != train.index("--name") + 1 else "lens-tune" for i, a in enumerate(train)]
    tune[tune.index("--iters") + 1] = "2"
    proc = subprocess.run(tune + ["--init", str(tmp_path / "runs" / "lens" / "last.pt")], capture_output=True,
                          text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "initialised from" in proc.stdout and "iter 2 " in proc.stdout
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    one = tmp_path / "one"
    one.mkdir()
    (data / "0.png").rename(one / "0.png")
    export = [sys.executable, "-m", "models.train.export", "--name", "lens-smoke",
              "--checkpoint", str(tmp_path / "runs" / "lens" / "last.pt"), "--models-dir", str(models_dir),
              "--eval", str(one)]
    proc = subprocess.run(export, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = tomllib.loads((models_dir / "manifest.toml").read_text())["models"][0]
    assert row["task"] == "lens" and row["input"] == "rgb+field" and row["transfer"] == "linear"
    assert row["clamp_radius"] == 3 and row["noise_gate"] == 2.0  # the engine restrains its result
    m = row["metrics"]["one"]
    # six iterations from a near-identity start: close to the identity still
    assert 0.5 < m["noise_gain"] < 3 and 0 <= m["halo"] < 40
    # and on a sharp photo (no lens blur), within a few dB of leaving it as it is
    assert m["uncorrected_sharp_psnr"] > 35 and m["sharp_psnr"] > m["uncorrected_sharp_psnr"] - 10
    assert m["wiener_best_psnr"] > 0 and m["richardson_lucy_best_psnr"] > 0
    # Wiener at NSR 0.1 or 3 Richardson-Lucy iterations amplify the noise by at most 10%
    assert m["best_classical_noise_kept"].startswith(("Wiener", "Richardson"))


def test_lens_batches_teach_that_sharp_stays_sharp_and_bokeh_stays_bokeh(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from models.train.lens import LensSampler

    scenes = [photo_like(120, 130, seed=i, noise=0.0) for i in range(2)]
    sharp = LensSampler(scenes, 32, seed=1, sharp_share=1.0)
    x, y = sharp.batch(4)
    np.testing.assert_array_equal(x[:, :3], y)  # a perfect lens: the student is the teacher
    blurred = LensSampler(scenes, 32, seed=1)
    x, y = blurred.batch(4)
    assert np.abs(x[:, :3] - y).mean() > 1e-3  # a lens: the student is softer
    # Bokeh: with part of every scene out of focus the teacher itself is softer than the scene.
    def detail(a):
        return float(np.abs(np.diff(a, axis=-1)).mean())

    kept = LensSampler(scenes, 32, seed=1, scene_defocus=1.0, sharp_share=1.0)
    _, y_defocus = kept.batch(16)
    _, y_plain = LensSampler(scenes, 32, seed=1, sharp_share=1.0).batch(16)
    assert detail(y_defocus) < 0.95 * detail(y_plain)


def test_colour_variation_keeps_greys_grey_and_moves_colours_apart(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from models.train.bayer import vary_colour

    rng = np.random.default_rng(5)
    scene = np.zeros((8, 8, 3), np.float32)
    scene[:4] = 0.3                      # grey: stays as it is under any permutation and saturation
    scene[4:] = (0.5, 0.3, 0.1)          # a warm colour
    spreads = []
    for _ in range(20):
        out = vary_colour(scene, rng)
        assert out.dtype == np.float32 and out.min() >= 0
        np.testing.assert_allclose(out[:4], 0.3, atol=1e-6)
        assert abs(out[4:].mean() - scene[4:].mean()) < 0.11   # clipping at 0 may lift the mean a little
        spreads.append(float(out[4, 0].max() - out[4, 0].min()))
    assert min(spreads) < 0.4 * 0.9 < 0.4 * 1.1 < max(spreads)  # saturation both lowered and raised


def test_broad_family_training_of_the_kind_told_upscaler_and_its_estimator(tmp_path):
    """The broad family end to end for a few iterations: rlfn_cond started from a shipped ONNX model
    (its first layer widened for the kind plane), exported with its clean specialist; then the
    input-kind estimator trained and exported beside it; the engine runs both."""
    data = _images(tmp_path / "data", 4, 96, 112)
    extra = _images(tmp_path / "extra", 1, 200, 240)
    runs, models_dir = tmp_path / "runs", tmp_path / "models"
    train = [sys.executable, "-m", "models.train.train", "--name", "broad", "--iters", "4", "--batch", "2",
             "--patch", "24", "--ckpt-every", "2", "--val-count", "1", "--arch", "rlfn_cond", "--channels", "48",
             "--body", "3", "--threads", "1", "--degradation", "broad", "--camera-variants", "2",
             "--init", str(REPO / "models" / "upscale-x2-camera.onnx"), "--max-side", "96",
             "--data", str(data), "--extra-data", str(extra), "--runs", str(runs)]
    proc = subprocess.run(train, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "4 training images (8 pairs)" in proc.stdout and "initialised 30 of 30 tensors" in proc.stdout
    assert " clean " in proc.stdout and " camera " in proc.stdout  # the two held-out halves
    kind = [sys.executable, "-m", "models.train.train_kind", "--name", "input-kind", "--iters", "2", "--batch", "2",
            "--patch", "32", "--ckpt-every", "2", "--val-count", "1", "--variants", "1", "--width", "4",
            "--data", str(data), "--runs", str(runs), "--export", "--models-dir", str(models_dir)]
    proc = subprocess.run(kind, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (models_dir / "upscale-x2.onnx").write_bytes((REPO / "models" / "upscale-x2.onnx").read_bytes())
    shipped = tomllib.loads((REPO / "models" / "manifest.toml").read_text())["models"]
    from models.train.export import write_manifest

    manifest = models_dir / "manifest.toml"
    write_manifest(tomllib.loads(manifest.read_text())["models"] + [r for r in shipped if r["name"] == "upscale-x2"],
                   manifest)
    export = [sys.executable, "-m", "models.train.export", "--name", "smoke-adaptive", "--clean-model", "upscale-x2",
              "--checkpoint", str(runs / "broad" / "last.pt"), "--models-dir", str(models_dir)]
    proc = subprocess.run(export, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in tomllib.loads(manifest.read_text())["models"]}
    row = rows["smoke-adaptive"]
    assert row["input"] == "rgb+kind" and row["kind_model"] == "input-kind" and row["clean_model"] == "upscale-x2"
    assert rows["input-kind"]["task"] == "classify" and any("teachers" in d for d in row["training"]["data"])

    from truepix.engine.pipeline import enhance
    from truepix.recipes import Recipe, Step

    for params, label in (({"input": "camera"}, "smoke-adaptive@1"), ({"input": "clean"}, "upscale-x2@1"),
                          ({}, None)):
        out = enhance(photo_like(30, 40), None, Recipe("s", (Step("smoke-adaptive", params),)), model_dir=models_dir)
        assert out.pixels.shape == (60, 80, 3)
        assert label is None or out.models == [label]
        assert "input_kind_camera" in out.fidelity
