"""``truepix run``: wires the queue, the worker, the hot-folder watcher, the API and the tray.

One daemon per user: a lock file in the data folder keeps a second one from
starting (it would recover the first one's running jobs).  Shutdown order on
SIGTERM/SIGINT or the tray's Quit: stop taking work (tray, watcher, API), then
let the worker finish its job within ``[server] grace`` seconds or requeue it.
"""

from __future__ import annotations

import errno
import faulthandler
import json
import logging
import logging.handlers
import os
import pathlib
import queue as queue_mod
import shutil
import signal
import sys
import threading
import time
from typing import Any

from truepix import __version__
from truepix.config import Config, FolderSpec, default_hot_folder
from truepix.errors import ImageReadError, TruepixError
from truepix.service import paths
from truepix.service.api import ApiServer, Backend, load_or_create_token
from truepix.service.queue import JobQueue, QueueError
from truepix.service.store import JobStore
from truepix.service.worker import Worker
from truepix.logfmt import OneLineFormatter, one_line  # noqa: F401 -- one_line: re-exported for callers

log = logging.getLogger("truepix.daemon")


class AlreadyRunning(TruepixError):
    pass


def _lock(folder: pathlib.Path):
    """Hold an exclusive lock on ``folder/daemon.lock`` for the life of the process (or raise)."""
    paths.private_dir(folder)
    fh = open(folder / "daemon.lock", "a+")  # noqa: SIM115 -- held open on purpose until the process ends
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        from truepix.service.client import running_daemon

        state = running_daemon() or {}
        who = f" (pid {state.get('pid')}, port {state.get('port')})" if state else ""
        raise AlreadyRunning(f"truepix is already running{who}; one daemon per user "
                             f"(lock: {folder / 'daemon.lock'})") from None
    return fh




