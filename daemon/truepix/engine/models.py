"""The model manifest, ONNX Runtime sessions and execution-provider choice.

``models/manifest.toml`` lists every shipped model as a ``[[models]]`` table::

    [[models]]
    name = "upscale-x2"      # what recipes and ``--model`` refer to
    version = 1
    task = "upscale"         # upscale | demosaic | denoise | lens
    scale = 2                # output size / input size
    file = "upscale-x2.onnx" # relative to the manifest
    sha256 = "..."           # checked before a session is created
    input = "rgb"            # rgb | rgb+noise (a denoiser's noise plane) | rgb+field (a lens model's x, y planes)
                             # | rgb+kind (an upscaler told the input kind) | bayer (packed mosaic + noise planes):
                             # a key of kinds.KINDS, the object that builds the network's input
    transfer = "srgb"        # values the network sees: "srgb" (gamma-encoded) or "linear"
    receptive_radius = 8     # input pixels of context each output pixel depends on
    anchor = "srgb"          # ... and the other optional keys ModelInfo names, each with its default there
    ...                      # training recipe, metrics and the commands that measured them

The manifest is parsed once per process (again only when the file changes).  Sessions are cached
per (file, provider, threads), so a daemon pays the load cost once.  Provider choice: CUDA,
DirectML, CoreML when ONNX Runtime offers them, the CPU otherwise -- with one clear log line
saying which and why.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pathlib
import threading
import tomllib
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from truepix.errors import ModelError

if TYPE_CHECKING:
    from truepix.engine.kinds import Kind

log = logging.getLogger("truepix.engine")

# Preference order for "auto"; the CPU is always appended as the fallback.
GPU_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


def default_model_dir() -> pathlib.Path:
    """``$TRUEPIX_MODELS`` if set, else the models installed with the package."""
    env = os.environ.get("TRUEPIX_MODELS")
    if env:
        return pathlib.Path(env)
    import truepix._models as shipped

    return pathlib.Path(next(iter(shipped.__path__)))


@dataclass(frozen=True)
class ModelInfo:
    """One manifest row, typed.  Every key the engine reads is a field here, with its default for a
    row that leaves it out (a few differ by ``input``: ``kinds.Kind.defaults``).  ``extra`` keeps
    the row's other keys as written (training, metrics, ...; the typed ones too, for tools that
    print a row), so ``models/train/export.py``'s rows read back unchanged."""

    name: str
    version: int
    task: str                       # upscale | demosaic | denoise | lens | classify
    scale: int                      # output size / input size
    path: pathlib.Path
    sha256: str
    input: str = "rgb"              # the network's input: a key of kinds.KINDS
    transfer: str = "srgb"          # values the network sees: "srgb" or "linear"
    receptive_radius: int = 16      # input pixels of context each output pixel depends on
    # The fidelity guard after the model (pipeline._reanchor, develop.demosaic): the space whose block
    # means it keeps, the block side in output pixels and the share a block may move before it acts.
    anchor: str = "srgb"
    anchor_block: int = 16
    anchor_tolerance: float = 0.0
    camera_anchor: str = "linear"   # the same for an rgb+kind model told it upscales a camera file
    camera_anchor_tolerance: float = 0.1
    # Restraint after the network (restrain.restrain): clamp radius (px) and noise gate (0: off).
    clamp_radius: int = 0
    noise_gate: float = 0.0
    noise_map_scale: float = 1.0    # noise planes are fed times this (rgb+noise, bayer)
    kind_model: str = ""            # rgb+kind: the estimator that decides input = "auto"
    clean_model: str = ""           # rgb+kind: the row clean files go to instead
    output: str = ""                # what the network returns, when not an image (a classifier)
    # Twins (models/train/quantize.py, half.py): a float row names its int8 and float16 twins; a twin
    # says what it is and whose twin.
    int8_model: str = ""
    fp16_model: str = ""
    precision: str = "float32"      # float32 | int8 | float16
    float_model: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        """``name@version``, as recorded in output metadata."""
        return f"{self.name}@{self.version}"

    @property
    def kind(self) -> Kind:
        """The ``kinds.Kind`` that feeds this model's network (``input``)."""
        from truepix.engine.kinds import kind_of

        return kind_of(self.input)


