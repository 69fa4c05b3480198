"""Issue 16 (items 5 and 9): crash clean-up by exact name, private files and folders, one-line logs,
long file names, error messages that never echo a file's bytes."""

import logging
import os
import pathlib
import re
import shutil
import stat

import numpy as np
import pytest
from PIL import Image

from conftest import photo_like, wait_until
from daemon_proc import DaemonProc
from truepix.engine.pipeline import EngineOptions
from truepix.io import atomic
from truepix.errors import ImageReadError
from truepix.io import image, read_image
from truepix.process import output_path, process_file
from truepix.recipes import BUILTIN
from truepix.service import app, paths
from truepix.service.queue import JobQueue

UPSCALE = BUILTIN["upscale"]
FAST = EngineOptions(tile=256)
posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _jpeg(path, h=40, w=56, seed=0):
    Image.fromarray(np.round(photo_like(h, w, seed) * 255).astype(np.uint8)).save(path, quality=92)
    return path


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # the usual desktop umask: what made everything 0644/0755
    yield
    os.umask(old)


# -- item 5: the crash clean-up matches names exactly --------------------------------------------------


def test_recover_removes_the_temp_file_of_a_name_with_brackets(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    src = folder / "a[1].tif"
    src.write_bytes(b"an original")
    q = JobQueue(tmp_path / "q.sqlite3")
    job = q.submit(src, UPSCALE)
    q.claim()
    q.set_planned(job.id, folder / "a[1]-truepix.tif")
    stale = folder / ".a[1]-truepix.tif.truepix-tmp-abcd1234"  # the writer's pattern: .NAME.truepix-tmp-8hex
    stale.write_bytes(b"half an output")
    # What the old glob's [1] matched instead: another photo's temp file, in the middle of being written.
    other = folder / ".a1-truepix.tif.truepix-tmp-abcd1234"
    other.write_bytes(b"someone else's output")
    lookalike = folder / ".a[1]-truepix.tif.truepix-tmp-abcd1234.xmp"
    lookalike.write_bytes(b"not ours either")

    JobQueue(tmp_path / "q.sqlite3").recover()  # a new process after the crash
    assert not stale.exists()
    assert other.exists() and lookalike.exists() and src.read_bytes() == b"an original"


@pytest.mark.parametrize("name", ["b*?[x]-truepix.tif", "L" * 240 + "-truepix.tif", "é" * 118 + "-truepix.tif"])
def test_the_writers_temp_names_are_bounded_and_found_again(tmp_path, monkeypatch, name):
    """write_image's temp name (kept by a crash here) fits NAME_MAX and the clean-up finds it."""
    dest = tmp_path / name
    kept = []

    def crash(tmp, dest, overwrite):
        kept.append(pathlib.Path(tmp))
        shutil.copy(tmp, tmp_path / "evidence")
        raise KeyboardInterrupt  # like a kill: the writer's own clean-up removes tmp, so put it back below

    monkeypatch.setattr(atomic, "publish", crash)
    with pytest.raises(KeyboardInterrupt):
        image.write_image(dest, photo_like(8, 8))
    (tmp,) = kept
    assert len(os.fsencode(tmp.name)) <= 255 and ".truepix-tmp-" in tmp.name and tmp.name.startswith(".")
    shutil.copy(tmp_path / "evidence", tmp)
    keep = tmp_path / "keep.tif"
    keep.write_bytes(b"x")
    assert image.remove_temp_files(dest) == [tmp]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evidence", "keep.tif"]


# -- item 9: long file names ------------------------------------------------------------------------


def test_a_242_byte_name_is_processed(tmp_path):
    src = tmp_path / ("P" * 238 + ".jpg")
    assert len(os.fsencode(src.name)) == 242
    shutil.copy(app.sample_photo(), src)
    result = process_file(src, UPSCALE, options=FAST)
    assert result.status == "done", result.error
    assert pathlib.Path(result.output).name == "P" * 238 + "-truepix-x2.tif"  # fits (253 bytes): kept whole
    assert [p.name for p in tmp_path.iterdir() if "truepix-tmp" in p.name] == []


def test_an_output_name_over_255_bytes_loses_the_end_of_its_stem(tmp_path):
    stem = "Ä" * 125  # 250 bytes: the original's name fits (254), stem + "-truepix-x2.tif" would not (265)
    src = _jpeg(tmp_path / f"{stem}.jpg")
    result = process_file(src, UPSCALE, options=FAST)
    assert result.status == "done", result.error
    out = pathlib.Path(result.output)
    assert len(os.fsencode(out.name)) <= 255 and out.name.endswith("-truepix-x2.tif")
    assert stem.startswith(out.stem.removesuffix("-truepix-x2"))
    again = output_path(src, UPSCALE, None, overwrite=False)  # a forced run does not overwrite it
    assert again != out and again.name.endswith("-truepix-x2-1.tif") and len(os.fsencode(again.name)) <= 255
    assert output_path(src, UPSCALE, None, overwrite=True) == out


# -- item 9: errors never echo a file's contents --------------------------------------------------------


@pytest.mark.parametrize("name", ["notes.tif", "photo.jpg", "thing.webp"])
def test_an_unrecognised_file_is_not_quoted_in_the_error(tmp_path, name):
    secret = b"PASSWORD=hunter2 and more private text"
    src = tmp_path / name
    src.write_bytes(secret)
    with pytest.raises(ImageReadError) as err:
        read_image(src)
    message = str(err.value)
    assert name in message and "not a" in message and f"{len(secret)} bytes" in message
    for piece in (secret[:4], secret[:8], b"hunter2"):
        assert piece.decode() not in message
    failed = process_file(src, UPSCALE, options=FAST)
    assert failed.status == "failed" and "PASSW" not in failed.error


# -- item 9: one log line per message ---------------------------------------------------------------------


def test_the_log_formatter_keeps_each_message_on_one_line():
    fmt = app.OneLineFormatter("%(levelname)s %(message)s")
    forged = "a.jpg\n2024-01-01 00:00:00,000 INFO    truepix.daemon: job 9 done\r\x1b[2K\u2028x.jpg"
    rec = logging.LogRecord("truepix.worker", logging.INFO, __file__, 1, "job %d start: %s", (7, forged), None)
    line = fmt.format(rec)
    assert line.splitlines() == [line]
    assert line == ("INFO job 7 start: a.jpg\\n2024-01-01 00:00:00,000 INFO    truepix.daemon: job 9 done"
                    "\\r\\x1b[2K\\u2028x.jpg")
    assert rec.getMessage() == f"job 7 start: {forged}"  # other handlers still get the message itself


# -- item 9: file and folder modes ---------------------------------------------------------------------


@posix_only
def test_the_queue_database_and_its_wal_are_private(tmp_path, umask_022):
    q = JobQueue(tmp_path / "data" / "truepix" / "queue.sqlite3")
    q.submit(_jpeg(tmp_path / "a.jpg"), UPSCALE)
    assert _mode(tmp_path / "data") == 0o700 and _mode(tmp_path / "data" / "truepix") == 0o700
    for name in ("queue.sqlite3", "queue.sqlite3-wal", "queue.sqlite3-shm"):
        assert _mode(tmp_path / "data" / "truepix" / name) == 0o600, name
    q.close()


@posix_only
def test_a_queue_an_older_version_left_readable_is_tightened(tmp_path, umask_022):
    path = tmp_path / "q.sqlite3"
    JobQueue(path).submit(_jpeg(tmp_path / "a.jpg"), UPSCALE)
    for side in ("", "-wal", "-shm"):
        os.chmod(f"{path}{side}", 0o644)
    JobQueue(path).counts()
    assert [_mode(f"{path}{side}") for side in ("", "-wal", "-shm")] == [0o600] * 3


@posix_only
def test_state_file_and_log_files_are_private(tmp_path, monkeypatch, umask_022):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    app._write_state({"pid": 1})
    assert _mode(paths.state_path()) == 0o600 and _mode(paths.state_path().parent) == 0o700
    log = tmp_path / "logs" / "truepix" / "truepix.log"
    log.parent.mkdir(parents=True)
    log.write_text("an older, readable log\n")
    os.chmod(log.parent, 0o755)
    handler = app._log_to_file(log)
    try:
        assert _mode(log) == 0o600 and _mode(log.parent) == 0o700
        handler.doRollover()
        assert _mode(log) == 0o600 and _mode(f"{log}.1") == 0o600
    finally:
        logging.getLogger("truepix").removeHandler(handler)
        handler.close()


@posix_only
def test_the_daemon_keeps_its_files_private_and_a_newline_cannot_forge_a_log_line(tmp_path, umask_022):
    photos = tmp_path / "photos"
    photos.mkdir()
    forged = "2024-01-01 00:00:00,000 INFO    truepix.daemon: job 999 done: forged.jpg"
    _jpeg(photos / f"holiday\n{forged}")
    config = f'[[folders]]\npath = "{photos}"\nrecipe = "upscale"\nsettle = 0.3\n[engine]\nthreads = 1\ntile = 128\n'
    d = DaemonProc(tmp_path / "d", config=config).start()
    try:
        finished = re.compile(r"truepix\.worker: job (\d+) (done|failed)")
        assert wait_until(lambda: finished.search(d.log_file.read_text()), timeout=180), d.output()
        job_id, outcome = finished.search(d.log_file.read_text()).groups()
        assert outcome == "done", d.log_file.read_text()
        data = d.root / "data" / "truepix"
        private = {
            d.root / "data": 0o700, data: 0o700, data / "queue.sqlite3": 0o600,
            data / "queue.sqlite3-wal": 0o600, data / "queue.sqlite3-shm": 0o600,
            d.root / "state" / "truepix": 0o700, d.state_file: 0o600,
            d.log_file.parent: 0o700, d.log_file: 0o600,
            d.root / "config" / "truepix": 0o700, d.root / "config" / "truepix" / "token": 0o600,
        }
        assert {str(p): oct(_mode(p)) for p in private} == {str(p): oct(m) for p, m in private.items()}
    finally:
        d.stop()
    text = d.log_file.read_text()
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
    lines = text.splitlines()
    assert all(stamp.match(line) for line in lines), [line for line in lines if not stamp.match(line)]
    assert not any(line.startswith("2024-01-01 00:00:00,000") for line in lines)
    started = [line for line in lines if f"job {job_id} start:" in line]
    assert len(started) == 1 and f"holiday\\n{forged}" in started[0]
    assert all("holiday\\n" in line for line in lines if "forged.jpg" in line)
