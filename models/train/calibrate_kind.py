"""How the shipped input-kind estimator scores photos it never trained on: its calibration.

For each of the last ``--val-count`` images of ``--data`` (the ones ``train_kind`` and ``train``
hold out), ``--variants`` students of the broad family (``truepix.simulate.family``, half of them
editor-downsized renders) are scored by the engine exactly as ``input = "auto"`` scores a photo
(``engine.inputkind.estimate``: the mean logit over up to nine crops).  Prints, per kind, the
percentiles of p, the share on the wrong side of 0.5 and the share in the blend band
[UNSURE, SURE), and writes them as JSON with ``--json``::

    PYTHONPATH=daemon:. python -m models.train.calibrate_kind \
        --data ../shared/data/train/T91 ../shared/data/train/BSD200 --json models/logs/input-kind-calibration.json
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from models.train.data import list_images, load_rgb

PERCENTILES = (5, 25, 50, 75, 95)


def calibrate(data: list[pathlib.Path], val_count: int = 8, variants: int = 64, seed: int = 11,
              model: str = "upscale-x2-adaptive", max_side: int = 480) -> dict:
    from truepix.engine import inputkind, models
    from truepix.simulate.family import broad_student, sample_shot

    info = models.get_model(model)
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {"clean": [], "camera": []}
    files = list_images(data)[-val_count:]
    for path in files:
        img = load_rgb(path)
        for _ in range(variants):
            h, w = img.shape[:2]
            ch, cw = min(h, max_side) // 4 * 4, min(w, max_side) // 4 * 4
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            shot = sample_shot(rng, resized_share=0.5)
            student = broad_student(np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw]), 2, shot)
            kind = "clean" if shot.kind == "resized" else "camera"
            scores[kind].append(inputkind.estimate(info, student, "cpu", 0))
    out = {"model": info.kind_model, "held_out_images": [p.name for p in files], "variants": variants,
           "seed": seed, "band": [inputkind.UNSURE, inputkind.SURE]}
    for kind, ps in scores.items():
        a = np.asarray(ps)
        wrong = a >= 0.5 if kind == "clean" else a < 0.5
        out[kind] = {"students": int(a.size),
                     "p_percentiles": {str(q): round(float(np.percentile(a, q)), 4) for q in PERCENTILES},
                     "wrong_side": round(float(wrong.mean()), 4),
                     "in_band": round(float(((a >= inputkind.UNSURE) & (a < inputkind.SURE)).mean()), 4)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path, nargs="+", required=True)
    ap.add_argument("--val-count", type=int, default=8)
    ap.add_argument("--variants", type=int, default=64)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args(argv)
    result = calibrate(args.data, args.val_count, args.variants, args.seed)
    for kind in ("clean", "camera"):
        r = result[kind]
        pct = " ".join(f"p{q}={v:.3f}" for q, v in r["p_percentiles"].items())
        print(f"{kind}: {r['students']} students, {pct}, wrong side of 0.5 {100 * r['wrong_side']:.1f}%, "
              f"in the blend band {100 * r['in_band']:.1f}%")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