_REQUIRED = ("name", "task", "file", "sha256")
# The row's keys that are not in ``extra`` (the ones naming the file and the network).
_CORE = ("name", "version", "task", "scale", "file", "sha256", "input", "transfer", "receptive_radius")
# The typed optional keys: ModelInfo's own fields, and their defaults, past the core ones.
_TYPED = {f.name: (f.default, type(f.default)) for f in fields(ModelInfo)
          if f.name not in _CORE and f.name not in ("path", "extra")}


def _row(path: pathlib.Path, i: int, row: dict, model_dir: pathlib.Path) -> ModelInfo:
    from truepix.engine.kinds import kind_of

    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise ModelError(f"{path}: models[{i}] lacks {', '.join(missing)}")
    where = f"{path}: models[{i}] ({row['name']})"
    try:
        core = dict(version=int(row.get("version", 1)), scale=int(row.get("scale", 1)),
                    receptive_radius=int(row.get("receptive_radius", 16)))
    except (TypeError, ValueError) as e:
        raise ModelError(f"{where}: version, scale and receptive_radius must be integers ({e})") from None
    kind_defaults = kind_of(row.get("input", "rgb")).defaults
    typed: dict[str, Any] = {}
    for key, (default, cast) in _TYPED.items():
        value = row.get(key, kind_defaults.get(key, default))
        number = cast in (int, float)
        if isinstance(value, bool) or not isinstance(value, (int, float) if number else cast):
            raise ModelError(f"{where}: {key} must be {'a number' if number else 'a string'}, not {value!r}")
        typed[key] = cast(value)
    return ModelInfo(
        name=row["name"], task=row["task"], path=model_dir / row["file"], sha256=row["sha256"],
        input=row.get("input", "rgb"), transfer=row.get("transfer", "srgb"), **core, **typed,
        extra={k: v for k, v in row.items() if k not in _CORE},
    )


@functools.lru_cache(maxsize=16)
def _parse(model_dir: pathlib.Path, stamp: tuple[int, ...]) -> dict[str, ModelInfo]:
    """The rows of ``model_dir``'s manifest as it is at ``stamp`` (inode, size, mtime, ctime): one
    parse per process for each version of the file."""
    path = model_dir / "manifest.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: model manifest not found (set TRUEPIX_MODELS or reinstall truepix)") from None
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"{path}: not valid TOML: {e}") from None
    models: dict[str, ModelInfo] = {}
    for i, row in enumerate(data.get("models", [])):
        info = _row(path, i, row, model_dir)
        models[info.name] = info
    return models


def load_manifest(model_dir: pathlib.Path | None = None) -> dict[str, ModelInfo]:
    """Read ``manifest.toml`` from ``model_dir`` (default: ``default_model_dir``); rows keyed by
    model name.  Parsed once per version of the file (a rewritten manifest is read again)."""
    model_dir = pathlib.Path(model_dir) if model_dir else default_model_dir()
    path = model_dir / "manifest.toml"
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"{path}: model manifest not found (set TRUEPIX_MODELS or reinstall truepix)") from None
    return dict(_parse(model_dir, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)))


def get_model(name: str, model_dir: pathlib.Path | None = None) -> ModelInfo:
    """The manifest row for ``name``, or a ModelError listing the known names."""
    models = load_manifest(model_dir)
    if name not in models:
        raise ModelError(f"unknown model {name!r}; installed models: {', '.join(sorted(models)) or 'none'}")
    return models[name]


@functools.lru_cache(maxsize=None)
def _verified(path: pathlib.Path, size: int, mtime_ns: int, sha256: str) -> bool:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == sha256


def verify(model: ModelInfo) -> None:
    """Raise ModelError unless the model file exists and matches its sha256."""
    try:
        st = model.path.stat()
    except FileNotFoundError:
        raise ModelError(f"{model.name}: model file {model.path} is missing; reinstall truepix") from None
    if not _verified(model.path, st.st_size, st.st_mtime_ns, model.sha256):
        raise ModelError(
            f"{model.name}: {model.path.name} does not match the sha256 in manifest.toml "
            "(corrupt or replaced file); reinstall truepix"
        )


