"""The job queue's promises, on a real SQLite file: exactly-once hand-out, crash recovery, duplicates, retry."""

import json
import multiprocessing
import os
import sqlite3
import threading
import time

import pytest

from truepix.recipes import BUILTIN, Recipe, Step
from truepix.service.queue import MAX_CRASHES, JobQueue, QueueError
from truepix.service.store import STORES, JobStore

UPSCALE = BUILTIN["upscale"]


@pytest.fixture(params=sorted(STORES))
def new_store(request):
    """Each JobStore implementation in turn (service/store.py): the promises are the protocol's."""
    def make(path):
        store = STORES[request.param](path)
        assert isinstance(store, JobStore)
        return store
    return make


def _files(folder, n, prefix="f"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}{i:04d}.jpg"
        p.write_bytes(f"content {prefix} {i}".encode())
        paths.append(p)
    return paths


def test_wal_mode_and_fifo(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite3")
    a, b = _files(tmp_path / "in", 2)
    ja, jb = q.submit(a, UPSCALE), q.submit(b, UPSCALE)
    assert (ja.state, jb.state) == ("queued", "queued") and jb.id > ja.id
    assert sqlite3.connect(tmp_path / "q.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first = q.claim()
    assert first.id == ja.id and first.state == "running" and first.attempts == 0  # claimed, not begun
    assert q.begin(ja.id).attempts == 1
    assert q.claim().id == jb.id
    assert q.claim() is None
    done = q.finish(ja.id, ["/x/out.tif"], seconds=1.5)
    assert done.state == "done" and done.outputs == ["/x/out.tif"] and done.finished is not None
    assert q.counts() == {"queued": 0, "running": 1, "done": 1, "failed": 0, "cancelled": 0}
    # the row holds what the issue lists: path, size, mtime, content hash, recipe, timestamps
    row = q.get(jb.id)
    assert row.size == b.stat().st_size and row.mtime_ns == b.stat().st_mtime_ns and len(row.sha256) == 64
    assert row.recipe["steps"] == [{"model": "upscale-x2-adaptive"}] and row.created <= row.started


def _claim_all(path, out_q):
    q = JobQueue(path)
    got = []
    while (job := q.claim()) is not None:
        got.append(job.id)
    out_q.put(got)


def test_each_job_handed_to_exactly_one_worker(tmp_path):
    """4 threads here and 2 other processes claim 300 jobs at once: each id exactly once."""
    path = tmp_path / "q.sqlite3"
    q = JobQueue(path)
    ids = {q.submit(p, UPSCALE).id for p in _files(tmp_path / "in", 300)}
    ctx = multiprocessing.get_context("fork")
    out_q = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(path, out_q)) for _ in range(2)]
    thread_results: list[list[int]] = []

    def claim_thread():
        got = []
        while (job := q.claim()) is not None:
            got.append(job.id)
        thread_results.append(got)

    threads = [threading.Thread(target=claim_thread) for _ in range(4)]
    for w in procs + threads:
        w.start()
    for t in threads:
        t.join()
    got = [i for r in thread_results for i in r]
    for p in procs:
        got += out_q.get(timeout=60)
        p.join()
    assert sorted(got) == sorted(ids)
    assert q.counts()["running"] == 300


def test_duplicates_same_content_same_recipe(tmp_path, new_store):
    q = new_store(tmp_path / "q.sqlite3")
    a = tmp_path / "a.jpg"
    a.write_bytes(b"the same bytes")
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(b"the same bytes")
    first = q.submit(a, UPSCALE)
    again = q.submit(copy, UPSCALE)  # another name, same content, still queued
    assert again.duplicate and again.id == first.id
    q.claim()
    q.finish(first.id, ["/o.tif"], seconds=1)
    done = q.submit(a, UPSCALE)
    assert done.duplicate and done.state == "done" and done.outputs == ["/o.tif"]
    other = Recipe("jpeg", (Step("upscale-x2"),), format="jpeg")
    assert not q.submit(a, other).duplicate  # another recipe is another job
    forced = q.submit(a, UPSCALE, force=True)
    assert not forced.duplicate and forced.id != first.id
    a.write_bytes(b"edited bytes")  # new content: a new job
    assert not q.submit(a, UPSCALE).duplicate


def test_failed_jobs_keep_their_error_and_retry(tmp_path, new_store):
    q = new_store(tmp_path / "q.sqlite3")
    (a,) = _files(tmp_path, 1)
    job = q.submit(a, UPSCALE)
    q.claim()
    failed = q.fail(job.id, "a.jpg: truncated JPEG; original untouched, nothing written", seconds=0.1)
    assert failed.state == "failed" and "truncated" in failed.error
    # a hot folder does not resubmit it at every start; an explicit submit does
    assert q.submit(a, UPSCALE, origin="folder", resubmit_failed=False).id == job.id
    with pytest.raises(QueueError, match="only failed or cancelled"):
        q.retry(q.submit(a, UPSCALE).id)  # a fresh job is queued, not failed
    retried = q.retry(job.id)
    assert retried.state == "queued" and retried.error is None and "truncated" in retried.note
    with pytest.raises(QueueError, match="no such job"):
        q.retry(9999)


