"""The hot-folder watcher's bookkeeping: which files are candidates, and when each one has settled.

watcher.py holds ``FolderWatcher`` (its contract, for callers, is that module's docstring) and the
watchdog glue: observers, their event handler, the checker thread, folder health.  This module
holds what that glue feeds: ``Settler``, the base class of ``FolderWatcher``, with the candidate
rules, the pending files and the hand-over, plus the per-folder state (``_Folder``), file
signatures (``Signature``, ``_signature``, ``_same``) and ``EMPTY_SETTLE``.  It touches no
watchdog object.  Its part of the contract:

- A file is handed over once its size and mtime have stayed unchanged, and no
  write event has arrived, for ``spec.settle`` seconds, so a half-copied file
  is never read.  An empty file must stay empty for at least
  ``EMPTY_SETTLE`` seconds (a copy may create its file well before it writes),
  then it is handed over too, so the caller can report it.
- Candidates are regular files (a symlink to one counts, handed over under the
  link's path) whose lower-case suffix is in ``truepix.io.SUPPORTED_SUFFIXES``.
  Never handed over: hidden files and anything under a hidden subfolder,
  temporary names (``*.tmp``, ``*.part``, ``~$*``, ``*.truepix-tmp-*`` ...),
  sidecars, truepix's own outputs (stem ending in one of ``own_suffixes`` or of
  ``recipes.OWN_SUFFIXES`` — the built-in recipes' ``-truepix-x2`` ... and the old ``-truepix`` —,
  maybe followed by ``-<digits>``), names matching the folder's ``ignore``
  patterns, directories, and files in subfolders of a non-recursive folder.
  A file renamed or moved into a folder is a new file under its new name.
- When hot folders nest, a file belongs to the deepest one that contains it.
- A file is not handed over again while its (size, mtime, ctime) stays what it
  was when it was handed over; a changed file — new content, or only new
  permissions — is handed over again once it has settled.  Deleting a file
  forgets it.
- ``_hand_over`` keeps the promises about ``on_ready`` that watcher.py's
  docstring lists (it raised: tried again at the next rescan; it returned
  False: handed over again at the file's next change, permissions included).

Threads: the ``_note_event``/``_forget``/``_request_scan`` callbacks run on the observers'
threads and only record paths under the lock; ``_scan`` and ``_hand_over`` run on the checker
thread, and stat the disk outside the lock.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import pathlib
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from truepix.config import FolderSpec
from truepix.io import SUPPORTED_SUFFIXES
from truepix.recipes import own_outputs

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

logger = logging.getLogger("truepix.watcher")  # one logger for the whole watcher, both modules

# Names that downloaders, copy tools, editors and truepix itself use while a
# file is still being written.  Most also fail the suffix rule; they are listed
# so that ``photo.jpg.part``-style names stay out even if a suffix is added.
TEMP_PATTERNS = ("*.tmp", "*.part", "*.partial", "*.crdownload", "*.download", "~$*", "*.truepix-tmp-*", "*.swp")

# (st_size, st_mtime_ns, st_ctime_ns).  The change time matters only for a file ``on_ready`` did not
# take (returned False: it could not be read): fixing its permissions changes only ctime, and it is
# handed over again then.  A file it took is recorded with ctime None: new permissions alone do not
# bring it back.
Signature = tuple[int, int, int | None]


def _same(handed: Signature | None, sig: Signature) -> bool:
    """Whether ``sig`` is the file as it was handed over (``handed``; ctime None: any ctime)."""
    return handed is not None and handed[:2] == sig[:2] and handed[2] in (None, sig[2])


EMPTY_SETTLE = 5.0  # seconds an empty file must stay empty before it is handed over


@dataclass(eq=False)
class _Folder:
    """One hot folder's watch state; ``observer`` and ``ident`` change under the watcher's lock."""

    spec: FolderSpec
    nested: tuple[pathlib.Path, ...]           # deeper hot folders, which own their own subtrees
    observer: BaseObserver | None = None
    ident: tuple[int, int] | None = None       # (st_dev, st_ino) of the folder when it was scheduled
    failing: bool = False                      # scheduling failed; logged once until it works again
    handed: dict[pathlib.Path, Signature] = field(default_factory=dict)

    @property
    def root(self) -> pathlib.Path:
        return self.spec.path


@dataclass(eq=False)
class _Pending:
    folder: _Folder
    sig: Signature | None   # None until the checker has stat'ed the file
    changed: float          # time.monotonic() of the last change seen


class Settler:
    """The pending files of some hot folders, and their hand-over to ``on_ready(path, spec)`` once settled.

    ``FolderWatcher`` (watcher.py) is the one subclass: it feeds ``_note_event``, ``_forget`` and
    ``_request_scan`` from its observers and calls ``_scan`` and ``_hand_over`` from its checker
    thread.  ``own_suffixes``: output-name suffixes of the recipes (``Recipe.suffix``), so truepix
    never picks up its own results; those of the built-in recipes and the old ``-truepix``
    (``recipes.OWN_SUFFIXES``) always count, so outputs an earlier version wrote stay out too.
    """

    def __init__(self, folders: Iterable[FolderSpec], on_ready: Callable[[pathlib.Path, FolderSpec], None], *,
                 own_suffixes: Iterable[str] = ()) -> None:
        self._on_ready = on_ready
        self._own = own_outputs(own_suffixes)

        specs: list[FolderSpec] = []
        for spec in folders:
            if any(s.path == spec.path for s in specs):
                logger.warning("hot folder %s is configured twice; using its first entry", spec.path)
                continue
            specs.append(spec)
        self._folders = [
            _Folder(spec, tuple(o.path for o in specs if spec.path in o.path.parents)) for spec in specs
        ]

        self._lock = threading.Lock()
        self._pending: dict[pathlib.Path, _Pending] = {}
        self._scan_requests: dict[pathlib.Path, _Folder] = {}
        self._recheck: set[_Folder] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()

    # -- rules --------------------------------------------------------------

    def _is_candidate(self, folder: _Folder, path: pathlib.Path) -> bool:
        """Whether ``path`` (below ``folder.root``) may be handed over, judged by its name only."""
        try:
            parts = path.relative_to(folder.root).parts
        except ValueError:
            return False
        if not parts or (len(parts) > 1 and not folder.spec.recursive):
            return False
        if any(part.startswith(".") for part in parts):
            return False
        name = parts[-1]
        lower = name.lower()
        stem, dot, suffix = lower.rpartition(".")
        if not dot or f".{suffix}" not in SUPPORTED_SUFFIXES:
            return False
        if any(fnmatch.fnmatchcase(lower, pattern) for pattern in TEMP_PATTERNS):
            return False
        if self._own.search(stem):
            return False
        if any(fnmatch.fnmatch(name, pattern) for pattern in folder.spec.ignore):
            return False
        return not any(root == path or root in path.parents for root in folder.nested)

    # -- called from observer threads -------------------------------------------

    def _note_event(self, folder: _Folder, path: pathlib.Path) -> None:
        if not self._is_candidate(folder, path):
            return
        now = time.monotonic()
        with self._lock:
            entry = self._pending.get(path)
            if entry is None:
                self._pending[path] = _Pending(folder, None, now)
            else:
                # Coarse mtimes (FAT, some network shares) can hide a write; the event cannot.
                entry.changed = now

    def _forget(self, folder: _Folder, path: pathlib.Path) -> None:
        with self._lock:
            if path == folder.root:
                self._recheck.add(folder)
                self._wake.set()
                return
            self._pending.pop(path, None)
            # A file that comes back under this name is a new arrival, even with the same size and mtime.
            folder.handed.pop(path, None)

    def _request_scan(self, folder: _Folder, path: pathlib.Path) -> None:
        if folder.spec.recursive and path != folder.root and self._is_dir_candidate(folder, path):
            with self._lock:
                self._scan_requests[path] = folder

    def _is_dir_candidate(self, folder: _Folder, path: pathlib.Path) -> bool:
        try:
            parts = path.relative_to(folder.root).parts
        except ValueError:
            return False
        return (not any(part.startswith(".") for part in parts)
                and not any(root == path or root in path.parents for root in folder.nested))

    # -- checker thread -----------------------------------------------------

    def _scan(self, folder: _Folder, top: pathlib.Path) -> None:
        """Add the settled-looking candidates under ``top`` to the pending set (``os.scandir``)."""
        candidates: list[tuple[pathlib.Path, Signature]] = []
        complete = True
        stack = [top]
        while stack:
            if self._stopping.is_set():
                return
            directory = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = list(it)
            except OSError as exc:
                complete = False
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    logger.debug("cannot scan %s: %s", directory, exc)
                continue
            for entry in entries:
                path = pathlib.Path(entry.path)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        # Never follow directory symlinks: they can loop or leave the folder.
                        if folder.spec.recursive and self._is_dir_candidate(folder, path):
                            stack.append(path)
                        continue
                    if not self._is_candidate(folder, path):
                        continue
                    st = entry.stat()  # follows a symlink to its file
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    candidates.append((path, (st.st_size, st.st_mtime_ns, st.st_ctime_ns)))
        now = time.monotonic()
        with self._lock:
            for path, sig in candidates:
                if not _same(folder.handed.get(path), sig) and path not in self._pending:
                    self._pending[path] = _Pending(folder, sig, now)
            if complete and top == folder.root:
                # Forget files that are gone, so the dict does not grow without end.
                seen = {path for path, _ in candidates}
                for path in [p for p in folder.handed if p not in seen]:
                    del folder.handed[path]

    def _hand_over(self) -> None:
        """Stat the pending files; call ``on_ready`` for those unchanged for their folder's settle time."""
        with self._lock:
            snapshot = list(self._pending.items())
        if not snapshot:
            return
        # Stat outside the lock: the observer threads must not wait on a slow disk.
        sigs = [(path, entry, _signature(path)) for path, entry in snapshot]
        ready: list[tuple[pathlib.Path, _Folder, Signature]] = []
        with self._lock:
            now = time.monotonic()
            for path, entry, sig in sigs:
                if self._pending.get(path) is not entry:
                    continue
                if sig is None:
                    # Gone, or not a regular file; an event or rescan brings it back.
                    del self._pending[path]
                elif sig != entry.sig:
                    entry.sig = sig
                    entry.changed = now
                elif now - entry.changed >= (entry.folder.spec.settle if sig[0] else
                                             max(entry.folder.spec.settle, EMPTY_SETTLE)):
                    del self._pending[path]
                    if not _same(entry.folder.handed.get(path), sig):
                        ready.append((path, entry.folder, sig))
        for path, folder, sig in ready:
            if self._stopping.is_set():
                return
            try:
                taken = self._on_ready(path, folder.spec)
            except Exception:
                logger.exception("hot folder %s: handing over %s failed; retrying at the next rescan",
                                 folder.root, path)
                continue
            with self._lock:
                folder.handed[path] = sig if taken is False else (sig[0], sig[1], None)


def _signature(path: pathlib.Path) -> Signature | None:
    """(size, mtime_ns, ctime_ns) of the regular file at ``path`` (symlinks followed); None for anything else."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns
