"""Quantisation-aware fine-tuning (models/train/qat.py): the rounding it trains under is the int8 file's."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, photo_like

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

if str(REPO) not in sys.path:  # the training code lives in models/ at the repository root, not in the package
    sys.path.insert(0, str(REPO))
from models.train import archs, qat  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    net = archs.build("rlfn_cond", scale=2, channels=16, blocks=2)
    with torch.no_grad():  # a tail that matters (a fresh one is near zero: nothing to round)
        net.tail.weight.normal_(0, 0.05)
    return net.eval()


def _inputs(n, side=32, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = photo_like(side, side, seed=seed * 100 + i).transpose(2, 0, 1)
        kind = np.full((1, side, side), float(rng.integers(2)), np.float32)
        out.append(np.concatenate([img, kind])[None].astype(np.float32))
    return out


def test_prepare_keeps_the_parameters_and_rounds_where_the_int8_file_does():
    net = _net()
    keys = list(net.state_dict())
    convs = qat.prepare(net)
    assert list(net.state_dict()) == keys  # a checkpoint loads into the plain network as it is
    assert len(convs) == sum(1 for m in _net().modules() if isinstance(m, torch.nn.Conv2d))
    assert not net.tail.quantise_weights and not net.tail.quantise_input and net.tail.out is None  # float tail
    assert net.head.quantise_weights and net.head.out is not None  # feeds an add: rounded
    block = net.blocks[0]
    assert block.convs[0].out is None and isinstance(block.convs[1], qat.QReLU)  # the ReLU rounds
    assert block.fuse.out is not None


def test_the_rounding_is_as_large_as_onnx_runtime_int8s(tmp_path):
    """Fake quantisation in PyTorch and the QDQ file ONNX Runtime runs, calibrated on the same
    patches, move the output by the same amount (to within a factor 1.5; the roundings are
    independent draws, not the same bits)."""
    import onnxruntime as ort

    from models.train.export import export_onnx
    from models.train.quantize import quantize

    net = _net()
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    export_onnx(net, src, channels=4)
    calib = _inputs(12)
    quantize(src, dst, calib)
    import onnx

    graph = onnx.load(dst).graph
    tail = [n for n in graph.node if n.op_type == "Conv"][-1]
    assert next(n for n in graph.node if tail.input[0] in n.output).op_type == "Add"  # float in, as in PyTorch
    assert next(n for n in graph.node if n.op_type == "Gather").input[0] == "input"
    qnet = _net()
    qat.prepare(qnet)
    qat.calibrate(qnet, [torch.from_numpy(x) for x in calib])
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    fq_err, ort_err = [], []
    for x in _inputs(6, side=48, seed=1):
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
            fq = qnet(torch.from_numpy(x)).numpy()
        q = sess.run(None, {"input": x})[0]
        fq_err.append(np.sqrt(np.mean((fq - ref) ** 2)))
        ort_err.append(np.sqrt(np.mean((q - ref) ** 2)))
    ratio = np.mean(fq_err) / np.mean(ort_err)
    assert np.mean(ort_err) > 1e-4  # something was rounded
    assert 1 / 1.5 < ratio < 1.5, (np.mean(fq_err), np.mean(ort_err))


def _train(tmp_path, module: str, count: int, side: int, *args: str) -> subprocess.CompletedProcess:
    """``python -m models.train.MODULE`` on ``count`` small photos of ``side`` pixels, in ``tmp_path``."""
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for i in range(count):
        Image.fromarray(np.round(photo_like(side, side, seed=i) * 255).astype(np.uint8)).save(data / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "daemon")])}
    cmd = [sys.executable, "-m", f"models.train.{module}", *args, "--threads", "1", "--data", str(data),
           "--runs", str(tmp_path / "runs")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_a_quantisation_aware_run_trains_and_exports_as_a_plain_network(tmp_path):
    proc = _train(tmp_path, "train", 5, 64, "--name", "q", "--iters", "6", "--batch", "2", "--patch", "16",
                  "--ckpt-every", "3", "--val-count", "1", "--jitter", "1.0", "--channels", "8", "--body", "2",
                  "--qat", "--qat-recalibrate", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "quantisation-aware: 4 convolutions" in proc.stdout and "iter 6" in proc.stdout
    state = torch.load(tmp_path / "runs" / "q" / "last.pt", map_location="cpu")
    plain = archs.build(state["arch"], **state["arch_kwargs"])
    plain.load_state_dict(state["model"])  # strict: nothing of the rounding is stored


def test_the_demosaic_keeps_its_output_convolutions_float_in_both_tools():
    """The convolutions that write the output pixels — the demosaic's tail and its Malvar anchor —
    stay float in the fine-tune and in the int8 file, found in the graph by walking back from the
    output (the quantiser's pre-processing reorders nodes, so "the last conv in the file" is not)."""
    import pathlib

    from models.train.quantize import head_nodes, tail_nodes

    net = archs.build("bayer_gamma_rlfn", channels=8, blocks=1)
    qat.prepare(net)
    assert not net.tail.quantise_weights and not net.anchor.quantise_weights and not net.anchor.quantise_input
    assert net.head.quantise_weights and net.body_tail.quantise_weights
    hf = archs.build("bayer_gamma_rlfn", channels=8, blocks=1)
    qat.prepare(hf, float_input=True)  # quantize --float-head: the raw planes go into the head unrounded
    assert not hf.head.quantise_weights and not hf.head.quantise_input and hf.head.out is not None
    models_dir = pathlib.Path(REPO) / "models"
    demosaic = tail_nodes(models_dir / "demosaic.onnx")
    assert {"/tail/Conv", "/anchor/Conv"} <= set(demosaic) and "/body_tail/Conv" not in demosaic
    head = head_nodes(models_dir / "demosaic.onnx")  # the head and the gamma curve that feeds it
    assert head[0] == "/head/Conv" and "/Mul_2" in head and "/anchor/Conv" not in head
    up = tail_nodes(models_dir / "upscale-x2-adaptive.onnx")
    assert {"/tail/Conv", "/Gather"} <= set(up) and "/body_tail/Conv" not in up


def test_the_denoiser_trains_quantisation_aware_on_its_own_calibration_patches(tmp_path):
    proc = _train(tmp_path, "train_restore", 4, 128, "--task", "denoise", "--name", "d", "--iters", "2", "--batch",
                  "2", "--patch", "32", "--ckpt-every", "2", "--val-count", "1", "--channels", "8", "--blocks", "1",
                  "--qat")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "quantisation-aware: 7 convolutions (2 float)" in proc.stdout and "iter 2" in proc.stdout
