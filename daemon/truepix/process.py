"""``truepix process``: files in, enhanced files beside them (or in ``--out``).

One way through, for one file: ``decode_source`` (io: checks, then the decoded image or RAW
mosaic) -> ``engine.run`` (picks RAW or RGB) -> ``io.encode`` (output colour, crop, orientation,
format, metadata, atomic publish); ``finish`` composes the last two and returns a ``FileResult``.
The daemon's worker calls the same two halves (it decodes one job ahead); ``process_file`` calls
both.  Every failure becomes a ``FileResult`` with a one-line reason; the original is never
touched and nothing is left behind for a file that failed.
"""

from __future__ import annotations

import errno
import glob
import os
import pathlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from truepix import outputs
from truepix.engine.control import Control
from truepix.engine.models import release_memory
from truepix.engine.pipeline import EngineOptions
from truepix.engine.run import run
from truepix.errors import ImageReadError, ImageWriteError, TruepixError
from truepix.io import (
    RAW_EXTENSIONS, SUPPORTED_SUFFIXES, read_image, read_truepix_flag,
)
from truepix.io.raw import RawMosaic
from truepix.io.regular import check_regular
from truepix.outputs import output_name
from truepix.recipes import Recipe


@dataclass
class FileResult:
    source: str
    status: str  # "done" | "failed" | "skipped"
    output: str | None = None
    error: str | None = None
    models: list[str] = field(default_factory=list)
    fidelity: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    width: int | None = None
    height: int | None = None
    notes: list[str] = field(default_factory=list)
    transient: bool = False  # failed for a reason that may pass (``is_transient``): worth another try

    def as_dict(self) -> dict:
        return asdict(self)


# errno values of failures that a retry a moment later, or on another node, may not meet: an I/O
# error or a stale handle on a network share, a timeout, a busy or briefly unavailable resource
TRANSIENT_ERRNOS = frozenset(getattr(errno, n) for n in ("EIO", "ESTALE", "ETIMEDOUT", "EAGAIN", "EBUSY", "EINTR",
                                                         "ECONNRESET", "ECONNABORTED", "EHOSTUNREACH", "ENOLCK")
                             if hasattr(errno, n))
# How often such a failure is tried again, and after how long (seconds before each retry): one rule for
# the daemon's worker (a job back in the queue) and the Ray engine's workers (the file run again).
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF = (1.0, 4.0)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from: truepix's errors wrap the OSError they met) is a
    failure worth retrying: out of memory (another job may have held it) or a ``TRANSIENT_ERRNOS``
    OSError.  A corrupt file, a full disk, a permission are not: retrying would only fail again."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError):
            return True
        if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def expand_inputs(args: Iterable[str], own_suffixes: Iterable[str] = ()) -> list[tuple[pathlib.Path, str | None]]:
    """Files, folders (their images, not recursive) and globs -> paths.

    Returns (path, problem) pairs; ``problem`` is set for an argument that
    names nothing, so it is reported as a failed input rather than dropped.
    A folder's own outputs (named with one of ``own_suffixes`` or a built-in recipe's, as the hot
    folders tell them: ``recipes.own_outputs``) are not its inputs: a second run over a folder
    looks at its originals only.  A file named on its own is always an input.
    """
    from truepix.recipes import own_outputs

    own = own_outputs(own_suffixes)
    found: list[tuple[pathlib.Path, str | None]] = []
    for arg in args:
        p = pathlib.Path(arg)
        if p.is_dir():
            kids = sorted(k for k in p.iterdir() if k.is_file() and k.suffix.lower() in SUPPORTED_SUFFIXES
                          and not k.name.startswith(".") and not own.search(k.stem))
            found += [(k, None) for k in kids]
        elif p.exists() or os.path.lexists(p):
            found.append((p, None))
        elif glob.has_magic(arg):
            matches = sorted(pathlib.Path(m) for m in glob.glob(arg, recursive=True))
            files = [m for m in matches if m.is_file()]
            if files:
                found += [(m, None) for m in files]
            else:
                found.append((p, "no file matches this pattern"))
        else:
            found.append((p, "no such file or directory"))
    return found


def output_path(source: pathlib.Path, recipe: Recipe, out_dir: pathlib.Path | None, overwrite: bool) -> pathlib.Path:
    """``<stem><suffix>.<ext>`` beside the source or in ``out_dir``; unique unless ``overwrite``
    (``<stem><suffix>-1.<ext>``, ``-2`` ...).

    A name that would pass the file system's 255-byte limit keeps its suffix and extension and
    loses the end of the stem instead (the full original name is in the output's XMP record).
    """
    folder = out_dir if out_dir is not None else source.parent
    n = 0
    while True:
        try:
            dest = folder / output_name(source, recipe, n)  # the one naming rule (truepix.outputs)
        except ValueError:
            raise ImageWriteError(folder / (source.stem + recipe.suffix + recipe.extension),
                                  "the recipe's suffix makes the file name too long") from None
        if overwrite or not os.path.lexists(dest):
            return dest
        n += 1


