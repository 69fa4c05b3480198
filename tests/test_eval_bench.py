"""``truepix eval`` and ``truepix bench`` produce the documented JSON (figures are not asserted as speeds)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import photo_like
from truepix.cli import main


def test_eval_upscale_json(tmp_path, capsys):
    data = tmp_path / "set"
    data.mkdir()
    for i in range(2):
        # Structure shared by the three channels, as in photographs (edges in one channel
        # alone leak a little into the others: see the model card).
        grey = photo_like(61, 75, seed=i, noise=0.0).mean(axis=2, keepdims=True)
        img = grey * np.array([0.9, 0.75, 0.6], np.float32) + 0.05
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "eval.json"
    assert main(["eval", "--task", "upscale", "--scale", "2", "--data", str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {k: result[k] for k in ("task", "scale", "dataset", "images")} == \
        {"task": "upscale", "scale": 2, "dataset": "set", "images": 2}
    methods = result["results"]
    assert {"bicubic", "lanczos", "upscale-x2", "upscale-x2 (no guard)"} <= set(methods)
    for r in methods.values():
        assert set(r) == {"psnr", "ssim", "seconds"} and 0 < r["ssim"] <= 1
    assert methods["upscale-x2"]["psnr"] > methods["bicubic"]["psnr"]
    assert "| upscale-x2 |" in capsys.readouterr().out
    # traceable: the command that measured it and the exact model file
    assert result["command"] == f"truepix eval --task upscale --scale 2 --data {data} --json {out}"
    from truepix.engine import models
    shipped = models.get_model("upscale-x2")
    assert result["model_files"]["upscale-x2"] == {"version": shipped.version, "sha256": shipped.sha256}


def test_bench_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "0.02", "--model", "upscale-x2", "--json", str(out)]) == 0
    cases = json.loads(out.read_text())["cases"]
    names = [c["method"] for c in cases]
    assert names == ["upscale-x2", "upscale-x2 (network only)", "upscale-x2 (file to file)", "pillow-bicubic",
                     "conv peak float32", "conv peak int8"]
    for c in cases:
        assert "error" not in c, c
        assert c["mp_per_s"] > 0 and c["peak_rss_mb"] > 0
        if not c["method"].startswith("conv peak"):
            assert c["output_mp"] == round(c["input_mp"] * 4, 2) or abs(c["output_mp"] - 4 * c["input_mp"]) < 0.01
    # the machine's multiply-accumulate rate, and the network's share of it (its manifest row's MACs)
    by = {c["method"]: c for c in cases}
    assert by["conv peak float32"]["gmacs_per_s"] > 0 and by["conv peak int8"]["gmacs_per_s"] > 0
    net = by["upscale-x2 (network only)"]
    assert net["precision"] == "float32" and 0 < net["gmacs_per_s"]
    assert "GMAC/s (of conv peak)" in capsys.readouterr().out


def test_bench_default_is_quick_the_default_recipes_model(tmp_path, capsys):
    """With no --model and no --all: the default recipe's model at one size, no peak rows, a progress
    bar with the time left and one line per case (the full table is `--all`)."""
    from truepix.recipes import BUILTIN

    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "0.02", "--json", str(out)]) == 0
    model = BUILTIN["upscale"].steps[0].model
    names = [c["method"] for c in json.loads(out.read_text())["cases"]]
    assert names == [model, f"{model} (network only)", f"{model} (file to file)", "pillow-bicubic"]
    err = capsys.readouterr().err
    assert "truepix bench:" in err and "case 4/4" in err and "<" in err  # tqdm's [elapsed<remaining]
    assert f"truepix bench: {model} @ 0.02 MP: " in err and "output MP/s" in err


def test_eval_camera_protocol_reports_the_true_to_life_measures(tmp_path, capsys):
    data, train = tmp_path / "set", tmp_path / "train"
    data.mkdir()
    train.mkdir()
    for i in range(2):
        Image.fromarray(np.round(photo_like(64, 80, seed=i) * 255).astype(np.uint8)).save(data / f"{i}.png")
        Image.fromarray(np.round(photo_like(48, 48, seed=9 + i) * 255).astype(np.uint8)).save(train / f"{i}.png")
    out = tmp_path / "eval.json"
    argv = ["eval", "--task", "upscale", "--scale", "2", "--degradation", "camera", "--data", str(data),
            "--unsharp-from", str(train), "--model", "upscale-x2", "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["degradation"] == "camera" and result["held_out_camera"] == "apsc24"
    methods = result["results"]
    unsharp = [m for m in methods if m.startswith("bicubic + unsharp")]
    assert len(unsharp) == 1 and "upscale-x2" in methods
    for r in methods.values():
        assert set(r) == {"psnr", "ssim", "seconds", "colour_shift", "colour_shift_input", "backprojection_psnr",
                          "invention_ratio"}
        assert r["colour_shift"] >= 0 and r["invention_ratio"] > 0
    # Bicubic cannot add detail the defocused truth lacks: its ratio is about 1.
    assert 0.8 < methods["bicubic"]["invention_ratio"] < 1.2
    assert "held-out profile apsc24" in capsys.readouterr().out


def test_camera_lr_is_reproducible_and_defocus_removes_detail():
    from truepix.evaluate import camera

    truth = camera.crop_for(photo_like(70, 90, seed=3, noise=0.0), 2)
    a, deg = camera.camera_lr(truth, 2, 7)
    b, _ = camera.camera_lr(truth, 2, 7)
    assert np.array_equal(a, b) and a.shape == (truth.shape[0] // 2, truth.shape[1] // 2, 3)
    assert deg["profile"] == "apsc24"
    blurred, mask = camera.defocused_truth(truth, 2, 0)
    sharp_e = camera.high_frequency_energy(truth, mask, 2)
    assert camera.high_frequency_energy(blurred, mask, 2) < 0.1 * sharp_e


def test_bench_an_x4_model_against_pillow_at_x4(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "0.01", "--model", "upscale-x4-bicubic", "--no-file-to-file",
                 "--json", str(out)]) == 0
    cases = json.loads(out.read_text())["cases"]
    assert [c["method"] for c in cases] == ["upscale-x4-bicubic", "upscale-x4-bicubic (network only)",
                                            "pillow-bicubic x4", "conv peak float32", "conv peak int8"]
    for c in cases[:3]:
        assert "error" not in c, c
        assert abs(c["output_mp"] - 16 * c["input_mp"]) < 0.01


def test_an_eval_that_cannot_run_raises_eval_error_and_the_cli_exits_1_with_its_message(tmp_path):
    """The evaluations raise ``EvalError`` (a TruepixError, not SystemExit: they are library code);
    ``truepix eval`` ends with the message and exit status 1 it has always given."""
    from truepix.errors import EvalError, TruepixError
    from truepix.evaluate.sr import evaluate_upscale

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvalError, match="^eval: no images in ") as err:
        evaluate_upscale(empty, 2)
    assert isinstance(err.value, TruepixError)
    with pytest.raises(EvalError, match="unknown degradation 'blur'"):
        evaluate_upscale(empty, 2, degradation="blur")
    with pytest.raises(SystemExit) as ended:  # a str code: Python prints it and exits with status 1
        main(["eval", "--task", "upscale", "--scale", "2", "--data", str(empty)])
    assert ended.value.code == f"truepix: eval: no images in {empty}"
    with pytest.raises(SystemExit) as ended:
        main(["eval", "--task", "demosaic", "--data", str(empty)])
    assert ended.value.code == f"truepix: eval: no images in {empty}"


@pytest.mark.parametrize("blocked, argv, says", [
    ("cv2", ["eval", "--task", "upscale", "--data", "{data}", "--peer-dir", "{data}"],
     "--peer-dir (OpenCV dnn_superres peers) needs opencv-contrib-python-headless"),
    ("cv2", ["bench", "--sizes", "0.01", "--model", "upscale-x2", "--peer-dir", "{data}"],
     "--peer-dir (OpenCV dnn_superres peers) needs opencv-contrib-python-headless"),
    ("bm3d", ["eval", "--task", "denoise", "--data", "{data}", "--cbm3d"], "--cbm3d needs bm3d"),
    ("colour_demosaicing", ["eval", "--task", "upscale", "--data", "{data}", "--degradation", "independent"],
     "--degradation independent (its Menon 2007 demosaic) needs colour-demosaicing"),
])
def test_eval_without_the_extra_says_what_is_missing_in_one_line(tmp_path, blocked, argv, says):
    """Without the eval extra (the package made unimportable in a fresh interpreter): one line naming
    what is missing and the install command, no traceback, before any work."""
    data = tmp_path / "set"
    data.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(data / "a.png")
    code = (f"import sys; sys.modules[{blocked!r}] = None; from truepix.cli import main; "
            f"sys.exit(main({[a.format(data=data) for a in argv]!r}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"truepix: {says}, which is not installed: pip install -e '.[eval]'"], r.stderr


def test_demosaic_eval_says_which_rows_it_left_out(tmp_path):
    data = tmp_path / "set"
    data.mkdir()
    Image.fromarray(np.round(photo_like(40, 40, seed=1) * 255).astype(np.uint8)).save(data / "a.png")
    out = tmp_path / "d.json"
    code = ("import sys; sys.modules['colour_demosaicing'] = None; from truepix.cli import main; "
            f"sys.exit(main(['eval', '--task', 'demosaic', '--data', {str(data)!r}, '--no-libraw', "
            f"'--json', {str(out)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    note = "bilinear, Malvar 2004 and Menon 2007 left out: colour-demosaicing is not installed"
    assert note in r.stderr and note in r.stdout  # said as it starts, and under the table
    assert json.loads(out.read_text())["left_out"] == [note + " (pip install -e '.[eval]')"]
