"""The worker: takes jobs from the queue one after another and runs them through the engine.

Two threads.  The *decoder* claims the next job and decodes its file while the
*runner* is still inferring the current one, so the CPU (or GPU) never waits
for a decode; at most one decoded image waits ahead.  The runner enhances,
writes (atomically: the output appears whole or not at all) and records the
outcome.

- ``pause()`` stops handing out jobs; the job being inferred finishes, a job
  decoded ahead goes back to the queue untouched.
- ``cancel(id)`` stops a running job at the next tile; nothing is written.
- ``stop(grace)`` lets the current job finish for up to ``grace`` seconds,
  then stops it at the next tile and puts it back in the queue — never a
  partial output.
"""

from __future__ import annotations

import logging
import pathlib
import queue as queue_mod
import threading
import time
from dataclasses import dataclass

from truepix.engine.pipeline import EngineOptions
from truepix.errors import TruepixError
from truepix.process import FileResult, Skip, decode_source, enhance_and_write, failure_message
from truepix.service.queue import Job, JobQueue

log = logging.getLogger("truepix.worker")


class _Stop(Exception):
    """Raised from the progress callback to stop inference at a tile boundary."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why  # "cancel" | "shutdown"


@dataclass
class _Ready:
    job: Job
    decoded: object | None = None
    error: BaseException | None = None


@dataclass
class Current:
    id: int
    source: str
    recipe: str
    phase: str  # "decoding" | "enhancing" | "writing"
    progress: float
    started: float


class Worker:
    def __init__(self, jobs: JobQueue, options: EngineOptions = EngineOptions(), *, poll: float = 1.0) -> None:
        self.jobs = jobs
        self.options = options
        self.poll = poll
        self._wake = threading.Event()      # set on submit/resume/stop: look at the queue now
        self._running = threading.Event()   # cleared while paused
        self._running.set()
        self._stopping = threading.Event()
        self._abort: dict[int, str] = {}    # job id -> why, checked at every tile
        self._handoff: queue_mod.Queue[_Ready] = queue_mod.Queue(maxsize=1)
        # One decode ahead at most: the decoder takes this slot before it claims a job,
        # the runner gives it back when it takes the decoded job.
        self._slot = threading.Semaphore(1)
        self._lock = threading.Lock()
        self._current: Current | None = None
        self._threads: list[threading.Thread] = []
        self.on_finished = None  # optional callback(job) after each job ends (tray refresh, tests)

    # -- control -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._decoder, name="truepix-decoder", daemon=True),
                         threading.Thread(target=self._runner, name="truepix-runner", daemon=True)]
        for t in self._threads:
            t.start()

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()
        log.info("paused: no new job will start; the running one finishes")

    def resume(self) -> None:
        if not self._running.is_set():
            log.info("resumed")
        self._running.set()
        self._wake.set()

    def cancel(self, job_id: int) -> None:
        """Stop ``job_id`` at its next tile if it is the one running (the queue holds the request too)."""
        with self._lock:
            self._abort[job_id] = "cancel"

    def interrupt(self) -> None:
        """Stop the running job at its next tile and put it back in the queue (shutdown, now)."""
        with self._lock:
            if self._current is not None:
                self._abort[self._current.id] = "shutdown"

    def current(self) -> Current | None:
        with self._lock:
            return None if self._current is None else Current(**vars(self._current))

    def stop(self, grace: float = 30.0) -> bool:
        """Finish the running job within ``grace`` seconds, else stop it and requeue it.

        Returns True when the worker ended cleanly (threads joined).
        """
        self._stopping.set()
        self._wake.set()
        self._running.set()  # a paused decoder must wake to see the stop
        deadline = time.monotonic() + grace
        runner = self._threads[1] if len(self._threads) == 2 else None
        if runner is not None:
            runner.join(max(0.0, deadline - time.monotonic()))
            if runner.is_alive():
                cur = self.current()
                if cur is not None:
                    log.warning("job %d (%s): not finished after the %.0f s grace period; stopping it, it goes "
                                "back to the queue", cur.id, pathlib.Path(cur.source).name, grace)
                    with self._lock:
                        self._abort[cur.id] = "shutdown"
        for t in self._threads:
            t.join(30.0)
        self._release_waiting()
        return not any(t.is_alive() for t in self._threads)

    # -- threads -------------------------------------------------------------------------------------

    def _decoder(self) -> None:
        while not self._stopping.is_set():
            self._running.wait()
            if self._stopping.is_set() or not self._slot.acquire(timeout=0.2):
                continue
            try:
                job = self.jobs.claim()
            except Exception:
                log.exception("queue: cannot claim a job; trying again shortly")
                job = None
            if job is None:
                self._slot.release()
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            ready = _Ready(job)
            # Decoded while the runner is idle, this job *is* the current one: a stop lets it finish.
            # Decoded ahead of a running job, it goes back to the queue at a stop.
            current = self._set_current(job, "decoding", only_if_idle=True)
            try:
                recipe = job.recipe_object()
                ready.decoded = decode_source(pathlib.Path(job.source), out_dir=recipe.output, recipe=recipe)
            except BaseException as e:  # noqa: B036 -- every failure belongs to the job, not the thread
                ready.error = e
            while not (self._stopping.is_set() and not current):
                try:
                    self._handoff.put(ready, timeout=0.2)
                    break
                except queue_mod.Full:
                    continue
            else:
                self._give_back(job)
                self._slot.release()

    def _runner(self) -> None:
        while True:
            try:
                ready = self._handoff.get(timeout=0.2)
            except queue_mod.Empty:
                if self._stopping.is_set() and not self._decoder_alive():
                    return
                continue
            self._slot.release()
            job = ready.job
            if self._stopping.is_set() and not self._is_current(job):
                self._give_back(job)
                continue
            if self.paused:
                self._give_back(job)
                log.info("job %d (%s): back in the queue while paused", job.id, pathlib.Path(job.source).name)
                continue
            self._run(job, ready)

    def _decoder_alive(self) -> bool:
        return self._threads[0].is_alive()

    def _release_waiting(self) -> None:
        while True:
            try:
                self._give_back(self._handoff.get_nowait().job)
            except queue_mod.Empty:
                return

    def _give_back(self, job: Job) -> None:
        try:
            self.jobs.release(job.id)
        except Exception:
            log.exception("job %d: could not put it back in the queue; it is requeued at the next start", job.id)
        with self._lock:
            if self._current is not None and self._current.id == job.id:
                self._current = None

    # -- one job -------------------------------------------------------------------------------------

    def _set_current(self, job: Job, phase: str, *, only_if_idle: bool = False) -> bool:
        """Make ``job`` the current one (``only_if_idle``: unless another is); returns whether it is."""
        with self._lock:
            if only_if_idle and self._current is not None:
                return False
            self._current = Current(job.id, job.source, job.recipe_name, phase, 0.0, time.time())
            return True

    def _is_current(self, job: Job) -> bool:
        with self._lock:
            return self._current is not None and self._current.id == job.id

    def _progress(self, job_id: int):
        def tick(frac: float) -> None:
            with self._lock:
                why = self._abort.get(job_id)
                if self._current is not None and self._current.id == job_id:
                    self._current.progress = frac
            if why:
                raise _Stop(why)
        return tick

    def _run(self, job: Job, ready: _Ready) -> None:
        source = pathlib.Path(job.source)
        self._set_current(job, "enhancing")
        t0 = time.perf_counter()
        result = FileResult(source=job.source, status="failed")
        log.info("job %d start: %s (recipe %s, attempt %d)", job.id, source.name, job.recipe_name, job.attempts)
        outcome: Job | None = None
        try:
            if self.jobs.get(job.id).cancel_requested:
                raise _Stop("cancel")
            if ready.error is not None:
                raise ready.error
            recipe = job.recipe_object()

            def plan(dest: pathlib.Path) -> None:
                self.jobs.set_planned(job.id, dest)
                with self._lock:
                    if self._current is not None:
                        self._current.phase = "writing"

            enhance_and_write(source, ready.decoded, recipe, result, out_dir=recipe.output, options=self.options,
                              progress=self._progress(job.id), plan=plan)
            seconds = round(time.perf_counter() - t0, 3)
            outcome = self.jobs.finish(job.id, [result.output], seconds=seconds,
                                       **({"note": "; ".join(result.notes)} if result.notes else {}))
            for line in result.notes:
                log.info("job %d note: %s", job.id, line)
            log.info("job %d done: %s -> %s (%dx%d, recipe %s, %.1f s)", job.id, source.name, result.output,
                     result.width, result.height, job.recipe_name, seconds)
        except _Stop as stop:
            if stop.why == "cancel":
                outcome = self.jobs.mark_cancelled(job.id, seconds=round(time.perf_counter() - t0, 3))
                log.info("job %d cancelled: %s; nothing written", job.id, source.name)
            else:
                self.jobs.release(job.id)
                log.info("job %d stopped for shutdown: %s; back in the queue, nothing written", job.id, source.name)
        except Skip as e:
            outcome = self.jobs.finish(job.id, [], seconds=round(time.perf_counter() - t0, 3), note=str(e))
            log.info("job %d skipped: %s", job.id, e)
        except BaseException as e:  # noqa: B036 -- one bad file must never stop the daemon
            if not isinstance(e, (TruepixError, MemoryError, OSError)):
                log.exception("job %d: unexpected error", job.id)
            error = failure_message(e, source)
            try:
                outcome = self.jobs.fail(job.id, f"{error}; job {job.id} marked failed",
                                         seconds=round(time.perf_counter() - t0, 3))
            except TruepixError:
                log.exception("job %d: could not record the failure", job.id)
            log.warning("job %d failed: %s (%.1f s)", job.id, error, time.perf_counter() - t0)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            with self._lock:
                self._abort.pop(job.id, None)
                if self._current is not None and self._current.id == job.id:
                    self._current = None
            ready.decoded = None
        if outcome is not None and self.on_finished is not None:
            try:
                self.on_finished(outcome)
            except Exception:
                log.exception("on_finished callback failed")