class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Log files 0600 on POSIX, the current one and each one rotation starts."""

    def _open(self):
        return paths.open_private(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors)


def _log_to_file(path: pathlib.Path) -> logging.Handler:
    paths.private_dir(path.parent)
    for old in (path, *(path.with_name(f"{path.name}.{i}") for i in range(1, 6))):
        paths.private_file(old)  # logs an older truepix left readable by others
    handler = _PrivateRotatingFileHandler(path, maxBytes=5 << 20, backupCount=5, encoding="utf-8",
                                          errors="backslashreplace")  # undecodable bytes in a file name
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.getLogger("truepix").addHandler(handler)
    return handler


def _write_state(state: dict[str, Any]) -> None:
    path = paths.state_path()
    paths.private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    with paths.open_private(tmp, "w") as fh:
        fh.write(json.dumps(state, indent=1) + "\n")
    os.replace(tmp, path)


def sample_photo() -> pathlib.Path:
    import truepix._samples as samples

    return pathlib.Path(next(iter(samples.__path__))) / "colorchart.jpg"


def _prepare_folders(config: Config) -> list[FolderSpec]:
    """The hot folders.  truepix's own ``<Pictures>/truepix`` is created when missing (with the sample
    photo as a demonstration when no config names any folder); any other missing folder may be a
    drive not mounted yet, so it is only warned about (the watcher picks it up when it appears)."""
    folders = list(config.hot_folders())
    own = default_hot_folder()
    for f in folders:
        if f.path == own and not f.path.exists():
            f.path.mkdir(parents=True)
            if config.folders is None:
                shutil.copy2(sample_photo(), f.path / "colorchart.jpg")
                log.info("created the hot folder %s, with a sample photo to show how it works", f.path)
            else:
                log.info("created the hot folder %s", f.path)
    return folders


class Daemon:
    def __init__(self, config: Config, *, port: int | None = None, tray: str | None = None) -> None:
        self.config = config
        self.port = config.server.port if port is None else port
        self.tray_backend = tray or config.server.tray
        self.stopping = threading.Event()
        self.recipes = dict(config.recipes)
        self.queue: JobStore | None = None
        self.worker: Worker | None = None
        self.watcher = None
        self.server: ApiServer | None = None
        self.tray = None
        self.folders: list[FolderSpec] = []
        self.started = time.time()
        self.grace = config.server.grace  # a second signal sets it to 0: stop the running job now
        self._signals = 0
        self._lock = None           # the open lock file: one daemon per user
        self._log_handler = None
        self._crash_log = None      # faulthandler's file: a fatal signal leaves its trace there
        # Hot-folder files are hashed and queued here, not on the watcher's thread (it must return fast).
        self._arrivals: queue_mod.Queue[tuple[pathlib.Path, FolderSpec] | None] = queue_mod.Queue()
        self._submitter: threading.Thread | None = None

    # -- the doors' view ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        cur = self.worker.current() if self.worker else None
        watching = {str(p) for p in self.watcher.watching()} if self.watcher else set()
        return {
            "paused": bool(self.worker and self.worker.paused),
            "current": None if cur is None else {"id": cur.id, "source": cur.source, "recipe": cur.recipe,
                                                 "phase": cur.phase, "progress": round(cur.progress, 3)},
            "folders": [{"path": str(f.path), "recipe": f.recipe, "watching": str(f.path) in watching}
                        for f in self.folders],
            "uptime_s": round(time.time() - self.started, 1),
        }

    def health(self) -> list[str]:
        """What is wrong with the daemon's parts, one line each (``/v1/health`` answers 503 with them)."""
        # (A hot folder that is missing is not one: /v1/status shows it, and work goes on.)
        return self.worker.health() if self.worker else ["the worker has not started"]

    def snapshot(self) -> dict[str, Any]:
        """For the tray."""
        counts = self.queue.counts()
        cur = self.worker.current()
        return {"paused": self.worker.paused, "queued": counts["queued"], "running": counts["running"],
                "current": pathlib.Path(cur.source).name if cur else None,
                "progress": cur.progress if cur else None}

    def pause(self) -> None:
        self.worker.pause()
        self._refresh_tray()

    def resume(self) -> None:
        self.worker.resume()
        self._refresh_tray()

    def quit(self) -> None:
        log.info("quit requested from the tray")
        self.stopping.set()

    def output_folder(self) -> pathlib.Path:
        return self.folders[0].path if self.folders else pathlib.Path.home()

    def log_file(self) -> pathlib.Path:
        return paths.log_path()

    def _refresh_tray(self, *_: Any) -> None:
        if self.tray is not None:
            try:
                self.tray.refresh()
            except Exception:
                log.debug("tray refresh failed", exc_info=True)

    def _file_ready(self, path: pathlib.Path, spec: FolderSpec) -> bool:
        """The watcher's hand-over of a settled file; returns at once.  False when the file cannot be
        opened for reading: it is recorded as a failed job with the reason (``truepix status`` shows
        it), and the watcher hands it over again at its next change — new content or new permissions.
        Otherwise the file goes to the submitter thread, which hashes and queues it (``_submit``)."""
        from truepix.io.regular import check_regular

        try:
            check_regular(path)  # open + fstat: quick, unlike hashing a 100 MB RAW
        except ImageReadError as e:
            self._record_unreadable(path, spec, f"{path}: cannot read the file to queue it ({e.reason})")
            return False
        self._arrivals.put((path, spec))
        return True

    def _watch_for_crashes(self) -> bool:
        """Whether the previous process crashed (its crash log holds a fatal signal's trace; kept as
        crash-TIME.log), then arm the log for this one (``faulthandler``).  A process that was killed
        (SIGKILL, the OOM killer, a power cut) leaves no trace: the queue does not blame the job it
        was inferring as it blames one during a crash (``JobQueue.recover``)."""
        path = paths.log_path().parent / "crash.log"
        crashed = False
        try:
            if path.stat().st_size > 0:
                kept = path.with_name(f"crash-{time.strftime('%Y%m%d-%H%M%S')}.log")
                path.replace(kept)
                crashed = True
                log.warning("the previous truepix process crashed; its trace is in %s", kept)
        except OSError:
            pass
        self._crash_log = paths.open_private(path, "w")
        faulthandler.enable(file=self._crash_log, all_threads=True)
        return crashed

    def _start_submitter(self) -> None:
        self._submitter = threading.Thread(target=self._submitter_loop, name="truepix-submitter", daemon=True)
        self._submitter.start()

    def _submitter_loop(self) -> None:
        while (item := self._arrivals.get()) is not None:
            try:
                self._submit(*item)
            except Exception:  # one file must never stop the hot folders
                log.exception("hot folder: could not queue %s", item[0])

    def _record_unreadable(self, path: pathlib.Path, spec: FolderSpec, why: str) -> None:
        record = self.queue.record_unreadable(path, self.recipes[spec.recipe], why)
        if not record.duplicate:
            log.warning("hot folder: %s; recorded as job %d (failed), tried again when the file changes", why,
                        record.id)

    def _submit(self, path: pathlib.Path, spec: FolderSpec) -> bool:
        """Hash and queue a settled hot-folder file (the submitter thread)."""
        recipe = self.recipes[spec.recipe]
        try:
            job = self.queue.submit(path, recipe, origin="folder", resubmit_failed=False)
        except QueueError as e:  # unreadable after all (an I/O error, gone): shown, tried again when it changes
            self._record_unreadable(path, spec, str(e).replace("; nothing queued", ""))
            return False
        if job.duplicate:
            log.debug("hot folder: %s: same content and recipe as job %d (%s); not queued again",
                      path.name, job.id, job.state)
            return True
        log.info("hot folder: %s queued as job %d (recipe %s)", path, job.id, recipe.name)
        self.worker.wake()
        return True

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Everything up, in the order that loses nothing: queue, worker, watcher, API, tray.
        On a failure part-way, what was started is stopped again (``stop``) and the error raised."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self._lock = _lock(paths.data_dir())
        self._log_handler = _log_to_file(paths.log_path())
        log.info("truepix %s starting (pid %d)", __version__, os.getpid())
        where = self.config.path or _config_path()
        log.info("config: %s", where if where.exists() else f"{where} (absent: built-in defaults; see "
                 "config.example.toml)")
        token_path = paths.token_path()
        paths.private_dir(token_path.parent)
        token = load_or_create_token(token_path)
        self.queue = JobQueue(paths.queue_path())
        self._start_submitter()
        crashed = self._watch_for_crashes()
        for job in self.queue.recover(crashed=crashed):
            log.info("job %d (%s): %s", job.id, pathlib.Path(job.source).name,
                     job.note or job.error or job.state)
        self.worker = Worker(self.queue, self.config.engine)
        from truepix.engine.models import engine_summary  # said once here, not with every job

        log.info("engine: %s", engine_summary(self.config.engine.provider, self.config.engine.precision))
        self.worker.on_finished = self._refresh_tray
        self.worker.start()
        self.folders = _prepare_folders(self.config)
        from truepix.service.watcher import FolderWatcher

        suffixes = {r.suffix for r in self.recipes.values() if r.suffix}
        self.watcher = FolderWatcher(self.folders, self._file_ready, own_suffixes=suffixes)
        self.watcher.start()
        for f in self.folders:
            log.info("hot folder: %s (recipe %s%s)", f.path, f.recipe, ", recursive" if f.recursive else "")
        backend = Backend(queue=self.queue, recipes=lambda: self.recipes, submitted=self.worker.wake,
                          pause=self.pause, resume=self.resume, cancel_running=self.worker.cancel,
                          status=self.status, health=self.health)
        try:
            self.server = ApiServer(backend, token, self.port, token_path)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise TruepixError(f"127.0.0.1:{self.port} is already in use by another program; choose another "
                                   f"[server] port in {where}") from None
            raise TruepixError(f"cannot listen on 127.0.0.1:{self.port}: {e.strerror or e}") from None
        self.server.start()
        _write_state({"pid": os.getpid(), "port": self.server.port, "version": __version__,
                      "started": self.started, "token_file": str(token_path), "log": str(paths.log_path())})
        log.info("API: http://127.0.0.1:%d/v1/ (token in %s)", self.server.port, token_path)
        log.info("queue: %s; log: %s", paths.queue_path(), paths.log_path())
        if self.tray_backend == "none":
            log.info("tray: off (--no-tray or [server] tray = \"none\"); running headless")
        else:
            from truepix.service.tray import start_tray

            self.tray = start_tray(self.tray_backend, self)
        log.info("ready; stop with Ctrl-C%s", " or the tray's Quit" if self.tray else "")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: stopping; the running job may finish for %.0f s (again to stop it now)",
                     signal.Signals(signum).name, self.config.server.grace)
            self.stopping.set()
        else:
            self.grace = 0.0
            if self.worker is not None:
                self.worker.interrupt()

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        while not self.stopping.wait(1.0):  # a timeout, so signal handlers run promptly on every platform
            pass
        self.stop()

    def stop(self) -> None:
        """The one shutdown: stop taking work, finish or requeue the running job, close everything.
        Safe after a start that failed part-way, and safe to call twice."""
        if self.tray is not None:
            self.tray.stop()
            self.tray = None
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self._submitter is not None:
            self._arrivals.put(None)  # the files already handed over are queued first
            self._submitter.join(60.0)
            self._submitter = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.worker is not None:
            if not self.worker.stop(self.grace):
                log.warning("worker did not stop in time; its job is requeued at the next start")
            self.worker = None
        try:
            paths.state_path().unlink(missing_ok=True)
        except OSError:
            pass
        if self.queue is not None:
            log.info("stopped; %d job(s) wait in the queue for the next start", self.queue.counts().get("queued", 0))
        if self._crash_log is not None:
            faulthandler.disable()
            self._crash_log.close()
            self._crash_log = None
        if self._log_handler is not None:
            logging.getLogger("truepix").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


def _config_path() -> pathlib.Path:
    from truepix.config import default_config_path

    return default_config_path()


def run(config: Config, *, port: int | None = None, tray: str | None = None) -> int:
    daemon = Daemon(config, port=port, tray=tray)
    try:
        daemon.start()
    except TruepixError as e:
        print(f"truepix: {e}", file=sys.stderr)
        return 2
    daemon.run_forever()
    return 0
