"""``truepix bench``: throughput and peak memory of each upscaler, side by side; with ``--raw FILE...``,
RAW development file to file (truepix's ``develop`` recipe to a linear DNG, next to LibRaw's AHD to a
16-bit TIFF; megapixels are the mosaic's).

Each case (method x input size) runs in a fresh child process, so its peak
resident memory (``ru_maxrss``) is its own: the synthetic input image, the
engine's buffers and ONNX Runtime's arena, all counted.  Throughput is output
megapixels per second of the upscaling itself: a model's row is the engine as
``truepix process`` runs a 16-bit photo, less decoding and writing (its sRGB-encoded
values in, the tiling, the fidelity guard and its report, the output's 16-bit samples
out; until 2026-12-03 the row took linear light in and gave linear light back, two
passes through the sRGB curve that no file's path makes); the "(file to file)" rows
time ``truepix process`` on a 16-bit TIFF: decoding, enhancing, encoding a 16-bit
TIFF and carrying the metadata; the "(network only)" rows time ONNX Runtime alone
over the same tiles, run as the engine runs them (cells side by side on the CPU):
the ceiling for the engine path.  Pillow's bicubic runs in the same
command as the baseline, OpenCV dnn_superres peers too when given.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

from truepix.errors import EvalError


def synthetic_image(megapixels: float, seed: int = 0) -> np.ndarray:
    """A 3:2 float32 RGB test image of about ``megapixels`` MP (smooth + noise)."""
    w = int(round(math.sqrt(megapixels * 1e6 * 1.5)))
    h = int(round(w / 1.5))
    rng = np.random.default_rng(seed)
    img = rng.random((h, w, 3), dtype=np.float32)
    img *= 0.2
    img += np.linspace(0.1, 0.7, w, dtype=np.float32)[None, :, None]
    return img


def _row(method: str, w: int, h: int, out_mp: float, seconds: float) -> dict:
    """One result: sizes, time, throughput and this process's peak RSS so far."""
    return {"method": method, "input_mp": round(h * w / 1e6, 2), "input": f"{w}x{h}",
            "output_mp": round(out_mp, 2), "seconds": round(seconds, 3), "mp_per_s": round(out_mp / seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


RAW_DEVELOP = "truepix develop (RAW to linear DNG)"
RAW_LIBRAW = "LibRaw AHD (RAW to 16-bit TIFF)"


def _raw_case(method: str, path: pathlib.Path, tile: int, threads: int, provider: str) -> dict:
    """A camera RAW file developed, file to file: truepix's ``develop`` recipe (Bayer network to a
    linear DNG), or LibRaw's AHD demosaic to a linear 16-bit TIFF as the baseline."""
    import dataclasses
    import tempfile

    with tempfile.TemporaryDirectory(prefix="truepix-bench-") as tmp:
        t0 = time.perf_counter()
        if method == RAW_DEVELOP:
            from truepix.engine.pipeline import EngineOptions
            from truepix.process import process_file
            from truepix.recipes import BUILTIN

            options = EngineOptions(provider=provider, threads=threads, tile=tile)
            res = process_file(path, dataclasses.replace(BUILTIN["develop"], output=pathlib.Path(tmp)), options=options)
            if res.status != "done":
                raise EvalError(res.error)
            w, h = res.width, res.height
        else:
            import rawpy
            import tifffile

            with rawpy.imread(str(path)) as raw:
                rgb = raw.postprocess(demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, gamma=(1, 1),
                                      no_auto_bright=True, output_bps=16, use_camera_wb=True)
            tifffile.imwrite(pathlib.Path(tmp) / "out.tif", rgb, photometric="rgb")
            h, w = rgb.shape[:2]
        seconds = time.perf_counter() - t0
    row = _row(method, w, h, w * h / 1e6, seconds)
    row["file"] = path.name
    return row


CONV_PEAK = "conv peak "  # + float32 | int8
CONV_PEAK_SIDE = 256


def _conv_peak_case(method: str, threads: int, provider: str, repeat: int) -> dict:
    """This machine's multiply-accumulate rate on the upscalers' bread and butter: four 3x3
    convolutions of 64 channels with ReLU (models/bench/conv-peak*.onnx, models/train/convpeak.py)
    on a 256x256 map, in ONNX Runtime, float32 or QDQ int8; the best of ``repeat`` (at least 5) runs."""
    from truepix.engine import models

    precision = method[len(CONV_PEAK):]
    path = models.default_model_dir() / "bench" / f"conv-peak{'-int8' if precision == 'int8' else ''}.onnx"
    if not path.exists():
        raise EvalError(f"{path} is missing (python -m models.train.convpeak writes it)")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=models.choose_providers(provider)[0])
    x = np.random.default_rng(0).random((1, 64, CONV_PEAK_SIDE, CONV_PEAK_SIDE), np.float32)
    sess.run(None, {"input": x})
    best = math.inf
    for _ in range(max(repeat, 5)):
        t0 = time.perf_counter()
        sess.run(None, {"input": x})
        best = min(best, time.perf_counter() - t0)
    macs = 4 * 64 * 64 * 9 * CONV_PEAK_SIDE**2
    row = _row(method, CONV_PEAK_SIDE, CONV_PEAK_SIDE, CONV_PEAK_SIDE**2 / 1e6, best)
    row["gmacs_per_s"] = round(macs / best / 1e9, 2)
    return row


def _case(method: str, megapixels: float, tile: int, threads: int, provider: str,
          peer: str | None, repeat: int, raw: str | None = None) -> dict:
    if method.startswith(CONV_PEAK):
        return _conv_peak_case(method, threads, provider, repeat)
    if raw is not None:
        return _raw_case(method, pathlib.Path(raw), tile, threads, provider)
    if method.endswith(FILE_TO_FILE):
        return _file_case(method, megapixels, tile, threads, provider)
    img = synthetic_image(megapixels)
    h, w = img.shape[:2]
    if method.endswith(NETWORK_ONLY):
        return _network_case(method, img, tile, threads, provider, repeat)
    if method.startswith(PILLOW):
        from PIL import Image

        scale = _pillow_scale(method)
        im = Image.fromarray(np.round(img * 255).astype(np.uint8))
        del img
        run = lambda: im.resize((w * scale, h * scale), Image.BICUBIC)  # noqa: E731
    elif peer is not None:
        from truepix.evaluate.baselines import opencv_peer

        # OpenCV runs the whole image at once: cap its address space so a 24 MP run that
        # needs tens of GB fails as "out of memory" instead of taking the machine down.
        limit = int(PEER_MEMORY_GB * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        scale = int(peer.rsplit("_x", 1)[1].split(".")[0])
        up = opencv_peer(pathlib.Path(peer), scale)
        run = lambda: up(img)  # noqa: E731
    else:
        from truepix.engine import models
        from truepix.engine.pipeline import EngineOptions, enhance
        from truepix.recipes import Recipe, Step

        from truepix.io.encode import Samples

        info = models.get_model(method)
        scale = info.scale
        recipe = Recipe(method, (Step(method),))
        options = EngineOptions(provider=provider, threads=threads, tile=tile)
        # as `truepix process` runs a 16-bit photo, less its decoding and writing: the file's
        # sRGB-encoded values in, the output's 16-bit samples out (``io.encode.Samples``)
        work = [img.copy() for _ in range(repeat)]  # the engine takes its input over: a copy each, made here
        run = lambda: enhance(work.pop(), None, recipe, options, sink=Samples("tiff", 16), transfer="srgb")  # noqa: E731
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t0)
        del out
    out_mp = h * w * scale * scale / 1e6
    return _row(method, w, h, out_mp, best)


FILE_TO_FILE = " (file to file)"
PILLOW = "pillow-bicubic"


def _pillow_method(scale: int) -> str:
    """The baseline's name: ``pillow-bicubic`` at x2 (as in earlier tables), ``pillow-bicubic x4`` otherwise."""
    return PILLOW if scale == 2 else f"{PILLOW} x{scale}"


def _pillow_scale(method: str) -> int:
    return int(method.rsplit(" x", 1)[1]) if " x" in method else 2
NETWORK_ONLY = " (network only)"
PEER_MEMORY_GB = 12.0


def _file_case(method: str, megapixels: float, tile: int, threads: int, provider: str) -> dict:
    """``truepix process`` on a 16-bit TIFF: decode, enhance, encode, metadata, all timed."""
    import tempfile

    import tifffile

    from truepix.engine.pipeline import EngineOptions
    from truepix.process import process_file
    from truepix.recipes import Recipe, Step

    name = method[: -len(FILE_TO_FILE)]
    with tempfile.TemporaryDirectory(prefix="truepix-bench-") as tmp:
        src = pathlib.Path(tmp) / "bench.tif"
        img = synthetic_image(megapixels)
        h, w = img.shape[:2]
        img *= 65535
        np.rint(img, out=img)
        tifffile.imwrite(src, img.astype(np.uint16), photometric="rgb")
        del img  # the process now starts from the file alone, as `truepix process` does
        t0 = time.perf_counter()
        res = process_file(src, Recipe(name, (Step(name),)),
                           options=EngineOptions(provider=provider, threads=threads, tile=tile))
        seconds = time.perf_counter() - t0
        if res.status != "done":
            raise EvalError(res.error)
        out_mp = res.width * res.height / 1e6
    return _row(method, w, h, out_mp, seconds)


def _network_case(method: str, img: np.ndarray, tile: int, threads: int, provider: str, repeat: int) -> dict:
    """ONNX Runtime alone over the same tiles (with their context margin), run as the engine runs
    them (``models.runner``: cells side by side on the CPU), outputs discarded: the ceiling the
    engine path is measured against."""
    from truepix.engine import models
    from truepix.engine.pipeline import EngineOptions
    from truepix.engine.tiling import map_ordered, tile_starts

    info = models.get_model(method[: -len(NETWORK_ONLY)])
    sess, workers = models.runner(info, provider, threads)
    name = sess.get_inputs()[0].name
    img = info.kind.feed(info, img, {}, provider, threads)  # the planes its kind adds (engine/kinds.py)
    h, w = img.shape[:2]
    pad = max(info.receptive_radius, EngineOptions().overlap)
    ys, xs = tile_starts(h, tile, 8), tile_starts(w, tile, 8)
    cy = tile if len(ys) == 1 else ys[1] + 8
    cx = tile if len(xs) == 1 else xs[1] + 8
    patches = [(max(y - pad, 0), min(y + cy + pad, h), max(x - pad, 0), min(x + cx + pad, w)) for y in ys for x in xs]
    if info.kind.folds and info.scale == 1:  # the network folds 2x2 pixels: even sides, as the engine pads them
        patches = [(y0, y1 - (y1 - y0) % 2, x0, x1 - (x1 - x0) % 2) for y0, y1, x0, x1 in patches]
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in map_ordered(lambda p: sess.run(None, {name: np.ascontiguousarray(
                img[p[0]:p[1], p[2]:p[3]].transpose(2, 0, 1)[None])}), patches, workers):
            pass
        best = min(best, time.perf_counter() - t0)
    out_mp = h * w * info.scale**2 / 1e6
    row = _row(method, w, h, out_mp, best)
    macs = info.extra.get("macs_per_input_pixel")
    if macs:  # the network's own multiply-accumulate rate, set against the conv peak rows
        row["gmacs_per_s"] = round(macs * h * w / best / 1e9, 2)
        row["precision"] = info.precision
    return row


def run_raw_bench(files, tile=512, threads=0, provider="auto") -> list[dict]:
    """Each RAW file developed by truepix and by LibRaw, each case in its own process."""
    cases = []
    for path in files:
        for method in (RAW_DEVELOP, RAW_LIBRAW):
            cmd = [sys.executable, "-m", "truepix.evaluate.bench", "--case", method, "--raw", str(path),
                   "--tile", str(tile), "--threads", str(threads), "--provider", provider]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                cases.append({"method": method, "file": pathlib.Path(path).name, "input_mp": 0, "error": tail})
            else:
                cases.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"truepix bench: {method} on {pathlib.Path(path).name} done", file=sys.stderr, flush=True)
    return cases