def test_cancel(tmp_path, new_store):
    q = new_store(tmp_path / "q.sqlite3")
    a, b = _files(tmp_path, 2)
    ja, jb = q.submit(a, UPSCALE), q.submit(b, UPSCALE)
    assert q.cancel(jb.id).state == "cancelled"
    assert q.claim().id == ja.id and q.claim() is None  # the cancelled one is never handed out
    running = q.cancel(ja.id)
    assert running.state == "running" and running.cancel_requested
    assert q.mark_cancelled(ja.id).state == "cancelled"
    with pytest.raises(QueueError, match="already cancelled"):
        q.cancel(ja.id)
    assert q.retry(jb.id).state == "queued"


def test_recover_after_a_crash(tmp_path):
    """Jobs a dead process left running: requeued; done if the output was published; failed after 3 crashes."""
    path = tmp_path / "q.sqlite3"
    q = JobQueue(path)
    a, b, c = _files(tmp_path / "in", 3)
    ja, jb, jc = (q.submit(p, UPSCALE) for p in (a, b, c))
    for _ in range(3):
        q.claim()
    out_b = tmp_path / "in" / "f0001-truepix-x2.tif"
    q.set_planned(ja.id, tmp_path / "in" / "f0000-truepix-x2.tif")
    q.set_planned(jb.id, out_b)
    leftover = tmp_path / "in" / ".f0000-truepix-x2.tif.truepix-tmp-abcd1234"
    leftover.write_bytes(b"half a file")
    out_b.write_bytes(b"a whole output, published by rename")
    db = sqlite3.connect(path)
    db.execute("UPDATE jobs SET crashes = ?, inferring = 1 WHERE id IN (?, ?)", (MAX_CRASHES - 1, jc.id, ja.id))
    db.execute("UPDATE jobs SET crashes = 0 WHERE id = ?", (ja.id,))
    db.commit()
    db.close()

    settled = {j.id: j for j in JobQueue(path).recover()}  # a new process opens the file
    assert settled[ja.id].state == "queued" and "requeued" in settled[ja.id].note
    assert not leftover.exists()
    assert settled[jb.id].state == "done" and settled[jb.id].outputs == [str(out_b)]
    assert settled[jc.id].state == "failed" and f"truepix retry {jc.id}" in settled[jc.id].error
    assert q.claim().id == ja.id


def test_release_puts_the_job_back_at_the_head(tmp_path, new_store):
    q = new_store(tmp_path / "q.sqlite3")
    a, b = _files(tmp_path, 2)
    ja, _ = q.submit(a, UPSCALE), q.submit(b, UPSCALE)
    q.claim()
    q.begin(ja.id)
    back = q.release(ja.id)
    assert back.state == "queued" and back.attempts == 0 and back.started is None
    assert q.claim().id == ja.id


def test_submit_of_a_vanished_file_is_a_clear_error(tmp_path, new_store):
    q = new_store(tmp_path / "q.sqlite3")
    with pytest.raises(QueueError, match="gone.jpg: cannot read the file to queue it"):
        q.submit(tmp_path / "gone.jpg", UPSCALE)
    assert q.counts()["queued"] == 0


def test_recipe_travels_with_the_job(tmp_path, new_store):
    q = new_store(tmp_path / "q.sqlite3")
    (a,) = _files(tmp_path, 1)
    recipe = Recipe("web", (Step("upscale-x2"),), format="png", bits=8, suffix="-web", output=tmp_path / "out")
    job = q.submit(a, recipe)
    back = q.claim().recipe_object()
    assert back == recipe and back.output == tmp_path / "out" and back.bits == 8
    assert json.loads(json.dumps(job.as_dict()))["recipe"] == "web"


