"""``truepix run`` as a real process: crash safety, hot folders, shutdown, first start, one daemon per user."""

import hashlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import BAD_INPUTS, REPO, make_bad_inputs, photo_like, wait_until
from daemon_proc import DaemonProc

pytestmark = pytest.mark.slow  # every test here runs `truepix run` as a real process


def _jpeg(path, h=40, w=56, seed=0):
    Image.fromarray(np.round(photo_like(h, w, seed) * 255).astype(np.uint8)).save(path, quality=92)
    return path


def _sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _hot(folder, settle=0.3):
    return f'[[folders]]\npath = "{folder}"\nrecipe = "upscale"\nsettle = {settle}\n'


def _jobs(d, limit=1000):
    return d.request("GET", f"/v1/jobs?limit={limit}")[1]["jobs"]


class _OutputMonitor(threading.Thread):
    """Looks at the folder every few ms: any visible output must be a whole, readable TIFF."""

    def __init__(self, folder):
        super().__init__(daemon=True)
        self.folder, self.stop, self.problems, self.seen = folder, threading.Event(), [], set()

    def run(self):
        while not self.stop.is_set():
            for p in self.folder.glob("*-truepix*.tif"):
                if p.name in self.seen:
                    continue
                try:
                    tifffile.imread(p)
                    self.seen.add(p.name)
                except Exception as e:  # noqa: BLE001
                    if p.exists():
                        self.problems.append(f"{p.name}: {e}")
            time.sleep(0.005)