def run_bench(sizes=(12, 24), peer_dir=None, models=None, tile=512, threads=0, provider="auto", repeat=1,
              file_to_file=True, raw_files=None, peers=None, conv_peak=True) -> dict:
    """Run every case in its own process; returns ``{"cases": [...], ...}``.  With ``raw_files`` only
    those RAW files are benched (develop vs LibRaw).  ``models`` None: every shipped upscaler.
    ``conv_peak``: also the machine's convolution peak (float32 and int8), at the first size only."""
    if raw_files:
        import onnxruntime

        return {"cases": run_raw_bench(raw_files, tile, threads, provider), "tile": tile, "threads": threads,
                "provider": provider, "onnxruntime": onnxruntime.__version__,
                "cpu_count": __import__("os").cpu_count()}
    from truepix.engine import models as engine_models
    from truepix.evaluate.baselines import find_peers

    methods: list[tuple[str, str | None]] = []
    names = models or [m.name for m in engine_models.load_manifest().values() if m.task == "upscale"]
    methods += [(n, None) for n in names]
    methods += [(n + NETWORK_ONLY, None) for n in names]
    if file_to_file:
        methods += [(n + FILE_TO_FILE, None) for n in names]
    # the baseline and the peers at each scale of the models benched, in the same command
    manifest = engine_models.load_manifest()
    scales = sorted({manifest[n].scale for n in names if n in manifest} or {2})
    for scale in scales:
        methods.append((_pillow_method(scale), None))
        if peer_dir is not None:
            methods += [(f"opencv {name}", str(path)) for name, path in find_peers(peer_dir, scale).items()
                        if not peers or name in peers]
    if conv_peak:
        methods += [(CONV_PEAK + "float32", None), (CONV_PEAK + "int8", None)]
    todo = [(mp, method, peer) for mp in sizes for method, peer in methods
            if not (method.startswith(CONV_PEAK) and mp != sizes[0])]  # one size is enough for the peak
    cases = []
    for mp, method, peer, bar in _progress(todo):
        cmd = [sys.executable, "-m", "truepix.evaluate.bench", "--case", method, "--mp", str(mp),
               "--tile", str(tile), "--threads", str(threads), "--provider", provider,
               "--repeat", str(repeat)]
        if peer:
            cmd += ["--peer", peer]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            if "MemoryError" in proc.stderr or "Insufficient memory" in proc.stderr or "bad_alloc" in proc.stderr:
                tail = f"out of memory (capped at {PEER_MEMORY_GB:.0f} GB)"
            cases.append({"method": method, "input_mp": mp, "error": tail})
        else:
            cases.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        bar.write(f"truepix bench: {method} @ {mp:g} MP: " + (
            f"error: {cases[-1]['error']}" if "error" in cases[-1] else _case_line(cases[-1])), file=sys.stderr)
    import onnxruntime

    return {"cases": cases, "tile": tile, "threads": threads, "provider": provider,
            "onnxruntime": onnxruntime.__version__, "cpu_count": __import__("os").cpu_count()}


