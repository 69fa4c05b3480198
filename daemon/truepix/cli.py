"""The ``truepix`` command line.  Thin: parse, call, print."""

from __future__ import annotations

import json
import logging
import pathlib
import shlex
import sys
import time

from truepix.cliargs import build_parser
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


def _engine_options(args, config=None, measuring: bool = False):
    """The config's [engine] with the command line's overrides.  ``measuring`` (eval, bench): a model
    named on the command line runs as named, its float file unless ``--precision`` says otherwise
    (``upscale-x2-int8`` names the int8 one)."""
    import dataclasses

    base = (config or _config(args)).engine
    if measuring and getattr(args, "precision", None) is None:
        base = dataclasses.replace(base, precision="float32")
    given = {k: getattr(args, k, None) for k in ("provider", "threads", "tile", "precision")}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return base
    from truepix.config import ConfigError, _engine

    try:  # the same ranges as the config file's [engine]
        return _engine(dataclasses.asdict(dataclasses.replace(base, **given)), "command line")
    except ConfigError as e:
        raise SystemExit(f"truepix: {e}".replace("engine.", "--")) from None


def cmd_process(args) -> int:
    from tqdm import tqdm

    from truepix.process import FileResult, expand_inputs, process_file
    from truepix.recipes import load_recipe

    config = _config(args)
    recipe = load_recipe(args.recipe, args.model, config.recipes).with_format(args.format)
    options = _engine_options(args, config)
    # a folder's own outputs (any recipe's suffix) are not inputs: a second run looks at originals only
    inputs = expand_inputs(args.paths, {recipe.suffix, *(r.suffix for r in config.recipes.values())})
    if not inputs:
        print("truepix: no input files", file=sys.stderr)
        return 1
    t0, results = time.perf_counter(), []
    quiet = args.json or args.quiet
    if args.engine == "ray":
        from truepix.rayengine import from_cli

        results = from_cli(args, inputs, recipe, options)
        return 2 if results is None else _summary(args, recipe, results, t0, "ray")
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
                against = (" against the noisy input, which counts the noise removed"
                           if f.get("colour_shift_against") == "noisy input" else "")
                extra = (f" (colour shift {f['colour_shift_mean']:.2f} dE00{against}, back-projection "
                         f"{f['backprojection_psnr_db']:.1f} dB)") if "colour_shift_mean" in f else ""
                tqdm.write(f"truepix: {path.name} -> {res.output} {res.width}x{res.height} in "
                           f"{res.seconds:.1f} s{extra}", file=sys.stderr)
                for line in res.notes:
                    tqdm.write(f"truepix: {path.name}: note: {line}", file=sys.stderr)
            else:
                tqdm.write(f"truepix: {res.error}", file=sys.stderr)
    outer.close()
    return _summary(args, recipe, results, t0)


def _summary(args, recipe, results, t0: float, engine: str = "local") -> int:
    done = sum(r.status == "done" for r in results)
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    summary = (f"truepix: {done} enhanced, {failed} failed, {skipped} skipped "
               f"in {time.perf_counter() - t0:.1f} s (recipe {recipe.name}, engine {engine})")
    if args.json:
        json.dump({"recipe": recipe.name, "engine": engine, "results": [r.as_dict() for r in results],
                   "done": done, "failed": failed, "skipped": skipped}, sys.stdout, indent=2)
        print()
    print(summary, file=sys.stderr)
    return 0 if failed == 0 else 1


def cmd_models(args) -> int:
    from truepix.engine import models

    table = models.load_manifest()
    opts = _engine_options(args)
    providers, why = models.choose_providers(opts.provider)
    precision, precision_why = models.chosen_precision(opts.precision, opts.provider)
    if args.json:
        json.dump({"provider": providers[0], "why": why, "available": models.available_providers(),
                   "precision": precision, "precision_why": precision_why,
                   "models": [{"name": m.name, "version": m.version, "task": m.task, "scale": m.scale,
                               "file": str(m.path), "sha256": m.sha256} for m in table.values()]},
                  sys.stdout, indent=2)
        print()
        return 0
    print(f"execution provider: {providers[0]} ({why})")
    print(f"precision: {precision_why}" + (f"; a model without a {precision} file runs float32"
                                            if precision != "float32" else ""))
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


