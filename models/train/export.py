"""Export a trained checkpoint to ONNX and write its row in ``models/manifest.toml``.

    python -m models.train.export --name upscale-x2 --checkpoint runs/upscale-x2/best.pt \
        --eval ../shared/data/sr/Set5 ../shared/data/sr/Set14 ../shared/data/sr/BSD100

The ONNX graph takes ``input`` (1, 3, H, W) float32 and returns ``output``
(1, 3, H*s, W*s) with H and W dynamic.  The export is checked against PyTorch
through ONNX Runtime, then the metrics are measured with the installed engine
(``truepix eval``'s own code) and written, with the command, into the row.
"""

from __future__ import annotations

import argparse
import datetime
import os
import hashlib
import pathlib
import sys
import tomllib

import numpy as np
import torch

from models.train import archs

MODELS_DIR = pathlib.Path(__file__).resolve().parents[1]
# input planes of each architecture that takes more than RGB
INPUT_CHANNELS = {"bayer_rlfn": 8, "bayer_gamma_rlfn": 8, "denoise_rlfn": 4, "lens_rlfn": 5, "lens_gamma_rlfn": 5,
                  "rlfn_cond": 4}


def receptive_radius(model: torch.nn.Module) -> int:
    """Input pixels of context per side: the sum of (k - 1) / 2 over the convolutions."""
    return sum((m.kernel_size[0] - 1) // 2 for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def export_onnx(model: torch.nn.Module, path: pathlib.Path, opset: int = 17, channels: int = 3) -> None:
    model.eval()
    dummy = torch.rand(1, channels, 64, 48)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        model, (dummy,), str(tmp), input_names=["input"], output_names=["output"], opset_version=opset,
        dynamic_axes={"input": {2: "height", 3: "width"}, "output": {2: "out_height", 3: "out_width"}},
        dynamo=False,
    )
    import onnx

    onnx.checker.check_model(onnx.load(str(tmp)))
    tmp.replace(path)