class Skip(Exception):
    """The file needs no work (already enhanced by truepix); the message says why, ``output`` names
    the output that already holds the work, when there is one."""

    def __init__(self, message: str, output: pathlib.Path | None = None):
        super().__init__(message)
        self.output = output


def needs_raw(recipe: Recipe, model_dir=None) -> bool:
    """Whether ``recipe`` develops camera RAW data itself (a Bayer step, or linear DNG output)."""
    if recipe.format == "dng":
        return True
    from truepix.engine import models

    table = models.load_manifest(model_dir)
    return any(table[s.model].kind.needs_raw for s in recipe.steps if s.model in table)


def read_raw(source: pathlib.Path, max_pixels: int = 250_000_000, size_check=None) -> RawMosaic:
    """The RAW file's mosaic for the neural development, or LibRaw's demosaic (with a note saying
    why) for sensors the network cannot read.  Raises ImageReadError naming the file."""
    from truepix.io import raw

    if source.suffix.lower() not in RAW_EXTENSIONS:
        raise ImageReadError(source, "this recipe develops camera RAW files (a demosaic step or DNG output) and "
                                     "this is not one; use an RGB recipe such as 'upscale' for it")
    if not source.exists():
        raise ImageReadError(source, "no such file")

    def check_size(width: int, height: int) -> None:
        if width * height > max_pixels:
            raise raw.ReadFailure(f"image too large: {width} x {height} pixels, the limit is {max_pixels / 1e6:.0f} MP")
        if size_check is not None:
            size_check(width, height)

    try:
        try:
            return raw.read_mosaic(source, check_size)
        except raw.NotBayer as e:
            mos = raw.develop_libraw(source, check_size)
            how = ("its RGB data is used as it is" if e.kind == "linear" else
                   "developed with LibRaw's AHD demosaic instead")
            mos.notes.insert(0, f"{e}; {how}, the rest of the recipe applied")
            return mos
    except raw.ReadFailure as e:
        raise ImageReadError(source, str(e)) from None
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(source, "not enough memory to decode this RAW file") from None
    except PermissionError:
        raise ImageReadError(source, "permission denied") from None


def decode_source(source: pathlib.Path, *, force: bool = False, out_dir: pathlib.Path | None = None,
                  recipe: Recipe | None = None, memory_limit_mb: int = 0):
    """First half of a job: checks, then the decoded image (``io.Decoded``), or the RAW data
    (``io.raw.RawMosaic``) when ``recipe`` develops RAWs itself (``needs_raw``).

    Raises Skip for a file truepix already enhanced (unless ``force``),
    TruepixError/OSError for a bad file or output folder, or for a job whose estimated peak memory
    exceeds ``memory_limit_mb`` (0: 3/4 of the RAM; ``engine.budget``), from the file's header,
    before its pixels are decoded.
    """
    check_regular(source)  # a FIFO or device in the photo's place: a clear error, never a hang (io/regular.py)
    if not force and read_truepix_flag(source):
        raise Skip(f"{source.name}: already enhanced by truepix (XMP truepix:Enhanced); "
                   "not enhancing twice (use --force to do it anyway)")
    if out_dir is not None:
        _ensure_folder(out_dir)  # before any work: a wrong output folder fails fast
    budget = None
    if recipe is not None:
        from truepix.engine import budget as budget_mod

        def budget(width: int, height: int) -> None:
            budget_mod.check(source, width, height, recipe, memory_limit_mb)
    if recipe is not None and needs_raw(recipe):
        return read_raw(source, size_check=budget)
    if recipe is not None and recipe.format == "dng":
        raise ImageReadError(source, "DNG output needs a camera RAW source")
    return read_image(source, size_check=budget)


