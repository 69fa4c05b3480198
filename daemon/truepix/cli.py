"""The ``truepix`` command line.  Thin: parse, call, print."""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import shlex
import sys
import time

from truepix import __version__
from truepix.errors import TruepixError


class _TqdmHandler(logging.Handler):
    """Log lines that do not tear through the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging(verbose: bool) -> None:
    handler = _TqdmHandler()
    from truepix.logfmt import OneLineFormatter

    handler.setFormatter(OneLineFormatter("truepix: %(message)s"))
    root = logging.getLogger("truepix")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    # tifffile logs what it finds wrong in a damaged file; io/ turns that into
    # one clear ImageReadError, so its own lines would only repeat it, badly.
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


def _config(args):
    from truepix.config import load_config

    return load_config(args.config)


def _engine_options(args, config=None):
    """The config's [engine] with the command line's overrides."""
    import dataclasses

    base = (config or _config(args)).engine
    given = {k: getattr(args, k, None) for k in ("provider", "threads", "tile")}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return base
    from truepix.config import ConfigError, _engine

    try:  # the same ranges as the config file's [engine]
        return _engine(dataclasses.asdict(dataclasses.replace(base, **given)), "command line")
    except ConfigError as e:
        raise SystemExit(f"truepix: {e}".replace("engine.", "--")) from None


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", help="auto (GPU if any), cpu, cuda, directml, coreml (default: config, auto)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: config, 0 = one per core)")
    p.add_argument("--tile", type=int, help="tile side in input pixels; memory grows with it (default: config, 512)")


def cmd_process(args) -> int:
    from tqdm import tqdm

    from truepix.process import FileResult, expand_inputs, process_file
    from truepix.recipes import load_recipe

    config = _config(args)
    recipe = load_recipe(args.recipe, args.model, config.recipes).with_format(args.format)
    options = _engine_options(args, config)
    inputs = expand_inputs(args.paths)
    if not inputs:
        print("truepix: no input files", file=sys.stderr)
        return 1
    t0, results = time.perf_counter(), []
    quiet = args.json or args.quiet
    outer = tqdm(inputs, unit="file", desc="truepix", disable=True if quiet or len(inputs) < 2 else None, position=0)
    for path, problem in outer:
        if problem:
            res = FileResult(source=str(path), status="failed", error=f"{path}: {problem}; nothing written")
        else:
            bar = tqdm(total=100, unit="%", desc=path.name, leave=False, disable=True if quiet else None, position=1,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

            def progress(frac: float, bar=bar) -> None:
                bar.n = round(frac * 100)
                bar.refresh()

            res = process_file(path, recipe, out_dir=args.out, overwrite=args.overwrite, force=args.force,
                               options=options, progress=progress)
            bar.close()
        results.append(res)
        if not args.quiet or res.status != "done":
            if res.status == "done":
                f = res.fidelity
                extra = (f" (colour shift {f['colour_shift_mean']:.2f} dE00, back-projection "
                         f"{f['backprojection_psnr_db']:.1f} dB)") if "colour_shift_mean" in f else ""
                tqdm.write(f"truepix: {path.name} -> {res.output} {res.width}x{res.height} in "
                           f"{res.seconds:.1f} s{extra}", file=sys.stderr)
                for line in res.notes:
                    tqdm.write(f"truepix: {path.name}: note: {line}", file=sys.stderr)
            else:
                tqdm.write(f"truepix: {res.error}", file=sys.stderr)
    outer.close()
    done = sum(r.status == "done" for r in results)
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    summary = (f"truepix: {done} enhanced, {failed} failed, {skipped} skipped "
               f"in {time.perf_counter() - t0:.1f} s (recipe {recipe.name})")
    if args.json:
        json.dump({"recipe": recipe.name, "results": [r.as_dict() for r in results],
                   "done": done, "failed": failed, "skipped": skipped}, sys.stdout, indent=2)
        print()
    print(summary, file=sys.stderr)
    return 0 if failed == 0 else 1


def cmd_models(args) -> int:
    from truepix.engine import models

    table = models.load_manifest()
    providers, why = models.choose_providers(_engine_options(args).provider)
    if args.json:
        json.dump({"provider": providers[0], "why": why, "available": models.available_providers(),
                   "models": [{"name": m.name, "version": m.version, "task": m.task, "scale": m.scale,
                               "file": str(m.path), "sha256": m.sha256} for m in table.values()]},
                  sys.stdout, indent=2)
        print()
        return 0
    print(f"execution provider: {providers[0]} ({why})")
    for m in table.values():
        try:
            models.verify(m)
            state = "ok"
        except TruepixError as e:
            state = f"BROKEN: {e}"
        size = "Bayer mosaic -> RGB" if m.kind.needs_raw else f"x{m.scale}"
        print(f"  {m.name:<22} v{m.version}  {m.task:<9} {size}  {m.path.name}  sha256 {state}")
    return 0


def _write_eval_json(args, result: dict) -> None:
    """The result as JSON, with the command that measured it and the version and sha256 of each model
    it ran, so a figure in docs/ or a manifest row can be traced to the exact file."""
    if not args.json:
        return
    from truepix.engine import models as engine_models

    table = engine_models.load_manifest()
    ran = result.get("networks") or [m for m in result.get("results", {}) if m in table]
    result = {"command": "truepix " + shlex.join(args.argv), **result,
              "model_files": {n: {"version": table[n].version, "sha256": table[n].sha256}
                              for n in ran if n in table}}
    tmp = args.json.with_name(args.json.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.json)


def _eval_params(items: list[str]) -> dict:
    """``--param KEY=VALUE`` items -> step parameters: each VALUE a TOML literal (1, 0.5, true,
    "x", [1, 2]), else the plain string (``input=camera``)."""
    import tomllib

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"truepix: eval: --param wants KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = value
    return params


def _eval_exit(cmd):
    """``truepix eval`` and ``bench`` end on an ``EvalError`` (no images, a model of the wrong kind...)
    with its message on stderr and exit status 1, as they always have (other errors: ``main``'s 2)."""

    def run(args) -> int:
        from truepix.errors import EvalError

        try:
            return cmd(args)
        except EvalError as e:
            raise SystemExit(f"truepix: {e}") from None

    return run


@_eval_exit
def cmd_eval(args) -> int:
    from truepix.evaluate.sr import evaluate_upscale, format_table

    if args.task == "demosaic":
        from truepix.evaluate import demosaic

        result = demosaic.evaluate_demosaic(args.data, models=args.model, iso=args.iso,
                                            options=_engine_options(args), limit=args.limit,
                                            libraw=not args.no_libraw, cbm3d=args.cbm3d)
        print(demosaic.format_table(result))
    elif args.task == "denoise":
        from truepix.evaluate import denoise

        result = denoise.evaluate_denoise(args.data, models=args.model, sigmas=args.sigma, iso=args.iso,
                                          options=_engine_options(args), limit=args.limit, cbm3d=args.cbm3d)
        print(denoise.format_table(result))
    elif args.task == "lens":
        from truepix.evaluate import lens

        result = lens.evaluate_lens(args.data, models=args.model, options=_engine_options(args), limit=args.limit)
        print(lens.format_table(result))
    else:
        result = evaluate_upscale(args.data, args.scale, models=args.model, peer_dir=args.peer_dir,
                                  options=_engine_options(args), limit=args.limit, degradation=args.degradation,
                                  unsharp_from=args.unsharp_from, params=_eval_params(args.param),
                                  max_half_pixels=args.max_half_pixels)
        print(format_table(result))
    _write_eval_json(args, result)
    return 0


@_eval_exit
def cmd_bench(args) -> int:
    from truepix.evaluate.bench import format_table, run_bench

    opts = _engine_options(args)
    result = run_bench(sizes=args.sizes, peer_dir=args.peer_dir, models=args.model, tile=opts.tile,
                       threads=opts.threads, provider=opts.provider, repeat=args.repeat,
                       file_to_file=not args.no_file_to_file, raw_files=args.raw)
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_run(args) -> int:
    from truepix.service.app import run

    return run(_config(args), port=args.port, tray="none" if args.no_tray else args.tray)


def _client(args):
    from truepix.service.client import Client

    return Client.discover(_config(args).server.port)


def _print_job(job: dict) -> None:
    name = pathlib.Path(job["source"]).name
    line = f"job {job['id']:>5}  {job['state']:<9}  {name}  ({job['recipe']})"
    if job["state"] == "done" and job["outputs"]:
        line += f" -> {job['outputs'][0]}"
    if job.get("error"):
        line += f"\n             {job['error']}"
    elif job.get("note"):
        line += f"\n             {job['note']}"
    print(line)


def cmd_submit(args) -> int:
    from truepix.service.client import absolute

    client = _client(args)
    body: dict = {"paths": [absolute(p) for p in args.paths]}
    if args.recipe:
        if args.recipe.endswith(".toml") or pathlib.Path(args.recipe).is_file():
            import tomllib

            try:
                body["recipe"] = tomllib.loads(pathlib.Path(args.recipe).read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError, RecursionError) as e:
                why = "nested too deeply" if isinstance(e, RecursionError) else e
                print(f"truepix: {args.recipe}: cannot read the recipe file: {why}", file=sys.stderr)
                return 2
            body["recipe"].setdefault("name", pathlib.Path(args.recipe).stem)
        else:
            body["recipe"] = args.recipe
    if args.out:
        body["output_dir"] = absolute(str(args.out))
    if args.force:
        body["force"] = True
    jobs = client.post("/v1/jobs", body)["jobs"]
    if args.wait:
        ids, final = [j["id"] for j in jobs], ("done", "failed", "cancelled")
        while True:
            jobs = [client.get(f"/v1/jobs/{i}") for i in ids]
            if all(j["state"] in final for j in jobs):
                break
            time.sleep(0.5)
    if args.json:
        json.dump({"jobs": jobs}, sys.stdout, indent=2)
        print()
    else:
        for job in jobs:
            _print_job(job)
            if job.get("duplicate"):
                print("             already queued or done with the same content and recipe (--force to redo)")
    if args.wait:
        return 0 if all(j["state"] == "done" for j in jobs) else 1
    return 0


def cmd_status(args) -> int:
    client = _client(args)
    status = client.get("/v1/status")
    jobs = client.get(f"/v1/jobs?limit={args.limit}")["jobs"]
    if args.json:
        json.dump({**status, "jobs": jobs}, sys.stdout, indent=2)
        print()
        return 0
    c = status["counts"]
    print(f"truepix {status['version']}: {'PAUSED' if status['paused'] else 'running'}; "
          f"{c['queued']} queued, {c['running']} running, {c['done']} done, {c['failed']} failed, "
          f"{c['cancelled']} cancelled")
    cur = status.get("current")
    if cur:
        print(f"now: job {cur['id']} {pathlib.Path(cur['source']).name} ({cur['phase']}, {cur['progress']:.0%})")
    for f in status["folders"]:
        print(f"hot folder: {f['path']} (recipe {f['recipe']}{'' if f['watching'] else ', NOT watched: missing'})")
    for job in reversed(jobs):
        _print_job(job)
    return 0


def cmd_pause(args) -> int:
    paused = _client(args).post("/v1/pause" if args.command == "pause" else "/v1/resume")["paused"]
    print("truepix: paused (the running job finishes; `truepix resume` to go on)" if paused else "truepix: resumed")
    return 0


def cmd_job_action(args) -> int:
    job = _client(args).post(f"/v1/jobs/{args.id}/{args.command}")
    _print_job(job)
    return 0


def cmd_config_path(args) -> int:
    from truepix.config import default_config_path

    path = args.config or default_config_path()
    print(f"{path} ({'exists' if path.exists() else 'absent: defaults in use; see config.example.toml'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="truepix", description="Neural darkroom: enhance photos, true to life.")
    parser.add_argument("--version", action="version", version=f"truepix {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--config", type=pathlib.Path,
                        help="config file (default: $TRUEPIX_CONFIG or the user config folder's config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="enhance files, folders or globs")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--recipe", help="built-in recipe name or a recipe .toml file (default: upscale)")
    p.add_argument("--model", help="run just this model as a one-step recipe")
    p.add_argument("--out", type=pathlib.Path, help="output folder (default: beside each original)")
    p.add_argument("--format", choices=["tiff", "png", "jpeg", "dng"],
                   help="output format (default: the recipe's; dng: a linear DNG, RAW sources only)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output instead of adding -1, -2...")
    p.add_argument("--force", action="store_true", help="enhance files truepix already enhanced")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_engine_args(p)
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("models", help="list installed models and the execution provider")
    p.add_argument("--provider", help="the provider to check (default: config, auto)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("eval", help="measure quality on a test set, side by side with baselines")
    p.add_argument("--task", required=True, choices=["upscale", "demosaic", "denoise", "lens"])
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--data", type=pathlib.Path, required=True, help="folder of ground-truth images")
    p.add_argument("--model", action="append", help="model to evaluate (repeatable; default: all for the task)")
    p.add_argument("--peer-dir", type=pathlib.Path, help="OpenCV dnn_superres .pb files to compare with")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--degradation", choices=["bicubic", "camera", "independent", "rawbin"], default="bicubic",
                   help="how the low-resolution input is made: the classic bicubic protocol, a held-out "
                        "simulated camera, an independent camera family training never draws (with a "
                        "defocused third per frame), or rawbin: --data holds RAW files, each Bayer mosaic "
                        "binned 2x2 and both developed alike (default bicubic)")
    p.add_argument("--unsharp-from", type=pathlib.Path,
                   help="(camera, independent, rawbin) training images to tune the bicubic + unsharp-mask "
                        "baseline on (rawbin: tuned under the independent camera)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="(upscale) a step parameter for every --model, VALUE a TOML literal or a string, "
                        "e.g. --param input=camera (repeatable)")
    p.add_argument("--max-half-pixels", type=int, metavar="N",
                   help="(rawbin) evaluate a centred crop of at most N pixels of the half render "
                        "(default 1500000)")
    p.add_argument("--iso", type=float, nargs="*", default=[],
                   help="(demosaic, denoise) also raws of the held-out camera at these ISOs, e.g. 800 3200 12800")
    p.add_argument("--sigma", type=float, nargs="*", default=[15, 25, 50],
                   help="(denoise) white Gaussian noise levels, 0..255 scale (default 15 25 50)")
    p.add_argument("--no-libraw", action="store_true", help="(demosaic) skip LibRaw's AHD/DCB/DHT... baselines")
    p.add_argument("--cbm3d", action="store_true",
                   help="(demosaic with --iso, denoise) also run CBM3D (bm3d package; about 10 s an image)")
    p.add_argument("--json", type=pathlib.Path, metavar="FILE")
    _add_engine_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="speed and peak memory per model, side by side with Pillow bicubic")
    p.add_argument("--sizes", type=float, nargs="+", default=[12, 24], help="input megapixels (default 12 24)")
    p.add_argument("--model", action="append", help="model to bench (repeatable; default: all shipped)")
    p.add_argument("--peer-dir", type=pathlib.Path, help="OpenCV dnn_superres .pb files to compare with")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; the fastest is reported")
    p.add_argument("--no-file-to-file", action="store_true", help="skip the file-to-file (truepix process) rows")
    p.add_argument("--raw", type=pathlib.Path, nargs="+", metavar="FILE",
                   help="bench RAW development instead: each file to a linear DNG (develop recipe) and, "
                        "side by side, LibRaw's AHD to a 16-bit TIFF")
    p.add_argument("--json", type=pathlib.Path, metavar="FILE")
    _add_engine_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="run the daemon: hot folders, localhost API, tray")
    p.add_argument("--port", type=int, help="API port on 127.0.0.1 (default: config, 48620; 0 = any free port)")
    p.add_argument("--no-tray", action="store_true", help="no tray icon (headless)")
    p.add_argument("--tray", choices=["auto", "gtk", "appindicator", "xorg", "win32", "darwin", "none"],
                   help="tray backend (default: config, auto)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("submit", help="queue files with the running daemon")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--recipe", help="recipe name the daemon knows, or a recipe .toml file (default: upscale)")
    p.add_argument("--out", type=pathlib.Path, help="output folder (default: the recipe's, beside the original)")
    p.add_argument("--force", action="store_true", help="process again even if the same file was done")
    p.add_argument("--wait", action="store_true", help="wait until every job has finished; exit 1 if any failed")
    p.add_argument("--json", action="store_true", help="print the jobs as JSON")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="the daemon's queue, current job and recent jobs")
    p.add_argument("--limit", type=int, default=10, help="recent jobs to list (default 10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    for name, text in (("pause", "stop starting new jobs (the running one finishes)"), ("resume", "start again")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=cmd_pause)
    for name, text in (("retry", "queue a failed or cancelled job again"),
                       ("cancel", "cancel a queued or running job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", type=int, metavar="ID")
        p.set_defaults(func=cmd_job_action)

    p = sub.add_parser("config-path", help="print where the config file is read from")
    p.set_defaults(func=cmd_config_path)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except TruepixError as e:
        print(f"truepix: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("truepix: interrupted; outputs already written are complete, nothing partial was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
