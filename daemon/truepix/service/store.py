"""``JobStore``: what the worker, the API and the daemon need from a job queue, and what it promises.

The docstrings below are the contract; ``service/queue.py``'s ``JobQueue`` (one SQLite file, WAL) is
the implementation, and ``tests/test_queue.py`` runs against every implementation in ``STORES``.  A
job is one source file with one recipe; its life::

    queued -> running -> done | failed          (cancel: queued/running -> cancelled)
              running -> queued                 (released at shutdown, or recovered after a crash)
    failed | cancelled -> queued                (retry)

Promises every implementation keeps:

- **Durable**: ``submit`` returns only when the job survives a crash the next instant.
- **Exactly once**: ``claim`` hands each queued job to one caller (thread or process), oldest first.
- **Crash recovery**: ``recover`` (once, at start-up, by the only daemon) settles jobs a dead process
  left running: done when their output was published whole, failed after ``MAX_CRASHES`` crashes
  (or ``MAX_KILLS`` traceless deaths) during their own inference (``begin`` .. end), queued again
  otherwise.
- **Deduplicated by content**: the same bytes (sha256) with the same recipe are one job (``duplicate``)
  unless ``force``; a new content at a path supersedes the old content's failures.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from truepix.recipes import Recipe
    from truepix.service.queue import Job


@runtime_checkable
class JobStore(Protocol):
    # -- doors -----------------------------------------------------------------------------------------

    def submit(self, source: pathlib.Path, recipe: Recipe, *, origin: str = "api", force: bool = False,
               resubmit_failed: bool = True) -> Job:
        """Queue ``source`` (hashed here); the new job, or the existing one for the same content and
        recipe with ``duplicate=True`` (a failed one counts only when not ``resubmit_failed``).
        Raises QueueError, naming the file, when it cannot be read; nothing is queued then."""

    def submit_many(self, sources: list[pathlib.Path], recipe: Recipe, *, origin: str = "api",
                    force: bool = False, resubmit_failed: bool = True) -> list[Job]:
        """``submit`` for several files, all or nothing (QueueError with ``index``: none queued)."""

    def record_unreadable(self, source: pathlib.Path, recipe: Recipe, reason: str, *,
                          origin: str = "folder") -> Job:
        """A failed job for a file that could not be read to queue it (shown with its reason); the same
        file and reason again returns that record; a later ``submit`` of the readable file supersedes it."""

    # -- the worker's side -------------------------------------------------------------------------------

    def claim(self, *, ahead: bool = False) -> Job | None:
        """Atomically take the oldest queued job (running, not yet begun); None when none is queued.
        ``ahead``: taken to decode while another job runs; users see it queued until ``begin``."""

    def begin(self, job_id: int) -> Job:
        """The claimed job's inference starts: one more attempt; a death from here counts against it."""

    def set_planned(self, job_id: int, output: pathlib.Path) -> None:
        """The output path about to be written (``recover`` looks for it)."""

    def requeue(self, job_id: int, why: str) -> Job:
        """running -> queued after a transient failure, the attempt still counted."""

    def finish(self, job_id: int, outputs: list[str], *, seconds: float, note: str | None = None,
               models: list[str] | None = None, report: dict | None = None) -> Job:
        """running -> done."""

    def fail(self, job_id: int, error: str, *, seconds: float | None = None) -> Job:
        """running -> failed, the error kept for the user and for ``retry``."""

    def mark_cancelled(self, job_id: int, *, seconds: float | None = None) -> Job:
        """running -> cancelled (the worker saw the request and stopped, writing nothing)."""

    def changed(self, job_id: int, why: str, *, seconds: float | None = None) -> Job:
        """running -> cancelled: the file changed while it was read; not a failure of its content."""

    def release(self, job_id: int) -> Job | None:
        """running -> queued at the head, its begun attempt taken back (shutdown, pause)."""

    def recover(self, crashed: bool = True) -> list[Job]:
        """At start-up: settle every job a dead process left running (see the module's promises);
        ``crashed``: that process died of a fatal signal (a trace), not a kill."""

    # -- the user's side ---------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job; QueueError when there is none."""

    def jobs(self, state: str | None = None, limit: int = 100, before: int | None = None) -> list[Job]:
        """Newest first; ``before`` pages back from a job id."""

    def counts(self) -> dict[str, int]:
        """Jobs per state, every state present."""

    def cancel(self, job_id: int) -> Job:
        """queued -> cancelled now; running -> cancel requested; QueueError for a finished job."""

    def retry(self, job_id: int) -> Job:
        """failed | cancelled -> queued again (the old error moves to the note)."""


def sqlite_store(path: pathlib.Path) -> JobStore:
    from truepix.service.queue import JobQueue

    return JobQueue(path)


STORES = {"sqlite": sqlite_store}  # every implementation; tests/test_queue.py runs against each
