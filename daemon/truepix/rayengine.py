"""``truepix process --engine ray``: the same recipes, file by file, on a Ray cluster.

The inputs travel as file paths, never as pixels (Ray cannot split one huge item, and a 60 MP float
image in the object store is 700 MB).  A Ray Data pipeline maps them through a pool of actors
(``FileWorker``, ``map_batches(..., concurrency=N, num_gpus=G, batch_size=1)``); each actor loads
the recipe's ONNX sessions once and runs the very function ``truepix process`` runs for a file
(``process.process_file``: decode, tiled engine, guard, encode, metadata, atomic publish beside
the original or under ``--out``), and returns the file's result as a row.

The promises are the daemon's:

- **Exactly once.** ``process_file`` skips a file one of whose outputs (``<stem><suffix>.<ext>``,
  ``-1``, ``-2`` ...) carries truepix's XMP record naming this source's sha256 and this recipe's
  (``truepix.outputs``, the rule ``truepix process`` and the daemon keep), so a task retried after
  its worker died *after* publishing does not write twice; with ``--force`` an older output is
  redone, but never one written since this run started (its clock: the driver's ``time.time()``
  against the output's mtime).  The results ledger (``.truepix-ledger.jsonl`` in the output
  folder, or beside the first input) gets one JSON line per finished file, flushed as rows arrive;
  a re-run (after a crash of the driver too) skips, without reading any output, every source whose
  ledger row says done for the same recipe (``Recipe.sha256``) and the same content (size and
  mtime, else sha256), and whose output is still there.
- **Nothing partial.** Outputs are written to a temp name, fsynced and renamed (``io.atomic``); a
  worker killed mid-file leaves at most a hidden temp file, which the retry of that file removes
  (``atomic.remove_temp_files`` for its output name).  Ray restarts the actor and retries the
  file (``max_restarts``/``max_task_retries``).
- **A bad file fails alone**, with its one-line reason in its row.

Outputs need a file system every node sees (NFS, SMB): ``preflight`` checks, on every alive node,
that the inputs can be read and the output folder written, before any work.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from truepix.engine.pipeline import EngineOptions
from truepix.errors import TruepixError
from truepix.process import TRANSIENT_BACKOFF, TRANSIENT_RETRIES, FileResult
from truepix.recipes import Recipe

LEDGER = ".truepix-ledger.jsonl"
INSTALL = "the Ray engine needs Ray Data: pip install 'truepix[ray]' (ray[data] >= 2.40)"


class RayEngineError(TruepixError):
    """The cluster cannot run the job (Ray missing, a node that cannot see the files)."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayEngineError(INSTALL) from None
    return ray


@dataclass(frozen=True)
class Job:
    """What every actor needs: the recipe, the output folder (None: beside each original), the
    engine options (one ONNX Runtime thread per worker by default)."""

    recipe: Recipe
    out_dir: pathlib.Path | None
    options: EngineOptions
    force: bool = False
    started: float = 0.0  # time.time() when the run began: a forced run's own outputs are never redone


RETRIES = TRANSIENT_RETRIES      # more tries for a file that failed for a transient reason (process.is_transient)
RETRY_BACKOFF = TRANSIENT_BACKOFF  # seconds before each


def _key(path: pathlib.Path, recipe: Recipe) -> dict:
    st = path.stat()
    return {"source": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "recipe": recipe.name,
            "recipe_sha256": recipe.sha256()}


