"""The ``truepix`` command line's arguments: every sub-command and its options (``cli.py`` runs them)."""

from __future__ import annotations

import argparse
import pathlib

from truepix import __version__


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", help="auto (GPU if any), cpu, cuda, directml, coreml (default: config, auto)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: config, 0 = one per core)")
    p.add_argument("--tile", type=int, help="tile side in input pixels; memory grows with it (default: config, 512)")
    p.add_argument("--precision", choices=["auto", "float32", "float16", "int8"],
                   help="which file of a model runs; auto: int8 on a CPU with VNNI, float16 on a GPU (default: "
                        "config, auto)")


def build_parser() -> argparse.ArgumentParser:
    """The parser; each sub-command sets ``handler``, the name of its ``cli.cmd_*`` function."""
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
    p.add_argument("--force", action="store_true",
                   help="redo files already done (an output records the same content and recipe) and enhance "
                        "truepix's own outputs; a new name, never overwriting")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process, file by file (default); ray: a Ray cluster (docs/scale-out.md)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="(ray) a running cluster's address, e.g. 10.0.0.5:6379 (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=0,
                   help="(ray) actors in the pool, each with --threads ONNX Runtime threads (default: CPUs / threads)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="(ray) GPUs each actor holds (default 0)")
    p.add_argument("--ledger", type=pathlib.Path,
                   help="(ray) the results ledger (default: .truepix-ledger.jsonl in --out, or beside the first input)")
    _add_engine_args(p)
    p.set_defaults(handler="cmd_process")

    p = sub.add_parser("models", help="list installed models and the execution provider")
    p.add_argument("--provider", help="the provider to check (default: config, auto)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler="cmd_models")

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
    p.set_defaults(handler="cmd_eval")

    p = sub.add_parser("bench", help="speed and peak memory per model, side by side with Pillow bicubic")
    p.add_argument("--sizes", type=float, nargs="+",
                   help="input megapixels (default 2; with --all 12 24; with --engine 2)")
    p.add_argument("--model", action="append",
                   help="model to bench (repeatable; default: the default recipe's model, or with --all every "
                        "shipped upscaler)")
    p.add_argument("--all", action="store_true",
                   help="the full table: every shipped upscaler at 12 and 24 MP, network only and file to file, "
                        "and the machine's convolution peak (about 30 minutes and 5 GB on 2 cores)")
    p.add_argument("--peer-dir", type=pathlib.Path, help="OpenCV dnn_superres .pb files to compare with")
    p.add_argument("--peer", action="append", dest="peers", metavar="NAME",
                   help="only this peer of --peer-dir, e.g. FSRCNN_x2 (repeatable; default: every one)")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; the fastest is reported")
    p.add_argument("--no-file-to-file", action="store_true", help="skip the file-to-file (truepix process) rows")
    p.add_argument("--raw", type=pathlib.Path, nargs="+", metavar="FILE",
                   help="bench RAW development instead: each file to a linear DNG (develop recipe) and, "
                        "side by side, LibRaw's AHD to a 16-bit TIFF")
    p.add_argument("--engine", choices=["ray"],
                   help="bench engines instead: a batch of --files synthetic photos of --sizes[0] MP through "
                        "truepix process, locally (1 and 2 threads) and on a local Ray (1 and 2 workers)")
    p.add_argument("--files", type=int, default=16, help="(--engine) photos in the batch (default 16)")
    p.add_argument("--pair", action="store_true",
                   help="(--engine) only the two-core pair: local with 2 threads against Ray with 2 workers "
                        "(a long batch without the single-core rows)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="(--engine) the Ray rows join this running cluster (e.g. auto, after `ray start --head`) "
                        "instead of starting a local instance per command")
    p.add_argument("--recipe", default="upscale", help="(--engine) the recipe (default upscale)")
    p.add_argument("--json", type=pathlib.Path, metavar="FILE")
    _add_engine_args(p)
    p.set_defaults(handler="cmd_bench")

    p = sub.add_parser("run", help="run the daemon: hot folders, localhost API, tray")
    p.add_argument("--port", type=int, help="API port on 127.0.0.1 (default: config, 48620; 0 = any free port)")
    p.add_argument("--no-tray", action="store_true", help="no tray icon (headless)")
    p.add_argument("--tray", choices=["auto", "gtk", "appindicator", "xorg", "win32", "darwin", "none"],
                   help="tray backend (default: config, auto)")
    p.set_defaults(handler="cmd_run")

    p = sub.add_parser("submit", help="queue files with the running daemon")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--recipe", help="recipe name the daemon knows, or a recipe .toml file (default: upscale)")
    p.add_argument("--out", type=pathlib.Path, help="output folder (default: the recipe's, beside the original)")
    p.add_argument("--force", action="store_true", help="process again even if the same file was done")
    p.add_argument("--wait", action="store_true", help="wait until every job has finished; exit 1 if any failed")
    p.add_argument("--json", action="store_true", help="print the jobs as JSON")
    p.set_defaults(handler="cmd_submit")

    p = sub.add_parser("status", help="the daemon's queue, current job and recent jobs")
    p.add_argument("--limit", type=int, default=10, help="recent jobs to list (default 10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler="cmd_status")

    for name, text in (("pause", "stop starting new jobs (the running one finishes)"), ("resume", "start again")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(handler="cmd_pause")
    for name, text in (("retry", "queue a failed or cancelled job again"),
                       ("cancel", "cancel a queued or running job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", type=int, metavar="ID")
        p.set_defaults(handler="cmd_job_action")

    p = sub.add_parser("open", help="open the daemon's web page in the default browser, signed in")
    p.add_argument("--print", action="store_true",
                   help="print the one-time sign-in URL (good once, for 60 s) instead of opening a browser")
    p.set_defaults(handler="cmd_open")

    p = sub.add_parser("config-path", help="print where the config file is read from")
    p.set_defaults(handler="cmd_config_path")
    # `truepix run --config FILE` as users type it, beside `truepix --config FILE run`: SUPPRESS keeps the
    # sub-command's copy from overwriting the global one when only that is given.
    for sp in sub.choices.values():
        sp.add_argument("--config", type=pathlib.Path, default=argparse.SUPPRESS,
                        help="config file (here or before the sub-command)")
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser
