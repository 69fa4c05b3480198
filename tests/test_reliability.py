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
from truepix.io import regular
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
        real_check = regular.check_regular

        def open_as_a_user(path):
            if os.stat(path).st_mode & 0o444 == 0:
                raise ImageReadError(path, "permission denied")
            return real_check(path)

        monkeypatch.setattr(regular, "check_regular", open_as_a_user)
    daemon = Daemon(Config())
    daemon.queue = JobQueue(tmp_path / "q.sqlite3")
    daemon.worker = types.SimpleNamespace(wake=lambda: None)
    daemon._start_submitter()
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
        daemon._arrivals.put(None)
    (queued,) = daemon.queue.jobs(state="queued")
    assert queued.source == str(photo) and len(queued.sha256) == 64
    assert daemon.queue.get(failed.id).state == "cancelled" and daemon.queue.counts()["failed"] == 0


def test_health_says_503_with_the_problem_while_queue_writes_fail_and_200_after(tmp_path):
    """Issue 16.2: /v1/health answered 200 while the worker had died on an SQLite error."""
    import json
    import sqlite3
    import urllib.error
    import urllib.request

    from truepix.engine.pipeline import EngineOptions
    from truepix.recipes import BUILTIN
    from truepix.service.api import ApiServer, Backend
    from truepix.service.worker import Worker

    q = JobQueue(tmp_path / "q.sqlite3")
    real_claim, failures = q.claim, [4]

    def claim(**kwargs):
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real_claim(**kwargs)

    q.claim = claim
    worker = Worker(q, EngineOptions(tile=128), poll=0.05)
    backend = Backend(queue=q, recipes=lambda: dict(BUILTIN), submitted=worker.wake, pause=worker.pause,
                      resume=worker.resume, cancel_running=worker.cancel, status=lambda: {}, health=worker.health)
    srv = ApiServer(backend, "t0ken", 0)
    srv.start()
    worker.start()

    def health():
        req = urllib.request.Request(f"http://127.0.0.1:{srv.port}/v1/health",
                                     headers={"Authorization": "Bearer t0ken"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    try:
        assert wait_until(lambda: health()[0] == 503, timeout=10)
        code, body = health()
        assert body["status"] == "degraded" and "database is locked" in body["problems"][0]
        assert wait_until(lambda: health()[0] == 200, timeout=30)  # 0.5 + 1 + 2 + 4 s of back-off
        assert health()[1] == {**health()[1], "status": "ok", "problems": []}
    finally:
        worker.stop(5)
        srv.stop()


def _black_png(path, width, height):
    """A valid 8-bit RGB PNG of ``width`` x ``height`` black pixels (a few hundred KB), written row by row."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row, parts = zlib.compressobj(9), b"\x00" * (1 + 3 * width), []
    for _ in range(height):
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return path


def test_a_job_whose_peak_memory_would_exceed_the_limit_is_refused_from_the_header(tmp_path, monkeypatch):
    """Issue 16.7: a tiny 15000 x 15000 PNG reached 3.5 GB before failing; now it is refused before
    a pixel is decoded, with the estimate and the limit."""
    from PIL import ImageFile

    from truepix.engine.pipeline import EngineOptions
    from truepix.process import process_file
    from truepix.recipes import BUILTIN

    def never(*a, **k):
        raise AssertionError("decoded the pixels of a job that had to be refused from its header")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    big = _black_png(tmp_path / "huge.png", 15000, 15000)
    assert big.stat().st_size < 1_000_000
    result = process_file(big, BUILTIN["upscale"], options=EngineOptions(memory_limit_mb=8_000))
    assert result.status == "failed"
    assert "huge.png: too large for recipe 'upscale': 15000 x 15000 in, 30000 x 30000 out" in result.error
    assert "GB of memory at its peak, over the limit of 7.8 GB ([engine] memory_limit_mb = 8000)" in result.error
    assert not [p for p in tmp_path.iterdir() if p.name != "huge.png"]


def test_three_chained_x4_steps_are_refused_at_once(tmp_path):
    import time

    from truepix.engine.pipeline import EngineOptions
    from truepix.process import process_file
    from truepix.recipes import Recipe, Step

    src = tmp_path / "small.png"
    Image.fromarray(np.round(photo_like(256, 256) * 255).astype(np.uint8)).save(src)
    recipe = Recipe("x64", tuple(Step("upscale-x4-bicubic") for _ in range(3)))
    t0 = time.perf_counter()
    result = process_file(src, recipe, options=EngineOptions(memory_limit_mb=1024))
    assert result.status == "failed" and "16384 x 16384 out" in result.error
    assert "refused before any work" in result.error
    assert time.perf_counter() - t0 < 5  # not minutes of CPU first


def test_the_estimate_covers_the_measured_peak_of_a_24_mp_upscale():
    """docs/reliability.md, promise 12: a 24 MP 16-bit TIFF upscaled 2x (upscale-x2) to a 96 MP TIFF,
    file to file, peaked at 1375 MB in `truepix bench --sizes 24 --model upscale-x2`; 1407 MB, the
    highest reading of the same steps (an ad-hoc peak-RSS run), is the figure the estimate must cover."""
    from truepix.engine import budget, models
    from truepix.recipes import Recipe, Step

    est = budget.estimate(6000, 4000, Recipe("x2", (Step("upscale-x2"),)), models.load_manifest())
    assert est.peak_bytes > 1407 << 20 and (est.out_width, est.out_height) == (12000, 8000)
    assert est.peak_bytes < 2 * (1407 << 20)  # on the safe side, not absurdly so


def test_the_watchers_hand_over_returns_at_once_and_hashing_happens_on_the_submitter(tmp_path):
    """Issue 17.3: the watcher's contract says on_ready returns fast; hashing a large RAW does not."""
    import threading
    import time

    daemon = Daemon(Config())
    daemon.queue = JobQueue(tmp_path / "q.sqlite3")
    daemon.worker = types.SimpleNamespace(wake=lambda: None)
    real_submit, threads = daemon.queue.submit, []

    def slow_submit(*a, **k):  # as hashing a few hundred MB would be
        threads.append(threading.current_thread().name)
        time.sleep(1.5)
        return real_submit(*a, **k)

    daemon.queue.submit = slow_submit
    daemon._start_submitter()
    photo = tmp_path / "a.jpg"
    Image.fromarray(np.round(photo_like(48, 64) * 255).astype(np.uint8)).save(photo)
    t0 = time.perf_counter()
    assert daemon._file_ready(photo, FolderSpec(tmp_path)) is True
    assert time.perf_counter() - t0 < 0.5
    daemon._arrivals.put(None)
    daemon._submitter.join(10)
    assert threads == ["truepix-submitter"] and daemon.queue.counts()["queued"] == 1
