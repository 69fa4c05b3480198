"""A job's row: the schema of the queue file, the ``Job`` it reads as, and the content key
(sha256 of the bytes, of the recipe) the duplicate rule uses.  ``service/queue.py`` stores them."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from truepix.errors import TruepixError
from truepix.recipes import Recipe, from_mapping

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
MAX_CRASHES = 3    # a job whose inference was under way during this many daemon *crashes* is failed
MAX_KILLS = 10     # ... or during this many traceless deaths (kill -9, power cut: not the photo's doing)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    recipe_name TEXT    NOT NULL,
    recipe      TEXT    NOT NULL,           -- the full recipe as JSON: a job keeps the recipe it was given
    recipe_key  TEXT    NOT NULL,           -- sha256 of that JSON, for the duplicate rule
    origin      TEXT    NOT NULL,           -- api | folder | cli
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts    INTEGER NOT NULL DEFAULT 0, -- times its inference started (``begin``)
    crashes     INTEGER NOT NULL DEFAULT 0, -- daemon crashes (a fatal signal) while its inference was under way
    kills       INTEGER NOT NULL DEFAULT 0, -- traceless daemon deaths (SIGKILL, power) meanwhile
    inferring   INTEGER NOT NULL DEFAULT 0, -- 1 from ``begin`` to its end or release
    ahead       INTEGER NOT NULL DEFAULT 0, -- 1 while claimed and decoded ahead of the running job (not started)
    error       TEXT,
    note        TEXT,
    outputs     TEXT    NOT NULL DEFAULT '[]',
    planned     TEXT,                       -- the output path being written, set before the write starts
    models      TEXT    NOT NULL DEFAULT '[]', -- the models that ran (labels, e.g. upscale-x2-int8@1), when done
    report      TEXT    NOT NULL DEFAULT '{}', -- the run's fidelity report (engine/fidelity.py), when done
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created     REAL    NOT NULL,
    started     REAL,
    finished    REAL,
    seconds     REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_content ON jobs (sha256, recipe_key);
"""
_ADDED_COLUMNS = {  # columns later versions added, for queue files an older truepix created
    "crashes": "INTEGER NOT NULL DEFAULT 0",
    "kills": "INTEGER NOT NULL DEFAULT 0",
    "inferring": "INTEGER NOT NULL DEFAULT 0",
    "ahead": "INTEGER NOT NULL DEFAULT 0",
    "models": "TEXT NOT NULL DEFAULT '[]'",
    "report": "TEXT NOT NULL DEFAULT '{}'",
}


# ``Job.public_state`` in SQL, for counts and listings: a job only decoded ahead is still queued.
SHOWN_STATE = "CASE WHEN state = 'running' AND ahead = 1 THEN 'queued' ELSE state END"


class QueueError(TruepixError):
    """A queue operation that cannot be done (unknown job, wrong state, unreadable source)."""


@dataclass
class Job:
    id: int
    source: str
    size: int
    mtime_ns: int
    sha256: str
    recipe_name: str
    recipe: dict[str, Any]
    origin: str
    state: str
    attempts: int
    crashes: int
    inferring: bool
    kills: int
    ahead: bool
    error: str | None
    note: str | None
    outputs: list[str]
    planned: str | None
    models: list[str]
    report: dict[str, Any]
    cancel_requested: bool
    created: float
    started: float | None
    finished: float | None
    seconds: float | None
    duplicate: bool = field(default=False, compare=False)

    def recipe_object(self) -> Recipe:
        return from_mapping(self.recipe_name, self.recipe, f"job {self.id}: recipe")

    @property
    def public_state(self) -> str:
        """The state a user sees: a job the worker only decoded ahead of the running one has not
        started; it is still waiting its turn ("queued"), whatever the queue's own bookkeeping says."""
        return "queued" if self.state == "running" and self.ahead else self.state  # as SHOWN_STATE

    def as_dict(self) -> dict[str, Any]:
        """The public (API) view of the job."""
        return {
            "id": self.id, "source": self.source, "state": self.public_state, "recipe": self.recipe_name,
            "decoded_ahead": self.state == "running" and self.ahead,
            "attempts": self.attempts, "error": self.error, "note": self.note, "outputs": self.outputs,
            "models": self.models, "report": self.report,
            "cancel_requested": self.cancel_requested, "duplicate": self.duplicate, "sha256": self.sha256,
            "created": self.created, "started": self.started, "finished": self.finished, "seconds": self.seconds,
        }


def file_sha256(path: pathlib.Path, chunk: int = 1 << 20) -> tuple[str, os.stat_result]:
    """The sha256 of the regular file ``path`` and its stat (``io.regular.file_sha256``: the one
    content key of the queue, the Ray ledger and the outputs' XMP record)."""
    from truepix.io.regular import file_sha256 as sha256

    return sha256(path, chunk)


def recipe_key(recipe: Recipe) -> str:
    """``Recipe.sha256``: the one recipe key of the queue, the Ray ledger and the outputs' XMP record."""
    return recipe.sha256()


def _row_to_job(row: sqlite3.Row) -> Job:
    d = dict(row)
    d["recipe"] = json.loads(d["recipe"])
    d["outputs"] = json.loads(d["outputs"])
    d["models"] = json.loads(d["models"])
    d["report"] = json.loads(d["report"])
    d["cancel_requested"] = bool(d["cancel_requested"])
    d["inferring"] = bool(d["inferring"])
    d["ahead"] = bool(d["ahead"])
    d.pop("recipe_key")
    return Job(**d)