def test_kill_9_mid_job_then_restart_completes_it_exactly_once(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    src = _jpeg(photos / "big.jpg", 1200, 1600)
    original = _sha(src)
    d = DaemonProc(tmp_path / "d", config="folders = []\n[engine]\nthreads = 1\ntile = 128\n").start()
    monitor = _OutputMonitor(photos)
    monitor.start()
    try:
        code, body = d.request("POST", "/v1/jobs", {"paths": [str(src)]})
        job_id = body["jobs"][0]["id"]
        assert wait_until(lambda: ((d.request("GET", "/v1/status")[1]["current"] or {}).get("progress") or 0) > 0.2)
        d.kill9()
        assert not list(photos.glob("big-truepix*.tif"))  # killed mid-inference: no output
        d.start()
        (job,) = d.wait_jobs([job_id], timeout=180)
    finally:
        monitor.stop.set()
        monitor.join()
        d.stop()
    assert job["state"] == "done" and job["attempts"] == 2 and "requeued" not in (job["error"] or "")
    assert sorted(p.name for p in photos.iterdir()) == ["big-truepix-x2.tif", "big.jpg"]  # once, no temp files
    assert tifffile.imread(photos / "big-truepix-x2.tif").shape == (2400, 3200, 3)
    assert _sha(src) == original
    assert not monitor.problems, monitor.problems
    assert len(_jobs(d.start())) == 1
    d.stop()


def test_kill_9_after_the_output_was_published_does_not_process_again(tmp_path):
    """The window between the atomic rename and the queue's 'done': recovery sees the whole output."""
    photos = tmp_path / "photos"
    photos.mkdir()
    src = _jpeg(photos / "a.jpg", 64, 80)
    d = DaemonProc(tmp_path / "d", config="folders = []\n").start()
    d.request("POST", "/v1/pause")
    job_id = d.request("POST", "/v1/jobs", {"paths": [str(src)]})[1]["jobs"][0]["id"]
    d.kill9()
    # Replay that moment on disk: the job is running, its output planned and already published.
    import sqlite3

    out = photos / "a-truepix-x2.tif"
    tifffile.imwrite(out, np.zeros((128, 160, 3), np.uint16))
    db = sqlite3.connect(d.root / "data" / "truepix" / "queue.sqlite3")
    db.execute("UPDATE jobs SET state='running', attempts=1, started=?, planned=? WHERE id=?",
               (time.time() - 5, str(out), job_id))
    db.commit()
    db.close()
    d.start()
    try:
        job = d.request("GET", f"/v1/jobs/{job_id}")[1]
    finally:
        d.stop()
    assert job["state"] == "done" and job["outputs"] == [str(out)] and "complete before" in job["note"]
    assert sorted(p.name for p in photos.iterdir()) == ["a-truepix-x2.tif", "a.jpg"]


def test_a_burst_of_200_files_in_a_hot_folder_gives_200_outputs_once_each(tmp_path):
    hot = tmp_path / "hot"
    hot.mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    for i in range(200):
        _jpeg(staging / f"b{i:03d}.jpg", 24, 32, seed=i)
    d = DaemonProc(tmp_path / "d", config=_hot(hot) + "[engine]\ntile = 128\n").start()
    try:
        for p in sorted(staging.iterdir()):
            os.rename(p, hot / p.name)  # all at once, as a file manager's move does
        assert wait_until(lambda: len(list(hot.glob("*-truepix*.tif"))) >= 200 and
                          d.request("GET", "/v1/status")[1]["counts"]["queued"] == 0, timeout=400), d.output()
        time.sleep(1.5)  # nothing more may come: the outputs themselves are not queued
        jobs = _jobs(d)
    finally:
        d.stop()
    assert len(jobs) == 200 and all(j["state"] == "done" for j in jobs)
    assert sorted(p.name for p in hot.glob("*-truepix*.tif")) == sorted(f"b{i:03d}-truepix-x2.tif" for i in range(200))


def test_bad_files_in_a_hot_folder_fail_and_the_daemon_carries_on(tmp_path):
    hot = tmp_path / "hot"
    hot.mkdir()
    d = DaemonProc(tmp_path / "d", config=_hot(hot)).start()
    try:
        staging = tmp_path / "staging"
        good = _jpeg(tmp_path / "good.jpg")
        for p in make_bad_inputs(staging, good):
            shutil.move(p, hot / p.name)
        time.sleep(0.5)
        shutil.move(good, hot / "good.jpg")  # dropped after the bad ones
        assert wait_until(lambda: len([j for j in _jobs(d) if j["state"] in ("done", "failed")]) == 7, 120)
        jobs = {pathlib.Path(j["source"]).name: j for j in _jobs(d)}
        assert d.alive()
    finally:
        d.stop()
    assert jobs["good.jpg"]["state"] == "done"
    for name, words in BAD_INPUTS.items():
        assert jobs[name]["state"] == "failed" and words.lower() in jobs[name]["error"].lower(), jobs[name]
    log = d.log_file.read_text()
    assert all(f"failed: {name}" in log for name in BAD_INPUTS)
    assert "job" in log and "done: good.jpg" in log


def test_sigterm_requeues_a_job_that_outlives_the_grace_period(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    src = _jpeg(photos / "big.jpg", 1200, 1600)
    d = DaemonProc(tmp_path / "d", config="folders = []\n[server]\ngrace = 0.5\n[engine]\nthreads = 1\ntile = 128\n")
    d.start()
    job_id = d.request("POST", "/v1/jobs", {"paths": [str(src)]})[1]["jobs"][0]["id"]
    assert wait_until(lambda: ((d.request("GET", "/v1/status")[1]["current"] or {}).get("progress") or 0) > 0.1)
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 20
    assert sorted(p.name for p in photos.iterdir()) == ["big.jpg"]
    assert "back in the queue" in d.log_file.read_text()
    d.start()
    try:
        (job,) = d.wait_jobs([job_id], timeout=180)
    finally:
        d.stop()
    assert job["state"] == "done" and sorted(p.name for p in photos.iterdir()) == ["big-truepix-x2.tif", "big.jpg"]


def test_sigint_with_a_short_job_lets_it_finish(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    src = _jpeg(photos / "mid.jpg", 300, 400)
    d = DaemonProc(tmp_path / "d", config="folders = []\n[engine]\ntile = 96\n").start()
    job_id = d.request("POST", "/v1/jobs", {"paths": [str(src)]})[1]["jobs"][0]["id"]
    assert wait_until(lambda: d.request("GET", "/v1/status")[1]["current"] is not None)
    assert d.stop(signal.SIGINT) == 0
    d.start()
    try:
        job = d.request("GET", f"/v1/jobs/{job_id}")[1]
    finally:
        d.stop()
    assert job["state"] == "done" and (photos / "mid-truepix-x2.tif").exists()


def test_first_start_with_no_config_creates_the_default_hot_folder_and_processes_the_sample(tmp_path):
    d = DaemonProc(tmp_path)  # no config file at all
    d.start()
    hot = d.home / "Pictures" / "truepix"
    try:
        assert wait_until(lambda: (hot / "colorchart-truepix-x2.tif").exists(), timeout=120), d.output()
        assert wait_until(lambda: "job 1 done" in d.output(), timeout=30)
    finally:
        assert d.stop() == 0
    out = d.output()
    assert f"hot folder: {hot} (recipe upscale)" in out and "absent: built-in defaults" in out
    assert "running headless" in out and str(tmp_path / "config.toml") in out
    assert tifffile.imread(hot / "colorchart-truepix-x2.tif").shape == (960, 1440, 3)
    # A second start finds the sample already done: nothing new.
    d.start()
    time.sleep(2.5)
    d.stop()
    assert sorted(p.name for p in hot.iterdir()) == ["colorchart-truepix-x2.tif", "colorchart.jpg"]


def test_example_config_as_a_new_user_hot_folder_and_submit(tmp_path):
    d = DaemonProc(tmp_path, config=(REPO / "config.example.toml").read_text())
    d.start()
    hot = d.home / "Pictures" / "truepix"
    try:
        status = d.request("GET", "/v1/status")[1]
        assert [f["path"] for f in status["folders"]] == [str(hot)] and status["folders"][0]["watching"]
        _jpeg(tmp_path / "dropped.jpg", seed=5)
        shutil.move(tmp_path / "dropped.jpg", hot / "dropped.jpg")
        other = _jpeg(tmp_path / "submitted.jpg", seed=6)
        r = d.cli("submit", str(other), "--wait")
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: (hot / "dropped-truepix-x2.tif").exists(), timeout=60), d.output()
    finally:
        d.stop()
    assert (tmp_path / "submitted-truepix-x2.tif").exists()


def test_one_daemon_per_user_and_a_busy_port_is_a_clear_error(tmp_path):
    d = DaemonProc(tmp_path, config="folders = []\n").start()
    try:
        r = subprocess.run([*_python_cli(), "run", "--no-tray", "--port", "0"], env=d.env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and f"already running (pid {d.proc.pid}, port {d.port})" in r.stderr
    finally:
        d.stop()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([*_python_cli(), "run", "--no-tray", "--port", str(port)], env=d.env,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"127.0.0.1:{port} is already in use" in r.stderr


def _python_cli():
    import sys

    return [sys.executable, "-m", "truepix.cli"]


def test_missing_hot_folder_is_a_warning_and_is_watched_once_it_appears(tmp_path):
    later = tmp_path / "later"
    d = DaemonProc(tmp_path / "d", config=_hot(later)).start()
    try:
        assert d.alive()
        assert wait_until(lambda: str(later) in d.output() and "warn" in d.log_file.read_text().lower(), 10)
        later.mkdir()
        _jpeg(later / "x.jpg")
        assert wait_until(lambda: (later / "x-truepix-x2.tif").exists(), timeout=60), d.output()
    finally:
        d.stop()


def test_config_errors_stop_the_start_with_file_and_key(tmp_path):
    d = DaemonProc(tmp_path, config='[[folders]]\npath = "relative/dir"\n')
    r = d.cli("run", "--no-tray")
    assert r.returncode == 2 and "config.toml" in r.stderr and "folders[0].path" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a small tmpfs")
def test_a_really_full_disk_fails_the_job_and_leaves_nothing(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        src = _jpeg(tmp_path / "wide.jpg", 400, 600)  # a 16-bit TIFF of 800x1200 does not fit in 1 MB
        d = DaemonProc(tmp_path / "d", config="folders = []\n").start()
        try:
            body = d.request("POST", "/v1/jobs", {"paths": [str(src)], "output_dir": str(small)})[1]
            (job,) = d.wait_jobs([body["jobs"][0]["id"]])
            assert d.alive()
        finally:
            d.stop()
        assert job["state"] == "failed" and "disk full" in job["error"], job
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)])


def test_log_lines_per_job(tmp_path):
    photos = tmp_path / "p"
    photos.mkdir()
    d = DaemonProc(tmp_path / "d", config="folders = []\n").start()
    try:
        ids = [d.request("POST", "/v1/jobs", {"paths": [str(_jpeg(photos / f"{n}.jpg", seed=i))]})[1]["jobs"][0]["id"]
               for i, n in enumerate(("one", "two"))]
        d.wait_jobs(ids)
    finally:
        d.stop()
    lines = d.log_file.read_text().splitlines()
    done = [ln for ln in lines if " done: " in ln]
    assert len(done) == 2 and all("recipe upscale" in ln and ln.rstrip().endswith(" s)") for ln in done)
    assert any(f"job {ids[0]} start: one.jpg" in ln for ln in lines)
    assert not (d.root / "state" / "truepix" / "daemon.json").exists()  # removed at a clean stop


def test_a_crash_is_traced_and_blamed_on_the_job_a_kill_is_not(tmp_path):
    """faulthandler writes a fatal signal's trace to the crash log; the next start keeps it and counts
    the death against the job being inferred as a crash; a kill -9 leaves no trace and counts as a kill."""
    import sqlite3

    photos = tmp_path / "photos"
    photos.mkdir()
    src = _jpeg(photos / "big.jpg", 1200, 1600)
    d = DaemonProc(tmp_path / "d", config="folders = []\n[engine]\nthreads = 1\ntile = 128\n").start()
    db_path = d.root / "data" / "truepix" / "queue.sqlite3"
    try:
        job_id = d.request("POST", "/v1/jobs", {"paths": [str(src)]})[1]["jobs"][0]["id"]
        for death in (d.kill9, lambda: d.stop(signal.SIGSEGV)):
            assert wait_until(lambda: ((d.request("GET", "/v1/status")[1]["current"] or {}).get("progress") or 0) > 0.1)
            death()
            d.start()
        db = sqlite3.connect(db_path)
        crashes, kills = db.execute("SELECT crashes, kills FROM jobs WHERE id = ?", (job_id,)).fetchone()
        db.close()
        traces = list(d.log_file.parent.glob("crash-*.log"))
    finally:
        d.stop()
    assert (kills, crashes) == (1, 1)
    assert len(traces) == 1 and "Fatal Python error: Segmentation fault" in traces[0].read_text()
