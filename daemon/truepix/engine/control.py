"""One small object that travels down with a job: progress up, a stop request down.

The engine calls ``control.progress(fraction)`` between tiles; whoever runs the job (the daemon's
worker, ``truepix process``) reads ``fraction`` and may call ``stop(why)`` from any thread — the
next tile boundary then raises ``Stopped(why)`` (an output being written is removed).  ``planned(path)``
tells the owner which output is about to be written (the queue records it for crash recovery).
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable


class Stopped(Exception):
    """The job was asked to stop (``why``: "cancel" | "shutdown") and did, at a tile boundary."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class Control:
    def __init__(self, on_progress: Callable[[float], None] | None = None,
                 on_planned: Callable[[pathlib.Path], None] | None = None) -> None:
        self.fraction = 0.0
        self._on_progress = on_progress
        self._on_planned = on_planned
        self._why: str | None = None
        self._lock = threading.Lock()

    def stop(self, why: str) -> None:
        """Ask the job to stop at its next tile (first reason wins)."""
        with self._lock:
            self._why = self._why or why

    @property
    def stop_requested(self) -> str | None:
        with self._lock:
            return self._why

    def progress(self, fraction: float) -> None:
        """The engine's tick: record the fraction done, then stop here if asked to."""
        self.fraction = fraction
        if self._on_progress is not None:
            self._on_progress(fraction)
        why = self.stop_requested
        if why:
            raise Stopped(why)

    def planned(self, path: pathlib.Path) -> None:
        """The output about to be written (before the engine: a TIFF or PNG is written as it runs)."""
        if self._on_planned is not None:
            self._on_planned(path)