def test_concurrent_submitters_and_a_slow_reader(tmp_path, new_store):
    """Writers in threads while a reader lists: WAL keeps everyone going, nothing is lost."""
    q = new_store(tmp_path / "q.sqlite3")
    files = _files(tmp_path / "in", 120)
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            q.jobs(limit=50)
            time.sleep(0.001)

    r = threading.Thread(target=reader)
    r.start()
    chunks = [files[i::6] for i in range(6)]
    ts = [threading.Thread(target=lambda ch=ch: [q.submit(p, UPSCALE) for p in ch]) for ch in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    r.join()
    assert q.counts()["queued"] == 120
    assert len({j.source for j in q.jobs(limit=1000)}) == 120
    assert os.path.exists(tmp_path / "q.sqlite3-wal")


def test_only_deaths_during_a_jobs_own_inference_count_against_it(tmp_path, new_store):
    """Issue 16.3: a job claimed and decoded ahead while another was inferred is not to blame for a
    kill; one whose inference was under way during MAX_CRASHES deaths is failed."""
    path = tmp_path / "q.sqlite3"
    (a, b) = _files(tmp_path / "in", 2)
    q = new_store(path)
    ja, jb = q.submit(a, UPSCALE), q.submit(b, UPSCALE)
    for death in range(1, MAX_CRASHES + 3):
        q = new_store(path)  # a new process after each kill -9
        assert q.claim().id == ja.id and q.begin(ja.id).inferring  # a is inferred...
        assert q.claim().id == jb.id  # ...while b waits, decoded ahead; then the daemon dies
        settled = {j.id: j for j in new_store(path).recover()}
        assert settled[jb.id].state == "queued" and settled[jb.id].crashes == 0 and "waited" in settled[jb.id].note
        if death < MAX_CRASHES:
            assert settled[ja.id].state == "queued" and settled[ja.id].crashes == death
        else:
            assert settled[ja.id].state == "failed" and f"{MAX_CRASHES} times" in settled[ja.id].error
            break
    q = new_store(path)
    assert q.claim().id == jb.id and q.begin(jb.id).attempts == 1
    done = q.finish(jb.id, ["/x/out.tif"], seconds=1.0)
    assert done.state == "done" and not done.inferring and done.crashes == 0
    assert q.retry(ja.id).crashes == 0


def test_a_queue_file_from_before_the_crash_columns_is_upgraded(tmp_path):
    path = tmp_path / "q.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, size INTEGER NOT NULL,"
        " mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, recipe_name TEXT NOT NULL, recipe TEXT NOT NULL,"
        " recipe_key TEXT NOT NULL, origin TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        " error TEXT, note TEXT, outputs TEXT NOT NULL DEFAULT '[]', planned TEXT,"
        " cancel_requested INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, started REAL, finished REAL,"
        " seconds REAL);")
    db.close()
    (a,) = _files(tmp_path / "in", 1)
    q = JobQueue(path)
    job = q.submit(a, UPSCALE)
    assert job.crashes == 0 and not job.inferring and q.claim().id == job.id


def test_a_new_content_supersedes_the_failures_of_the_old_at_that_path(tmp_path, new_store):
    """Issue 16.10: a read of a half-written file failed; once the file is whole, that failure is
    not the file's (no 614 failed jobs for one slow copy)."""
    q = new_store(tmp_path / "q.sqlite3")
    (a,) = _files(tmp_path / "in", 1)
    first = q.submit(a, UPSCALE, origin="folder", resubmit_failed=False)
    q.claim()
    q.begin(first.id)
    q.fail(first.id, "f0000.jpg: truncated JPEG")
    a.write_bytes(a.read_bytes() + b"the rest of the file")
    second = q.submit(a, UPSCALE, origin="folder", resubmit_failed=False)
    old = q.get(first.id)
    assert second.id != first.id and second.state == "queued"
    assert old.state == "cancelled" and f"superseded by job {second.id}" in old.note and "truncated" in old.error
    assert q.counts()["failed"] == 0


def test_an_unreadable_file_is_recorded_once_and_superseded_when_readable(tmp_path, new_store):
    """Issue 16.6: a hot-folder file that could not be read shows as a failed job with its reason."""
    q = new_store(tmp_path / "q.sqlite3")
    (a,) = _files(tmp_path / "in", 1)
    rec = q.record_unreadable(a, UPSCALE, f"{a}: cannot read the file to queue it (permission denied)")
    again = q.record_unreadable(a, UPSCALE, f"{a}: cannot read the file to queue it (permission denied)")
    assert rec.state == "failed" and "permission denied" in rec.error and "tries again" in rec.error
    assert again.id == rec.id and again.duplicate and q.counts()["failed"] == 1
    job = q.submit(a, UPSCALE, origin="folder", resubmit_failed=False)
    assert job.state == "queued" and q.get(rec.id).state == "cancelled" and q.counts()["failed"] == 0


def test_a_traceless_death_is_not_blamed_on_the_job_as_a_crash_is(tmp_path):
    """A kill -9 storm (docs/reliability.md's soak) must not fail healthy jobs after three kills; a
    photo that crashes the daemon (a fatal signal, traced by faulthandler) is failed after three."""
    from truepix.service.queue import MAX_KILLS

    path = tmp_path / "q.sqlite3"
    (a, b) = _files(tmp_path / "in", 2)
    q = JobQueue(path)
    killed, crashing = q.submit(a, UPSCALE), q.submit(b, UPSCALE)
    for death in range(1, MAX_KILLS + 1):
        q = JobQueue(path)
        q.claim()
        q.begin(killed.id)
        (job,) = q.recover(crashed=False)
        assert job.kills == death and job.crashes == 0
        assert job.state == ("failed" if death == MAX_KILLS else "queued")
    assert f"killed) while processing this file {MAX_KILLS} times" in q.get(killed.id).error
    for death in range(1, MAX_CRASHES + 1):
        q.claim()
        q.begin(crashing.id)
        (job,) = q.recover(crashed=True)
        assert job.crashes == death and job.state == ("failed" if death == MAX_CRASHES else "queued")
    assert "crashed while processing this file 3 times" in q.get(crashing.id).error
