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


def test_train_export_and_run_through_engine(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        Image.fromarray(np.round(photo_like(80, 96, seed=i) * 255).astype(np.uint8)).save(data / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "daemon")])}
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
