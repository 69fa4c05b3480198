"""Quantise a shipped float model to INT8 (ONNX Runtime static quantisation, QDQ) and write its row.

    python -m models.train.quantize --model upscale-x2 --data ../shared/data/train/T91 \\
        ../shared/data/train/BSD200 --eval ../shared/data/sr/Set5 ../shared/data/sr/Set14

Weights are int8 per output channel; activations uint8 (the type this CPU's VNNI instructions
multiply fast: docs/benchmarks.md, "INT8"), calibrated on what the engine itself feeds the network
(``kinds.Kind.feed``) for patches of *training* images made into clean downsized renders and camera
files by the broad family (``truepix.simulate.family``), never a test image.  The network's tail —
its last convolution, the anchor's add and the pixel shuffle — stays float: it writes the output
pixels, and 8-bit steps there would cost what the rest saves (measured: ``--quantise-tail``).

The int8 file gets its own manifest row, ``NAME-int8``: the float row's engine keys (scale,
guard, kind model...) with ``precision = "int8"`` and ``float_model``, and the float row gains
``int8_model``; ``models.with_precision`` makes the engine pick it (``[engine] precision``).
With ``--eval`` the row's metrics are measured on the int8 file beside the float one, in one run.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import pathlib
import shlex
import sys
import tempfile

import numpy as np

from models.train.export import MODELS_DIR, _rows, write_manifest

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}
# the engine keys an int8 row shares with its float row (models.ModelInfo's typed fields and the core)
_SHARED = ("version", "task", "scale", "input", "transfer", "receptive_radius", "opset", "anchor", "anchor_block",
           "anchor_tolerance", "camera_anchor", "camera_anchor_tolerance", "clamp_radius", "noise_gate",
           "noise_map_scale", "kind_model", "output", "arch", "parameters", "macs_per_input_pixel")


def twin_row(float_row: dict, rows: list[dict], name: str, path: pathlib.Path, sha: str, precision: str,
             suffix: str) -> dict:
    """A twin's manifest row: its file, the float row's engine keys, ``precision`` and ``float_model``;
    an adaptive row's ``clean_model`` names the clean row's twin of the same suffix when there is one."""
    row = {"name": name, "file": path.name, "sha256": sha, "precision": precision, "float_model": float_row["name"]}
    row.update({k: float_row[k] for k in _SHARED if k in float_row})
    if float_row.get("clean_model"):
        clean = float_row["clean_model"]
        row["clean_model"] = clean + suffix if any(r["name"] == clean + suffix for r in rows) else clean
    return row


def _images(dirs: list[pathlib.Path]) -> list[pathlib.Path]:
    files = sorted(p for d in dirs for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        sys.exit(f"quantize: no images in {', '.join(map(str, dirs))}")
    return files


def calibration_inputs(info, files: list[pathlib.Path], count: int, side: int, seed: int = 0,
                       resized_share: float = 0.4) -> list[np.ndarray]:
    """``count`` network inputs (1, C, side, side) float32: a random crop of a training image made into
    a low-resolution file by a random shot of the broad family (an editor's downsized render or a
    camera file), then fed as the engine feeds it (an rgb+kind model told what the shot was)."""
    from truepix.engine.kinds import kind_of
    from truepix.io.image import read_image
    from truepix.simulate.family import broad_student, sample_shot

    kind = kind_of(info.input)
    if kind.needs_raw:
        return bayer_calibration_inputs(files, count, side, seed)
    if info.task == "denoise":
        return denoise_calibration_inputs(files, count, side, seed)
    if not kind.rgb:
        sys.exit(f"quantize: {info.name} takes {info.input} input; calibration is written for RGB and Bayer "
                 "models only")
    rng = np.random.default_rng(seed)
    scale = info.scale
    hr = side * scale  # one size: the histogram calibrators stack the activations
    out, tries = [], 0
    while len(out) < count:
        tries += 1
        if tries > 100 * count:
            sys.exit(f"quantize: too few images of at least {hr} pixels a side for {count} patches (lower --side)")
        path = files[int(rng.integers(len(files)))]
        decoded = read_image(path)
        img = np.clip(decoded.pixels[:, :, :3], 0, 1).astype(np.float32)
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if decoded.transfer != "srgb":  # the teachers are sRGB-encoded, as a file holds them
            from truepix.colour import linear_to_srgb

            img = linear_to_srgb(img)
        if min(img.shape[:2]) < hr:
            continue
        y, x = int(rng.integers(img.shape[0] - hr + 1)), int(rng.integers(img.shape[1] - hr + 1))
        shot = sample_shot(rng, resized_share=resized_share, camera_resized_share=0.15 * (1 - resized_share))
        lr = broad_student(np.ascontiguousarray(img[y:y + hr, x:x + hr]), scale, shot)
        params = {"input": "clean" if shot.kind == "resized" else "camera"} if info.input == "rgb+kind" else {}
        feed = kind.feed(info, lr, params, "cpu", 1)
        out.append(np.ascontiguousarray(feed.transpose(2, 0, 1)[None], np.float32))
    return out


def bayer_calibration_inputs(files: list[pathlib.Path], count: int, side: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` demosaic network inputs (1, 8, side, side) float32, as the network was trained on them
    (``models.train.bayer.BayerSampler``: training photos as scenes, a random training camera profile
    — never the held-out one — ISO 100..12800 or noise-free, exposure, white balance, the packed
    RGGB planes and their noise planes, which the engine's ``Bayer.feed_mosaic`` builds the same way)."""
    from models.train.bayer import BayerSampler, load_linear

    rng = np.random.default_rng(seed)
    picked = [files[int(i)] for i in rng.choice(len(files), size=min(len(files), 4 * count), replace=False)]
    sampler = BayerSampler(load_linear(picked), side, seed=seed)
    if not sampler.scenes:
        sys.exit(f"quantize: no image of at least {2 * side} pixels a side for the demosaic's patches")
    return [np.ascontiguousarray(x[None]) for x in sampler.batch(count)[0]]