def finish(
    source: pathlib.Path,
    decoded,
    recipe: Recipe,
    *,
    out_dir: pathlib.Path | None = None,
    overwrite: bool = False,
    options: EngineOptions = EngineOptions(),
    control: Control | None = None,
    source_sha256: str | None = None,
) -> FileResult:
    """Second half of a job: the engine on ``decoded`` (``engine.run`` picks RAW or RGB), then the
    encoder (``io.encode``); returns the result.  ``control`` carries progress and a stop request
    (``Stopped`` at a tile boundary, nothing written) and hears the output path before the write.
    ``source_sha256``: the original's, for the output's record (``truepix.outputs``; read here when
    not given).  Raises like ``decode_source``; the output appears whole or not at all."""
    import numpy as np

    from truepix.io.encode import encode_raw, encode_rgb, samples_for

    dest = output_path(source, recipe, out_dir, overwrite)
    record = outputs.record(source_sha256 or outputs.digest(source), recipe)  # what made it, in its XMP
    if control is not None:
        control.planned(dest)  # before anything is written: a crash's temp file is found by it
    # an RGB photo's output rows go to the file (or its samples) as the engine finishes them
    sink = None if isinstance(decoded, RawMosaic) else samples_for(recipe, decoded, dest, overwrite=overwrite)
    try:
        out = run(decoded, recipe, options, control, sink=sink)
    except BaseException:
        if sink is not None:
            sink.abort()  # nothing partial left beside the original
        raise
    result = FileResult(source=str(source), status="done", models=out.models, fidelity=out.fidelity)
    release_memory()  # ONNX Runtime's arenas, before the metadata copy holds the output file
    if isinstance(decoded, RawMosaic):
        decoded.mosaic = decoded.rgb = None  # the developed image is all that is needed now
        written, (h, w), printed = encode_raw(dest, out, decoded, recipe, source, overwrite=overwrite, record=record)
        result.notes = out.notes + printed
        if out.noise_source:
            result.fidelity["noise_sd_at_0.1"] = round(float(np.sqrt(out.noise[0] * 0.1 + out.noise[1])), 6)
            result.notes.append(f"raw noise: {out.noise_source}")
    else:
        del decoded.pixels
        written, (h, w), printed = encode_rgb(dest, out, decoded, recipe, source, overwrite=overwrite, sink=sink,
                                             record=record)
        result.notes += printed  # "print size kept: 300 → 600 ppi"
    result.output, result.height, result.width = str(written), h, w
    return result


def failure_message(err: BaseException, source: pathlib.Path) -> str:
    """One actionable line for a failed file (the original is never touched by a failure)."""
    if isinstance(err, TruepixError):
        return f"{err}; original untouched, nothing written"
    if isinstance(err, MemoryError):
        return (f"{source.name}: out of memory: this photo's job does not fit in the memory free now (a "
                "smaller [engine] tile shrinks only the band of tiles in flight; a JPEG output holds its "
                "samples, a TIFF or PNG does not); lower [engine] memory_limit_mb to refuse such jobs "
                "before they start; original untouched, nothing written")
    if isinstance(err, OSError):
        return f"{source.name}: {err.strerror or err}; original untouched, nothing written"
    return f"{source.name}: internal error ({type(err).__name__}: {err}); original untouched, nothing written"


def process_file(
    source: pathlib.Path,
    recipe: Recipe,
    *,
    out_dir: pathlib.Path | None = None,
    overwrite: bool = False,
    force: bool = False,
    options: EngineOptions = EngineOptions(),
    progress: Callable[[float], None] | None = None,
) -> FileResult:
    """Enhance one file.  Never raises for a bad file: the result says why.  Unless ``force``, a file
    one of whose outputs already holds its content enhanced by this recipe is skipped
    (``truepix.outputs``: the same rule as the daemon's queue, on the same two hashes)."""
    t0 = time.perf_counter()
    out_dir = out_dir if out_dir is not None else recipe.output
    try:
        digest = outputs.digest(source)
        done = None if force else outputs.find_done(source, recipe, out_dir or source.parent, digest)
        if done is not None:
            raise Skip(outputs.skip_line(source, recipe, done), done)
        decoded = decode_source(source, force=force, out_dir=out_dir, recipe=recipe,
                                memory_limit_mb=options.memory_limit_mb)
        result = finish(source, decoded, recipe, out_dir=out_dir, overwrite=overwrite, options=options,
                        control=Control(progress), source_sha256=digest)
    except Skip as e:
        result = FileResult(source=str(source), status="skipped", error=str(e),
                            output=str(e.output) if e.output is not None else None)
    except (TruepixError, MemoryError, OSError) as e:
        result = FileResult(source=str(source), status="failed", error=failure_message(e, source),
                            transient=is_transient(e))
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _ensure_folder(folder: pathlib.Path) -> None:
    from truepix.errors import ImageWriteError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImageWriteError(folder, "the output folder is an existing file, not a folder") from None
    except OSError as e:
        raise ImageWriteError(folder, f"cannot create the output folder ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ImageWriteError(folder, "the output folder is not writable")