class Ledger:
    """JSON lines of finished files (``LEDGER``), appended and flushed as rows arrive."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.done: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash: that file is simply done again
                if row.get("status") == "done":
                    self.done[row["source"]] = row
        self.fh = None

    def finished(self, path: pathlib.Path, recipe: Recipe) -> dict | None:
        """The ledger's done row for this file and this recipe (its settings, not only its name) whose
        output still exists, or None.  The same size and mtime say "the same file" at once; a file
        whose mtime moved (copied back, touched by a sync tool) is the same when its content is: its
        sha256 equals the row's."""
        try:
            key = _key(path, recipe)
        except OSError:
            return None
        row = self.done.get(key["source"])
        if row is None or not (row.get("output") and os.path.exists(row["output"])):
            return None
        if any(row.get(k) != key[k] for k in ("recipe", "recipe_sha256", "size")):
            return None
        if row.get("mtime_ns") == key["mtime_ns"]:
            return row
        if not row.get("sha256"):
            return None
        from truepix.io.regular import file_sha256

        try:
            return row if file_sha256(path)[0] == row["sha256"] else None
        except OSError:
            return None

    def add(self, row: dict) -> None:
        if self.fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "a", encoding="utf-8")
        self.fh.write(json.dumps(row) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def run_file(path: pathlib.Path, job: Job) -> FileResult:
    """One file, exactly once: ``process_file``, which skips it when one of its outputs already holds
    this content by this recipe (a retried task, or an earlier run); forced, only an output written
    since the run began is taken as done.  A killed attempt's temp file is removed first."""
    from truepix import outputs
    from truepix.errors import TruepixError
    from truepix.io.atomic import remove_temp_files
    from truepix.process import output_path, process_file

    out_dir = job.out_dir if job.out_dir is not None else job.recipe.output
    if job.force:  # a retried task of this forced run: its output is the one written since it began
        done = outputs.find_done(path, job.recipe, out_dir or path.parent, outputs.digest(path),
                                 made_after=job.started)
        if done is not None:
            return FileResult(source=str(path), status="skipped", output=str(done),
                              error=outputs.skip_line(path, job.recipe, done))
    try:
        remove_temp_files(output_path(path, job.recipe, out_dir, overwrite=False))  # what a killed attempt left
    except TruepixError:
        pass  # a name too long: process_file says so
    return process_file(path, job.recipe, out_dir=out_dir, force=job.force, options=job.options)


class FileWorker:
    """A Ray actor: the recipe's sessions loaded once, then one file per row."""

    def __init__(self, job: Job):
        from truepix.engine import models

        self.job = job
        table = models.with_precision(models.load_manifest(), job.options.precision, job.options.provider)
        for step in job.recipe.steps:  # load the sessions now, once per actor
            if step.model in table and table[step.model].kind.rgb:
                models.runner(table[step.model], job.options.provider, job.options.threads)
        self.node = os.uname().nodename

    def __call__(self, batch: dict) -> dict:
        rows = {k: [] for k in ("source", "status", "output", "error", "seconds", "width", "height",
                                "fidelity", "notes", "node", "pid", "sha256")}
        for src in batch["path"]:
            fault = os.environ.get("TRUEPIX_RAY_PIDS")
            if fault:  # tests: where each worker process is at, to be killed mid-file
                pathlib.Path(fault, f"{os.getpid()}").write_text(src)
            res = self.run(pathlib.Path(src))
            for k in ("source", "status", "output", "error", "seconds", "width", "height"):
                rows[k].append(getattr(res, k))
            rows["fidelity"].append(json.dumps(res.fidelity))
            rows["notes"].append(json.dumps(res.notes))
            rows["node"].append(self.node)
            rows["pid"].append(os.getpid())
            rows["sha256"].append(self.digest(pathlib.Path(src)) if res.status == "done" else "")
        return rows

    def run(self, path: pathlib.Path) -> FileResult:
        """``run_file``, tried again (``RETRIES`` times, after ``RETRY_BACKOFF``) when it failed for a
        transient reason; a file that fails for good fails at once, with its reason."""
        for attempt in range(RETRIES + 1):
            res = run_file(path, self.job)
            if res.status != "failed" or not res.transient or attempt == RETRIES:
                break
            time.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)])
        if attempt and res.status == "failed":
            res.notes.append(f"failed {attempt + 1} times for a reason that may pass; given up")
        elif attempt:
            res.notes.append(f"done on try {attempt + 1}, after a failure that passed")
        return res

    @staticmethod
    def digest(path: pathlib.Path) -> str:
        """The source's sha256 for the ledger (read while it is still in the page cache), or ""."""
        from truepix.io.regular import file_sha256

        try:
            return file_sha256(path)[0]
        except OSError:
            return ""


