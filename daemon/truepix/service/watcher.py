"""Hot folders -> ``on_ready(path, spec)`` calls, once a file has settled.

The watcher only decides *which* files are ready and *when*; what happens to
them is the caller's business (app.py queues them).  Its promises:

- A file is handed over once its size and mtime have stayed unchanged, and no
  write event has arrived, for ``spec.settle`` seconds, so a half-copied file
  is never read.  An empty file must stay empty for at least
  ``EMPTY_SETTLE`` seconds (a copy may create its file well before it writes),
  then it is handed over too, so the caller can report it.
- Candidates are regular files (a symlink to one counts, handed over under the
  link's path) whose lower-case suffix is in ``truepix.io.SUPPORTED_SUFFIXES``.
  Never handed over: hidden files and anything under a hidden subfolder,
  temporary names (``*.tmp``, ``*.part``, ``~$*``, ``*.truepix-tmp-*`` ...),
  sidecars, truepix's own outputs (stem ending in one of ``own_suffixes``,
  maybe followed by ``-<digits>``), names matching the folder's ``ignore``
  patterns, directories, and files in subfolders of a non-recursive folder.
  A file renamed or moved into a folder is a new file under its new name.
- When hot folders nest, a file belongs to the deepest one that contains it.
- A file is not handed over again while its (size, mtime, ctime) stays what it
  was when it was handed over; a changed file — new content, or only new
  permissions — is handed over again once it has settled.  Deleting a file
  forgets it.
- Files present at ``start()`` are handed over (after settling); every
  ``rescan_interval`` seconds each folder is rescanned as a safety net for lost
  events, and a folder that is missing, vanished or was replaced is watched
  (again) as soon as a rescan finds it.
- ``on_ready`` is called from the watcher's own checker thread only, never
  with a lock held, one file at a time; it should return quickly (e.g. queue
  the file).  If it raises, the error is logged and the file is tried again at
  the next rescan.  If it returns False (it could not take the file: unreadable),
  the file is handed over again at its next change of any kind, permissions
  included.

Threads: one watchdog observer per folder (so a vanished folder is torn down
and rescheduled on its own), plus one checker thread that settles files,
rescans and calls ``on_ready``.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import logging
import os
import pathlib
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from truepix.config import FolderSpec
from truepix.io import SUPPORTED_SUFFIXES

logger = logging.getLogger("truepix.watcher")

# Names that downloaders, copy tools, editors and truepix itself use while a
# file is still being written.  Most also fail the suffix rule; they are listed
# so that ``photo.jpg.part``-style names stay out even if a suffix is added.
TEMP_PATTERNS = ("*.tmp", "*.part", "*.partial", "*.crdownload", "*.download", "~$*", "*.truepix-tmp-*", "*.swp")

POLL_INTERVAL = 1.0  # seconds between PollingObserver snapshots

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


class _Handler(FileSystemEventHandler):
    """Records candidate paths of one folder; never touches the disk (watchdog calls it from its thread)."""

    def __init__(self, watcher: FolderWatcher, folder: _Folder) -> None:
        super().__init__()
        self._watcher = watcher
        self._folder = folder

    def on_created(self, event: FileSystemEvent) -> None:
        self._arrived(event.src_path, event.is_directory)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:  # a directory's mtime changes with every file in it
            self._arrived(event.src_path, False)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._arrived(event.src_path, False)

    def on_attrib(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._arrived(event.src_path, False)

    def on_moved(self, event: FileSystemEvent) -> None:
        if event.src_path:
            self._gone(event.src_path)
        if event.dest_path:
            self._arrived(event.dest_path, event.is_directory)

    def on_deleted(self, event: FileSystemEvent) -> None:
        self._gone(event.src_path)

    def _arrived(self, raw: bytes | str, is_directory: bool) -> None:
        path = pathlib.Path(os.fsdecode(raw))
        if is_directory:
            # Files can land in a new subfolder before its watch exists; scan it.
            self._watcher._request_scan(self._folder, path)
        else:
            self._watcher._note_event(self._folder, path)

    def _gone(self, raw: bytes | str) -> None:
        self._watcher._forget(self._folder, pathlib.Path(os.fsdecode(raw)))


class FolderWatcher:
    """Watches hot folders and calls ``on_ready(path, spec)`` for each file that has settled.

    ``own_suffixes``: output-name suffixes of the recipes (``Recipe.suffix``), so
    truepix never picks up its own results.  ``check_interval``: seconds between
    the checker's looks at pending files.  ``rescan_interval``: seconds between
    full rescans and folder existence checks.  See the module docstring for the
    full contract.
    """

    def __init__(self, folders: Iterable[FolderSpec], on_ready: Callable[[pathlib.Path, FolderSpec], None], *,
                 own_suffixes: Iterable[str] = ("-truepix",), check_interval: float = 0.25,
                 rescan_interval: float = 5.0) -> None:
        if check_interval <= 0 or rescan_interval <= 0:
            raise ValueError("check_interval and rescan_interval must be positive")
        self._on_ready = on_ready
        self._check_interval = check_interval
        self._rescan_interval = rescan_interval
        suffixes = sorted({s for s in own_suffixes if s}, key=len, reverse=True)
        self._own = (re.compile(f"(?:{'|'.join(map(re.escape, suffixes))})(?:-\\d+)?$", re.IGNORECASE)
                     if suffixes else None)

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
        self._started = False
        self._checker: threading.Thread | None = None

    # -- public -------------------------------------------------------------

    def start(self) -> None:
        """Schedule the observers and start the checker thread; returns at once.

        Existing files are scanned by the checker thread.  A missing folder is
        logged as a warning and watched once it appears.
        """
        with self._lock:
            if self._started:
                raise RuntimeError("FolderWatcher.start() may be called only once")
            self._started = True
        for folder in self._folders:
            if folder.root.is_dir():
                self._schedule(folder)
            else:
                logger.warning("hot folder %s does not exist; it will be watched when it appears", folder.root)
        self._checker = threading.Thread(target=self._run, name="truepix-watcher", daemon=True)
        self._checker.start()

    def stop(self) -> None:
        """Stop the checker thread and all observers and wait for them; safe to call more than once.

        No ``on_ready`` call starts after this returns.
        """
        with self._lock:
            self._started = True  # a stopped watcher cannot be started
        self._stopping.set()
        self._wake.set()
        checker = self._checker
        if checker is not None and checker is not threading.current_thread():
            checker.join()
        with self._lock:
            observers = [f.observer for f in self._folders if f.observer is not None]
            for folder in self._folders:
                folder.observer = None
        _stop_observers(observers)

    def watching(self) -> list[pathlib.Path]:
        """The folders that exist and have an observer scheduled, in configuration order."""
        with self._lock:
            roots = [f.root for f in self._folders if f.observer is not None]
        return [root for root in roots if root.is_dir()]

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
        if self._own is not None and self._own.search(stem):
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

    def _run(self) -> None:
        try:
            for folder in self._folders:
                if folder.observer is not None:
                    self._scan(folder, folder.root)
        except Exception:
            logger.exception("hot-folder watcher: the first scan failed; the next rescan tries again")
        next_rescan = time.monotonic() + self._rescan_interval
        while not self._stopping.is_set():
            self._wake.wait(self._check_interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                now = time.monotonic()
                with self._lock:
                    due, self._recheck = self._recheck, set()
                    requests, self._scan_requests = self._scan_requests, {}
                if now >= next_rescan:
                    due = set(self._folders)
                    next_rescan = now + self._rescan_interval
                for folder in self._folders:
                    if folder in due:
                        self._check_folder(folder)
                for path, folder in requests.items():
                    self._scan(folder, path)
                self._hand_over()
            except Exception:
                # The checker is the watcher's only worker; it must outlive any surprise.
                logger.exception("hot-folder watcher: unexpected error; carrying on")

    def _check_folder(self, folder: _Folder) -> None:
        """Rescan a healthy folder; tear down a vanished or replaced one; (re)schedule one that exists."""
        if self._stopping.is_set():
            return
        ident = _identity(folder.root)
        observer = folder.observer
        if observer is not None:
            if ident is not None and ident == folder.ident and _healthy(observer):
                self._scan(folder, folder.root)
                return
            with self._lock:
                folder.observer = None
            _stop_observers([observer])
            if ident is None:
                logger.warning("hot folder %s disappeared; it will be watched again when it reappears", folder.root)
        if ident is not None and self._schedule(folder):
            if observer is None:
                logger.info("hot folder %s appeared; watching it", folder.root)
            self._scan(folder, folder.root)

    def _schedule(self, folder: _Folder) -> bool:
        """Start an observer for ``folder``; native events, falling back to polling if they fail."""
        spec = folder.spec
        kinds = (True,) if spec.polling else (False, True)
        for polling in kinds:
            if self._stopping.is_set():
                return False
            ident = _identity(folder.root)
            if ident is None:
                return False
            observer: BaseObserver | None = None
            try:
                observer = PollingObserver(timeout=POLL_INTERVAL) if polling else Observer()
                observer.schedule(_Handler(self, folder), os.fspath(folder.root), recursive=spec.recursive)
                observer.start()
            except OSError as exc:
                if observer is not None:
                    _discard(observer)
                if _identity(folder.root) is None:
                    return False  # it vanished meanwhile; the next rescan notices when it is back
                if not polling:
                    # e.g. the inotify watch or instance limit (ENOSPC, EMFILE) on a big tree
                    logger.warning("cannot watch hot folder %s with file-system events (%s); polling it instead",
                                   folder.root, exc)
                    continue
                if not folder.failing:
                    folder.failing = True
                    logger.error("cannot watch hot folder %s (%s); retrying every %g s",
                                 folder.root, exc, self._rescan_interval)
                return False
            with self._lock:
                folder.observer = observer
                folder.ident = ident
            if folder.failing:
                folder.failing = False
                logger.info("hot folder %s can be watched again", folder.root)
            return True
        return False

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


def _identity(path: pathlib.Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the directory at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _healthy(observer: BaseObserver) -> bool:
    # Watchdog's emitters stop by themselves when their folder is deleted.
    return observer.is_alive() and all(emitter.is_alive() for emitter in list(observer.emitters))


def _discard(observer: BaseObserver) -> None:
    """Release an observer whose start failed (an inotify observer holds a thread from construction on)."""
    with contextlib.suppress(Exception):
        observer.stop()
    with contextlib.suppress(RuntimeError):
        observer.join()


def _stop_observers(observers: list[BaseObserver]) -> None:
    for observer in observers:
        observer.stop()
    for observer in observers:
        with contextlib.suppress(RuntimeError):
            observer.join()
