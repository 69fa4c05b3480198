"""``python -m truepix.evaluate.gpucheck --provider cuda``: every shipped model on a GPU provider
against the CPU provider, on the same input, for ``tools/gpu-check``.

For each model: the provider ONNX Runtime really used (a CUDA session silently falls back to the
CPU when its libraries are missing: that is reported, not hidden), the largest difference from the
CPU's output, and the network's time on a 512-pixel tile on both.  JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _feed(info, side: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    planes = {"bayer": 8}.get(info.input, 3 + info.kind.planes)
    x = rng.random((1, planes, side, side), dtype=np.float32) * np.float32(0.8) + np.float32(0.1)
    if info.input == "rgb+kind":
        x[:, 3] = 1.0
    return x


def compare(provider: str = "cuda", side: int = 512, repeat: int = 3) -> dict:
    import onnxruntime

    from truepix.engine import models

    rows = []
    for info in models.load_manifest().values():
        x = _feed(info, side)
        out = {}
        for which in ("cpu", provider):
            sess = models.session(info, which, 0)
            name = sess.get_inputs()[0].name
            sess.run(None, {name: x})  # warm-up (a GPU's first run builds its kernels)
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                y = sess.run(None, {name: x})[0]
                best = min(best, time.perf_counter() - t0)
            out[which] = (y, best, sess.get_providers()[0])
        (y_cpu, t_cpu, _), (y_dev, t_dev, used) = out["cpu"], out[provider]
        rows.append({"model": info.name, "provider_used": used, "max_abs_diff": float(np.abs(y_dev - y_cpu).max()),
                     "cpu_s": round(t_cpu, 4), "device_s": round(t_dev, 4), "speedup": round(t_cpu / t_dev, 2)})
    return {"provider": provider, "available": onnxruntime.get_available_providers(),
            "onnxruntime": onnxruntime.__version__, "tile": side, "models": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--provider", default="cuda")
    p.add_argument("--tile", type=int, default=512)
    a = p.parse_args(argv)
    result = compare(a.provider, a.tile)
    json.dump(result, sys.stdout, indent=2)
    print()
    fell_back = [r["model"] for r in result["models"] if r["provider_used"] == "CPUExecutionProvider"]
    if a.provider != "cpu" and fell_back:
        print(f"gpucheck: {a.provider} was not used for {', '.join(fell_back)} (available: "
              f"{', '.join(result['available'])})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
