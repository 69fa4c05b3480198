"""The worker, in-process, with the real model and a real SQLite queue: order, decode-ahead, pause,
cancel, shutdown requeue, bad files, a full disk."""

import errno
import pathlib
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import BAD_INPUTS, make_bad_inputs, photo_like, wait_until
from truepix.engine.pipeline import EngineOptions
from truepix.recipes import BUILTIN
from truepix.service import worker as worker_module
from truepix.service.queue import JobQueue
from truepix.service.worker import Worker

UPSCALE = BUILTIN["upscale"]
FAST = EngineOptions(tile=256)


def _jpeg(path, h=48, w=64, seed=0):
    Image.fromarray(np.round(photo_like(h, w, seed) * 255).astype(np.uint8)).save(path, quality=92)
    return path


def _final(q, ids):
    return all(q.get(i).state in ("done", "failed", "cancelled") for i in ids)


def _run_until_final(queue, ids, options=FAST):
    """A real worker on ``queue`` until every job of ``ids`` has ended (at most 60 s), then stopped."""
    w = Worker(queue, options, poll=0.05)
    w.start()
    try:
        assert wait_until(lambda: _final(queue, ids))
    finally:
        w.stop(5)


def _visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture
def queue(tmp_path):
    return JobQueue(tmp_path / "q.sqlite3")


def test_jobs_run_in_order_and_the_next_is_decoded_ahead(tmp_path, queue, monkeypatch):
    """Read from the worker's own calls, not sampled: the queue's claims and finishes, in the queue's
    order, and the decodes.  Each finish waits (at most 60 s) for the next job's decode, so a worker that
    decodes ahead shows it however loaded the machine, and one that does not fails the order below."""
    src = tmp_path / "in"
    src.mkdir()
    jobs = [queue.submit(_jpeg(src / f"p{i}.jpg", 320, 480, seed=i), UPSCALE) for i in range(4)]
    ids = [j.id for j in jobs]
    by_source = {j.source: j.id for j in jobs}
    events: list[tuple[str, int]] = []
    running_seen = []  # the queue's running count just after each claim: its highest values
    decoded = {i: threading.Event() for i in ids}
    lock = threading.Lock()
    real_decode = worker_module.decode_source

    def decode(path, *args, **kwargs):
        try:
            return real_decode(path, *args, **kwargs)
        finally:
            job_id = by_source[str(path)]
            with lock:
                events.append(("decoded", job_id))
            decoded[job_id].set()

    class Recording:
        """The queue as the worker sees it; a claim or finish and its note are one step."""

        def __getattr__(self, name):
            return getattr(queue, name)

        def claim(self, *args, **kwargs):
            with lock:
                job = queue.claim(*args, **kwargs)
                if job is not None:
                    events.append(("claim", job.id))
                    running_seen.append((queue.counts()["running"], queue.get(job.id).as_dict()))
            return job

        def finish(self, job_id, *args, **kwargs):
            later = ids[ids.index(job_id) + 1:]
            if later:
                decoded[later[0]].wait(60)
            with lock:
                events.append(("finish", job_id))
                return queue.finish(job_id, *args, **kwargs)

    monkeypatch.setattr(worker_module, "decode_source", decode)
    w = Worker(Recording(), FAST, poll=0.05)
    w.start()
    try:
        assert wait_until(lambda: _final(queue, ids))
    finally:
        w.stop(5)
    done = [queue.get(j.id) for j in jobs]
    assert [j.state for j in done] == ["done"] * 4
    assert [j.started for j in done] == sorted(j.started for j in done)  # claimed in queue order
    assert all(j.finished <= k.finished for j, k in zip(done, done[1:], strict=False))
    assert [i for what, i in events if what == "claim"] == ids
    # While one job is inferred the next one is already claimed and decoded: two running, never three.
    for current, ahead in zip(ids, ids[1:], strict=False):
        assert events.index(("decoded", ahead)) < events.index(("finish", current)), events
    # ... but users see one running job (issue 20: `truepix status` showed two): the one decoded ahead
    # is queued, with no start time, until its inference begins.
    assert max(n for n, _ in running_seen) == 1
    ahead = [view for _, view in running_seen if view["decoded_ahead"]]
    assert ahead and all(v["state"] == "queued" and v["started"] is None for v in ahead)
    # A job's start is when its inference began, after the one before it had finished, not its claim.
    assert all(k.started >= j.finished for j, k in zip(done, done[1:], strict=False))
    assert _visible(src) == sorted([f"p{i}.jpg" for i in range(4)] + [f"p{i}-truepix-x2.tif" for i in range(4)])


def test_pause_lets_the_current_job_finish_and_starts_no_other(tmp_path, queue):
    src = tmp_path / "in"
    src.mkdir()
    jobs = [queue.submit(_jpeg(src / f"p{i}.jpg", 480, 640, seed=i), UPSCALE) for i in range(3)]
    w = Worker(queue, EngineOptions(tile=128), poll=0.05)
    w.start()
    try:
        assert wait_until(lambda: (c := w.current()) is not None and c.id == jobs[0].id and c.phase == "enhancing")
        w.pause()
        assert wait_until(lambda: queue.get(jobs[0].id).state == "done")
        time.sleep(0.5)
        assert [queue.get(j.id).state for j in jobs[1:]] == ["queued", "queued"]  # the decoded-ahead one went back
        assert w.paused and w.current() is None
        w.resume()
        assert wait_until(lambda: _final(queue, [j.id for j in jobs]))
    finally:
        w.stop(5)
    assert [queue.get(j.id).state for j in jobs] == ["done"] * 3


def test_pause_submit_resume_shows_one_running_job(tmp_path, queue):
    """Issue 20's reproduction: a job runs, pause, submit another, resume, status.  The second is
    claimed and decoded ahead, but users see it queued (no start time) until its inference begins."""
    src, first, w = _big_job_under_way(tmp_path, queue)
    try:
        w.pause()
        second = queue.submit(_jpeg(src / "next.jpg", 48, 64, seed=3), UPSCALE)
        w.resume()
        assert wait_until(lambda: queue.get(second.id).state == "running")  # claimed (the queue's own state)
        view = queue.get(second.id).as_dict()
        assert queue.get(first.id).state == "running"  # seconds of inference left: the second waits ahead
        assert view["state"] == "queued" and view["decoded_ahead"] and view["started"] is None, view
        assert queue.counts()["running"] == 1 and queue.counts()["queued"] == 1
        assert [j.id for j in queue.jobs("running")] == [first.id]
        assert [j.id for j in queue.jobs("queued")] == [second.id]
        assert wait_until(lambda: _final(queue, [first.id, second.id]), timeout=120)
    finally:
        w.stop(5)
    a, b = queue.get(first.id), queue.get(second.id)
    assert (a.state, b.state) == ("done", "done") and b.started >= a.finished


def _big_job_under_way(tmp_path, queue):
    """A job in small tiles (slow), already past 5% of its inference: (source folder, job, worker)."""
    src = tmp_path / "in"
    src.mkdir()
    job = queue.submit(_jpeg(src / "big.jpg", 720, 960), UPSCALE)
    w = Worker(queue, EngineOptions(tile=96), poll=0.05)
    w.start()
    assert wait_until(lambda: (c := w.current()) is not None and c.progress > 0.05)
    return src, job, w


def test_cancel_a_running_job_writes_nothing(tmp_path, queue):
    src, job, w = _big_job_under_way(tmp_path, queue)
    try:
        queue.cancel(job.id)
        w.cancel(job.id)
        assert wait_until(lambda: _final(queue, [job.id]))
    finally:
        w.stop(5)
    assert queue.get(job.id).state == "cancelled"
    assert sorted(p.name for p in src.iterdir()) == ["big.jpg"]  # no output, no temp file


def test_shutdown_after_the_grace_period_requeues_without_output(tmp_path, queue):
    src, job, w = _big_job_under_way(tmp_path, queue)
    t0 = time.monotonic()
    assert w.stop(grace=0.2)
    assert time.monotonic() - t0 < 10
    back = queue.get(job.id)
    assert back.state == "queued" and back.attempts == 0
    assert sorted(p.name for p in src.iterdir()) == ["big.jpg"]
    w2 = Worker(queue, FAST, poll=0.05)  # the next start completes it
    w2.start()
    try:
        assert wait_until(lambda: _final(queue, [job.id]))
    finally:
        w2.stop(5)
    assert queue.get(job.id).state == "done" and _visible(src) == ["big-truepix-x2.tif", "big.jpg"]


def test_bad_files_fail_with_their_error_and_the_next_file_goes_through(tmp_path, queue):
    src = tmp_path / "in"
    good = _jpeg(tmp_path / "good.jpg")
    bad = make_bad_inputs(src, good)
    ids = [queue.submit(p, UPSCALE).id for p in [*bad, good]]
    w = Worker(queue, FAST, poll=0.05)
    w.start()
    try:
        assert wait_until(lambda: _final(queue, ids))
    finally:
        w.stop(5)
    *bad_jobs, good_job = (queue.get(i) for i in ids)
    for job in bad_jobs:
        name = job.source.rsplit("/", 1)[1]
        assert job.state == "failed" and BAD_INPUTS[name].lower() in job.error.lower(), job.error
        assert name in job.error and f"job {job.id} marked failed" in job.error and "original untouched" in job.error
    assert good_job.state == "done"
    assert _visible(src) == sorted(BAD_INPUTS)  # nothing written beside the bad files


def test_a_full_disk_fails_the_job_cleanly(tmp_path, queue, monkeypatch):
    """ENOSPC injected at the moment the encoded file is flushed: failed job, no partial output."""
    from truepix.io import atomic

    calls = []

    def full_disk(path):
        calls.append(path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "fsync_file", full_disk)
    src = tmp_path / "in"
    src.mkdir()
    original = _jpeg(src / "a.jpg").read_bytes()
    job = queue.submit(src / "a.jpg", UPSCALE)
    _run_until_final(queue, [job.id])
    failed = queue.get(job.id)
    assert calls and calls[0].name.startswith(".a-truepix-x2.tif.truepix-tmp-")  # the temp file was fully written
    assert failed.state == "failed" and "disk full" in failed.error and "nothing written" in failed.error
    assert sorted(p.name for p in src.iterdir()) == ["a.jpg"]  # temp file removed, no output
    assert (src / "a.jpg").read_bytes() == original


@pytest.mark.parametrize("failures, state", [(1, "done"), (5, "failed")])
def test_a_transient_io_error_is_retried_a_bad_one_is_not(tmp_path, queue, monkeypatch, caplog, failures, state):
    """EIO at the flush (a network share's hiccup): the job goes back to the queue, its attempt counted,
    and runs again; an error that keeps coming fails it after TRANSIENT_RETRIES more tries, once."""
    from truepix.io import atomic

    monkeypatch.setattr(worker_module, "TRANSIENT_BACKOFF", (0.05,))
    real, calls = atomic.fsync_file, []

    def flaky(path):
        calls.append(path)
        if len(calls) <= failures:
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real(path)

    monkeypatch.setattr(atomic, "fsync_file", flaky)
    src = tmp_path / "in"
    src.mkdir()
    job = queue.submit(_jpeg(src / "a.jpg"), UPSCALE)
    _run_until_final(queue, [job.id])
    end = queue.get(job.id)
    assert end.state == state, end
    if state == "done":
        assert end.attempts == 2 and len(calls) == 2
        assert "transient, trying again in 0 s (attempt 1 of 3)" in caplog.text
        assert len(end.outputs) == 1 and pathlib.Path(end.outputs[0]).is_file()
    else:
        assert end.attempts == 1 + worker_module.TRANSIENT_RETRIES == len(calls)
        assert "Input/output error" in end.error or "I/O" in end.error, end.error
        assert _visible(src) == ["a.jpg"]  # nothing partial from any of the tries


