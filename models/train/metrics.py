"""Attach measured metrics to a shipped model's manifest row, from ``truepix eval --json`` files.

    truepix eval --task demosaic --data ../shared/data/color/McMaster --iso 800 3200 12800 \
        --json docs/eval-demosaic-McMaster.json
    python -m models.train.metrics --name demosaic docs/eval-demosaic-McMaster.json

Each JSON names the command that produced it and the sha256 of every model it ran; a file measured
on another version of the model is refused, so a row's figures are always its own file's.  The row
gets ``[models.metrics.<dataset>]`` with that command, the model's figure for each condition and the
best classical method's beside it (for the lens: PSNR, noise gain and halo, and the best classical
setting overall and among those that keep the noise).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import tomllib

from models.train.export import MODELS_DIR, write_manifest


def _key(condition: str) -> str:
    """A TOML bare key for a condition: "ISO 3200" -> "iso_3200", "sigma 25" -> "sigma_25"."""
    return re.sub(r"[^a-z0-9]+", "_", condition.lower()).strip("_")


def metrics_of(name: str, result: dict) -> dict:
    """The figures for model ``name`` from one eval result, as a flat table."""
    table: dict = {"command": result["command"], "images": result["images"]}
    if result["task"] == "lens":
        ours = result["results"].get(name) or result["results"][f"{name} (blind)"]
        table.update({k: ours[k] for k in ("psnr", "noise_gain", "halo", "sharp_psnr")})
        for label, best in (("best_classical", result["best_classical"]),
                            ("best_classical_noise_kept", result.get("best_classical_noise_kept"))):
            if best:
                b = result["results"][best]
                table.update({label: best, f"{label}_psnr": b["psnr"], f"{label}_noise_gain": b["noise_gain"]})
        if "uncorrected" in result["results"]:
            table["uncorrected_psnr"] = result["results"]["uncorrected"]["psnr"]
            table["uncorrected_sharp_psnr"] = result["results"]["uncorrected"]["sharp_psnr"]
        return table
    variants = {m[len(name):].strip(" ()"): r for m, r in result["results"].items()
                if m == name or m.startswith((f"{name} (", f"{name} on "))}
    if not variants:
        raise SystemExit(f"metrics: the result has no rows for {name!r}")
    best = result.get("best_classical") or {}
    peers = [m for m in result["results"] if m.startswith("CBM3D")]  # the denoise task's named peer
    for cond in result["conditions"]:
        for variant, r in variants.items():
            if cond in r:
                table[_key(cond) + (f"_{_key(variant)}" if variant else "")] = r[cond]
        if isinstance(best, dict) and best.get(cond):
            table[f"{_key(cond)}_best_classical"] = best[cond]
            table[f"{_key(cond)}_best_classical_psnr"] = result["results"][best[cond]][cond]
        for peer in peers:
            if cond in result["results"][peer]:
                table[f"{_key(cond)}_{_key(peer)}"] = result["results"][peer][cond]
    return table


def attach(name: str, files: list[pathlib.Path], models_dir: pathlib.Path = MODELS_DIR) -> dict:
    path = models_dir / "manifest.toml"
    rows = tomllib.loads(path.read_text())["models"]
    row = next((r for r in rows if r["name"] == name), None)
    if row is None:
        raise SystemExit(f"metrics: no model {name!r} in {path}")
    metrics = {}
    for f in files:
        result = json.loads(f.read_text())
        ran = result.get("model_files", {}).get(name)
        if ran is None:
            ran_names = ", ".join(result.get("model_files", {})) or "none"
            raise SystemExit(f"metrics: {f} did not measure {name!r} (it ran: {ran_names})")
        if ran["sha256"] != row["sha256"]:
            raise SystemExit(f"metrics: {f} measured another {name}.onnx (sha256 {ran['sha256'][:12]}..., "
                             f"the shipped one is {row['sha256'][:12]}...); measure again")
        key = result["dataset"] if result["dataset"] not in metrics else f"{result['dataset']}_{f.stem}"
        metrics[key] = metrics_of(name, result)
    row["metrics"] = metrics
    write_manifest(rows, path)
    return metrics


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("files", type=pathlib.Path, nargs="+", help="truepix eval --json outputs")
    p.add_argument("--models-dir", type=pathlib.Path, default=MODELS_DIR)
    args = p.parse_args(argv)
    for dataset, table in attach(args.name, args.files, args.models_dir).items():
        print(f"{args.name}: metrics for {dataset} ({table['command']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