def _case_weight(mp: float, method: str) -> float:
    """A case's rough cost, in units of one network pass over 1 MP, for the progress bar's estimate
    (Pillow and the peak are seconds; a file-to-file case is a network pass plus decode and encode)."""
    if method.startswith(CONV_PEAK):
        return 2.0
    if method.startswith(PILLOW):
        return 0.05 * mp
    return mp * (1.3 if method.endswith(FILE_TO_FILE) else 1.0)


def _progress(todo):
    """Yield ``(mp, method, peer, bar)`` per case under one tqdm bar on stderr, weighted by
    ``_case_weight`` so its estimate of the time left is about right from the first cases on."""
    from tqdm import tqdm

    weights = [_case_weight(mp, method) for mp, method, _ in todo]
    with tqdm(total=sum(weights), desc="truepix bench", file=sys.stderr,
              bar_format="{desc}: {percentage:3.0f}%|{bar:20}| [{elapsed}<{remaining}]{postfix}") as bar:
        for i, ((mp, method, peer), weight) in enumerate(zip(todo, weights, strict=True)):
            bar.set_postfix_str(f"case {i + 1}/{len(todo)}: {method} @ {mp:g} MP", refresh=True)
            yield mp, method, peer, bar
            bar.update(weight)


def _case_line(case: dict) -> str:
    line = f"{case.get('seconds', 0):.2f} s"
    if "mp_per_s" in case:
        line += f", {case['mp_per_s']:.2f} output MP/s, peak {case.get('peak_rss_mb', 0):.0f} MB"
    return line