def denoise_calibration_inputs(files: list[pathlib.Path], count: int, side: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` denoiser inputs (1, 4, side, side) float32 as it was trained on them
    (``models.train.train_restore.NoiseSampler``: training photos with white Gaussian noise of sigma
    0..55 or signal-dependent noise, and the noise-level plane the engine's ``rgb+noise`` kind feeds)."""
    from models.train.train_restore import NoiseSampler, load_srgb

    rng = np.random.default_rng(seed)
    picked = [files[int(i)] for i in rng.choice(len(files), size=min(len(files), 4 * count), replace=False)]
    sampler = NoiseSampler(load_srgb(picked), side, seed=seed)
    return [np.ascontiguousarray(x[None]) for x in sampler.batch(count)[0]]


def tail_nodes(model_path: pathlib.Path, convs: int = 1) -> list[str]:
    """What writes the output pixels: every node between the graph's output and the convolutions
    that feed it (the residual's last convolution, the demosaic's Malvar anchor, the upscalers'
    anchor gather and add, the pixel shuffle, the demosaic's decoding curve), found by walking the
    graph back from its output, not by node order (the quantiser's pre-processing reorders nodes).
    ``convs`` > 1 walks that many convolution levels up."""
    import onnx

    nodes = list(onnx.load(model_path).graph.node)
    graph_outputs = [o.name for o in onnx.load(model_path).graph.output]
    maker = {o: n for n in nodes for o in n.output}
    tail: dict[str, None] = {}
    frontier = [maker[o] for o in graph_outputs if o in maker]
    for _ in range(convs):
        reached, seen = [], set()
        while frontier:
            node = frontier.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            tail[node.name] = None
            if node.op_type == "Conv":
                reached.append(node)  # a level's convolution: the walk goes on above it at the next level
                continue
            frontier += [maker[x] for x in node.input if x in maker]
        frontier = [maker[x] for c in reached for x in c.input[:1] if x in maker]
    return list(tail)


def head_nodes(model_path: pathlib.Path) -> list[str]:
    """The first convolution and everything that prepares its input (the demosaic's gamma curve and
    noise planes): the image in, a few channels, little compute and all the precision a raw file's
    shadows have."""
    import onnx

    nodes = list(onnx.load(model_path).graph.node)
    maker = {o: n for n in nodes for o in n.output}
    convs = [n for n in nodes if n.op_type == "Conv"]
    # the head: the convolution no other convolution feeds (the anchor, fed by the input too, is the tail's)
    def ancestors(node, seen):
        for x in node.input:
            m = maker.get(x)
            if m is not None and m.name not in seen:
                seen[m.name] = m
                ancestors(m, seen)
        return seen

    heads = [c for c in convs if not any(m.op_type == "Conv" for m in ancestors(c, {}).values())]
    tail = set(tail_nodes(model_path))
    head = next(c for c in heads if c.name not in tail)
    return [head.name] + [name for name in ancestors(head, {})]


def quantize(src: pathlib.Path, dst: pathlib.Path, inputs: list[np.ndarray], *, method: str = "minmax",
             activations: str = "uint8", quantise_tail: bool = False, float_head: bool = False, float_convs: int = 1,
             op_types: list[str] | None = None, percentile: float = 99.99,
             float_nodes: list[str] | None = None) -> None:
    """Static QDQ quantisation of ``src`` into ``dst``: per-channel int8 weights, ``activations``
    (uint8 | int8) calibrated on ``inputs`` by ``method`` (minmax | percentile | entropy)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self.it = iter([{name: x} for x in inputs])

        def get_next(self):
            return next(self.it, None)

    import onnx

    name = onnx.load(src).graph.input[0].name
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory() as tmp:
        pre = pathlib.Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        excluded = (([] if quantise_tail else tail_nodes(pre, float_convs))
                    + (head_nodes(pre) if float_head else [])
                    + [n.name for n in onnx.load(pre).graph.node if any(k in n.name for k in float_nodes or [])])
        quantize_static(
            str(pre), str(dst), Reader(name), quant_format=QuantFormat.QDQ, per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            calibrate_method=methods[method],
            nodes_to_exclude=excluded,
            op_types_to_quantize=op_types,
            extra_options={"CalibPercentile": percentile, "CalibTensorRangeSymmetric": False},
        )
        graph = onnx.load(pre).graph
        maker = {o: n.op_type for n in graph.node for o in n.output} | {i.name: "input" for i in graph.input}
        original = {n.name: [(x, maker.get(x)) for x in n.input] for n in graph.node if n.name in excluded}
    float_inputs(dst, original)


def float_inputs(path: pathlib.Path, original: dict[str, list[tuple[str, str | None]]]) -> None:
    """Make the float nodes (``original``: their names, and their inputs before quantisation with
    the op type that made each) read their inputs unrounded, in place.

    The quantiser rounds a tensor once for all its readers, so a node kept float still reads the
    8-bit copy of a tensor another reader wanted quantised: the upscalers' anchor (the input
    pixels, repeated into the output) and the tail convolution would be rounded to 256 levels,
    which a 16-bit file's smooth gradients show as steps.  Each such input goes back to its float
    tensor when the quantised graph still computes it the same way (not when the quantiser folded
    the ReLU that made it into the convolution before, whose output then takes the ReLU's name);
    pairs nobody reads any more are dropped."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    maker = {o: n.op_type for n in graph.node for o in n.output} | {i.name: "input" for i in graph.input}
    for node in graph.node:
        before = original.get(node.name)
        if before is None or len(before) != len(node.input):
            continue
        for i, (name, op) in enumerate(before):
            if node.input[i] != name and op is not None and maker.get(name) == op:
                node.input[i] = name
    while True:  # drop what no node and no graph output reads
        read = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export_checkpoint(checkpoint: pathlib.Path, info, folder: pathlib.Path) -> pathlib.Path:
    """A training checkpoint of ``info``'s network as a float ONNX file in ``folder`` (checked against
    PyTorch as ``models.train.export`` checks its exports)."""
    import torch

    from models.train import archs
    from models.train.export import INPUT_CHANNELS, check_against_torch, export_onnx

    state = torch.load(checkpoint, map_location="cpu")
    model = archs.build(state["arch"], **state["arch_kwargs"])
    model.load_state_dict(state["model"])
    model.eval()
    if state["arch"] != info.extra.get("arch", state["arch"]) or \
            sum(t.numel() for t in model.parameters()) != info.extra.get("parameters", -1):
        sys.exit(f"quantize: {checkpoint} is not {info.name}'s network ({state['arch']} {state['arch_kwargs']})")
    channels = INPUT_CHANNELS.get(state["arch"], 3)
    path = folder / f"{info.name}-source.onnx"
    export_onnx(model, path, channels=channels)
    folded = state["arch"] in ("denoise_rlfn", "lens_rlfn", "lens_gamma_rlfn")  # 2x2 folds: even sides
    diff = check_against_torch(model, path, channels=channels, even=folded)
    if diff > 1e-4:
        sys.exit(f"quantize: the export of {checkpoint} differs from PyTorch by {diff:.2e}")
    return path


def record_metrics(manifest: pathlib.Path, float_name: str, name: str, results: list[dict]) -> int:
    """The twin's ``metrics`` from ``truepix eval`` results (its JSON, or ``evaluate_upscale``'s dict)
    that ran it beside its float row: PSNR-Y and SSIM-Y of both and the difference, per data set (and
    degradation, when not the bicubic protocol)."""
    rows = _rows(manifest)
    row = next((r for r in rows if r["name"] == name), None)
    if row is None:
        sys.exit(f"quantize: {manifest} has no row {name}; quantise first")
    metrics, commands = dict(row.get("metrics", {})), []
    metrics.pop("command", None)
    for res in results:
        shas = res.get("model_files", {})
        if name in shas and shas[name].get("sha256", row["sha256"]) != row["sha256"]:
            sys.exit(f"quantize: {res.get('json', 'an evaluation')} measured another {name} file than the manifest's")
        q, f = res["results"][name], res["results"][float_name]
        key = res["dataset"] if res["degradation"] == "bicubic" else f"{res['dataset']}-{res['degradation']}"
        metrics[key] = {"psnr_y": q["psnr"], "ssim_y": q["ssim"], "float_psnr_y": f["psnr"], "float_ssim_y": f["ssim"],
                        "delta_psnr_y": round(q["psnr"] - f["psnr"], 3)}
        if res.get("json"):
            metrics[key]["json"] = res["json"]
        commands.append(res.get("command") or f"truepix eval --task upscale --scale {res['scale']} --degradation "
                                                f"{res['degradation']} --data DIR --model {name} --model {float_name}")
        print(f"{key}: int8 {q['psnr']:.3f} dB, float {f['psnr']:.3f} dB ({q['psnr'] - f['psnr']:+.3f})")
    row["metrics"] = {"command": "; ".join(dict.fromkeys(commands)), **metrics}
    write_manifest(rows, manifest)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the float model's manifest name")
    p.add_argument("--data", nargs="+", type=pathlib.Path, required=True, help="training images to calibrate on")
    p.add_argument("--patches", type=int, default=48)
    p.add_argument("--side", type=int, default=96, help="calibration patch side (network input pixels)")
    p.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax")
    p.add_argument("--percentile", type=float, default=99.99, help="(percentile) the share of values kept in range")
    p.add_argument("--activations", choices=["uint8", "int8"], default="uint8")
    p.add_argument("--resized-share", type=float, default=0.4,
                   help="share of calibration shots that are editor-downsized renders (the rest: camera files)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float-convs", type=int, default=1, help="convolutions at the tail kept float")
    p.add_argument("--float-head", action="store_true", help="keep the first convolution float")
    p.add_argument("--op-types", nargs="*", default=None, help="only these ONNX op types (default: all)")
    p.add_argument("--float-nodes", nargs="*", default=[], metavar="PART",
                   help="keep float every node whose name contains one of these, e.g. blocks.0/")
    p.add_argument("--quantise-tail", action="store_true", help="quantise the output convolution too")
    p.add_argument("--eval", type=pathlib.Path, nargs="*", default=[], help="SR test sets to measure (bicubic)")
    p.add_argument("--metrics-json", type=pathlib.Path, nargs="*", default=[],
                   help="record the int8 and float rows' figures from these `truepix eval --json` files (which ran "
                        "both) instead of quantising: the twin must exist and match the files' sha256")
    p.add_argument("--models-dir", type=pathlib.Path, default=MODELS_DIR)
    p.add_argument("--suffix", default="-int8")
    p.add_argument("--source", type=pathlib.Path, default=None,
                   help="quantise these weights instead of the float model's file: a quantisation-aware fine-tune's "
                        "checkpoint (models.train.train --qat) of the same network; the twin still stands beside "
                        "--model, and is measured against it")
    args = p.parse_args(argv)

    os.environ["TRUEPIX_MODELS"] = str(args.models_dir)
    from truepix.engine import models

    manifest = args.models_dir / "manifest.toml"
    info = models.get_model(args.model, args.models_dir)
    name = args.model + args.suffix
    if args.metrics_json:
        import json

        results = [{**json.loads(path.read_text()), "json": str(path)} for path in args.metrics_json]
        return record_metrics(manifest, args.model, name, results)
    dst = args.models_dir / f"{name}.onnx"
    inputs = calibration_inputs(info, _images(args.data), args.patches, args.side, args.seed, args.resized_share)
    with tempfile.TemporaryDirectory() as tmp:
        src = info.path if args.source is None else export_checkpoint(args.source, info, pathlib.Path(tmp))
        quantize(src, dst, inputs, method=args.method, activations=args.activations,
                 quantise_tail=args.quantise_tail, float_head=args.float_head, float_convs=args.float_convs,
                 op_types=args.op_types, percentile=args.percentile, float_nodes=args.float_nodes)
    sha = hashlib.sha256(dst.read_bytes()).hexdigest()
    rows = _rows(manifest)
    float_row = next(r for r in rows if r["name"] == args.model)
    row = twin_row(float_row, rows, name, dst, sha, "int8", args.suffix)
    row["exported"] = datetime.date.today().isoformat()
    command = "python -m models.train.quantize " + shlex.join(argv if argv is not None else sys.argv[1:])
    row["quantisation"] = {
        "command": command, "tool": "onnxruntime.quantization.quantize_static (QDQ)",
        "weights": "int8, per output channel", "activations": args.activations,
        "calibration": args.method + (f" {args.percentile:g}" if args.method == "percentile" else ""),
        "calibration_resized_share": args.resized_share,
        "calibration_data": [str(d) for d in args.data],
        "calibration_patches": f"{args.patches} crops of {args.side}x{args.side} network-input pixels, " + (
            "simulated raws (models.train.bayer.BayerSampler: training camera profiles, ISO 100-12800 or "
            "noise-free), fed as the network was trained" if info.kind.needs_raw else
            "broad-family shots (truepix.simulate.family), fed as the engine feeds them"),
        "float_tail_convs": 0 if args.quantise_tail else args.float_convs, "float_head": args.float_head,
        "op_types": args.op_types or "all", "float_nodes": args.float_nodes,
    }
    if args.source is not None:
        import torch

        state = torch.load(args.source, map_location="cpu")
        cfg = state.get("config", {})
        row["quantisation"]["weights_from"] = (
            f"{args.source} (iteration {state.get('iter')}): a quantisation-aware fine-tune of {args.model} "
            f"(models.train.qat), held out {state.get('val_psnr_y', float('nan')):.3f} dB with its int8 rounding")
        row["quantisation"]["fine_tune"] = {k: cfg[k] for k in ("name", "init", "iters", "lr", "lr_min", "loss",
                                                              "degradation", "resized_share", "mislabel", "qat_model",
                                                              "qat_recalibrate") if k in cfg}
    float_row["int8_model"] = name
    rows = [r for r in rows if r["name"] != name]
    write_manifest(rows + [row], manifest)
    if args.eval:
        from truepix.evaluate.sr import evaluate_upscale

        # each row as named (the library's default precision), both in one run
        record_metrics(manifest, args.model, name, [evaluate_upscale(data, info.scale, models=[name, args.model])
                                                    for data in args.eval])
    print(f"quantised {dst} ({dst.stat().st_size} bytes, sha256 {sha[:12]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
