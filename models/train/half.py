"""Float16 twins of the shipped models, for GPUs (``[engine] precision``; issue 19).

    python -m models.train.half                  # every float row without a float16 twin
    python -m models.train.half --model upscale-x2

The network's weights and arithmetic in float16 (ONNX Runtime's own converter,
``onnxruntime.transformers.float16``), its input and output kept float32, so the engine feeds
and reads it as it does the float model. GPUs run float16 convolutions on their tensor cores at
several times the float32 rate; CPUs gain nothing (ONNX Runtime's CPU provider casts around the
float16 kernels it lacks), so only a GPU provider picks a float16 twin under ``precision = "auto"``.

Each twin is checked against its float model on the CPU before its row is written: the largest
difference on a photo-like patch must stay under ``TOLERANCE`` (a quarter of an 8-bit step); the
measured figure goes into the row.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import pathlib
import sys

import numpy as np

from models.train.export import MODELS_DIR, _rows, write_manifest
from models.train.quantize import twin_row

TOLERANCE = 0.25 / 255
SUFFIX = "-fp16"


def convert(src: pathlib.Path, dst: pathlib.Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(src), keep_io_types=True), dst)


def difference(info, twin_path: pathlib.Path, side: int = 96) -> float:
    """The largest |float16 - float32| of the two files on the CPU, for a smooth photo-like input of
    the model's kind (its extra planes as the engine makes them)."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    channels = {"bayer": 8, "rgb+noise": 4, "rgb+kind": 4, "rgb+field": 5}.get(info.input, 3)
    planes = [0.5 + 0.3 * np.sin(6 * x + c) * np.cos(4 * y - c) + 0.02 * rng.standard_normal((side, side))
              for c in range(channels)]
    feed = np.clip(np.stack(planes), 0, 1).astype(np.float32)[None]
    if info.input in ("rgb+noise", "rgb+kind"):
        feed[:, -1] = 0.05 if info.input == "rgb+noise" else 1.0
    if info.input == "bayer":
        feed[:, 4:] = 0.02
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    outs = []
    for path in (info.path, twin_path):
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {sess.get_inputs()[0].name: feed})[0])
    return float(np.abs(outs[0].astype(np.float32) - outs[1].astype(np.float32)).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="float model(s) to convert (default: every float row)")
    p.add_argument("--models-dir", type=pathlib.Path, default=MODELS_DIR)
    args = p.parse_args(argv)
    from truepix.engine import models

    manifest = args.models_dir / "manifest.toml"
    table = models.load_manifest(args.models_dir)
    names = args.model or [n for n, i in table.items() if i.precision == "float32" and not n.endswith(SUFFIX)]
    failed = []
    for name in names:
        info = table[name]
        dst = args.models_dir / f"{name}{SUFFIX}.onnx"
        convert(info.path, dst)
        diff = difference(info, dst)
        if info.output or diff > TOLERANCE:  # a classifier's answer is not pixels; a twin off by more is not one
            dst.unlink()
            failed.append(f"{name} (max difference {diff:.2e})" if not info.output else f"{name} (a classifier)")
            continue
        rows = _rows(manifest)
        float_row = next(r for r in rows if r["name"] == name)
        sha = hashlib.sha256(dst.read_bytes()).hexdigest()
        row = twin_row(float_row, rows, name + SUFFIX, dst, sha, "float16", SUFFIX)
        row["exported"] = datetime.date.today().isoformat()
        row["conversion"] = {
            "command": "python -m models.train.half --model " + name,
            "tool": "onnxruntime.transformers.float16.convert_float_to_float16 (keep_io_types)",
            "max_abs_difference_cpu": float(f"{diff:.3g}"), "tolerance": float(f"{TOLERANCE:.3g}"),
        }
        float_row["fp16_model"] = name + SUFFIX
        write_manifest([r for r in rows if r["name"] != row["name"]] + [row], manifest)
        print(f"{name}{SUFFIX}: {dst.stat().st_size} bytes, max |fp16 - fp32| {diff:.2e} on the CPU")
    if failed:
        print("not converted: " + ", ".join(failed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
