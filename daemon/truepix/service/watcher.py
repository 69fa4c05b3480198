"""Hot folders -> ``on_ready(path, spec)`` calls, once a file has settled.

The watcher only decides *which* files are ready and *when*; what happens to
them is the caller's business (app.py queues them).  Two modules:

- this one holds ``FolderWatcher``, the class callers use, and its watchdog
  glue: one observer per folder and its event handler (``_Handler``), the
  checker thread, folder health (vanished, replaced, reappeared), falling back
  to polling, and stopping;
- settle.py holds ``Settler``, ``FolderWatcher``'s base class: which files are
  candidates, the pending files and their signatures, when a file has settled,
  and the hand-over itself.  Its docstring has the promises about settling,
  candidates, nested folders and handing a changed file over again.

The promises of this module:

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
import logging
import os
import pathlib
import stat
import threading
import time
from collections.abc import Callable, Iterable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from truepix.config import FolderSpec
from truepix.service.settle import Settler, _Folder

logger = logging.getLogger("truepix.watcher")

POLL_INTERVAL = 1.0  # seconds between PollingObserver snapshots


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


class FolderWatcher(Settler):
    """Watches hot folders and calls ``on_ready(path, spec)`` for each file that has settled.

    ``own_suffixes``: output-name suffixes of the recipes (``Recipe.suffix``), so
    truepix never picks up its own results (the built-ins' and the old ``-truepix``
    always count: ``recipes.OWN_SUFFIXES``).  ``check_interval``: seconds between
    the checker's looks at pending files.  ``rescan_interval``: seconds between
    full rescans and folder existence checks.  See the module docstrings (this
    one's and settle.py's) for the full contract.
    """

    def __init__(self, folders: Iterable[FolderSpec], on_ready: Callable[[pathlib.Path, FolderSpec], None], *,
                 own_suffixes: Iterable[str] = (), check_interval: float = 0.25,
                 rescan_interval: float = 5.0) -> None:
        if check_interval <= 0 or rescan_interval <= 0:
            raise ValueError("check_interval and rescan_interval must be positive")
        super().__init__(folders, on_ready, own_suffixes=own_suffixes)
        self._check_interval = check_interval
        self._rescan_interval = rescan_interval
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
