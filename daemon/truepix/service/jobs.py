"""A job's row: the schema of the queue file, the ``Job`` it reads as, and the content key
(sha256 of the bytes, of the recipe) the duplicate rule uses.  ``service/queue.py`` stores them."""

from __future__ import annotations

import hashlib
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
    error       TEXT,
    note        TEXT,
    outputs     TEXT    NOT NULL DEFAULT '[]',
    planned     TEXT,                       -- the output path being written, set before the write starts
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
}


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
    error: str | None
    note: str | None
    outputs: list[str]
    planned: str | None
    cancel_requested: bool
    created: float
    started: float | None
    finished: float | None
    seconds: float | None
    duplicate: bool = field(default=False, compare=False)

    def recipe_object(self) -> Recipe:
        return from_mapping(self.recipe_name, self.recipe, f"job {self.id}: recipe")

    def as_dict(self) -> dict[str, Any]:
        """The public (API) view of the job."""
        return {
            "id": self.id, "source": self.source, "state": self.state, "recipe": self.recipe_name,
            "attempts": self.attempts, "error": self.error, "note": self.note, "outputs": self.outputs,
            "cancel_requested": self.cancel_requested, "duplicate": self.duplicate, "sha256": self.sha256,
            "created": self.created, "started": self.started, "finished": self.finished, "seconds": self.seconds,
        }


def file_sha256(path: pathlib.Path, chunk: int = 1 << 20) -> tuple[str, os.stat_result]:
    """The sha256 of the regular file ``path`` and its stat, both from one descriptor that never
    blocks on a FIFO or device (io/regular.py)."""
    from truepix.io.regular import open_regular

    h = hashlib.sha256()
    with open_regular(path) as fh:
        st = os.fstat(fh.fileno())
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest(), st


def recipe_key(recipe: Recipe) -> str:
    return hashlib.sha256(json.dumps(recipe.to_mapping(), sort_keys=True).encode()).hexdigest()


def _row_to_job(row: sqlite3.Row) -> Job:
    d = dict(row)
    d["recipe"] = json.loads(d["recipe"])
    d["outputs"] = json.loads(d["outputs"])
    d["cancel_requested"] = bool(d["cancel_requested"])
    d["inferring"] = bool(d["inferring"])
    d.pop("recipe_key")
    return Job(**d)