def run_engine_bench(files: int = 16, megapixels: float = 2.0, recipe: str = "upscale", workers=(1, 2),
                     tile: int = 512, pair_only: bool = False, ray_address: str | None = None) -> dict:
    """A batch of ``files`` synthetic 16-bit TIFFs of ``megapixels`` through ``truepix process``,
    each way in a fresh command (wall time from start to exit, Ray's start included): the local
    engine with 1 and with ``max(workers)`` ONNX Runtime threads, then the Ray engine (a local
    instance) with each count of ``workers``, one thread each; ``pair_only``: only the local engine
    with ``max(workers)`` threads and Ray with as many workers.  ``ray_address``: the Ray rows join
    that running cluster (its start is then not in their time).  Output MP/s and files per second."""
    import os
    import shutil
    import tempfile

    import tifffile

    rows = []
    with tempfile.TemporaryDirectory(prefix="truepix-bench-batch-") as tmp:
        src = pathlib.Path(tmp) / "in"
        src.mkdir()
        for i in range(files):
            img = synthetic_image(megapixels, seed=i)
            img *= 65535
            tifffile.imwrite(src / f"b{i:03d}.tif", np.rint(img).astype(np.uint16), photometric="rgb")
        w, h = tifffile.TiffFile(src / "b000.tif").pages[0].shape[1::-1]
        top = max(workers)
        cases = [("local", 1, ["--threads", "1"]), ("local", top, ["--threads", str(top)])]
        joined = ["--ray-address", ray_address] if ray_address else []
        cases += [("ray", n, ["--engine", "ray", "--workers", str(n), "--threads", "1", *joined]) for n in workers]
        if pair_only:
            cases = [c for c in cases if c[1] == top]
        for engine, n, extra in cases:
            out = pathlib.Path(tmp) / "out"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "truepix.cli", "process", str(src), "--recipe", recipe, "--out", str(out),
                   "--json", "--tile", str(tile), *extra]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
            seconds = time.perf_counter() - t0
            label = (f"local, {n} thread{'s' * (n > 1)}" if engine == "local"
                     else f"ray, {n} worker{'s' * (n > 1)} x 1 thread")
            try:
                report = json.loads(proc.stdout)
            except ValueError:
                rows.append({"method": label, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]})
                continue
            done = [r for r in report["results"] if r["status"] == "done"]
            out_mp = sum(r["width"] * r["height"] for r in done) / 1e6
            rows.append({"method": label, "engine": engine, "workers": n, "files": len(done),
                         "input": f"{w}x{h}", "seconds": round(seconds, 2),
                         "files_per_s": round(len(done) / seconds, 3), "mp_per_s": round(out_mp / seconds, 3),
                         "per_file_s": round(sum(r["seconds"] for r in done) / max(len(done), 1), 2)})
            print(f"truepix bench: {label} done", file=sys.stderr, flush=True)
    import onnxruntime

    return {"batch": rows, "files": files, "megapixels": megapixels, "recipe": recipe, "tile": tile,
            "ray_address": ray_address,
            "onnxruntime": onnxruntime.__version__, "cpu_count": __import__("os").cpu_count()}


