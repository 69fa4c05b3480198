"""Model twins: int8 and float16 files beside a float model, the engine's choice, the tools that make them."""

import pathlib
import shutil

import numpy as np
import pytest

from conftest import photo_like
from truepix.config import ConfigError, load_config
from truepix.engine import models
from truepix.engine.pipeline import EngineOptions, enhance
from truepix.recipes import Recipe, Step

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _twins(table):
    return {name: info.int8_model for name, info in table.items() if info.int8_model}


def test_every_int8_twin_is_a_shipped_int8_row_with_its_float_rows_engine_keys():
    table = models.load_manifest()
    twins = _twins(table)
    assert "upscale-x2" in twins, twins
    for name, twin in twins.items():
        f, q = table[name], table[twin]
        assert q.precision == "int8" and q.float_model == name and f.precision == "float32"
        models.verify(q)  # the file is there and matches its sha256
        for key in ("task", "scale", "input", "transfer", "receptive_radius", "anchor", "anchor_block",
                    "anchor_tolerance", "camera_anchor", "camera_anchor_tolerance", "kind_model"):
            assert getattr(q, key) == getattr(f, key), (twin, key)
        if f.clean_model:  # an adaptive twin hands clean files to the clean row's twin when there is one
            assert q.clean_model == table[f.clean_model].int8_model or f.clean_model
        # the same arithmetic: the bench's GMAC/s column needs it on the twin's row too
        assert q.extra.get("macs_per_input_pixel") == f.extra.get("macs_per_input_pixel") is not None, twin
        metrics = q.extra["metrics"]
        for data in ("Set5", "Set14", "BSD100"):  # measured on the int8 file, beside the float one
            assert abs(metrics[data]["delta_psnr_y"]) <= 0.05, (twin, data, metrics[data])


def test_every_int8_twins_anchor_repeats_the_unrounded_input():
    """The anchor (the input pixels repeated into the output) reads the float input, not its 8-bit
    rounding, so a 16-bit photo's anchor keeps its bits (quantize.float_inputs)."""
    onnx = pytest.importorskip("onnx")
    table = models.load_manifest()
    for twin in _twins(table).values():
        graph = onnx.load(table[twin].path).graph
        gathers = [n for n in graph.node if n.op_type == "Gather"]
        assert gathers and all(n.input[0] == graph.input[0].name for n in gathers), twin


