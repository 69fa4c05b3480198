"""Before/after crops for the docs: one image of one protocol, each method side by side.

    python -m truepix.evaluate.crops --degradation independent --data ../shared/data/color/McMaster \
        --index 3 --model upscale-x2-adaptive --model upscale-x2 --out docs/crop-independent.png

Panels, left to right: the input (each pixel repeated), bicubic, every ``--model`` through the real
engine (guard on), and the ground truth; a ``--size`` crop of the output (centred unless
``--at ROW COL``), each panel enlarged ``--zoom`` times by pixel repetition so nothing is smoothed
by the viewer.  The inputs are exactly those ``truepix eval`` scores (same seeds, same crops).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image, ImageDraw

from truepix.engine.pipeline import EngineOptions
from truepix.errors import EvalError
from truepix.evaluate import baselines
from truepix.evaluate.sr import IMAGE_SUFFIXES, _image_cases, _model_upscaler


def _case(degradation: str, data: pathlib.Path, scale: int, index: int):
    if degradation == "rawbin":
        from truepix.evaluate import rawbin

        cases = rawbin.cases(rawbin.raw_files(data), scale, {}, {})
        for i, (name, truth, lr) in enumerate(cases):
            if i == index:
                return name, truth, lr
        raise EvalError(f"crops: no readable RAW number {index} in {data}")
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for i, (name, truth, lr, _) in enumerate(_image_cases(files, scale, degradation)):
        if i == index:
            return name, truth, lr
    raise EvalError(f"crops: no image number {index} in {data}")


def panels(truth: np.ndarray, lr: np.ndarray, scale: int, models: list[str], params: dict,
           at: tuple[int, int] | None, size: int) -> list[tuple[str, np.ndarray]]:
    """(label, crop) for the input, bicubic, each model and the truth; crops of ``size`` output pixels."""
    h, w = truth.shape[:2]
    top, left = at if at is not None else ((h - size) // 2, (w - size) // 2)
    top, left = max(0, min(top, h - size)) // scale * scale, max(0, min(left, w - size)) // scale * scale

    def cut(img: np.ndarray) -> np.ndarray:
        return np.clip(img[top:top + size, left:left + size], 0, 1)

    out = [("input", cut(np.repeat(np.repeat(lr, scale, 0), scale, 1))), ("bicubic", cut(baselines.bicubic(scale)(lr)))]
    for name in models:
        out.append((name, cut(_model_upscaler(name, EngineOptions(), guard=True, params=params)(lr))))
    return out + [("truth", cut(truth))]


def sheet(items: list[tuple[str, np.ndarray]], zoom: int) -> Image.Image:
    """The panels in a row with their labels above, 8-bit RGB."""
    side = items[0][1].shape[0] * zoom
    label = 14
    img = Image.new("RGB", (len(items) * (side + 4) - 4, side + label), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, (name, crop) in enumerate(items):
        px = np.round(np.repeat(np.repeat(crop, zoom, 0), zoom, 1) * 255).astype(np.uint8)
        img.paste(Image.fromarray(px), (i * (side + 4), label))
        draw.text((i * (side + 4) + 2, 1), name, fill=(0, 0, 0))
    return img


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--degradation", choices=["bicubic", "camera", "independent", "rawbin"], required=True)
    p.add_argument("--data", type=pathlib.Path, required=True)
    p.add_argument("--index", type=int, default=0, help="which image (sorted order, as eval numbers them)")
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--param", action="append", default=[], help="KEY=VALUE step parameter for every model")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--size", type=int, default=96, help="crop side, output pixels")
    p.add_argument("--zoom", type=int, default=2)
    p.add_argument("--at", type=int, nargs=2, default=None, metavar=("ROW", "COL"))
    p.add_argument("--out", type=pathlib.Path, required=True)
    args = p.parse_args(argv)
    params = dict(kv.split("=", 1) for kv in args.param)
    try:
        name, truth, lr = _case(args.degradation, args.data, args.scale, args.index)
    except EvalError as e:
        raise SystemExit(str(e)) from None
    img = sheet(panels(truth, lr, args.scale, args.model, params, tuple(args.at) if args.at else None, args.size),
                args.zoom)
    img.save(args.out, optimize=True)
    print(f"{args.out}: {name}, {img.width}x{img.height}, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
