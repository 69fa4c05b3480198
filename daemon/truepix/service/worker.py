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

Neither thread ever dies of an exception.  A queue write that fails (a full disk, the database
locked by another process beyond its busy timeout) is retried with a growing pause until it
succeeds — a job's outcome is never dropped — and ``health()`` reports the trouble meanwhile, as it
reports a thread that has stopped.
"""

from __future__ import annotations

import logging
import os
import pathlib
import queue as queue_mod
import stat
import threading
import time
from dataclasses import dataclass

from truepix.engine.pipeline import EngineOptions
from truepix.errors import ImageReadError, TruepixError
from truepix.engine.control import Control, Stopped
from truepix.process import (TRANSIENT_BACKOFF, TRANSIENT_RETRIES, Skip, decode_source, failure_message, finish,
                             is_transient)
from truepix.service.queue import Job, QueueError
from truepix.service.store import JobStore

log = logging.getLogger("truepix.worker")


def _changed_since_queued(job: Job) -> bool:
    """Whether the job's file is still a regular file but no longer the (size, mtime) it had when it
    was queued (a writer still at work).  Gone, or replaced by a FIFO or device: a failure as it is."""
    try:
        st = os.stat(job.source)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) != (job.size, job.mtime_ns)


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
    phase: str  # "decoding" | "enhancing" | "writing" (the last tile done, the file being closed)
    progress: float
    started: float


class Worker:
    def __init__(self, jobs: JobStore, options: EngineOptions = EngineOptions(), *, poll: float = 1.0) -> None:
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
        self._trouble: tuple[float, str] | None = None  # (since, what) while queue writes fail
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

    def health(self) -> list[str]:
        """What is wrong with the worker, one line each; empty when it is well."""
        problems = [f"the worker's {t.name} thread has stopped; restart truepix" for t in self._threads
                    if not t.is_alive() and not self._stopping.is_set()]
        with self._lock:
            trouble = self._trouble
        if trouble is not None:
            problems.append(f"queue database: {trouble[1]} (failing for {time.time() - trouble[0]:.0f} s; "
                            "retrying; jobs wait meanwhile)")
        return problems

    def _persist(self, what: str, write, *args, **kwargs):
        """``write(*args, **kwargs)`` on the queue until it succeeds; None when the worker stops first
        (the job is then still ``running`` in the queue file, and ``recover`` settles it at the next
        start).  A ``QueueError`` (the job is not in the state the write expects) is not retried."""
        delay = 0.5
        while True:
            try:
                result = write(*args, **kwargs)
            except QueueError:
                raise
            except Exception as e:  # sqlite3.OperationalError: disk full, database locked, I/O error
                with self._lock:
                    first = self._trouble is None
                    self._trouble = self._trouble or (time.time(), f"cannot {what}: {e}")
                if first:
                    log.error("queue database: cannot %s (%s); retrying until it works", what, e)
                if self._stopping.wait(delay):
                    log.warning("queue database: gave up trying to %s at shutdown; the next start settles it", what)
                    return None
                delay = min(delay * 2, 30.0)
                continue
            with self._lock:
                if self._trouble is not None:
                    log.info("queue database: writable again (%s)", what)
                self._trouble = None
            return result

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
            try:
                self._decode_next()
            except Exception:  # a bug here must not stop the daemon's work for ever
                log.exception("worker: unexpected error in the decoder; going on")
                self._stopping.wait(1.0)

    def _decode_next(self) -> None:
        """Claim the next job and decode it ahead (one pass of the decoder's loop)."""
        self._running.wait()
        if self._stopping.is_set() or not self._slot.acquire(timeout=0.2):
            return
        with self._lock:  # a job claimed while another runs waits its turn: users see it queued
            ahead = self._current is not None
        try:
            job = self._persist("claim the next job", self.jobs.claim, ahead=ahead)
        except BaseException:
            self._slot.release()
            raise
        if job is None:
            self._slot.release()
            self._wake.wait(self.poll)
            self._wake.clear()
            return
        ready = _Ready(job)
        # Decoded while the runner is idle, this job *is* the current one: a stop lets it finish.
        # Decoded ahead of a running job, it goes back to the queue at a stop.
        current = self._set_current(job, "decoding", only_if_idle=True)
        try:
            recipe = job.recipe_object()
            ready.decoded = decode_source(pathlib.Path(job.source), out_dir=recipe.output, recipe=recipe,
                                          memory_limit_mb=self.options.memory_limit_mb)
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
            try:
                self._take(ready)
            except Exception:  # a bug or a queue failure must not stop the daemon's work for ever
                log.exception("worker: unexpected error in the runner; going on")
                self._stopping.wait(1.0)

    def _take(self, ready: _Ready) -> None:
        """Run the job the decoder handed over, or give it back (stopping, paused)."""
        job = ready.job
        if self._stopping.is_set() and not self._is_current(job):
            self._slot.release()
            self._give_back(job)
            return
        if self.paused:
            self._slot.release()
            self._give_back(job)
            log.info("job %d (%s): back in the queue while paused", job.id, pathlib.Path(job.source).name)
            return
        # Current before the slot is free: the decoder's next claim must see this job running, or it
        # would take itself for the running one.
        self._set_current(job, "enhancing")
        self._slot.release()
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

    def _control(self, job_id: int) -> Control:
        """The job's ``Control``: its progress shows in ``current()``; a cancel or shutdown request
        (``_abort``) becomes its stop request, honoured at the next tile."""
        def tick(frac: float) -> None:
            with self._lock:
                why = self._abort.get(job_id)
                if self._current is not None and self._current.id == job_id:
                    self._current.progress = frac
                    if frac >= 1.0:  # the last tile is done: what is left is closing the file
                        self._current.phase = "writing"
            if why:
                control.stop(why)

        control = Control(on_progress=tick, on_planned=lambda dest: self._planned(job_id, dest))
        return control

    def _planned(self, job_id: int, dest: pathlib.Path) -> None:
        # before the engine starts: a TIFF or PNG output is written band by band as it runs
        self._persist("record the output path", self.jobs.set_planned, job_id, dest)

    def _run(self, job: Job, ready: _Ready) -> None:
        source = pathlib.Path(job.source)
        self._set_current(job, "enhancing")
        t0 = time.perf_counter()
        try:  # from here a daemon death counts against this job (queue.recover)
            begun = self._persist("start the job", self.jobs.begin, job.id)
        except QueueError as e:
            begun = None
            log.warning("job %d: %s; not run", job.id, e)
        if begun is None:
            with self._lock:
                if self._current is not None and self._current.id == job.id:
                    self._current = None
            return
        job = begun
        log.info("job %d start: %s (recipe %s, attempt %d)", job.id, source.name, job.recipe_name, job.attempts)
        outcome: Job | None = None
        try:
            if job.cancel_requested:
                raise Stopped("cancel")
            if ready.error is not None:
                raise ready.error
            recipe = job.recipe_object()
            result = finish(source, ready.decoded, recipe, out_dir=recipe.output, options=self.options,
                            control=self._control(job.id), source_sha256=job.sha256)  # hashed at submit
            seconds = round(time.perf_counter() - t0, 3)
            outcome = self._persist("record the job done", self.jobs.finish, job.id, [result.output], seconds=seconds,
                                    models=list(result.models), report=dict(result.fidelity),
                                    **({"note": "; ".join(result.notes)} if result.notes else {}))
            for line in result.notes:
                log.info("job %d note: %s", job.id, line)
            log.info("job %d done: %s -> %s (%dx%d, recipe %s, %.1f s)", job.id, source.name, result.output,
                     result.width, result.height, job.recipe_name, seconds)
        except Stopped as stop:
            if stop.why == "cancel":
                outcome = self._persist("record the cancellation", self.jobs.mark_cancelled, job.id,
                                        seconds=round(time.perf_counter() - t0, 3))
                log.info("job %d cancelled: %s; nothing written", job.id, source.name)
            else:
                self._persist("put the job back in the queue", self.jobs.release, job.id)
                log.info("job %d stopped for shutdown: %s; back in the queue, nothing written", job.id, source.name)
        except Skip as e:
            outcome = self._persist("record the job skipped", self.jobs.finish, job.id, [],
                                    seconds=round(time.perf_counter() - t0, 3), note=str(e))
            log.info("job %d skipped: %s", job.id, e)
        except BaseException as e:  # noqa: B036 -- one bad file must never stop the daemon
            if not isinstance(e, (TruepixError, MemoryError, OSError)):
                log.exception("job %d: unexpected error", job.id)
            error = failure_message(e, source)
            seconds = round(time.perf_counter() - t0, 3)
            record = None
            if isinstance(e, (ImageReadError, OSError)) and _changed_since_queued(job):
                # Read while still being written: the content that failed is not the file's.
                why = f"{source.name}: the file changed while truepix read it (still being written?)"
                record, text = self.jobs.changed, why
                log.info("job %d: %s; not counted as a failure; a hot folder queues it again once it settles "
                         "(the read said: %s)", job.id, why, error)
            elif is_transient(e) and job.attempts <= TRANSIENT_RETRIES and not self._stopping.is_set():
                # An I/O hiccup (a network share, a busy device) or memory another job held: the file
                # is not at fault.  Back in the queue after a pause, its attempt counted, so a failure
                # that keeps coming back fails the job after TRANSIENT_RETRIES more tries.
                delay = TRANSIENT_BACKOFF[min(job.attempts, len(TRANSIENT_BACKOFF)) - 1]
                log.warning("job %d: %s; transient, trying again in %.0f s (attempt %d of %d)", job.id, error,
                            delay, job.attempts, TRANSIENT_RETRIES + 1)
                self._stopping.wait(delay)
                try:
                    self._persist("queue the job again", self.jobs.requeue, job.id,
                                  f"attempt {job.attempts} failed for a transient reason: {error}")
                except QueueError as qe:
                    log.error("job %d: could not queue it again: %s", job.id, qe)
                self._wake.set()
            else:
                record, text = self.jobs.fail, f"{error}; job {job.id} marked failed"
                log.warning("job %d failed: %s (%.1f s)", job.id, error, seconds)
            if record is not None:
                try:
                    outcome = self._persist("record the outcome", record, job.id, text, seconds=seconds)
                except QueueError as qe:
                    log.error("job %d: could not record its outcome: %s", job.id, qe)
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