def format_batch_table(result: dict) -> str:
    joined = f", Ray rows joining the running cluster {result['ray_address']}" if result.get("ray_address") else ""
    lines = [f"{result['files']} files of {result['megapixels']} MP, recipe {result['recipe']}, tile {result['tile']}, "
             f"onnxruntime {result['onnxruntime']}, {result['cpu_count']} CPUs{joined}", "",
             "| engine | files | seconds (command) | files/s | output MP/s | seconds per file (in the worker) "
             "| files/s at work (start-up excluded) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["batch"]:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error']} | | | | | |")
        else:
            # the pool's rate once running: its processes over the mean time a file takes in one of them
            processes = r["workers"] if r["engine"] == "ray" else 1
            lines.append(f"| {r['method']} | {r['files']} | {r['seconds']:.1f} | {r['files_per_s']:.3f} | "
                         f"{r['mp_per_s']:.2f} | {r['per_file_s']:.2f} | {processes / r['per_file_s']:.3f} |")
    return "\n".join(lines)


def format_table(result: dict) -> str:
    lines = [f"tile {result['tile']}, threads {result['threads'] or 'auto'}, provider {result['provider']}, "
             f"onnxruntime {result['onnxruntime']}, {result['cpu_count']} CPUs", "",
             "| method | input | output MP | seconds | output MP/s | peak RSS (MB) | GMAC/s (of conv peak) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    peaks = {c["method"][len(CONV_PEAK):]: c["gmacs_per_s"] for c in result["cases"]
             if c["method"].startswith(CONV_PEAK) and "gmacs_per_s" in c}
    for c in result["cases"]:
        what = f"{c['file']} " if "file" in c else ""
        if "error" in c:
            lines.append(f"| {c['method']} | {what}{c['input_mp']} MP | failed: {c['error']} | | | | |")
            continue
        rate = ""
        if "gmacs_per_s" in c:
            peak = peaks.get(c.get("precision", ""))
            rate = f"{c['gmacs_per_s']:.1f}" + (f" ({c['gmacs_per_s'] / peak:.0%})" if peak else "")
        lines.append(f"| {c['method']} | {what}{c['input']} ({c['input_mp']} MP) | {c['output_mp']} | "
                     f"{c['seconds']:.2f} | {c['mp_per_s']:.2f} | {c['peak_rss_mb']:.0f} | {rate} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description="one bench case (used by truepix bench)")
    p.add_argument("--case", required=True)
    p.add_argument("--mp", type=float, default=0.0)
    p.add_argument("--raw", help="a RAW file (the develop cases)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--provider", default="auto")
    p.add_argument("--peer")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args()
    try:
        row = _case(a.case, a.mp, a.tile, a.threads, a.provider, a.peer, a.repeat, a.raw)
    except EvalError as e:  # the message alone, the last line of stderr that run_bench reports
        raise SystemExit(str(e)) from None
    print(json.dumps(row))


if __name__ == "__main__":
    main()