def test_a_stop_while_the_only_job_is_decoding_lets_it_finish(tmp_path, queue):
    """The job being decoded while the runner is idle is the current one: a stop finishes it."""
    import tifffile

    src = tmp_path / "in"
    src.mkdir()
    big = src / "big.tif"
    tifffile.imwrite(big, np.round(photo_like(1500, 2000) * 65535).astype(np.uint16), compression="zlib")
    w = Worker(queue, FAST, poll=0.05)
    w.start()
    job = queue.submit(big, UPSCALE)
    w.wake()
    assert wait_until(lambda: (c := w.current()) is not None and c.phase == "decoding", step=0.002)
    assert w.stop(grace=60)
    assert queue.get(job.id).state == "done" and (src / "big-truepix-x2.tif").exists()


def test_the_daemon_develops_raws_to_linear_dng_and_notes_fallbacks(tmp_path, queue):
    from test_raw import cfa_file, smooth_scene

    src = tmp_path / "in"
    src.mkdir()
    bayer = cfa_file(src / "bayer.dng", smooth_scene(), "RGGB", iso=1600, noise=0.003)
    jpeg = _jpeg(src / "photo.jpg")
    ids = [queue.submit(p, BUILTIN["develop"]).id for p in (bayer, jpeg)]
    w = Worker(queue, FAST, poll=0.05)
    w.start()
    try:
        assert wait_until(lambda: _final(queue, ids))
    finally:
        w.stop(5)
    done, refused = (queue.get(i) for i in ids)
    assert done.state == "done" and done.outputs == [str(src / "bayer-truepix-develop.dng")]
    assert "raw noise" in (done.note or "")
    assert refused.state == "failed" and "photo.jpg" in refused.error and "RAW" in refused.error


class _FailingWrites(JobQueue):
    """A real queue whose next ``n`` calls of ``method`` fail as SQLite fails on a full disk."""

    def __init__(self, path, method: str, n: int):
        super().__init__(path)
        self.left, self.calls = n, 0
        real = getattr(self, method)

        def flaky(*args, **kwargs):
            import sqlite3

            self.calls += 1
            if self.left > 0:
                self.left -= 1
                raise sqlite3.OperationalError("database or disk is full")
            return real(*args, **kwargs)

        setattr(self, method, flaky)


@pytest.mark.parametrize("method", ["finish", "begin", "claim"])
def test_a_failing_queue_write_is_retried_and_reported_never_killing_the_worker(tmp_path, method):
    """Issue 16.2: the outcome of a job is written once the database takes writes again; meanwhile
    health() says what is wrong, and the worker's threads live on."""
    src = tmp_path / "in"
    src.mkdir()
    q = _FailingWrites(tmp_path / "q.sqlite3", method, 4)  # 0.5 + 1 + 2 + 4 s of back-off
    job = q.submit(_jpeg(src / "a.jpg"), UPSCALE)
    w = Worker(q, FAST, poll=0.05)
    w.start()
    try:
        assert wait_until(lambda: any("disk is full" in p for p in w.health()), timeout=10)
        assert all(t.is_alive() for t in w._threads)
        assert wait_until(lambda: q.get(job.id).state == "done", timeout=30)
        assert w.health() == [] and all(t.is_alive() for t in w._threads)
        second = q.submit(_jpeg(src / "b.jpg", seed=1), UPSCALE)  # and it goes on working
        assert wait_until(lambda: q.get(second.id).state == "done", timeout=30)
    finally:
        w.stop(5)
    assert q.calls >= 5 and q.get(job.id).attempts == 1