def test_with_precision_swaps_rows_under_their_own_names(monkeypatch):
    table = models.load_manifest()
    monkeypatch.setattr(models, "cpu_runs_int8_fast", lambda: True)
    auto = models.with_precision(table, "auto", "cpu")
    assert auto["upscale-x2"].name == "upscale-x2-int8" and auto["upscale-x2"].label == "upscale-x2-int8@1"
    assert auto["demosaic"] is table["demosaic"]  # no twin: float
    assert models.with_precision(table, "float32", "cpu") is table
    monkeypatch.setattr(models, "cpu_runs_int8_fast", lambda: False)
    assert models.with_precision(table, "auto", "cpu") is table  # no VNNI: float
    assert models.with_precision(table, "int8", "cpu")["upscale-x2"].precision == "int8"  # asked for
    # a GPU provider runs the float16 twins under auto, never int8
    monkeypatch.setattr(models, "cpu_runs_int8_fast", lambda: True)
    monkeypatch.setattr(models, "available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    gpu = models.with_precision(table, "auto", "auto")
    assert gpu["upscale-x2"].name == "upscale-x2-fp16" and gpu["lens"].name == "lens-fp16"
    assert gpu["demosaic"] is table["demosaic"]  # no twin: float32
    assert all(gpu[name].precision in ("float16", "float32") for name, info in table.items() if not info.float_model)
    with pytest.raises(ValueError, match="precision"):
        models.with_precision(table, "fp8")


def test_a_twin_missing_from_the_table_leaves_the_float_row():
    table = models.load_manifest()
    broken = {k: v for k, v in table.items() if k != "upscale-x2-int8"}
    assert models.with_precision(broken, "int8")["upscale-x2"] is table["upscale-x2"]


def test_config_precision_defaults_to_auto_and_is_checked(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    assert load_config(cfg).engine.precision == "auto"
    cfg.write_text('[engine]\nprecision = "int8"\n')
    assert load_config(cfg).engine.precision == "int8"
    cfg.write_text('[engine]\nprecision = "half"\n')
    with pytest.raises(ConfigError, match=r"engine.precision: must be auto, float32, float16, int8, not 'half'"):
        load_config(cfg)
    assert EngineOptions().precision == "float32"  # the library runs what it is told


def test_the_engine_runs_the_int8_file_and_it_stays_near_the_float_one():
    """The real engine, tiled, guard on, both precisions on the same photo: the labels say which file
    ran, and the int8 output is within a small fraction of an 8-bit step on average of the float one."""
    model = "upscale-x2"
    img = photo_like(96, 128, seed=11) ** 2.2
    recipe = Recipe("t", (Step(model),))
    f = enhance(img.copy(), None, recipe, EngineOptions(tile=64, precision="float32"))
    q = enhance(img.copy(), None, recipe, EngineOptions(tile=64, precision="int8"))
    assert f.models == [f"{model}@1"] and q.models == [f"{model}-int8@1"]
    diff = np.abs(q.pixels ** (1 / 2.2) - f.pixels ** (1 / 2.2))
    assert diff.mean() < 0.5 / 255 and diff.max() < 16 / 255, (diff.mean() * 255, diff.max() * 255)
    psnr = 10 * np.log10(1 / np.mean(diff**2))
    assert psnr > 45, psnr


def test_the_default_recipe_runs_clean_files_int8_and_camera_files_float():
    """The adaptive default has no int8 twin (8-bit activations put grain into the smooth bokeh its
    camera mode leaves: docs/benchmarks.md, "INT8"), but the clean files it hands on go to
    upscale-x2, whose twin runs."""
    img = photo_like(64, 64, seed=2) ** 2.2
    int8 = EngineOptions(tile=64, precision="int8")
    clean = enhance(img.copy(), None, Recipe("t", (Step("upscale-x2-adaptive", {"input": "clean"}),)), int8)
    camera = enhance(img.copy(), None, Recipe("t", (Step("upscale-x2-adaptive", {"input": "camera"}),)), int8)
    assert clean.models == ["upscale-x2-int8@1"] and camera.models == ["upscale-x2-adaptive@1"]


def test_quantize_tool_writes_a_twin_and_its_row(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import subprocess
    import sys

    src = models.load_manifest()["upscale-x2"]
    mdir = tmp_path / "models"
    mdir.mkdir()
    shutil.copy(src.path, mdir)
    text = (src.path.parent / "manifest.toml").read_text()
    start = text.index('[[models]]\nname = "upscale-x2"\n')
    end = text.index("[[models]]", start + 10)
    (mdir / "manifest.toml").write_text(text[start:end].replace('int8_model = "upscale-x2-int8"\n', ""))
    data = tmp_path / "train"
    data.mkdir()
    import tifffile

    for i in range(2):
        tifffile.imwrite(data / f"{i}.tif", (photo_like(200, 200, seed=i) * 65535).astype(np.uint16),
                         photometric="rgb")
    proc = subprocess.run([sys.executable, "-m", "models.train.quantize", "--model", "upscale-x2", "--data", str(data),
                           "--patches", "4", "--side", "48", "--models-dir", str(mdir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = models.load_manifest(mdir)
    q = table["upscale-x2-int8"]
    assert table["upscale-x2"].int8_model == "upscale-x2-int8"
    assert q.precision == "int8" and q.scale == 2 and q.extra["quantisation"]["activations"] == "uint8"
    models.verify(q)
    import onnx

    graph = onnx.load(q.path).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    floats = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs[-1].input[1] in floats  # the tail, which writes the output pixels, stays float
    assert all(c.input[1] not in floats for c in convs[:-1])  # the rest run on int8 weights
    gather = next(n for n in graph.node if n.op_type == "Gather")
    assert gather.input[0] == graph.input[0].name  # the anchor repeats the unrounded input pixels
    sess = models.session(q, "cpu", 1)
    x = np.ascontiguousarray(photo_like(40, 40, seed=7).transpose(2, 0, 1)[None])  # sRGB-like, as calibrated
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    ref = models.session(table["upscale-x2"], "cpu", 1)
    r = ref.run(None, {ref.get_inputs()[0].name: x})[0]
    assert y.shape == (1, 3, 80, 80) and np.abs(y - r).mean() < 2 / 255


def test_every_float_model_has_a_float16_twin_checked_against_it():
    """The GPU files: each float row but the classifier names a float16 twin whose input and output
    stay float32 and whose difference from the float model, measured on the CPU when it was made, is
    under a quarter of an 8-bit step; run here again through the real engine, the twin matches."""
    table = models.load_manifest()
    # the demosaic's float16 file differed by 1.05e-3 on the CPU (its transfer curve in float16): a GPU
    # runs it in float32 (models/README.md, "Float16 twins")
    floats = [n for n, i in table.items() if i.precision == "float32" and not i.output and n != "demosaic"]
    assert floats and all(table[n].fp16_model for n in floats), [n for n in floats if not table[n].fp16_model]
    assert not table["demosaic"].fp16_model
    for name in floats:
        twin = table[table[name].fp16_model]
        assert twin.precision == "float16" and twin.float_model == name
        models.verify(twin)
        assert twin.extra["conversion"]["max_abs_difference_cpu"] < 0.25 / 255
    img = photo_like(64, 80, seed=4) ** 2.2
    recipe = Recipe("t", (Step("upscale-x2"),))
    f = enhance(img.copy(), None, recipe, EngineOptions(tile=64, precision="float32"))
    h = enhance(img.copy(), None, recipe, EngineOptions(tile=64, precision="float16"))
    assert h.models == ["upscale-x2-fp16@1"]
    assert np.abs(h.pixels ** (1 / 2.2) - f.pixels ** (1 / 2.2)).max() < 1 / 255
    sess = models.session(table["upscale-x2-fp16"], "cpu", 1)
    assert sess.get_inputs()[0].type == "tensor(float)" and sess.get_outputs()[0].type == "tensor(float)"


def test_the_demosaic_and_the_denoiser_are_calibrated_on_what_they_were_trained_on(tmp_path, monkeypatch):
    """A Bayer model's calibration crops are simulated raws (8 planes: RGGB then their noise), a
    denoiser's noisy photos with their noise plane: the inputs each network was trained on."""
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(ROOT))  # the models package lives at the repository's root
    from PIL import Image

    from models.train.quantize import calibration_inputs

    for i in range(3):
        Image.fromarray(np.round(photo_like(96, 96, seed=i) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    files = sorted(tmp_path.glob("*.png"))
    table = models.load_manifest()
    bayer = calibration_inputs(table["demosaic"], files, 4, 16)
    assert [x.shape for x in bayer] == [(1, 8, 16, 16)] * 4
    assert all(x.dtype == np.float32 and (x[:, 4:] >= 0).all() for x in bayer)
    assert any(x[:, 4:].max() > 0 for x in bayer)  # noisy shots among them, their deviation fed
    noisy = calibration_inputs(table["denoise"], files, 4, 16)
    assert [x.shape for x in noisy] == [(1, 4, 16, 16)] * 4
    assert all((x[:, 3] >= 0).all() for x in noisy) and any(x[:, 3].max() > 0 for x in noisy)


def test_auto_precision_keeps_the_float_files_for_a_16_bit_photo(tmp_path, monkeypatch):
    """"auto" on a VNNI CPU: an 8-bit photo runs the int8 twin, a 16-bit one the float file, whose
    output keeps a smooth 16-bit ramp smooth (the int8 network rounds its input to 8 bits)."""
    import tifffile
    from PIL import Image

    from truepix.process import process_file
    from truepix.recipes import Recipe, Step

    monkeypatch.setattr(models, "cpu_runs_int8_fast", lambda: True)
    recipe = Recipe("upscale-plain", (Step("upscale-x2"),))
    ramp = np.tile(np.linspace(0.30, 0.32, 96, dtype=np.float32)[None, :, None], (48, 1, 3))
    tifffile.imwrite(tmp_path / "ramp16.tif", np.round(ramp * 65535).astype(np.uint16), photometric="rgb")
    Image.fromarray(np.round(photo_like(48, 64, seed=3) * 255).astype(np.uint8)).save(tmp_path / "photo8.png")
    opts = EngineOptions(tile=64, precision="auto", provider="cpu")
    r16 = process_file(tmp_path / "ramp16.tif", recipe, options=opts)
    r8 = process_file(tmp_path / "photo8.png", recipe, options=opts)
    assert r16.status == "done" and r8.status == "done", (r16.error, r8.error)
    assert r16.models == ["upscale-x2@1"] and r8.models == ["upscale-x2-int8@1"], (r16.models, r8.models)
    out = tifffile.imread(r16.output).astype(np.float64) / 65535
    steps = np.abs(np.diff(out[20:-20, 16:-16, 1], axis=1))
    assert steps.max() < 0.3 / 255, steps.max() * 255  # well under an 8-bit step: no banding added
