"""The convolution micro-benchmark's networks, and each shipped model's multiply-accumulates.

    python -m models.train.convpeak            # writes models/bench/conv-peak{,-int8}.onnx and the
                                               # manifest's macs_per_input_pixel

``truepix bench`` runs ``conv-peak.onnx`` (four 3x3 convolutions, 64 channels in and out, with
ReLU: the shape of the upscalers' bodies, large enough that ONNX Runtime's kernels run at full
speed) and its QDQ int8 twin, and reports this machine's achieved multiply-accumulate rate, float
and int8: the ceiling each model's network-only row is set against (``macs_per_input_pixel``).
"""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np

from models.train.export import MODELS_DIR, _rows, write_manifest

CHANNELS, LAYERS = 64, 4


def macs_per_input_pixel(path: pathlib.Path, side: int = 64) -> int:
    """Multiply-accumulates of every Conv of the ONNX model per input pixel (shape inference at a
    ``side`` x ``side`` input, so folded and strided layers count at their own resolution)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = side, side
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:  # a QDQ model's weights reach its convolutions through DequantizeLinear
        if node.op_type == "DequantizeLinear" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    total = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        out = shapes.get(node.output[0])
        w = weights.get(node.input[1])
        if not out or not w or 0 in out:
            raise ValueError(f"{path.name}: cannot size {node.name}")
        total += out[2] * out[3] * w[0] * w[1] * w[2] * w[3]  # group convs: w[1] is already per group
    return round(total / (side * side))


def conv_peak_models(out_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "input"
    for i in range(LAYERS):
        w = (rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) * np.sqrt(2 / (CHANNELS * 9))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(CHANNELS, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"conv{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        prev = f"r{i}"
    shape = [1, CHANNELS, "height", "width"]
    graph = helper.make_graph(nodes, "conv-peak", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out_dir.mkdir(parents=True, exist_ok=True)
    f32, i8 = out_dir / "conv-peak.onnx", out_dir / "conv-peak-int8.onnx"
    onnx.save(model, f32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": rng.random((1, CHANNELS, 32, 32), np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory():
        quantize_static(str(f32), str(i8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return f32, i8


def main() -> int:
    f32, i8 = conv_peak_models(MODELS_DIR / "bench")
    print(f"wrote {f32} and {i8}")
    manifest = MODELS_DIR / "manifest.toml"
    rows = _rows(manifest)
    files = {r["name"]: r["file"] for r in rows}
    for row in rows:
        if row["task"] == "classify":  # pooled to one answer: no per-pixel figure
            continue
        # a twin does its float model's arithmetic (counted on the float file, which sizes cleanly)
        row["macs_per_input_pixel"] = macs_per_input_pixel(MODELS_DIR / files[row.get("float_model", row["name"])])
        print(f"{row['name']}: {row['macs_per_input_pixel']} multiply-accumulates per input pixel")
    write_manifest(rows, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
