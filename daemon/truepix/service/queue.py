"""The job queue: one SQLite file (WAL mode) that outlives the daemon.

A job is one source file with one recipe.  Its life::

    queued -> running -> done | failed          (cancel: queued/running -> cancelled)
              running -> queued                 (released at shutdown, or recovered after a crash)
    failed | cancelled -> queued                (retry)

The queue's promises, which the worker, the watcher and the API rely on:

- ``submit`` returns only after the job's row is committed: a job the caller was
  told about survives a crash the next instant.
- ``claim`` hands each queued job to exactly one caller, oldest first; two
  workers (threads or processes) never receive the same job.
- ``recover`` (called once at start-up, by the only daemon that holds the lock)
  puts jobs that were ``running`` when a previous process died back in the
  queue; a job whose output had already been published is marked done instead
  (outputs are published by an atomic rename, so an existing output is whole),
  and a job whose *inference* was under way during ``MAX_CRASHES`` crashes is
  failed rather than allowed to crash the daemon forever.  A job only claimed
  and decoded ahead of another (``begin`` not called) is requeued uncounted:
  the crash was not its.
- The same file content (sha256) with the same recipe is processed once:
  submitting it again returns the existing queued, running or done job
  (``duplicate=True``) instead of a new one, unless ``force``.  A failed job is
  not resubmitted by a hot folder (it would fail at every start); an explicit
  submit or ``retry`` runs it again.
- A failed job keeps its error text; ``retry`` queues it again.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
import time

from truepix.errors import ImageReadError
from truepix.recipes import Recipe
from truepix.service import paths

from truepix.service.jobs import (  # noqa: F401 -- re-exported: the queue's vocabulary
    _ADDED_COLUMNS, _SCHEMA, FINAL, MAX_CRASHES, MAX_KILLS, SHOWN_STATE, STATES, Job, QueueError, _row_to_job,
    file_sha256,
    recipe_key,
)


class JobQueue:
    """Durable job queue in the SQLite file at ``path`` (created with its folder when absent).

    Safe to use from many threads (one connection per thread) and from many
    processes (SQLite's own locking; writes are serialised, ``busy_timeout`` waits).
    """

    def __init__(self, path: pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        paths.private_dir(self.path.parent, tighten=False)  # photo paths and job history: this user's only
        self._local = threading.local()
        self._db().executescript(_SCHEMA)  # idempotent; executescript commits on its own
        have = {row[1] for row in self._db().execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                self._db().execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")

    # -- connections -------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            paths.private_file(self.path, create=True)  # 0600 before SQLite makes it; -wal/-shm copy its mode
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            for side in ("-wal", "-shm"):  # a queue file an older truepix left readable by others
                paths.private_file(f"{self.path}{side}")
            # WAL + NORMAL: a committed job survives a process crash; only an OS crash/power cut can
            # lose the last transactions, never corrupt the file.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, kind, value, tb) -> None:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")

    def _tx(self) -> JobQueue._Tx:
        return JobQueue._Tx(self._db())

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- doors ---------------------------------------------------------------------------------------

    def submit(self, source: pathlib.Path, recipe: Recipe, *, origin: str = "api", force: bool = False,
               resubmit_failed: bool = True) -> Job:
        """Queue ``source`` with ``recipe``; committed when this returns.

        Returns the new job, or (``duplicate=True``) the existing job for the
        same content and recipe: queued, running or done — or failed, when
        ``resubmit_failed`` is false (hot folders).  ``force`` always makes a
        new job.  Raises QueueError when the source cannot be read.

        A new job for a path supersedes the failed jobs of *other* content at that path (an
        unreadable file, a read of a file still being written): they become ``cancelled`` with
        "superseded by job N" — that content is gone, and its failure was not the new content's.
        """
        return self.submit_many([source], recipe, origin=origin, force=force, resubmit_failed=resubmit_failed)[0]

    def record_unreadable(self, source: pathlib.Path, recipe: Recipe, reason: str, *, origin: str = "folder") -> Job:
        """A failed job for a file that could not be read to queue it (a hot folder's file without read
        permission): visible in ``truepix status`` with its reason.  The file's content is unknown
        (``sha256`` empty); once it is readable, ``submit`` supersedes this record.  Recording the same
        file again while its (size, mtime) and reason are unchanged returns the existing record."""
        source = pathlib.Path(source).absolute()
        try:
            st = os.stat(source)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = 0, 0
        error = f"{reason}; truepix tries again when the file changes (permissions included)"
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE source = ? AND sha256 = '' AND state = 'failed' AND size = ?"
                             " AND mtime_ns = ? AND error = ? ORDER BY id DESC LIMIT 1",
                             (str(source), size, mtime, error)).fetchone()
            if row is not None:
                job = _row_to_job(row)
                job.duplicate = True
                return job
            now = time.time()
            row = db.execute(
                "INSERT INTO jobs (source, size, mtime_ns, sha256, recipe_name, recipe, recipe_key, origin, state,"
                " error, created, finished) VALUES (?, ?, ?, '', ?, ?, ?, ?, 'failed', ?, ?, ?) RETURNING *",
                (str(source), size, mtime, recipe.name, json.dumps(recipe.to_mapping(), sort_keys=True),
                 recipe_key(recipe), origin, error, now, now)).fetchone()
            return _row_to_job(row)

    # -- the worker's side ----------------------------------------------------------------------------

    def claim(self, *, ahead: bool = False) -> Job | None:
        """Atomically take the oldest queued job and mark it running; None when none is queued.

        Claiming is not an attempt: the worker claims one job ahead to decode it while another is
        inferred (``ahead``: such a job has not started — it has no ``started`` time and users see it
        as queued, ``Job.public_state``, until ``begin``).  ``begin`` counts the attempt."""
        db = self._db()
        # One UPDATE ... RETURNING is one write transaction: two claimers cannot both match the row.
        row = db.execute(
            "UPDATE jobs SET state = 'running', started = ?, planned = NULL, inferring = 0, ahead = ?"
            " WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1) AND state = 'queued'"
            " RETURNING *", (None if ahead else time.time(), int(ahead))).fetchone()
        return _row_to_job(row) if row is not None else None

    def begin(self, job_id: int) -> Job:
        """The claimed job's inference starts now: one more attempt, and a daemon death from here to
        its end counts against it (``recover``).  A job decoded ahead starts now; one decoded as the
        running job keeps the time its decode began."""
        row = self._db().execute(
            "UPDATE jobs SET attempts = attempts + 1, inferring = 1, started = CASE WHEN ahead = 1 OR started IS NULL"
            " THEN ? ELSE started END, ahead = 0 WHERE id = ? AND state = 'running'"
            " RETURNING *", (time.time(), job_id)).fetchone()
        if row is None:
            raise QueueError(f"job {job_id}: not running, cannot begin it")
        return _row_to_job(row)

    def set_planned(self, job_id: int, output: pathlib.Path) -> None:
        """Record the output path about to be written (``recover`` looks for it after a crash)."""
        self._db().execute("UPDATE jobs SET planned = ? WHERE id = ? AND state = 'running'", (str(output), job_id))

    def finish(self, job_id: int, outputs: list[str], *, seconds: float, note: str | None = None,
               models: list[str] | None = None, report: dict | None = None) -> Job:
        """running -> done with its outputs, the models that ran and the fidelity report of the run."""
        return self._end(job_id, "done", outputs=outputs, seconds=seconds, note=note, models=models, report=report)

    def fail(self, job_id: int, error: str, *, seconds: float | None = None) -> Job:
        """running -> failed; ``error`` is kept for the user and for ``retry``."""
        return self._end(job_id, "failed", error=error, seconds=seconds)

    def mark_cancelled(self, job_id: int, *, seconds: float | None = None) -> Job:
        """running -> cancelled (the worker saw the cancel request and stopped, writing nothing)."""
        return self._end(job_id, "cancelled", error="cancelled; nothing written", seconds=seconds)

    def _end(self, job_id: int, state: str, *, outputs: list[str] | None = None, error: str | None = None,
             seconds: float | None = None, note: str | None = None, models: list[str] | None = None,
             report: dict | None = None) -> Job:
        row = self._db().execute(
            "UPDATE jobs SET state = ?, outputs = ?, error = ?, note = ?, finished = ?, seconds = ?, planned = NULL,"
            " models = ?, report = ?, inferring = 0, ahead = 0 WHERE id = ? AND state = 'running' RETURNING *",
            (state, json.dumps(outputs or []), error, note, time.time(), seconds, json.dumps(models or []),
             json.dumps(report or {}), job_id)).fetchone()
        if row is None:
            raise QueueError(f"job {job_id}: not running, cannot mark it {state}")
        return _row_to_job(row)

    def changed(self, job_id: int, why: str, *, seconds: float | None = None) -> Job:
        """running -> cancelled: the file changed while it was read (still being written); not a failure
        of its content.  The hot folder queues it again once it settles."""
        return self._end(job_id, "cancelled", error=f"{why}; not counted as a failure of this file", seconds=seconds)

    def release(self, job_id: int) -> Job | None:
        """running -> queued, unstarted: the job goes back to the head of the queue (shutdown, pause).

        An attempt ``begin`` counted is taken back: the job was given back, it did not crash anything.
        """
        row = self._db().execute(
            "UPDATE jobs SET state = 'queued', started = NULL, planned = NULL, attempts = MAX(attempts - inferring, 0),"
            " inferring = 0, ahead = 0 WHERE id = ? AND state = 'running' RETURNING *", (job_id,)).fetchone()
        return _row_to_job(row) if row is not None else None

    def requeue(self, job_id: int, why: str) -> Job:
        """running -> queued after a failure worth another try (``process.is_transient``): unlike
        ``release`` the attempt stays counted, so the worker's retry limit holds; ``why`` is the note."""
        row = self._db().execute(
            "UPDATE jobs SET state = 'queued', started = NULL, planned = NULL, inferring = 0, ahead = 0, note = ?"
            " WHERE id = ? AND state = 'running' RETURNING *", (why, job_id)).fetchone()
        if row is None:
            raise QueueError(f"job {job_id}: not running, cannot queue it again")
        return _row_to_job(row)

    def recover(self, crashed: bool = True) -> list[Job]:
        """At start-up: settle every job a dead process left ``running``.  Returns those jobs, updated.

        ``crashed``: the dead process crashed (a fatal signal left its trace: the daemon's crash log);
        False when it vanished without one (kill -9, the OOM killer, a power cut) — a death the photo
        did not cause as far as anyone can tell, so it counts against the job being inferred only up
        to MAX_KILLS, not MAX_CRASHES.  Only the process that owns the queue (the daemon holding its
        lock) may call this.
        """
        settled = []
        with self._tx() as db:
            rows = db.execute("SELECT * FROM jobs WHERE state = 'running' ORDER BY id").fetchall()
            for row in rows:
                job = _row_to_job(row)
                planned = pathlib.Path(job.planned) if job.planned else None
                if planned is not None:
                    _remove_temp_files(planned)
                # only a death during its own inference counts
                crashes = job.crashes + (job.inferring if crashed else 0)
                kills = job.kills + (0 if crashed else job.inferring)
                if planned is not None and planned.is_file() and planned.stat().st_mtime >= (job.started or 0) - 1:
                    new = ("done", json.dumps([str(planned)]), None, "output was complete before the daemon stopped")
                elif crashes >= MAX_CRASHES or kills >= MAX_KILLS:
                    times = f"crashed while processing this file {crashes} times" if crashes >= MAX_CRASHES else \
                        f"stopped (killed) while processing this file {kills} times"
                    new = ("failed", "[]", f"{pathlib.Path(job.source).name}: the daemon {times}; not trying again "
                           f"automatically (truepix retry {job.id})", None)
                elif job.inferring:
                    new = ("queued", "[]", None, "requeued after the daemon stopped while processing it")
                else:
                    new = ("queued", "[]", None, "requeued: the daemon stopped while it waited, decoded, for its turn")
                now = time.time()
                finished = now if new[0] != "queued" else None
                row = db.execute(
                    "UPDATE jobs SET state = ?, outputs = ?, error = ?, note = ?, finished = ?, planned = NULL,"
                    " started = CASE WHEN ? = 'queued' THEN NULL ELSE started END, crashes = ?, kills = ?,"
                    " inferring = 0, ahead = 0 WHERE id = ? RETURNING *",
                    (*new, finished, new[0], crashes, kills, job.id)).fetchone()
                settled.append(_row_to_job(row))
        return settled

    # -- the user's side ------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise QueueError(f"job {job_id}: no such job")
        return _row_to_job(row)

    def jobs(self, state: str | None = None, limit: int = 100, before: int | None = None) -> list[Job]:
        """Newest first; ``before`` pages back from a job id."""
        where, args = [], []
        if state is not None:  # as users see states (Job.public_state): a job decoded ahead is queued
            where.append(f"({SHOWN_STATE}) = ?")
            args.append(state)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [_row_to_job(r) for r in self._db().execute(sql, (*args, limit)).fetchall()]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, n in self._db().execute(f"SELECT {SHOWN_STATE} AS shown, COUNT(*) FROM jobs GROUP BY shown"):
            counts[state] = n
        return counts

    def cancel(self, job_id: int) -> Job:
        """queued -> cancelled now; running -> ``cancel_requested`` (the worker stops it, writing nothing).

        Raises QueueError for a job that has already finished.
        """
        with self._tx() as db:
            job = self.get(job_id)
            if job.state == "queued":
                row = db.execute("UPDATE jobs SET state = 'cancelled', error = 'cancelled before it started',"
                                 " finished = ? WHERE id = ? RETURNING *", (time.time(), job_id)).fetchone()
            elif job.state == "running":
                row = db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? RETURNING *", (job_id,)).fetchone()
            else:
                raise QueueError(f"job {job_id}: already {job.state}, nothing to cancel")
            return _row_to_job(row)

    def retry(self, job_id: int) -> Job:
        """failed | cancelled -> queued again (the old error moves to the note)."""
        with self._tx() as db:
            job = self.get(job_id)
            if job.state not in ("failed", "cancelled"):
                raise QueueError(f"job {job_id}: is {job.state}; only failed or cancelled jobs can be retried")
            if not os.path.isfile(job.source):
                raise QueueError(f"job {job_id}: {job.source} no longer exists; nothing queued")
            note = f"retried; previous error: {job.error}" if job.error else "retried"
            row = db.execute(
                "UPDATE jobs SET state = 'queued', error = NULL, note = ?, cancel_requested = 0, started = NULL,"
                " finished = NULL, seconds = NULL, attempts = 0, crashes = 0, kills = 0"
                " WHERE id = ? RETURNING *",
                (note, job_id)).fetchone()
            return _row_to_job(row)


    def submit_many(self, sources: list[pathlib.Path], recipe: Recipe, *, origin: str = "api",
                    force: bool = False, resubmit_failed: bool = True) -> list[Job]:
        """``submit`` for several files, all or nothing: every file is read (hashed) first, then all
        are queued in one transaction.

        Returns a job per source, in order (``duplicate=True`` as ``submit`` says).  When a file
        cannot be read, raises QueueError with ``index`` (its position in ``sources``) and queues nothing.
        """
        files = []
        for index, source in enumerate(sources):
            source = pathlib.Path(source).absolute()
            try:
                digest, st = file_sha256(source)
            except (ImageReadError, OSError) as e:
                why = e.reason if isinstance(e, ImageReadError) else e.strerror or e
                error = QueueError(f"{source}: cannot read the file to queue it ({why}); nothing queued")
                error.index = index  # type: ignore[attr-defined]
                raise error from None
            files.append((source, st, digest))
        key = recipe_key(recipe)
        mapping = json.dumps(recipe.to_mapping(), sort_keys=True)
        blocking = ("queued", "running", "done") if resubmit_failed else ("queued", "running", "done", "failed")
        marks = ",".join("?" * len(blocking))
        jobs = []
        with self._tx() as db:  # an exception rolls all of it back
            for source, st, digest in files:
                if not force:
                    row = db.execute(
                        f"SELECT * FROM jobs WHERE sha256 = ? AND recipe_key = ? AND state IN ({marks})"
                        " ORDER BY (state = 'done') DESC, id DESC LIMIT 1", (digest, key, *blocking)).fetchone()
                    if row is not None:
                        job = _row_to_job(row)
                        job.duplicate = True
                        jobs.append(job)
                        continue
                cur = db.execute(
                    "INSERT INTO jobs (source, size, mtime_ns, sha256, recipe_name, recipe, recipe_key, origin, state,"
                    " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) RETURNING *",
                    (str(source), st.st_size, st.st_mtime_ns, digest, recipe.name, mapping, key, origin, time.time()))
                job = _row_to_job(cur.fetchone())
                note = f"superseded by job {job.id}: the file changed after this job failed"
                db.execute("UPDATE jobs SET state = 'cancelled', note = ?,"
                           " error = 'superseded: ' || COALESCE(error, '')"
                           " WHERE source = ? AND state = 'failed' AND sha256 != ?",
                           (note, str(source), digest))
                jobs.append(job)
        return jobs


def _remove_temp_files(planned: pathlib.Path) -> None:
    """Delete the hidden temp files a killed writer left for ``planned`` (``.NAME.truepix-tmp-XXXXXXXX``;
    an exact name match, so ``[`` or ``*`` in a photo's name is no pattern)."""
    from truepix.io.image import remove_temp_files

    remove_temp_files(planned)
