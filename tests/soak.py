#!/usr/bin/env python3
"""Soak test: a real ``truepix run`` killed with SIGKILL at random moments, round after round.

    python tests/soak.py --rounds 30 --seed 1 [--json FILE] [--keep] [--workdir DIR]

Each round submits a few new photos — small (256-512 px) and large (768-1200 px) JPEGs and PNGs,
some through the API (``POST /v1/jobs``), some dropped (renamed) into a hot folder — then kills the
daemon with ``kill -9`` at one of these moments, drawn with the seed:

- ``random``: after a random wait (``--min-wait`` .. ``--max-wait`` s, 0.2-3 by default);
- ``after-submit``: the instant the last submit returned (or the file landed in the hot folder);
  after the restart a client that never saw the answer submits the API files again;
- ``writing``: as soon as ``/v1/status`` says the current job is writing its output;
- ``temp-file``: as soon as an output's temp file (``.NAME.truepix-tmp-XXXXXXXX``) shows in a folder;
- ``after-done``: as soon as ``/v1/status`` counts one more job done (the next one is starting);
- ``startup``: after a random wait, then once more 0-0.3 s after the restart (recovery, re-decode).

and starts it again.  After the last round the daemon runs with no kills until every photo is
settled; jobs the crash rule failed (``MAX_CRASHES`` deaths during their own inference) are then
retried once, as a user would with ``truepix retry``; the daemon is stopped with SIGTERM and its
queue file, the photo folders and the originals are checked:

- lost: a photo with no job, a job never settled, or a done job without its output on disk;
- duplicated: more than one done job for a photo (same content and recipe) or more than one output;
- failed / cancelled: counted, with their error texts (a figure, not an error of the soak);
- partial: an output that does not decode fully or is not twice the original's size (checked at the
  end, and every output the moment it appears, by a watcher thread);
- temp files: any name containing ``truepix-tmp`` left in the folders;
- originals changed: sha256 before and after;
- stray: an output or job that belongs to no photo.

Exit status 1 when anything is lost, duplicated, partial, changed or stray, temp files remain, the
daemon failed to start or did not stop cleanly; failures alone do not fail the soak (``--no-retry``
leaves the crash rule's failures failed); 2 when the soak itself could not go on.  The work folder
(photos, the daemon's HOME, its log) is kept with ``--keep`` or when the soak fails.

The daemon is ``python -m truepix.cli`` as this interpreter imports it, ``PYTHONPATH`` included: to
soak a given commit while the working tree changes, ``git archive COMMIT daemon | tar -x -C DIR``
and run with ``PYTHONPATH=DIR/daemon``.  The JSON records which code ran and whether it changed.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from daemon_proc import DaemonProc  # noqa: E402

MODES = ("random", "after-submit", "writing", "temp-file", "after-done", "startup")
MODE_WEIGHTS = (0.35, 0.15, 0.15, 0.15, 0.1, 0.1)
SUFFIX = "-truepix-x2"  # the upscale recipe's (recipes.BUILTIN)
TEMP_MARK = "truepix-tmp"
CRASH_RULE = "the daemon stopped while processing this file"


def photo_like(h: int, w: int, seed: int = 0):
    """A (h, w, 3) float image: conftest's edges/gradients/texture with a per-photo phase and noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    fx, fy, phase = rng.uniform(5, 12), rng.uniform(7, 16), rng.uniform(0, 6.3)
    img = np.stack([
        0.5 + 0.4 * np.sin(x / fx + phase) * np.cos(y / fy),
        (x / w) * 0.8 + 0.1,
        ((x // 16 + y // 16) % 2) * 0.6 + 0.2,
    ], axis=-1)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


@dataclass
class Photo:
    name: str           # file name in its folder
    route: str          # api | hot
    size: str           # small | large
    width: int
    height: int
    sha256: str
    round: int
    folder: str = ""    # absolute folder, filled in at creation
    job_ids: list[int] = field(default_factory=list)  # ids the API answered (api route)

    @property
    def path(self) -> pathlib.Path:
        return pathlib.Path(self.folder) / self.name

    @property
    def stem(self) -> str:
        return pathlib.Path(self.name).stem


@dataclass
class Kill:
    round: int
    mode: str
    after_s: float               # seconds from the round's last submit (or the restart) to the kill
    phase: str | None = None     # what /v1/status said just before (None: not asked, or idle)
    job: int | None = None
    progress: float | None = None
    running: list[str] = field(default_factory=list)  # "ID:inferring|writing|decoded-ahead" from the queue file
    temp_files: int = 0          # temp files the dead daemon left in the folders (the next start removes them)


class OutputWatch(threading.Thread):
    """Every output visible in the folders must be whole: each new one is decoded the moment it is seen."""

    def __init__(self, folders: list[pathlib.Path]) -> None:
        super().__init__(daemon=True, name="soak-output-watch")
        self.folders, self.stop_event, self.seen, self.problems = folders, threading.Event(), set(), []

    def run(self) -> None:
        import tifffile

        while not self.stop_event.is_set():
            for folder in self.folders:
                for p in folder.glob(f"*{SUFFIX}*.tif"):
                    if p in self.seen:
                        continue
                    try:
                        tifffile.imread(p)
                        self.seen.add(p)
                    except FileNotFoundError:
                        pass
                    except Exception as e:  # noqa: BLE001 -- any decode error is the finding
                        if p.exists():
                            self.seen.add(p)
                            self.problems.append(f"{p.name}: unreadable when it appeared: {e}")
            self.stop_event.wait(0.05)


class Soak:
    def __init__(self, work: pathlib.Path, *, rounds: int, seed: int, min_wait: float = 0.2, max_wait: float = 3.0,
                 per_round: tuple[int, int] = (1, 3), large_share: float = 0.3, settle: float = 0.5,
                 drain_timeout: float = 3600.0, retry_crashed: bool = True, log=print) -> None:
        self.work = work
        self.rounds, self.seed = rounds, seed
        self.min_wait, self.max_wait = min_wait, max_wait
        self.per_round, self.large_share, self.settle = per_round, large_share, settle
        self.drain_timeout, self.retry_crashed = drain_timeout, retry_crashed
        self.say = log
        self.rng = random.Random(seed)
        self.api_dir = work / "photos" / "api"
        self.hot_dir = work / "photos" / "hot"
        self.staging = work / "staging"
        for d in (self.api_dir, self.hot_dir, self.staging):
            d.mkdir(parents=True, exist_ok=True)
        config = (f'[[folders]]\npath = "{self.hot_dir}"\nrecipe = "upscale"\nsettle = {settle}\n'
                  "[engine]\nthreads = 1\ntile = 128\n")
        self.d = DaemonProc(work / "daemon", config=config)
        self.photos: list[Photo] = []
        self.kills: list[Kill] = []
        self.resubmits = {"sent": 0, "duplicate": 0, "same_id": 0}
        self.events: list[str] = []  # daemon start failures and the like: each one fails the soak
        self.retried: list[dict] = []
        self.before_retry: list[dict] | None = None
        self.done_in_rounds = 0
        self.counter = 0

    # -- photos --------------------------------------------------------------------------------------

    def make_photo(self, rnd: int) -> Photo:
        import numpy as np
        from PIL import Image

        self.counter += 1
        large = self.rng.random() < self.large_share
        w = self.rng.randrange(768, 1201, 8) if large else self.rng.randrange(256, 513, 8)
        h = int(w * self.rng.choice((0.66, 0.75, 1.0, 1.33)) // 8 * 8)
        ext = "png" if self.rng.random() < 0.3 else "jpg"
        route = "hot" if self.rng.random() < 0.5 else "api"
        name = f"r{rnd:02d}-p{self.counter:03d}-{'large' if large else 'small'}.{ext}"
        pixels = np.round(photo_like(h, w, seed=self.seed * 100003 + self.counter) * 255).astype(np.uint8)
        made = self.staging / name
        if ext == "jpg":
            Image.fromarray(pixels).save(made, quality=92)
        else:
            Image.fromarray(pixels).save(made)
        folder = self.hot_dir if route == "hot" else self.api_dir
        photo = Photo(name, route, "large" if large else "small", w, h, sha256(made), rnd, str(folder))
        if route == "api":
            os.rename(made, photo.path)  # in place before it is submitted
        return photo

    def submit(self, photo: Photo) -> None:
        if photo.route == "hot":
            os.rename(self.staging / photo.name, photo.path)  # lands whole, as a file manager's move
        else:
            code, body = self.d.request("POST", "/v1/jobs", {"paths": [str(photo.path)]})
            if code not in (200, 201):
                raise AssertionError(f"submit {photo.name}: HTTP {code} {body}")
            photo.job_ids.append(body["jobs"][0]["id"])
        self.photos.append(photo)

    # -- the daemon ------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.d.start()
        except AssertionError as e:
            self.events.append(f"daemon did not start: {str(e).splitlines()[0]}")
            self.say(f"!! {self.events[-1]}; trying once more")
            self.d.start()

    def status(self) -> dict:
        return self.d.request("GET", "/v1/status")[1]

    def kill(self, rnd: int, mode: str, t0: float, *, ask: bool = True) -> Kill:
        k = Kill(rnd, mode, 0.0)
        if ask:
            try:
                cur = self.status().get("current")
            except OSError:
                cur = None
            if cur:
                k.phase, k.job, k.progress = cur["phase"], cur["id"], cur["progress"]
        k.after_s = round(time.monotonic() - t0, 3)
        self.d.kill9()
        # What the queue file says the dead daemon was doing: inferring (a crash counted against that
        # job), writing (its output path planned), or only holding a job decoded ahead.
        for r in self.rows():
            if r["state"] == "running":
                what = "writing" if r["planned"] else "inferring" if r["inferring"] else "decoded-ahead"
                k.running.append(f"{r['id']}:{what}")
        k.temp_files = sum(TEMP_MARK in q.name for d in (self.api_dir, self.hot_dir) for q in d.iterdir())
        self.kills.append(k)
        return k

    def rows(self) -> list[dict]:
        """Every row of the queue file, read-only (no checkpoint: the next daemon finds it as it was left)."""
        db = sqlite3.connect(f"file:{self.d.root / 'data' / 'truepix' / 'queue.sqlite3'}?mode=ro", uri=True)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]
        finally:
            db.close()

    def wait_writing(self, limit: float = 20.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                cur = self.status().get("current")
            except OSError:
                cur = None
            if cur and cur.get("phase") == "writing":
                return True
            time.sleep(0.003)
        return False

    def wait_temp(self, limit: float = 30.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for folder in (self.api_dir, self.hot_dir):
                with os.scandir(folder) as it:
                    if any(TEMP_MARK in e.name for e in it):
                        return True
            time.sleep(0.002)
        return False

    def wait_done(self, base: int, limit: float = 30.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                if self.status()["counts"]["done"] > base:
                    return True
            except OSError:
                pass
            time.sleep(0.003)
        return False

    def all_jobs(self) -> list[dict]:
        jobs, before = [], None
        while True:
            q = "/v1/jobs?limit=1000" + (f"&before={before}" if before else "")
            page = self.d.request("GET", q)[1]["jobs"]
            jobs += page
            if len(page) < 1000:
                return jobs
            before = page[-1]["id"]

    # -- the soak ------------------------------------------------------------------------------------

    def run_rounds(self) -> None:
        self.start()
        for rnd in range(1, self.rounds + 1):
            mode = self.rng.choices(MODES, MODE_WEIGHTS)[0]
            wait = round(self.rng.uniform(self.min_wait, self.max_wait), 3)
            batch = [self.make_photo(rnd) for _ in range(self.rng.randint(*self.per_round))]
            base = self.status()["counts"]["done"]
            for photo in batch:
                self.submit(photo)
            t0 = time.monotonic()
            if mode == "after-submit":
                k = self.kill(rnd, mode, t0, ask=False)
            elif mode == "writing":
                hit = self.wait_writing()
                k = self.kill(rnd, mode if hit else "writing-missed", t0)
            elif mode == "temp-file":
                hit = self.wait_temp()
                k = self.kill(rnd, mode if hit else "temp-file-missed", t0, ask=False)
            elif mode == "after-done":
                hit = self.wait_done(base)
                k = self.kill(rnd, mode if hit else "after-done-missed", t0, ask=False)
            else:
                time.sleep(wait)
                k = self.kill(rnd, mode, t0)
            self.start()
            if mode == "startup":
                t1 = time.monotonic()
                time.sleep(self.rng.uniform(0.0, 0.3))
                self.kill(rnd, "startup-again", t1, ask=False)
                self.start()
            if mode == "after-submit":  # the client never saw the answer: it sends the API files again
                for photo in (p for p in batch if p.route == "api"):
                    code, body = self.d.request("POST", "/v1/jobs", {"paths": [str(photo.path)]})
                    job = body["jobs"][0]
                    self.resubmits["sent"] += 1
                    self.resubmits["duplicate"] += bool(job["duplicate"])
                    self.resubmits["same_id"] += job["id"] == photo.job_ids[0]
                    photo.job_ids.append(job["id"])
            where = f"status: {k.phase} job {k.job} at {k.progress:.0%}" if k.phase else "status: idle/not asked"
            where += f"; queue file: running {', '.join(k.running) or 'none'}"
            if k.temp_files:
                where += f"; {k.temp_files} temp file(s) left"
            self.say(f"round {rnd:2d}/{self.rounds}: {len(batch)} new "
                     f"({', '.join(f'{p.size} {p.route}' for p in batch)}), kill -9 [{k.mode}] "
                     f"after {k.after_s:.2f} s: {where}")

    def settled(self, jobs: list[dict]) -> tuple[bool, list[Photo]]:
        by_sha: dict[str, list[dict]] = {}
        for j in jobs:
            by_sha.setdefault(j["sha256"], []).append(j)
        waiting = [p for p in self.photos
                   if not any(j["state"] in ("done", "failed", "cancelled") for j in by_sha.get(p.sha256, []))]
        busy = any(j["state"] in ("queued", "running") for j in jobs)
        return not waiting and not busy, waiting

    def drain(self) -> None:
        """No more kills: let the daemon settle every photo (then retry the crash rule's failures once)."""
        deadline = time.monotonic() + self.drain_timeout
        idle_since = None
        while time.monotonic() < deadline:
            jobs = self.all_jobs()
            done, waiting = self.settled(jobs)
            if done:
                break
            busy = any(j["state"] in ("queued", "running") for j in jobs)
            if busy:
                idle_since = None
            else:  # photos without a job and nothing queued: the hot folder has settle + a rescan to find them
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > self.settle + 30:
                    self.say(f"!! queue idle for 30 s and {len(waiting)} photo(s) have no settled job: "
                             + ", ".join(p.name for p in waiting))
                    break
            time.sleep(0.5)
        else:
            self.say("!! drain timed out")
        self.before_retry = self.rows()  # retry resets attempts and crashes: keep the kill rounds' figures
        if not self.retry_crashed:
            return
        crashed = [j for j in self.all_jobs() if j["state"] == "failed" and CRASH_RULE in (j["error"] or "")]
        for j in crashed:
            code, body = self.d.request("POST", f"/v1/jobs/{j['id']}/retry")
            self.retried.append({"id": j["id"], "source": pathlib.Path(j["source"]).name, "error": j["error"],
                                 "http": code})
        if crashed:
            self.say(f"retrying {len(crashed)} job(s) the crash rule failed: {[j['id'] for j in crashed]}")
            after = self.d.wait_jobs([j["id"] for j in crashed], timeout=self.drain_timeout)
            for j, r in zip(after, self.retried, strict=True):
                r["after_retry"] = j["state"]

    # -- the verdict ---------------------------------------------------------------------------------

    def check(self) -> dict:
        import tifffile

        rows = self.rows()
        by_sha: dict[str, list[dict]] = {}
        for r in rows:
            by_sha.setdefault(r["sha256"], []).append(r)
        known = {p.sha256 for p in self.photos}
        problems: dict[str, list[str]] = {k: [] for k in ("lost", "duplicated", "partial", "changed", "temp", "stray")}
        failed, cancelled = [], []
        owned_outputs: set[pathlib.Path] = set()
        for p in self.photos:
            jobs = by_sha.get(p.sha256, [])
            out_re = re.compile(rf"^{re.escape(p.stem)}{SUFFIX}(-\d+)?\.tif$")
            outs = sorted(q for q in pathlib.Path(p.folder).iterdir() if out_re.match(q.name))
            owned_outputs.update(outs)
            done = [j for j in jobs if j["state"] == "done"]
            ids = [j["id"] for j in jobs]
            if not jobs:
                problems["lost"].append(f"{p.name}: no job at all")
            elif not any(j["state"] in ("done", "failed", "cancelled") for j in jobs):
                problems["lost"].append(f"{p.name}: job(s) {ids} never settled ({[j['state'] for j in jobs]})")
            for j in done:
                listed = json.loads(j["outputs"])
                if not listed or not all(pathlib.Path(o).is_file() for o in listed):
                    problems["lost"].append(f"{p.name}: job {j['id']} done but its output {listed} is missing")
            if len(done) > 1:
                problems["duplicated"].append(f"{p.name}: {len(done)} done jobs {[j['id'] for j in done]}")
            if len(outs) > 1:
                problems["duplicated"].append(f"{p.name}: {len(outs)} outputs {[q.name for q in outs]}")
            if done and not outs:
                problems["lost"].append(f"{p.name}: done (job {done[0]['id']}) but no output file")
            if not done:
                for j in jobs:
                    if j["state"] == "failed":
                        failed.append({"photo": p.name, "size": p.size, "job": j["id"],
                                       "crashes": j["crashes"] + j.get("kills", 0),
                                       "attempts": j["attempts"], "error": j["error"]})
            cancelled += [{"photo": p.name, "job": j["id"], "error": j["error"]} for j in jobs
                          if j["state"] == "cancelled"]
            for q in outs:
                try:
                    px = tifffile.imread(q)
                    if px.shape != (2 * p.height, 2 * p.width, 3) or px.dtype.name != "uint16":
                        problems["partial"].append(f"{q.name}: {px.shape} {px.dtype}, expected "
                                                   f"{(2 * p.height, 2 * p.width, 3)} uint16")
                except Exception as e:  # noqa: BLE001
                    problems["partial"].append(f"{q.name}: does not decode: {e}")
            if not p.path.is_file():
                problems["changed"].append(f"{p.name}: original is gone")
            elif sha256(p.path) != p.sha256:
                problems["changed"].append(f"{p.name}: original's sha256 changed")
        for folder in (self.api_dir, self.hot_dir, self.staging):
            for q in folder.rglob("*"):
                if TEMP_MARK in q.name:
                    problems["temp"].append(str(q.relative_to(self.work)))
                elif SUFFIX in q.name and q not in owned_outputs:
                    problems["stray"].append(f"output of no photo: {q.relative_to(self.work)}")
        for r in rows:
            if r["sha256"] not in known:
                problems["stray"].append(f"job {r['id']} ({pathlib.Path(r['source']).name}, {r['state']}): "
                                         "content of no photo")
        problems["partial"] += self.watch.problems
        log_text = self.d.log_file.read_text(errors="replace") if self.d.log_file.exists() else ""
        for rotated in sorted(self.d.log_file.parent.glob("truepix.log.*")):
            log_text = rotated.read_text(errors="replace") + log_text
        unexpected = [ln for ln in log_text.splitlines() if "Traceback" in ln or "unexpected error" in ln]
        before = self.before_retry or rows
        reran = [r for r in before if r["attempts"] > 1]
        sizes = {"small": sum(p.size == "small" for p in self.photos),
                 "large": sum(p.size == "large" for p in self.photos)}
        routes = {"api": sum(p.route == "api" for p in self.photos), "hot": sum(p.route == "hot" for p in self.photos)}
        kill_modes: dict[str, int] = {}
        kill_phases: dict[str, int] = {}
        for k in self.kills:
            kill_modes[k.mode] = kill_modes.get(k.mode, 0) + 1
            doing = {r.split(":")[1] for r in k.running}
            what = next((w for w in ("writing", "inferring", "decoded-ahead") if w in doing), "idle")
            if "decoded-ahead" in doing and what != "decoded-ahead":
                what += "+decoded-ahead"
            kill_phases[what] = kill_phases.get(what, 0) + 1
        return {
            "photos": len(self.photos), "sizes": sizes, "routes": routes,
            "jobs": len(rows), "done": sum(r["state"] == "done" for r in rows), "done_in_rounds": self.done_in_rounds,
            "temp_files_left_by_kills": sum(k.temp_files for k in self.kills),
            "kills_that_left_temp_files": sum(k.temp_files > 0 for k in self.kills),
            "kills": len(self.kills), "kill_modes": kill_modes, "kill_phases": kill_phases,
            "jobs_run_more_than_once": len(reran),
            "daemon_deaths_during_inference": sum(r["crashes"] + r.get("kills", 0) for r in before),
            "max_attempts": max((r["attempts"] for r in before), default=0),
            "resubmits": self.resubmits,
            "crash_rule_failures_retried": self.retried,
            "failed": failed, "cancelled": cancelled,
            "problems": problems,
            "unexpected_log_lines": unexpected[:20],
            "counts": {k: len(v) for k, v in problems.items()}
                      | {"failed": len(failed), "cancelled": len(cancelled), "unexpected_log_lines": len(unexpected),
                         "start_failures": len(self.events)},
            "events": self.events,
        }

    def run(self) -> dict:
        t0 = time.monotonic()
        self.watch = OutputWatch([self.api_dir, self.hot_dir])
        self.watch.start()
        try:
            self.run_rounds()
            t1 = time.monotonic()
            self.done_in_rounds = sum(r["state"] == "done" for r in self.rows())
            self.say(f"{self.rounds} rounds in {t1 - t0:.0f} s; draining with no kills ...")
            self.drain()
            health = self.d.request("GET", "/v1/health")
            self.health = {"http": health[0], **health[1]}
            rc = self.d.stop(signal.SIGTERM, timeout=120)
            if rc != 0:
                self.events.append(f"daemon exited with {rc} at SIGTERM")
            if health[0] != 200:
                self.events.append(f"/v1/health answered {health[0]}: {health[1].get('problems')}")
        finally:
            if self.d.alive():
                self.d.kill9()
            self.watch.stop_event.set()
            self.watch.join()
        t2 = time.monotonic()
        result = self.check()
        result["seconds"] = {"rounds": round(t1 - t0, 1), "drain": round(t2 - t1, 1), "total": round(t2 - t0, 1)}
        result["health_at_end"] = self.health
        result["kill_log"] = [asdict(k) for k in self.kills]
        result["photo_list"] = [{k: v for k, v in asdict(p).items() if k != "folder"} for p in self.photos]
        bad = [k for k in ("lost", "duplicated", "partial", "changed", "temp", "stray") if result["counts"][k]]
        result["ok"] = not bad and not self.events
        return result


def daemon_code() -> tuple[str, str]:
    """Where the daemon's ``truepix`` package is imported from (``PYTHONPATH`` included, as the daemon
    sees it) and a sha256 over its .py files: a run reports which code it ran, and whether that
    changed while it ran (every restart imports it again)."""
    where = subprocess.run([sys.executable, "-c", "import os, truepix; print(os.path.dirname(truepix.__file__))"],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    h = hashlib.sha256()
    for f in sorted(pathlib.Path(where).rglob("*.py")) if where else ():
        h.update(str(f.relative_to(where)).encode() + b"\0" + f.read_bytes())
    return where, h.hexdigest()[:16]


def machine(code_before: tuple[str, str]) -> dict:
    repo = HERE.parent

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    where, digest = daemon_code()
    in_tree = pathlib.Path(where).resolve().is_relative_to(repo.resolve()) if where else False
    if in_tree:
        tree = "working tree, modified from HEAD" if git("status", "--porcelain", "--", "daemon") else "HEAD"
    else:
        tree = f"outside the working tree: {where}"
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "commit": git("rev-parse", "--short", "HEAD"), "daemon_code": tree, "daemon_code_sha256": digest,
            "daemon_code_changed_during_run": digest != code_before[1]}


def summary(result: dict) -> str:
    c = result["counts"]
    s = result["seconds"]
    lines = [
        f"{'photos submitted':32} {result['photos']:6}   ({result['sizes']['small']} small, "
        f"{result['sizes']['large']} large; {result['routes']['api']} via API, {result['routes']['hot']} hot folder)",
        f"{'kill -9':32} {result['kills']:6}   "
        + ", ".join(f"{k} {v}" for k, v in sorted(result["kill_modes"].items())),
        f"{'  ... the queue file says':32} {'':6}   "
        + ", ".join(f"{k} {v}" for k, v in sorted(result["kill_phases"].items())),
        f"{'jobs in the queue':32} {result['jobs']:6}   ({result['done']} done, {result['done_in_rounds']} of them "
        "during the kill rounds)",
        f"{'temp files left by the kills':32} {result['temp_files_left_by_kills']:6}   "
        f"(by {result['kills_that_left_temp_files']} kills; recovery removes them)",
        f"{'jobs run more than once':32} {result['jobs_run_more_than_once']:6}   "
        f"({result['daemon_deaths_during_inference']} daemon deaths during a job's inference, "
        f"at most {result['max_attempts']} attempts)",
        f"{'API resubmits after a kill':32} {result['resubmits']['sent']:6}   "
        f"({result['resubmits']['duplicate']} answered duplicate, {result['resubmits']['same_id']} with the same job)",
        f"{'crash-rule failures retried':32} {len(result['crash_rule_failures_retried']):6}   "
        + ", ".join(f"job {r['id']} -> {r.get('after_retry')}" for r in result["crash_rule_failures_retried"]),
        f"{'lost':32} {c['lost']:6}",
        f"{'duplicated':32} {c['duplicated']:6}",
        f"{'failed (final)':32} {c['failed']:6}",
        f"{'cancelled':32} {c['cancelled']:6}",
        f"{'partial outputs':32} {c['partial']:6}",
        f"{'temp files left':32} {c['temp']:6}",
        f"{'originals changed':32} {c['changed']:6}",
        f"{'stray outputs/jobs':32} {c['stray']:6}",
        f"{'unexpected errors in the log':32} {c['unexpected_log_lines']:6}",
        f"{'daemon start/stop problems':32} {c['start_failures']:6}",
        f"{'wall time':32} {s['total']:6.0f} s ({s['rounds']:.0f} s of rounds, {s['drain']:.0f} s to drain)",
    ]
    for f in result["failed"]:
        lines.append(f"  failed: {f['photo']} (job {f['job']}, {f['crashes']} death(s) in its inference): {f['error']}")
    for r in result["crash_rule_failures_retried"]:
        lines.append(f"  crash rule: {r['source']} (job {r['id']}): {r['error']}")
    for kind, items in result["problems"].items():
        for item in items:
            lines.append(f"  {kind}: {item}")
    for ev in result["events"]:
        lines.append(f"  daemon: {ev}")
    for ln in result["unexpected_log_lines"]:
        lines.append(f"  log: {ln}")
    lines.append("SOAK OK" if result["ok"] else "SOAK FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-wait", type=float, default=0.2, help="shortest random wait before a kill (s)")
    ap.add_argument("--max-wait", type=float, default=3.0, help="longest random wait before a kill (s)")
    ap.add_argument("--json", type=pathlib.Path, help="write the figures here")
    ap.add_argument("--workdir", type=pathlib.Path, help="work folder (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder even when the soak passes")
    ap.add_argument("--no-retry", action="store_true", help="do not retry the crash rule's failures at the end")
    args = ap.parse_args(argv)
    work = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="truepix-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    code = daemon_code()
    soak = Soak(work, rounds=args.rounds, seed=args.seed, min_wait=args.min_wait, max_wait=args.max_wait,
                retry_crashed=not args.no_retry, log=lambda s: print(s, flush=True))
    print(f"soak: {args.rounds} rounds, seed {args.seed}, work folder {work}", flush=True)
    try:
        result = soak.run()
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"SOAK ABORTED; work folder kept: {work} (daemon log: {soak.d.log_file}, output: {soak.d.log})")
        return 2
    result = {"command": "python tests/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": started.isoformat(timespec="seconds"), "rounds": args.rounds, "seed": args.seed,
              "wait_s": [args.min_wait, args.max_wait], "machine": machine(code), **result}
    print(summary(result))
    if result["machine"]["daemon_code_changed_during_run"]:
        print(f"warning: the daemon's code ({code[0]}) changed while the soak ran; its figures mix versions")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if result["ok"] and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work} (daemon log: {soak.d.log_file}, output: {soak.d.log})")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