def _require_extras(args) -> None:
    """Before any work: an option whose rows need a package of the eval extra says so in one line."""
    from truepix.evaluate import extras

    if getattr(args, "peer_dir", None) is not None:
        extras.require("cv2", "--peer-dir (OpenCV dnn_superres peers)")
    if getattr(args, "cbm3d", False):
        extras.require("bm3d", "--cbm3d")
    if getattr(args, "degradation", None) in ("independent", "rawbin"):
        extras.require("colour_demosaicing", f"--degradation {args.degradation} (its Menon 2007 demosaic)")


@_eval_exit
def cmd_eval(args) -> int:
    opts = _engine_options(args, measuring=True)
    _require_extras(args)
    from truepix.evaluate.sr import evaluate_upscale, format_table

    if args.task == "demosaic":
        from truepix.evaluate import demosaic

        result = demosaic.evaluate_demosaic(args.data, models=args.model, iso=args.iso,
                                            options=opts, limit=args.limit,
                                            libraw=not args.no_libraw, cbm3d=args.cbm3d)
        print(demosaic.format_table(result))
    elif args.task == "denoise":
        from truepix.evaluate import denoise

        result = denoise.evaluate_denoise(args.data, models=args.model, sigmas=args.sigma, iso=args.iso,
                                          options=opts, limit=args.limit, cbm3d=args.cbm3d)
        print(denoise.format_table(result))
    elif args.task == "lens":
        from truepix.evaluate import lens

        result = lens.evaluate_lens(args.data, models=args.model, options=opts, limit=args.limit)
        print(lens.format_table(result))
    else:
        result = evaluate_upscale(args.data, args.scale, models=args.model, peer_dir=args.peer_dir,
                                  options=opts, limit=args.limit, degradation=args.degradation,
                                  unsharp_from=args.unsharp_from, params=_eval_params(args.param),
                                  max_half_pixels=args.max_half_pixels)
        print(format_table(result))
    _write_eval_json(args, result)
    return 0


@_eval_exit
def cmd_bench(args) -> int:
    from truepix.evaluate.bench import format_batch_table, format_table, run_bench, run_engine_bench

    opts = _engine_options(args, measuring=True)
    _require_extras(args)
    if args.engine:
        result = run_engine_bench(files=args.files, megapixels=(args.sizes or [2])[0], recipe=args.recipe,
                                  tile=opts.tile, pair_only=args.pair, ray_address=args.ray_address)
        print(format_batch_table(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    models = args.model
    if not models and not args.all and not args.raw:  # the quick default: what `truepix run` runs, one size
        from truepix.recipes import BUILTIN

        models = [BUILTIN["upscale"].steps[0].model]
    sizes = args.sizes or ([12, 24] if args.all else [2])
    result = run_bench(sizes=sizes, peer_dir=args.peer_dir, peers=args.peers, models=models, tile=opts.tile,
                       threads=opts.threads, provider=opts.provider, repeat=args.repeat,
                       file_to_file=not args.no_file_to_file, raw_files=args.raw,
                       conv_peak=args.all or bool(args.model))
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
    # A cancel of a running job is a request the worker honours at its next tile: say so, not "running".
    state = "cancelling" if job.get("cancel_requested") and job["state"] in ("queued", "running") else job["state"]
    line = f"job {job['id']:>5}  {state:<10}  {name}  ({job['recipe']})"
    if job.get("decoded_ahead") and state == "queued":
        line += "  [next: decoded ahead of the running job]"
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


def cmd_open(args) -> int:
    from truepix.service.client import open_page

    url, opened = open_page(_client(args), browser=not args.print)
    if args.print:
        print(url)  # alone on stdout, for scripts and tests
    elif opened:
        print(f"truepix: opened the daemon's page in your browser ({url.split('/web/')[0]}/web/)", file=sys.stderr)
    else:
        print(f"truepix: no web browser could be started; open this link within a minute (it works once):\n{url}",
              file=sys.stderr)
    return 0


def cmd_config_path(args) -> int:
    from truepix.config import default_config_path

    path = args.config or default_config_path()
    # The path alone on stdout, for `cp config.example.toml "$(truepix config-path)"`; the note on stderr.
    print(path)
    note = "exists" if path.exists() else "absent: the built-in defaults are in use; see config.example.toml"
    print(f"truepix: {note}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.func = globals()[args.handler]
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except TruepixError as e:
        print(f"truepix: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `truepix models | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("truepix: interrupted; outputs already written are complete, nothing partial was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
