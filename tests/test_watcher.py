"""The hot-folder watcher, with real files in tmp_path and real watchdog observers.

No test guesses how long the watcher may take: "nothing more came" is asserted after ``quiet`` (a
sentinel file handed over after everything owed before it), rescans are counted (``rescans``), and a
test whose own writes must come faster than a settle time measures them and is skipped, saying so,
when a loaded machine held it up longer (the watcher is then right to hand the file over).
"""

from __future__ import annotations

import itertools
import logging
import os
import pathlib
import shutil
import threading
import time
from collections import Counter

import pytest
from watchdog.observers.polling import PollingObserver

from conftest import wait_until
from truepix.config import FolderSpec
from truepix.service.watcher import FolderWatcher

SETTLE = 0.3
SENTINEL = "zz-sentinel-"  # files ``quiet`` writes; the Recorder keeps them apart
_sentinels = itertools.count()

# watchdog's recursive inotify watch sometimes re-adds a new subfolder's watch and says so; harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


class Recorder:
    """An ``on_ready`` that remembers its calls (thread-safe); ``fail`` makes the first calls raise.
    ``quiet``'s sentinels go to ``sentinels`` only."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[pathlib.Path, FolderSpec]] = []
        self.sizes: dict[pathlib.Path, int] = {}
        self.first: dict[pathlib.Path, float] = {}  # time.monotonic() of each path's first handover
        self.sentinels: set[pathlib.Path] = set()
        self.threads: set[str] = set()
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, path: pathlib.Path, spec: FolderSpec) -> None:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            if path.name.startswith(SENTINEL):
                self.sentinels.add(path)
                return
            if self.fail:
                self.fail -= 1
                raise RuntimeError(f"queue refused {path.name}")
            self.calls.append((path, spec))
            self.sizes[path] = path.stat().st_size
            self.first.setdefault(path, time.monotonic())

    def paths(self) -> Counter:
        with self.lock:
            return Counter(path for path, _ in self.calls)

    def names(self) -> set[str]:
        return {path.name for path in self.paths()}


def wait_for(predicate, timeout: float = 30.0) -> bool:
    """Poll until ``predicate`` holds; generous, as it costs nothing unless the test fails anyway."""
    return wait_until(predicate, timeout)


def quiet(rec: Recorder, *specs: FolderSpec) -> None:
    """Return once every handover owed for what happened so far has been made, so "nothing more came"
    can be asserted without guessing a delay: a sentinel file written now in each folder is handed over.

    The watcher notes files in the order their events arrive (and what a rescan before now found,
    before now), judges every noted file in each pass of its checker thread in that order, and so hands
    over a file noted earlier (not empty, and not changed since) in the same pass as the sentinel of its
    folder or an earlier one, before the sentinel."""
    written = []
    for spec in specs:
        path = spec.path / f"{SENTINEL}{next(_sentinels)}.jpg"
        path.write_bytes(b"sentinel")
        written.append(path)

    def arrived() -> bool:
        with rec.lock:
            return rec.sentinels >= set(written)

    assert wait_for(arrived), f"sentinel(s) {[p.name for p in written]} not handed over"


def held_up(took: float, limit: float, what: str) -> None:
    """Skip, saying so, when the test's own steps took ``took`` >= ``limit`` seconds (a heavily loaded
    machine): the watcher was then entitled to hand the file over, so the point cannot be checked."""
    if took >= limit:
        pytest.skip(f"{what} took {took:.2f} s, not under {limit:g} s: the machine is too loaded for this check")


@pytest.fixture
def rescans(monkeypatch):
    """``rescans()``: how many folder rescans (or re-checks) the watchers have finished so far."""
    done = [0]
    real = FolderWatcher._check_folder

    def counting(self, folder):
        real(self, folder)
        done[0] += 1

    monkeypatch.setattr(FolderWatcher, "_check_folder", counting)
    return lambda: done[0]


@pytest.fixture
def watch():
    """``watch(specs, **kwargs) -> (watcher, recorder)``, started; stopped at teardown."""
    started: list[FolderWatcher] = []

    def make(specs, recorder: Recorder | None = None, **kwargs):
        recorder = recorder or Recorder()
        kwargs.setdefault("check_interval", 0.05)
        watcher = FolderWatcher(specs, recorder, **kwargs)
        started.append(watcher)
        watcher.start()
        return watcher, recorder

    yield make
    for watcher in started:
        watcher.stop()


def folder(path: pathlib.Path, **kwargs) -> FolderSpec:
    path.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("settle", SETTLE)
    return FolderSpec(path, **kwargs)


def test_file_is_handed_over_only_after_it_settles(tmp_path, watch):
    spec = folder(tmp_path / "hot", settle=0.6)
    _, rec = watch([spec])
    target = spec.path / "IMG_0001.jpg"
    chunk = b"\xff" * 4096
    longest = 0.0  # the longest pause between two writes, as it really was
    with open(target, "wb") as f:
        last = time.monotonic()
        for _ in range(7):  # 0.15 s apart (well under settle), for longer than settle in all
            f.write(chunk)
            f.flush()
            now = time.monotonic()
            longest, last = max(longest, now - last), now
            if longest < spec.settle:  # else the writer itself paused for settle: a handover is then right
                assert rec.paths() == Counter(), "handed over while still being written"
            time.sleep(0.15)
    assert wait_for(lambda: rec.sizes.get(target) == 7 * len(chunk))
    quiet(rec, spec)
    held_up(longest, spec.settle, "a pause between two writes")
    assert rec.paths() == Counter({target: 1})
    assert rec.sizes[target] == 7 * len(chunk)
    assert rec.calls[0][1] is spec


def test_file_deleted_before_settling_is_never_handed_over(tmp_path, watch):
    spec = folder(tmp_path / "hot", settle=0.6)
    _, rec = watch([spec])
    t0 = time.monotonic()
    (spec.path / "gone.jpg").write_bytes(b"x" * 10)
    time.sleep(0.1)  # noted by the watcher meanwhile
    (spec.path / "gone.jpg").unlink()
    took = time.monotonic() - t0
    quiet(rec, spec)
    held_up(took, spec.settle, "writing and deleting the file")
    assert rec.names() == set()


IGNORED = [
    ".hidden.jpg", "._IMG_0002.jpg",                                     # hidden, AppleDouble
    "a.tmp", "b.jpg.part", "c.jpg.partial", "d.jpg.crdownload", "e.jpg.download", "~$f.jpg", "g.swp",
    "h.jpg.truepix-tmp-0a1b2c3d",                                         # temporaries
    "i.xmp", "IMG_0001.CR2.xmp", "j.pp3", "k.dop", "l.on1", "m.acr", "n.json", "o.txt", "noext",  # sidecars
    "IMG_1-truepix.tif", "IMG_1-truepix-1.tif", "IMG_1-truepix-12.JPG", "IMG_2-look.png",   # own outputs
    "IMG_1-truepix-x2.tif", "IMG_1-truepix-x4-camera-3.png", "IMG_1-truepix-develop.dng",  # ... by the built-ins
    "skip_me.jpg", "SKIP.CR2",                                            # the folder's ignore patterns
    "empty.jpg",                                   # no content: held back for EMPTY_SETTLE, see below
]
HANDED = ["IMG_0001.CR2", "photo.JPG", "IMG_1-truepixel.jpg", "IMG_1-truepix-x.jpg", "IMG_1-truepix.jpg.png"]


def _populate(root: pathlib.Path) -> None:
    for name in IGNORED + HANDED:
        (root / name).write_bytes(b"" if name == "empty.jpg" else b"data")
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.jpg").write_bytes(b"data")              # under a hidden subfolder
    (root / "album.jpg").mkdir()                                        # a directory is never a file
    (root / ".NAME.jpg.truepix-tmp-0011aabb").write_bytes(b"data")     # truepix's own temp output


@pytest.mark.parametrize("when", ["before start", "after start"])
def test_only_candidates_are_handed_over(tmp_path, watch, when, monkeypatch):
    from truepix.service import settle

    monkeypatch.setattr(settle, "EMPTY_SETTLE", 3600.0)  # empty.jpg: held back for the whole test
    spec = folder(tmp_path / "hot", recursive=True, ignore=("skip_*", "SKIP.*"))
    if when == "before start":
        _populate(spec.path)
    # the built-ins' suffixes and the old "-truepix" count without being named (recipes.OWN_SUFFIXES)
    _, rec = watch([spec], own_suffixes=("-look", ""))
    if when == "after start":
        _populate(spec.path)
    assert wait_for(lambda: rec.names() >= set(HANDED))
    quiet(rec, spec)
    assert rec.paths() == Counter({spec.path / name: 1 for name in HANDED})


def test_an_empty_file_is_handed_over_only_after_it_stayed_empty_longer(tmp_path, watch, monkeypatch):
    from truepix.service import settle

    empty_settle = 2.0
    monkeypatch.setattr(settle, "EMPTY_SETTLE", empty_settle)
    spec = folder(tmp_path / "hot", settle=0.3)
    _, rec = watch([spec])
    placeholder, stays = spec.path / "placeholder.jpg", spec.path / "stays-empty.jpg"
    t0 = time.monotonic()
    placeholder.write_bytes(b"")
    stays.write_bytes(b"")
    time.sleep(0.6)  # empty for longer than settle: a file with content would have been handed over
    placeholder.write_bytes(b"the copy arrives")
    filled = time.monotonic() - t0
    assert wait_for(lambda: {"placeholder.jpg", "stays-empty.jpg"} <= rec.names())
    # The empty one: handed over, empty, never before EMPTY_SETTLE (the watcher noted it after t0, and
    # its clock is this one).
    assert rec.first[stays] - t0 >= empty_settle and rec.sizes[stays] == 0
    quiet(rec, spec)
    # The filled one: once, with its content, before the empty one (it waited for settle, not EMPTY_SETTLE).
    held_up(filled + spec.settle, empty_settle, "filling the placeholder, plus settle,")
    assert rec.paths()[placeholder] == 1 and rec.sizes[placeholder] == len(b"the copy arrives")
    assert rec.first[placeholder] < rec.first[stays]


def test_renamed_and_moved_in_files_are_picked_up_under_their_new_name(tmp_path, watch):
    spec = folder(tmp_path / "hot")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _, rec = watch([spec])
    # The write-to-temp-then-rename pattern (browsers, rsync, truepix itself).
    tmp = spec.path / ".IMG_7.jpg.truepix-tmp-deadbeef"
    tmp.write_bytes(b"jpeg bytes")
    (outside / "moved.CR2").write_bytes(b"raw bytes")
    quiet(rec, spec)  # the temp name had its chance to be handed over: it must still be ignored
    assert rec.names() == set()
    os.replace(tmp, spec.path / "IMG_7.jpg")
    shutil.move(outside / "moved.CR2", spec.path / "moved.CR2")
    assert wait_for(lambda: rec.names() == {"IMG_7.jpg", "moved.CR2"})
    # A rename inside the folder is a new file under the new name.
    os.replace(spec.path / "IMG_7.jpg", spec.path / "renamed.jpg")
    assert wait_for(lambda: "renamed.jpg" in rec.names())
    quiet(rec, spec)
    assert sorted(rec.paths().values()) == [1, 1, 1]


def test_symlinks_to_files_count_symlinks_to_folders_do_not(tmp_path, watch):
    spec = folder(tmp_path / "hot", recursive=True)
    real = tmp_path / "real"
    real.mkdir()
    (real / "inside.jpg").write_bytes(b"data")
    (real / "target.jpg").write_bytes(b"data")
    (spec.path / "linked-folder").symlink_to(real, target_is_directory=True)
    (spec.path / "link.jpg").symlink_to(real / "target.jpg")
    (spec.path / "dangling.jpg").symlink_to(tmp_path / "nothing.jpg")
    (spec.path / "dirlink.jpg").symlink_to(real, target_is_directory=True)
    _, rec = watch([spec])
    assert wait_for(lambda: rec.names() == {"link.jpg"})
    (spec.path / "late-link.jpg").symlink_to(real / "target.jpg")
    (spec.path / "late-dirlink.jpg").symlink_to(real, target_is_directory=True)
    assert wait_for(lambda: "late-link.jpg" in rec.names())
    quiet(rec, spec)
    assert rec.paths() == Counter({spec.path / "link.jpg": 1, spec.path / "late-link.jpg": 1})


def test_a_burst_of_500_files_is_handed_over_exactly_once_each(tmp_path, watch):
    spec = folder(tmp_path / "hot")
    _, rec = watch([spec])
    expected = [spec.path / f"burst_{i:03d}.jpg" for i in range(500)]
    for i, path in enumerate(expected):
        path.write_bytes(i.to_bytes(2, "big"))
    assert wait_for(lambda: len(rec.paths()) == 500, timeout=60), f"only {len(rec.paths())} of 500"
    quiet(rec, spec)
    counts = rec.paths()
    assert set(counts) == set(expected)
    assert set(counts.values()) == {1}


def test_existing_files_once_and_again_only_after_a_change(tmp_path, watch, rescans):
    spec = folder(tmp_path / "hot")
    old = spec.path / "old.jpg"
    old.write_bytes(b"v1")
    os.utime(old, (time.time() - 86400, time.time() - 86400))  # present long before the daemon started
    _, rec = watch([spec], rescan_interval=0.2)
    assert wait_for(lambda: rec.paths()[old] == 1)
    n = rescans()
    assert wait_for(lambda: rescans() >= n + 4)  # several rescans: the unchanged file stays handed over
    quiet(rec, spec)
    assert rec.paths()[old] == 1
    old.write_bytes(b"version 2")  # content replaced
    assert wait_for(lambda: rec.paths()[old] == 2)
    assert rec.sizes[old] == len(b"version 2")
    st = old.stat()
    os.utime(old, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same size, new mtime
    assert wait_for(lambda: rec.paths()[old] == 3)
    os.chmod(old, 0o600)  # attributes only: size and mtime unchanged
    n = rescans()
    assert wait_for(lambda: rescans() >= n + 2)
    quiet(rec, spec)
    assert rec.paths()[old] == 3


class Refuser(Recorder):
    """Says it could not take the file (on_ready returns False), as app.py does for an unreadable one."""

    def __call__(self, path, spec):
        super().__call__(path, spec)
        return False


def test_a_file_the_caller_could_not_take_is_handed_over_again_when_its_permissions_change(tmp_path, watch,
                                                                                           rescans):
    """Issue 16.6: unreadable when it settled; readable after a chmod (which changes only ctime)."""
    spec = folder(tmp_path / "hot")
    locked = spec.path / "locked.jpg"
    locked.write_bytes(b"jpeg bytes")
    _, rec = watch([spec], Refuser(), rescan_interval=0.2)
    assert wait_for(lambda: rec.paths()[locked] == 1)
    n = rescans()
    assert wait_for(lambda: rescans() >= n + 3)  # rescans alone do not retry it (no log spam)
    quiet(rec, spec)
    assert rec.paths()[locked] == 1
    os.chmod(locked, 0o600)
    assert wait_for(lambda: rec.paths()[locked] == 2)


def test_recursive_watches_subfolders_flat_does_not(tmp_path, watch):
    deep = folder(tmp_path / "deep", recursive=True)
    flat = folder(tmp_path / "flat", recursive=False)
    for spec in (deep, flat):
        (spec.path / "sub").mkdir()
        (spec.path / "sub" / "before.jpg").write_bytes(b"data")
    _, rec = watch([deep, flat])
    for spec in (deep, flat):
        (spec.path / "top.jpg").write_bytes(b"data")
        (spec.path / "sub" / "after.jpg").write_bytes(b"data")
        (spec.path / "new" / "deeper").mkdir(parents=True)
        (spec.path / "new" / "deeper" / "fresh.jpg").write_bytes(b"data")
        (spec.path / ".hidden").mkdir()
        (spec.path / ".hidden" / "secret.jpg").write_bytes(b"data")
    expected = {deep.path / "top.jpg", deep.path / "sub" / "before.jpg", deep.path / "sub" / "after.jpg",
                deep.path / "new" / "deeper" / "fresh.jpg", flat.path / "top.jpg"}
    assert wait_for(lambda: set(rec.paths()) >= expected)
    quiet(rec, deep, flat)
    assert rec.paths() == Counter(dict.fromkeys(expected, 1))
    with rec.lock:
        assert all(spec is (deep if deep.path in path.parents else flat) for path, spec in rec.calls)


def test_nested_hot_folders_a_file_belongs_to_the_deepest(tmp_path, watch):
    outer = folder(tmp_path / "outer", recursive=True, recipe="upscale")
    inner = folder(tmp_path / "outer" / "denoise", recipe="denoise")
    _, rec = watch([outer, inner])
    (outer.path / "a.jpg").write_bytes(b"data")
    (inner.path / "b.jpg").write_bytes(b"data")
    assert wait_for(lambda: rec.names() == {"a.jpg", "b.jpg"})
    quiet(rec, outer, inner)
    with rec.lock:
        assert sorted((path.name, spec.recipe) for path, spec in rec.calls) == [("a.jpg", "upscale"),
                                                                               ("b.jpg", "denoise")]


def test_missing_folder_is_a_warning_and_is_watched_when_it_appears(tmp_path, watch, caplog):
    spec = FolderSpec(tmp_path / "later", settle=SETTLE)
    present = folder(tmp_path / "present")
    with caplog.at_level(logging.WARNING, logger="truepix.watcher"):
        watcher, rec = watch([spec, present], rescan_interval=0.2)
    warnings = [r for r in caplog.records if r.name == "truepix.watcher" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(spec.path) in warnings[0].getMessage() and "when it appears" in warnings[0].getMessage()
    assert watcher.watching() == [present.path]
    spec.path.mkdir()
    assert wait_for(lambda: watcher.watching() == [spec.path, present.path])
    (spec.path / "first.jpg").write_bytes(b"data")
    assert wait_for(lambda: "first.jpg" in rec.names())


def test_vanished_folder_is_watched_again_when_it_comes_back(tmp_path, watch, caplog):
    spec = folder(tmp_path / "hot")
    (spec.path / "a.jpg").write_bytes(b"data")
    watcher, rec = watch([spec], rescan_interval=0.2)
    assert wait_for(lambda: rec.names() == {"a.jpg"})
    with caplog.at_level(logging.WARNING, logger="truepix.watcher"):
        shutil.rmtree(spec.path)
        assert wait_for(lambda: any("disappeared" in r.getMessage() and str(spec.path) in r.getMessage()
                                    for r in caplog.records))
    assert watcher.watching() == []
    spec.path.mkdir()
    assert wait_for(lambda: watcher.watching() == [spec.path])
    time.sleep(0.1)
    (spec.path / "b.jpg").write_bytes(b"data")
    assert wait_for(lambda: "b.jpg" in rec.names())
    # Replaced between two rescans (the native watch ends with the old folder): still watched afterwards.
    shutil.rmtree(spec.path)
    spec.path.mkdir()
    (spec.path / "c.jpg").write_bytes(b"data")
    assert wait_for(lambda: "c.jpg" in rec.names())
    assert wait_for(lambda: watcher.watching() == [spec.path])
    (spec.path / "d.jpg").write_bytes(b"data")
    assert wait_for(lambda: "d.jpg" in rec.names())
    assert set(rec.paths().values()) == {1}


def test_polling_folder(tmp_path, watch):
    spec = folder(tmp_path / "share", polling=True)
    (spec.path / "existing.jpg").write_bytes(b"data")
    watcher, rec = watch([spec], rescan_interval=3600)  # no rescan: the pickups below are the polling observer's
    assert isinstance(watcher._folders[0].observer, PollingObserver)
    assert wait_for(lambda: rec.names() == {"existing.jpg"})
    (spec.path / "new.nef").write_bytes(b"data")
    (spec.path / "new.nef.xmp").write_bytes(b"data")
    assert wait_for(lambda: "new.nef" in rec.names())
    quiet(rec, spec)
    assert rec.paths() == Counter({spec.path / "existing.jpg": 1, spec.path / "new.nef": 1})


def test_on_ready_raising_is_logged_and_retried_at_the_next_rescan(tmp_path, watch, caplog, rescans):
    spec = folder(tmp_path / "hot")
    (spec.path / "a.jpg").write_bytes(b"data")
    with caplog.at_level(logging.ERROR, logger="truepix.watcher"):
        watcher, rec = watch([spec], Recorder(fail=1), rescan_interval=0.5)
        assert wait_for(lambda: any(r.exc_info for r in caplog.records))
    assert "a.jpg" in caplog.records[0].getMessage()
    assert isinstance(caplog.records[0].exc_info[1], RuntimeError)
    (spec.path / "b.jpg").write_bytes(b"data")  # the watcher carries on
    assert wait_for(lambda: rec.names() == {"a.jpg", "b.jpg"})
    n = rescans()
    assert wait_for(lambda: rescans() >= n + 1)  # the next rescan does not hand a.jpg over again
    quiet(rec, spec)
    assert set(rec.paths().values()) == {1}


def test_on_ready_runs_on_the_checker_thread_without_the_lock(tmp_path, watch):
    spec = folder(tmp_path / "hot")
    seen: list[bool] = []

    class Reentrant(Recorder):
        def __call__(self, path, spec):
            # Another thread asking the watcher something must not wait for this callback.
            asker = threading.Thread(target=watcher.watching)
            asker.start()
            asker.join(2)
            seen.append(not asker.is_alive())
            super().__call__(path, spec)

    watcher, rec = watch([spec], Reentrant())
    (spec.path / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: rec.names() == {"a.jpg"})
    assert seen == [True]
    assert rec.threads == {"truepix-watcher"}


def test_stop_is_prompt_joins_its_threads_and_is_idempotent(tmp_path):
    before = set(threading.enumerate())
    specs = [folder(tmp_path / "native", recursive=True), folder(tmp_path / "polled", polling=True),
             FolderSpec(tmp_path / "missing")]
    rec = Recorder()
    watcher = FolderWatcher(specs, rec, check_interval=0.05, rescan_interval=0.2)
    watcher.start()
    (specs[0].path / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: rec.names() == {"a.jpg"})
    t0 = time.monotonic()
    watcher.stop()
    assert time.monotonic() - t0 < 2.0
    assert wait_for(lambda: set(threading.enumerate()) <= before, timeout=1), threading.enumerate()
    watcher.stop()
    assert watcher.watching() == []
    (specs[0].path / "b.jpg").write_bytes(b"data")
    time.sleep(SETTLE)  # not needed to be sure: none of the watcher's threads is left (above) to call on_ready
    assert rec.names() == {"a.jpg"}
    with pytest.raises(RuntimeError):
        watcher.start()