def test_a_dead_worker_thread_shows_in_health(tmp_path, queue):
    w = Worker(queue, FAST, poll=0.05)
    w.start()
    try:
        assert w.health() == []
        w._threads[1] = threading.Thread(target=lambda: None, name="truepix-runner")  # as if it had died
        w._threads[1].start()
        w._threads[1].join()
        assert w.health() == ["the worker's truepix-runner thread has stopped; restart truepix"]
    finally:
        w.stop(5)


def _unblock(fifo):
    """Give any reader stuck on ``fifo`` its EOF (so a regression fails instead of hanging the suite)."""
    import os

    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this system")
def test_a_queued_file_replaced_by_a_fifo_fails_that_job_only_and_nothing_blocks(tmp_path, queue):
    """Issue 16.1: opening a FIFO by name blocks (in Exiv2, holding the GIL: the whole daemon froze)."""
    import os

    src = tmp_path / "in"
    src.mkdir()
    victim = _jpeg(src / "victim.jpg")
    job = queue.submit(victim, UPSCALE)
    after = queue.submit(_jpeg(src / "after.jpg", seed=2), UPSCALE)
    victim.unlink()
    os.mkfifo(victim)
    import subprocess
    import sys

    # A watchdog outside this process: were a reader stuck on the FIFO holding the GIL, nothing in
    # here could unblock it; after 8 s this gives it EOF, so a regression fails instead of hanging.
    watchdog = subprocess.Popen([sys.executable, "-c", "import os, sys, time; time.sleep(8)\n"
                                 "try: os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK))\n"
                                 "except OSError: pass", str(victim)])
    w = Worker(queue, FAST, poll=0.05)
    w.start()
    try:
        t0 = time.monotonic()
        beat = []
        while time.monotonic() - t0 < 3:  # the interpreter keeps running meanwhile (no GIL held)
            beat.append(time.monotonic())
            time.sleep(0.05)
        assert max(b - a for a, b in zip(beat, beat[1:], strict=False)) < 1.0
        assert wait_until(lambda: _final(queue, [job.id, after.id]), timeout=30)
    finally:
        _unblock(victim)
        w.stop(5)
        watchdog.kill()
        watchdog.wait()
    failed = queue.get(job.id)
    assert failed.state == "failed" and "victim.jpg: is a FIFO (named pipe), not a photo file" in failed.error
    assert queue.get(after.id).state == "done"


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this system")
def test_submitting_a_fifo_is_refused_at_once(tmp_path, queue):
    import os

    from truepix.service.queue import QueueError

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    try:
        with pytest.raises(QueueError, match=r"pipe.jpg: cannot read the file to queue it \(is a FIFO"):
            queue.submit(fifo, UPSCALE)
    finally:
        _unblock(fifo)


def test_a_read_of_a_file_still_being_written_is_not_a_failure(tmp_path, queue):
    """Issue 16.10: the file was queued, then grew (a writer paused longer than `settle`), and the read
    failed: the job ends cancelled with the reason, not failed."""
    src = tmp_path / "in"
    src.mkdir()
    whole = _jpeg(src / "whole.jpg", 320, 480).read_bytes()
    slow = src / "slow.jpg"
    slow.write_bytes(whole[:len(whole) // 3])
    job = queue.submit(slow, UPSCALE, origin="folder")
    with open(slow, "ab") as fh:  # the writer goes on, still not done when the worker reads it
        fh.write(whole[len(whole) // 3:len(whole) // 2])
    w = Worker(queue, FAST, poll=0.05)
    w.start()
    try:
        assert wait_until(lambda: _final(queue, [job.id]), timeout=30)
        ended = queue.get(job.id)
        assert ended.state == "cancelled" and "changed while truepix read it" in ended.error
        slow.write_bytes(whole)  # the copy completes; the hot folder queues it again
        again = queue.submit(slow, UPSCALE, origin="folder", resubmit_failed=False)
        assert wait_until(lambda: _final(queue, [again.id]), timeout=30)
    finally:
        w.stop(5)
    assert queue.get(again.id).state == "done" and queue.counts()["failed"] == 0