PRECISIONS = ("auto", "float32", "float16", "int8")


@functools.lru_cache(maxsize=1)
def cpu_runs_int8_fast() -> bool:
    """Whether this CPU has the 8-bit dot-product instructions ONNX Runtime's int8 kernels are fast
    (and exact: no u8*s8 saturation) with: VNNI (AVX512_VNNI or AVX_VNNI) or AMX on x86-64.  Other
    CPUs were not measured, so "auto" keeps them on float."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags))


def chosen_precision(precision: str, provider: str) -> tuple[str, str]:
    """Which twin rows run ("float32", "int8" or "float16") and why.  "auto": float16 on a GPU provider
    (tensor cores run it at several times float32), int8 on the CPU provider of a CPU with VNNI
    (``cpu_runs_int8_fast``), float32 elsewhere; anything else: as configured."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision, f"{precision} (configured)"
    first = choose_providers(provider)[0][0]
    if first != "CPUExecutionProvider":
        return "float16", f"float16 (auto: {first})"
    if not cpu_runs_int8_fast():
        return "float32", "float32 (auto: this CPU has no VNNI int8 dot product)"
    return "int8", "int8 (auto: the CPU provider on a CPU with VNNI)"


def with_precision(table: dict[str, ModelInfo], precision: str = "auto",
                   provider: str = "auto") -> dict[str, ModelInfo]:
    """``table`` with each float row that names a twin of the chosen precision (``chosen_precision``)
    replaced, under its own name, by the twin: recipes, clean-model hand-offs and output labels
    (``name-int8@v``) then follow without knowing of precision.  A row without that twin, or whose
    twin is missing from the table, runs float."""
    chosen, why = chosen_precision(precision, provider)
    if chosen == "float32":
        return table
    field_name = "int8_model" if chosen == "int8" else "fp16_model"
    swapped = dict(table)
    for name, info in table.items():
        twin_name = getattr(info, field_name)
        twin = table.get(twin_name) if twin_name else None
        if twin is not None and twin.precision == chosen:
            swapped[name] = twin
    _announce(f"precision {why}")
    return swapped


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def choose_providers(preference: str = "auto") -> tuple[list[str], str]:
    """Providers to ask ONNX Runtime for, best first, and a sentence saying why.

    ``preference`` is "auto", "cpu", "cuda", "directml", "coreml" or a full
    ONNX Runtime provider name.  The CPU provider is always the last fallback.
    """
    available = available_providers()
    if preference == "auto":
        gpus = [p for p in GPU_PROVIDERS if p in available]
        if gpus:
            return [gpus[0], "CPUExecutionProvider"], f"using {gpus[0]} (auto)"
        return ["CPUExecutionProvider"], (
            "using CPUExecutionProvider: no GPU execution provider in this onnxruntime "
            f"(available: {', '.join(available)})"
        )
    wanted = PROVIDER_ALIASES.get(preference.lower(), preference)
    if wanted == "CPUExecutionProvider":
        return ["CPUExecutionProvider"], "using CPUExecutionProvider (configured)"
    if wanted not in available:
        return ["CPUExecutionProvider"], (
            f"falling back to CPUExecutionProvider: {wanted} was asked for but this onnxruntime "
            f"offers only {', '.join(available)}"
        )
    return [wanted, "CPUExecutionProvider"], f"using {wanted} (configured)"


_sessions: dict[tuple, Any] = {}
_sessions_lock = threading.Lock()
_announced: set[str] = set()


def _announce(why: str) -> None:
    """Say once per process which provider or precision runs: a fallback from what was asked for is a
    warning (the user gets less than they configured); the ordinary choice is said where a user asks
    for it — `truepix models`, and once when the daemon starts (``engine_summary``) — and otherwise
    only with -v, so that every `truepix process` does not repeat it."""
    if why in _announced:
        return
    _announced.add(why)
    log.log(logging.WARNING if "falling back" in why else logging.DEBUG, "engine: %s", why)


