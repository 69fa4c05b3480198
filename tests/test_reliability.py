"""Issue 16: hot-folder files that cannot be read yet, end to end through the real watcher, the real
queue and the daemon's hand-over (service/app.py), without a worker."""

from __future__ import annotations

import os
import types

import numpy as np
from PIL import Image

from conftest import photo_like, wait_until
from truepix.config import Config, FolderSpec
from truepix.errors import ImageReadError
from truepix.service import queue as queue_mod
from truepix.service.app import Daemon
from truepix.service.queue import JobQueue
from truepix.service.watcher import FolderWatcher


def test_a_hot_folder_file_unreadable_when_it_settled_is_recorded_and_picked_up_once_readable(tmp_path,
                                                                                               monkeypatch):
    hot = tmp_path / "hot"
    hot.mkdir()
    if os.geteuid() == 0:  # root reads a mode-000 file: make the queue's read see what a user would
        real = queue_mod.file_sha256

        def as_a_user(path, *a, **k):
            if os.stat(path).st_mode & 0o444 == 0:
                raise ImageReadError(path, "permission denied")
            return real(path, *a, **k)

        monkeypatch.setattr(queue_mod, "file_sha256", as_a_user)
    daemon = Daemon(Config())
    daemon.queue = JobQueue(tmp_path / "q.sqlite3")
    daemon.worker = types.SimpleNamespace(wake=lambda: None)
    spec = FolderSpec(hot, settle=0.3)
    watcher = FolderWatcher([spec], daemon._file_ready, rescan_interval=0.3)
    photo = hot / "locked.jpg"
    partial = hot / ".locked.jpg.part"
    Image.fromarray(np.round(photo_like(48, 64) * 255).astype(np.uint8)).save(partial, format="JPEG")
    os.chmod(partial, 0)
    os.rename(partial, photo)  # arrives unreadable
    watcher.start()
    try:
        assert wait_until(lambda: daemon.queue.counts()["failed"] == 1, timeout=10)
        (failed,) = daemon.queue.jobs(state="failed")
        assert failed.source == str(photo) and "permission denied" in failed.error
        assert "tries again when the file changes" in failed.error
        os.chmod(photo, 0o644)  # the photographer fixes the permissions: only ctime changes
        assert wait_until(lambda: daemon.queue.counts()["queued"] == 1, timeout=10)
    finally:
        watcher.stop()
    (queued,) = daemon.queue.jobs(state="queued")
    assert queued.source == str(photo) and len(queued.sha256) == 64
    assert daemon.queue.get(failed.id).state == "cancelled" and daemon.queue.counts()["failed"] == 0