def preflight(ray, paths: list[pathlib.Path], out_dir: pathlib.Path | None) -> None:
    """On every alive node: the first input readable and the output folder (or each input's
    folder) writable; RayEngineError naming the node and the path otherwise."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe_in = str(paths[0])
    folders = sorted({str(out_dir)} if out_dir is not None else {str(p.parent) for p in paths})

    @ray.remote(num_cpus=0)
    def check(first: str, folders: list[str]) -> tuple[str, str | None]:
        import os as _os

        host = _os.uname().nodename
        if not _os.access(first, _os.R_OK):
            return host, f"cannot read {first}"
        for folder in folders:
            target = folder
            while not _os.path.isdir(target) and _os.path.dirname(target) != target:
                target = _os.path.dirname(target)  # a folder --out will create: its nearest parent
            if not _os.access(target, _os.W_OK | _os.X_OK):
                return host, f"cannot write {folder}"
        return host, None

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(probe_in, folders[:64]) for n in nodes]
    for host, problem in ray.get(refs):
        if problem:
            raise RayEngineError(f"node {host}: {problem}; every node must see the inputs and the output "
                                 "folder at the same paths (a shared file system: NFS, SMB); see docs/scale-out.md")


def process_on_ray(
    inputs: Iterable[tuple[pathlib.Path, str | None]],
    recipe: Recipe,
    *,
    out_dir: pathlib.Path | None = None,
    options: EngineOptions = EngineOptions(threads=1),
    address: str | None = None,
    workers: int = 0,
    gpus_per_worker: float = 0.0,
    force: bool = False,
    ledger: pathlib.Path | None = None,
    on_result: Callable[[FileResult, int, int], None] | None = None,
) -> list[FileResult]:
    """Process ``inputs`` (``process.expand_inputs``' pairs) on Ray; returns one result per input.

    address: a running cluster (``ray start --head`` prints it), None to start a local instance.
    workers: actors in the pool (0: one per CPU of the cluster); each runs ``options.threads``
    ONNX Runtime threads.  on_result(result, done, total) as each file finishes.
    """
    inputs = list(inputs)
    results: list[FileResult] = [FileResult(source=str(p), status="failed", error=f"{p}: {why}; nothing written")
                                 for p, why in inputs if why]
    paths = [p for p, why in inputs if not why]
    if not paths:
        return results
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RayEngineError(f"{out_dir}: cannot create the output folder ({e.strerror or e}); "
                                 "nothing processed") from None
    ledger_path = ledger or (out_dir or paths[0].parent) / LEDGER
    book = Ledger(ledger_path)
    todo = []
    for p in paths:
        row = None if force else book.finished(p, recipe)
        if row is not None:
            from truepix.outputs import skip_line

            results.append(FileResult(source=str(p), status="skipped", output=row["output"],
                                      error=f"{skip_line(p, recipe, row['output'])} (ledger {ledger_path.name})"))
        else:
            todo.append(p)
    if not todo:
        book.close()
        return results
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="warning",
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("TRUEPIX_")}})
    try:
        import logging

        logging.getLogger("ray.data").setLevel(logging.WARNING)  # truepix prints its own progress
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        preflight(ray, todo, out_dir)
        size = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // max(options.threads, 1)))
        size = min(size, len(todo))
        job = Job(recipe, out_dir, options, force, started=time.time())
        # one block per file, so the pool balances files, not chunks of them
        ds = ray.data.from_items([{"path": str(p)} for p in todo], override_num_blocks=len(todo))
        mapped = ds.map_batches(
            FileWorker, fn_constructor_kwargs={"job": job}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=gpus_per_worker or None, num_cpus=max(options.threads, 1),
            max_restarts=-1, max_task_retries=-1,  # a killed worker: restarted, its file retried
        )
        total, done = len(todo), 0
        for row in mapped.iter_rows():
            res = FileResult(source=row["source"], status=row["status"], output=row["output"], error=row["error"],
                             seconds=row["seconds"], width=row["width"], height=row["height"],
                             fidelity=json.loads(row["fidelity"]), notes=json.loads(row["notes"]))
            done += 1
            results.append(res)
            if res.status == "done":
                try:
                    book.add({**_key(pathlib.Path(res.source), recipe), "status": "done", "output": res.output,
                              "seconds": res.seconds, "node": row["node"], "sha256": row["sha256"]})
                except OSError:
                    pass  # the source vanished meanwhile: nothing to skip next time
            if on_result is not None:
                on_result(res, done, total)
    finally:
        book.close()
        if started_here:
            ray.shutdown()
    return results


def progress_printer(quiet: bool = False) -> Callable[[FileResult, int, int], None]:
    """A line per file with throughput and ETA, on stderr."""
    t0 = time.perf_counter()

    def show(res: FileResult, done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - t0, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        if quiet and res.status == "done":
            return
        what = f"-> {res.output} in {res.seconds:.1f} s" if res.status == "done" else res.error
        print(f"truepix ray [{done}/{total}, {rate * 60:.1f} files/min, ETA {eta:.0f} s] "
              f"{pathlib.Path(res.source).name} {what}", file=sys.stderr, flush=True)
    return show


def from_cli(args, inputs, recipe: Recipe, options: EngineOptions) -> list[FileResult] | None:
    """``truepix process --engine ray``: the results, or None (said on stderr) when the cluster could
    not run the job.  Ray's own messages (a worker that died, a retry) are written to file
    descriptor 1: they go to stderr while the cluster runs, so stdout carries only the JSON report."""
    import dataclasses

    if args.threads is None:  # one ONNX Runtime thread per actor: the pool spreads the cores
        options = dataclasses.replace(options, threads=1)
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        return process_on_ray(inputs, recipe, out_dir=args.out, options=options, address=args.ray_address,
                              workers=args.workers, gpus_per_worker=args.gpus_per_worker, force=args.force,
                              ledger=args.ledger, on_result=progress_printer(args.quiet or args.json))
    except TruepixError as e:
        print(f"truepix: {e}", file=sys.stderr)
        return None
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