def check_against_torch(model: torch.nn.Module, path: pathlib.Path, channels: int = 3, even: bool = False) -> float:
    """Max abs difference between PyTorch and ONNX Runtime on an odd-sized input (``even``: one size
    up, for networks that fold 2x2 pixels)."""
    import onnxruntime as ort

    x = torch.rand(1, channels, 78, 54) if even else torch.rand(1, channels, 77, 53)
    with torch.no_grad():
        ref = model(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    return float(np.abs(ref - got).max())


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def _table(header: str, table: dict) -> list[str]:
    """``header`` then its plain keys, then each nested dict as its own sub-table."""
    lines = [header] + [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    path = "models" if header == "[[models]]" else header.strip("[]")
    for k, v in table.items():
        if isinstance(v, dict):
            lines += [""] + _table(f"[{path}.{k}]", v)
    return lines


def row_to_toml(row: dict) -> str:
    """One ``[[models]]`` table; nested dicts become sub-tables."""
    return "\n".join(_table("[[models]]", row)) + "\n"


def write_manifest(rows: list[dict], path: pathlib.Path) -> None:
    head = ("# Shipped models: one [[models]] table each, written by models/train/export.py.\n"
            "# sha256 is checked before a model is loaded; metrics were measured by the command beside them.\n")
    text = head + "\n" + "\n".join(row_to_toml(r) for r in rows)
    tomllib.loads(text)  # never write a manifest we cannot read back
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _training(args, cfg: dict, state: dict, trainer: str, degradation: str, patch_key: str, loss: str,
              held_out_val: dict) -> dict:
    """A row's ``[models.training]`` table: how the checkpoint was made, in the same order for every task."""
    return {
        "command": args.training_command or f"python -m models.train.{trainer} --name {cfg['name']} ...",
        "data": [os.path.relpath(d, MODELS_DIR.parent) for d in cfg["data"]]
        + [f"{d} (python -m models.train.teachers --out {d}: the photographs listed in models/data/teachers.toml)"
           for d in cfg.get("extra_data") or []],
        "degradation": degradation, "iterations": state["iter"], "scheduled_iterations": cfg["iters"],
        "held_out": f"the last {cfg['val_count']} images of the data in sorted order (model selection)",
        "batch": cfg["batch"], patch_key: cfg["patch"], "loss": loss,
        "optimizer": f"Adam, lr {cfg['lr']} cosine to {cfg['lr_min']}",
        **held_out_val, "arch_kwargs": dict(state["arch_kwargs"]),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--checkpoint", type=pathlib.Path, required=True)
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--task", default="upscale")
    p.add_argument("--degradation", default=None,
                   help="how the training pairs were made (default: from the checkpoint's config)")
    p.add_argument("--eval", type=pathlib.Path, nargs="*", default=[], help="SR test sets to measure")
    p.add_argument("--training-command", default="", help="the command that trained the checkpoint")
    p.add_argument("--clean-model", default=None,
                   help="(rlfn_cond) the row clean files are handed to instead of the network's clean mode")
    p.add_argument("--models-dir", type=pathlib.Path, default=MODELS_DIR, help="where the .onnx and manifest go")
    args = p.parse_args(argv)
    models_dir = args.models_dir

    state = torch.load(args.checkpoint, map_location="cpu")
    model = archs.build(state["arch"], **state["arch_kwargs"])
    model.load_state_dict(state["model"])
    model.eval()
    onnx_path = models_dir / f"{args.name}.onnx"
    channels = INPUT_CHANNELS.get(state["arch"], 3)
    export_onnx(model, onnx_path, channels=channels)
    folded = state["arch"] in ("denoise_rlfn", "lens_rlfn", "lens_gamma_rlfn")
    diff = check_against_torch(model, onnx_path, channels=channels, even=folded)
    if diff > 1e-4:
        sys.exit(f"export: ONNX Runtime differs from PyTorch by {diff:.2e}")
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    if state["arch"] in ("bayer_rlfn", "bayer_gamma_rlfn"):
        return _export_bayer(args, state, model, onnx_path, sha, diff)
    if state["arch"] == "denoise_rlfn":
        return _export_denoise(args, state, model, onnx_path, sha, diff)
    if state["arch"] in ("lens_rlfn", "lens_gamma_rlfn"):
        return _export_lens(args, state, model, onnx_path, sha, diff)
    cfg = state["config"]
    scale = state["arch_kwargs"]["scale"]
    protocol = cfg.get("degradation", "bicubic")
    if args.degradation is None and protocol == "broad":
        args.degradation = ("broad family (truepix.simulate.family): editor-downsized renders (bicubic/Lanczos/"
                            f"area, share {cfg.get('resized_share')}) labelled clean ({cfg.get('mislabel')} of them "
                            "labelled camera), camera files and downsized camera photos labelled camera; "
                            f"{cfg.get('camera_variants')} variants per image; held-out profile apsc24 never drawn")
    if args.degradation is None:
        args.degradation = ("bicubic (MATLAB imresize, antialiased)" if protocol == "bicubic" else
                            "camera (truepix.simulate: random camera profiles, held out: "
                            f"{', '.join(cfg.get('exclude_profile', []))}; {cfg.get('camera_variants')} "
                            "variants per image)")
    row = {
        "name": args.name, "version": args.version, "task": args.task, "scale": scale,
        "file": onnx_path.name, "sha256": sha, "input": "rgb", "transfer": "srgb",
        "receptive_radius": receptive_radius(model), "opset": 17,
        # The fidelity guard keeps means where the training degradation keeps them (engine/pipeline.py).
        "anchor": "linear" if protocol == "camera" else "srgb", "anchor_block": 16,
        "anchor_tolerance": 0.1 if protocol == "camera" else 0.0,
        "arch": state["arch"], "parameters": sum(t.numel() for t in model.parameters()),
        "exported": datetime.date.today().isoformat(),
        "training": _training(args, cfg, state, "train", args.degradation, "lr_patch", cfg.get("loss", "l1"),
                              {"held_out_val_psnr_y": round(state["val_psnr_y"], 3)}),
    }
    if state["arch"] == "rlfn_cond":
        # told the input kind (engine/inputkind.py): guarded as a bicubic model for clean files and as
        # the camera models for camera files; "auto" asks the input-kind estimator
        row.update(input="rgb+kind", anchor="srgb", anchor_tolerance=0.0, camera_anchor="linear",
                   camera_anchor_tolerance=0.1, kind_model="input-kind")
        if args.clean_model:
            row["clean_model"] = args.clean_model
        for key in ("val_clean", "val_camera"):
            if key in state:
                row["training"][f"held_out_{key}_psnr_y"] = round(state[key], 3)
        protocol = "bicubic"
    if cfg.get("init"):
        row["training"]["initialised_from"] = os.path.relpath(cfg["init"], MODELS_DIR.parent)
    if args.eval:
        from truepix.evaluate.sr import evaluate_upscale

        os.environ["TRUEPIX_MODELS"] = str(models_dir)  # the engine must load the row just written

        manifest = models_dir / "manifest.toml"
        rows = _rows(manifest)
        write_manifest([r for r in rows if r["name"] != args.name] + [row], manifest)
        metrics = {}
        for data in args.eval:
            res = evaluate_upscale(data, scale, models=[args.name], degradation=protocol)
            r, b = res["results"][args.name], res["results"]["bicubic"]
            metrics[data.name] = {"psnr_y": r["psnr"], "ssim_y": r["ssim"], "bicubic_psnr_y": b["psnr"],
                                  "bicubic_ssim_y": b["ssim"]}
            for key in ("colour_shift", "backprojection_psnr", "invention_ratio"):
                if key in r:
                    metrics[data.name][key] = r[key]
            print(f"{data.name}: PSNR-Y {r['psnr']:.2f} dB (bicubic {b['psnr']:.2f}), SSIM-Y {r['ssim']:.4f}")
        row["metrics"] = {"command": f"truepix eval --task upscale --scale {scale} --degradation {protocol} "
                                     f"--data DIR --model {args.name}", **metrics}
    manifest = models_dir / "manifest.toml"
    rows = _rows(manifest)
    write_manifest([r for r in rows if r["name"] != args.name] + [row], manifest)
    print(f"exported {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {sha[:12]}..., max |torch-ort| {diff:.1e})")
    return 0


def _export_bayer(args, state, model, onnx_path, sha, diff) -> int:
    """The manifest row of a joint demosaic + denoise network (models.train.train_bayer)."""
    from models.train.bayer import NOISE_MAP_SCALE

    cfg = state["config"]
    degradation = ("simulated raws (models/train/bayer.py): exposure 2^U(-3, 0.5), white balance "
                   "R x U(1.4, 2.6), B x U(1.2, 2.6), RGGB mosaic, shot + read noise of random camera "
                   f"profiles (held out: {', '.join(cfg['exclude_profile'])}) at ISO log-uniform "
                   f"base..{cfg['iso_max']:g}, {cfg['noise_free_share']:.0%} noise-free, raw quantisation"
                   + (f"; {cfg['colour_share']:.0%} of the scenes with permuted channels and saturation "
                      "x 0.6..2.5 (bayer.vary_colour)" if cfg.get("colour_share") else ""))
    row = {
        "name": args.name, "version": args.version, "task": "demosaic", "scale": 2,
        "file": onnx_path.name, "sha256": sha, "input": "bayer", "transfer": "linear",
        "receptive_radius": receptive_radius(model), "opset": 17,
        # 32-pixel blocks: the mosaic's site means (the guard's reference) alias less than over 16
        # (the guard cost 0.12 dB on clean McMaster at 16 px, 0.04 at 32, 2% tolerance both).
        "noise_map_scale": NOISE_MAP_SCALE, "anchor_block": 32, "anchor_tolerance": 0.02,
        "arch": state["arch"], "parameters": sum(t.numel() for t in model.parameters()),
        "exported": datetime.date.today().isoformat(),
        "training": _training(args, cfg, state, "train_bayer", degradation, "half_resolution_patch",
                              "L1 on the sRGB encoding of output / exposure vs target / exposure",
                              {"held_out_val_psnr_clean": round(state["val_psnr"], 3),
                               "held_out_val_psnr_iso3200": round(state["val_psnr_iso3200"], 3)}),
    }
    manifest = args.models_dir / "manifest.toml"
    write_manifest([r for r in _rows(manifest) if r["name"] != args.name] + [row], manifest)
    if args.eval:
        from truepix.evaluate.demosaic import evaluate_demosaic

        os.environ["TRUEPIX_MODELS"] = str(args.models_dir)
        metrics = {}
        for data in args.eval:
            res = evaluate_demosaic(data, models=[args.name], iso=[800, 3200, 12800])
            r = res["results"][args.name]
            entry = {"psnr_rgb": r["clean"]}
            for cond in res["conditions"]:
                b = res["best_classical"][cond]
                key = cond.lower().replace(" ", "")
                if cond != "clean":
                    entry[f"psnr_rgb_{key}"] = r[cond]
                entry[f"best_classical_{key}"] = f"{b}: {res['results'][b][cond]:.3f}"
            metrics[data.name] = entry
            print(f"{data.name}: {r}")
        row["metrics"] = {"command": f"truepix eval --task demosaic --data DIR --model {args.name} "
                                     "--iso 800 3200 12800", **metrics}
        write_manifest([r for r in _rows(manifest) if r["name"] != args.name] + [row], manifest)
    print(f"exported {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {sha[:12]}..., max |torch-ort| {diff:.1e})")
    return 0


def _export_denoise(args, state, model, onnx_path, sha, diff) -> int:
    """The manifest row of the RGB denoiser (models.train.train_restore)."""
    from models.train.train_restore import NOISE_MAP_SCALE

    cfg = state["config"]
    row = {
        "name": args.name, "version": args.version, "task": "denoise", "scale": 1,
        "file": onnx_path.name, "sha256": sha, "input": "rgb+noise", "transfer": "srgb",
        "receptive_radius": 2 * receptive_radius(model), "opset": 17,
        "noise_map_scale": NOISE_MAP_SCALE, "anchor": "srgb", "anchor_block": 16, "anchor_tolerance": 0.02,
        "arch": state["arch"], "parameters": sum(t.numel() for t in model.parameters()),
        "exported": datetime.date.today().isoformat(),
        "training": _training(
            args, cfg, state, "train_restore",
            f"{1 - cfg['signal_share']:.0%} additive white Gaussian noise on sRGB values, sigma "
            f"U(0, {cfg['sigma_max']:g}) of 255; {cfg['signal_share']:.0%} signal-dependent noise "
            "(Gaussian in linear light, variance a x + b) through the sRGB curve",
            "patch", "L1 on sRGB values", {"held_out_val_psnr_sigma25": round(state["val_psnr_sigma25"], 3)}),
    }
    manifest = args.models_dir / "manifest.toml"
    write_manifest([r for r in _rows(manifest) if r["name"] != args.name] + [row], manifest)
    if args.eval:
        from truepix.evaluate.denoise import evaluate_denoise

        os.environ["TRUEPIX_MODELS"] = str(args.models_dir)
        metrics = {}
        for data in args.eval:
            res = evaluate_denoise(data, models=[args.name], sigmas=[15, 25, 50], cbm3d=False)
            r, rb = res["results"][f"{args.name} (true sigma)"], res["results"][f"{args.name} (blind)"]
            metrics[data.name] = {f"psnr_sigma{s:g}": r[f"sigma {s:g}"] for s in (15, 25, 50)}
            metrics[data.name].update({f"psnr_sigma{s:g}_blind": rb[f"sigma {s:g}"] for s in (15, 25, 50)})
            print(f"{data.name}: {r}")
        row["metrics"] = {"command": f"truepix eval --task denoise --data DIR --model {args.name}", **metrics}
        write_manifest([r for r in _rows(manifest) if r["name"] != args.name] + [row], manifest)
    print(f"exported {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {sha[:12]}..., max |torch-ort| {diff:.1e})")
    return 0


def _export_lens(args, state, model, onnx_path, sha, diff) -> int:
    """The manifest row of the lens optimizer (models.train.train_restore --task lens)."""
    from models.train.lens import PSF_RANGES

    cfg = state["config"]
    row = {
        "name": args.name, "version": args.version, "task": "lens", "scale": 1,
        "file": onnx_path.name, "sha256": sha, "input": "rgb+field", "transfer": "linear",
        "receptive_radius": 2 * receptive_radius(model), "opset": 17,
        "anchor": "linear", "anchor_block": 16, "anchor_tolerance": 0.02,
        # engine/restrain.py after the network: no overshoot past the input's range over 7x7 pixels
        # (halos), no correction where the input varies less than twice its noise variance (grain)
        "clamp_radius": 3, "noise_gate": 2.0,
        "arch": state["arch"], "parameters": sum(t.numel() for t in model.parameters()),
        "exported": datetime.date.today().isoformat(),
        "training": _training(
            args, cfg, state, "train_restore --task lens",
            "models/train/lens.py: " + ", ".join(f"{k} {v}" for k, v in PSF_RANGES.items())
            + (f"; {cfg['scene_defocus']:.0%} of the scenes partly out of focus in teacher and student (bokeh kept)"
               if cfg.get("scene_defocus") else "")
            + (f"; {cfg['sharp_share']:.0%} of the students from a perfect lens (sharp kept)"
               if cfg.get("sharp_share") else ""),
            "patch", "L1 on the sRGB encoding of linear output",
            {"held_out_val_psnr": round(state["val_psnr_lens"], 3)}),
    }
    manifest = args.models_dir / "manifest.toml"
    write_manifest([r for r in _rows(manifest) if r["name"] != args.name] + [row], manifest)
    if args.eval:
        from truepix.evaluate.lens import evaluate_lens

        os.environ["TRUEPIX_MODELS"] = str(args.models_dir)
        metrics = {}
        for data in args.eval:
            res = evaluate_lens(data, models=[args.name])
            r = res["results"][f"{args.name} (blind)"]
            metrics[data.name] = {"psnr": r["psnr"], "noise_gain": r["noise_gain"], "halo": r["halo"],
                                  "sharp_psnr": r["sharp_psnr"],
                                  "uncorrected_sharp_psnr": res["results"]["uncorrected"]["sharp_psnr"]}
            for k, v in res["results"].items():  # the best setting of each classical method
                if k.startswith(("Wiener", "Richardson")):
                    key = k.split(" ")[0].lower().replace("-", "_") + "_best_psnr"
                    metrics[data.name][key] = max(metrics[data.name].get(key, -1.0), v["psnr"])
            kept = res["best_classical_noise_kept"]
            if kept:
                metrics[data.name]["best_classical_noise_kept"] = f"{kept}: {res['results'][kept]['psnr']:.3f}"
            print(f"{data.name}: {r}")
        row["metrics"] = {"command": f"truepix eval --task lens --data DIR --model {args.name}", **metrics}
        write_manifest([r for r in _rows(manifest) if r["name"] != args.name] + [row], manifest)
    print(f"exported {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {sha[:12]}..., max |torch-ort| {diff:.1e})")
    return 0


def _rows(manifest: pathlib.Path) -> list[dict]:
    if not manifest.exists():
        return []
    return tomllib.loads(manifest.read_text()).get("models", [])


if __name__ == "__main__":
    from truepix.errors import TruepixError

    try:
        sys.exit(main())
    except TruepixError as e:  # an evaluation that cannot run: one line, as truepix's CLI prints it
        sys.exit(f"export: {e}")
