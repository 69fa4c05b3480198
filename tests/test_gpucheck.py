"""Issue 19: the GPU check kit is ready for the first machine with an NVIDIA GPU (tools/gpu-check);
here, without one, its parts run on the CPU and it says plainly that there is no GPU."""

from __future__ import annotations

import os
import pathlib
import subprocess

import onnxruntime
import pytest

from truepix.engine import models
from truepix.evaluate import gpucheck

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_shipped_model_runs_on_both_providers_of_the_comparison(capsys):
    result = gpucheck.compare("cpu", side=64, repeat=1)
    assert [r["model"] for r in result["models"]] == list(models.load_manifest())
    assert all(r["max_abs_diff"] == 0.0 and r["provider_used"] == "CPUExecutionProvider" for r in result["models"])


@pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="a CUDA build here")
def test_a_gpu_provider_that_is_not_really_used_is_reported(capsys):
    assert gpucheck.main(["--provider", "cuda", "--tile", "64"]) == 1
    assert "cuda was not used for upscale-x2" in capsys.readouterr().err


def test_the_script_says_there_is_no_gpu_and_exits_3(tmp_path):
    proc = subprocess.run([str(ROOT / "tools" / "gpu-check")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out")})
    assert proc.returncode == 3 and "no NVIDIA GPU here" in proc.stderr