def engine_summary(provider: str = "auto", precision: str = "auto") -> str:
    """One line for the daemon's start: the execution provider and the precision, each with why."""
    return f"{choose_providers(provider)[1]}; precision {chosen_precision(precision, provider)[1]}"


# Cells run side by side on the CPU provider (``runner``): two single-threaded ONNX Runtime calls on
# two cells beat one call with two threads here (no barrier after each layer; a third thread -- the
# guard's -- takes a core from one cell, not from a layer both wait on): docs/benchmarks.md,
# "Cells side by side".
CELL_WORKERS = 2


def cpu_cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cell_split(provider: str = "auto", threads: int = 0) -> tuple[int, int]:
    """(cells run side by side, ONNX Runtime threads per call) for ``threads`` CPU threads (0: every
    core).  On a GPU provider one cell at a time with ``threads``, as ONNX Runtime is given them."""
    if choose_providers(provider)[0][0] != "CPUExecutionProvider":
        return 1, threads
    cores = threads if threads > 0 else cpu_cores()
    workers = max(1, min(CELL_WORKERS, cores))
    return workers, max(1, cores // workers)


def release_memory() -> None:
    """Hand the memory ONNX Runtime's arenas keep after a job back to the system: each cached session
    runs one 16-pixel input with arena shrinking asked for (ONNX Runtime frees its arena's unused
    chunks at the end of such a run; it never does otherwise).  Called between a job's engine and
    its metadata: Exiv2 then holds the whole output file, and at 24 MP x2 the arenas kept 0.4 GB of
    the process's 0.5 GB at that moment (docs/benchmarks.md, "INT8 (issue 19)").  A session that
    cannot take the small input is left as it is."""
    import numpy as np
    import onnxruntime as ort

    with _sessions_lock:
        sessions = list(_sessions.values())
    for sess in sessions:
        device = "cpu:0" if sess.get_providers()[0] == "CPUExecutionProvider" else "cpu:0;gpu:0"
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", device)
        feed = {}
        for inp in sess.get_inputs():
            shape = [d if isinstance(d, int) else 16 for d in inp.shape]
            feed[inp.name] = np.zeros(shape, np.float32)
        try:
            sess.run(None, feed, run_options=options)
        except Exception as e:  # noqa: BLE001 - a model with other input rules: its arena stays
            log.debug("engine: arena of %s not released: %s", sess, e)


def runner(model: ModelInfo, provider: str = "auto", threads: int = 0):
    """(session, workers): the session the tiled engine runs ``model`` with, ``threads`` split over
    ``workers`` cells run side by side (``cell_split``); one cell at a time if the session fell back
    from a GPU provider to the CPU."""
    workers, per_call = cell_split(provider, threads)
    sess = session(model, provider, per_call)
    if workers > 1 and sess.get_providers()[0] != "CPUExecutionProvider":
        workers = 1
    return sess, workers


def session(model: ModelInfo, provider: str = "auto", threads: int = 0):
    """A cached ``onnxruntime.InferenceSession`` for ``model``.

    Args:
        model: manifest row; its file is sha256-checked first.
        provider: see ``choose_providers``.
        threads: intra-op threads (0 = ONNX Runtime's default, one per core).
    """
    key = (model.path, model.sha256, provider, threads)
    with _sessions_lock:
        if key in _sessions:
            return _sessions[key]
        verify(model)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        providers, why = choose_providers(provider)
        try:
            sess = ort.InferenceSession(str(model.path), sess_options=opts, providers=providers)
        except Exception as e:  # a GPU provider present but unusable (driver, CUDA libs)
            if providers == ["CPUExecutionProvider"]:
                raise ModelError(f"{model.name}: ONNX Runtime cannot load {model.path.name}: {e}") from None
            why = f"falling back to CPUExecutionProvider: {providers[0]} failed to start ({e})"
            sess = ort.InferenceSession(str(model.path), sess_options=opts, providers=["CPUExecutionProvider"])
        actual = sess.get_providers()[0]
        if actual != providers[0] and "falling back" not in why:
            why = f"falling back to {actual}: {providers[0]} could not run this model"
        _announce(why)
        _sessions[key] = sess
        return sess
