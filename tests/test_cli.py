"""``truepix process`` end to end: outputs, naming, exit codes, every bad input, no torch."""

import hashlib
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyexiv2
import pytest
import tifffile
from PIL import Image

from conftest import BAD_INPUTS, REPO, SHARED, make_bad_inputs, photo_like
from truepix.cli import main


def _jpeg(path: pathlib.Path, h=48, w=64, seed=0, exif=True) -> pathlib.Path:
    Image.fromarray(np.round(photo_like(h, w, seed) * 255).astype(np.uint8)).save(path, quality=92)
    if exif:
        with pyexiv2.Image(str(path)) as m:
            m.modify_exif({"Exif.Image.Artist": "Ansel", "Exif.Image.Make": "TestCam"})
    return path


def _sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _run(args, capsys):
    code = main(["process", "-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _no_temp_files(folder):
    return not [p for p in pathlib.Path(folder).rglob("*") if "truepix-tmp" in p.name]


def test_process_jpeg_writes_16bit_tiff_beside_it(tmp_path, capsys):
    src = _jpeg(tmp_path / "IMG_0001.jpg")
    before = _sha(src)
    code, out, err = _run([src], capsys)
    assert code == 0, err
    dest = tmp_path / "IMG_0001-truepix-x2.tif"
    px = tifffile.imread(dest)
    assert px.shape == (96, 128, 3) and px.dtype == np.uint16
    with pyexiv2.Image(str(dest)) as m:
        exif, xmp = m.read_exif(), m.read_xmp()
    assert exif["Exif.Image.Artist"] == "Ansel"
    assert xmp["Xmp.truepix.Enhanced"] == "True"
    assert "upscale-x2" in xmp["Xmp.truepix.Models"]  # the clean or the camera route (input = "auto")
    assert _sha(src) == before  # the original is untouched
    assert "1 enhanced, 0 failed" in err


def test_never_overwrites_unless_asked(tmp_path, capsys):
    src = _jpeg(tmp_path / "a.jpg")
    for _ in range(2):  # done again on purpose (--force): a new name, the first output kept
        assert _run([src, "--force"], capsys)[0] == 0
    dest = tmp_path / "a-truepix-x2.tif"
    assert dest.exists() and (tmp_path / "a-truepix-x2-1.tif").exists()
    # Dated a day back, so the rewrite shows in the mtime whatever the file system's timestamp resolution.
    day_ago = dest.stat().st_mtime_ns - 86_400 * 10**9
    os.utime(dest, ns=(day_ago, day_ago))
    assert _run([src, "--overwrite", "--force"], capsys)[0] == 0
    assert dest.stat().st_mtime_ns > day_ago
    assert not (tmp_path / "a-truepix-x2-2.tif").exists()


def test_folders_globs_formats_and_json(tmp_path, capsys):
    for i in range(3):
        _jpeg(tmp_path / f"p{i}.jpg", seed=i)
    (tmp_path / "notes.txt").write_text("not a photo")
    out_dir = tmp_path / "out"
    code, out, err = _run([tmp_path, "--out", out_dir, "--format", "png", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["done"] == 3 and report["failed"] == 0
    for r in report["results"]:
        assert r["status"] == "done" and r["fidelity"]["colour_shift_mean"] < 1.0
        assert pathlib.Path(r["output"]).parent == out_dir
    assert sorted(p.name for p in out_dir.iterdir()) == ["p0-truepix-x2.png", "p1-truepix-x2.png", "p2-truepix-x2.png"]
    code, out, err = _run([str(tmp_path / "p[01].jpg"), "--format", "jpeg", "--json"], capsys)
    assert code == 0 and json.loads(out)["done"] == 2
    assert (tmp_path / "p0-truepix-x2.jpg").exists() and not (tmp_path / "p2-truepix-x2.jpg").exists()


def test_already_enhanced_output_is_not_enhanced_twice(tmp_path, capsys):
    src = _jpeg(tmp_path / "a.jpg")
    assert _run([src], capsys)[0] == 0
    code, out, err = _run([tmp_path / "a-truepix-x2.tif"], capsys)
    assert code == 0 and "already enhanced by truepix" in err
    assert not (tmp_path / "a-truepix-x2-truepix-x2.tif").exists()


def test_recipe_file_and_model_option(tmp_path, capsys):
    src = _jpeg(tmp_path / "a.jpg")
    recipe = tmp_path / "big.toml"
    recipe.write_text('steps = [{ model = "upscale-x2" }, { model = "upscale-x2" }]\nsuffix = "-x4"\nformat = "png"\n')
    assert _run([src, "--recipe", recipe], capsys)[0] == 0
    assert Image.open(tmp_path / "a-x4.png").size == (256, 192)
    assert _run([src, "--model", "upscale-x2", "--format", "jpeg"], capsys)[0] == 0
    assert Image.open(tmp_path / "a-truepix-x2.jpg").size == (128, 96)


def test_usage_errors_exit_2(tmp_path, capsys):
    src = _jpeg(tmp_path / "a.jpg")
    assert _run([src, "--recipe", "nonesuch"], capsys)[0] == 2
    assert _run([src, "--model", "nonesuch"], capsys)[0] == 1  # per-file failure, named
    with pytest.raises(SystemExit) as e:
        main(["process"])
    assert e.value.code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = 3\n")
    code, _, err = _run([src, "--recipe", bad], capsys)
    assert code == 2 and "bad.toml" in err and "steps" in err


def test_every_bad_input_gets_one_clear_line_and_the_rest_succeed(tmp_path, capsys):
    good1 = _jpeg(tmp_path / "good1.jpg")
    good2 = _jpeg(tmp_path / "good2.jpg", seed=2)
    make_bad_inputs(tmp_path, good1)
    bad = ["empty.jpg", "cut.jpg", "cut.tif", "random.CR2", "text.tif", "huge.tif", "missing.jpg"]
    before = {p.name: _sha(p) for p in tmp_path.iterdir()}
    code, out, err = _run([good1, *[tmp_path / b for b in bad], good2, "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["done"] == 2 and report["failed"] == len(bad)
    by_name = {pathlib.Path(r["source"]).name: r for r in report["results"]}
    expected = {**BAD_INPUTS, "missing.jpg": "no such file"}
    for name, words in expected.items():
        r = by_name[name]
        assert r["status"] == "failed" and r["output"] is None
        assert r["error"].startswith(name) or name in r["error"], r["error"]
        assert words.lower() in r["error"].lower(), r["error"]
        assert "\n" not in r["error"]
        assert f"{name}" in err  # one line on stderr names it
    # Nothing was written for the bad ones, the originals are untouched, no temp files.
    outputs = sorted(p.name for p in tmp_path.iterdir() if p.name not in before)
    assert outputs == ["good1-truepix-x2.tif", "good2-truepix-x2.tif"]
    assert all(_sha(tmp_path / n) == h for n, h in before.items())
    assert _no_temp_files(tmp_path)


def test_output_folder_that_is_a_file(tmp_path, capsys):
    src = _jpeg(tmp_path / "a.jpg")
    blocker = tmp_path / "out"
    blocker.write_text("a file where the folder should be")
    code, out, err = _run([src, "--out", blocker], capsys)
    assert code == 1
    assert "out" in err and "not a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "out"]


def _as_nobody(args) -> tuple[int, str]:
    """Run ``truepix process`` in a forked child that dropped to uid 65534 (root reads everything)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            sys.stderr = open(wfd, "w", buffering=1, closefd=False)  # pytest's capture is not fd 2
            os.setgid(65534)
            os.setuid(65534)
            os.environ["TRUEPIX_CONFIG"] = "/nonexistent/truepix-config.toml"  # root's is unreadable now
            code = main(["process", "-q", *map(str, args)])
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            os.write(wfd, f"child error: {e!r}".encode())
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(wfd)
    chunks, deadline = [], time.time() + 60
    while time.time() < deadline:
        ready, _, _ = select.select([rfd], [], [], 1.0)
        if ready:
            data = os.read(rfd, 65536)
            if not data:
                break
            chunks.append(data)
    else:
        os.kill(pid, 9)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_unreadable_file_and_unwritable_output_folder(capsys):
    folder = pathlib.Path(tempfile.mkdtemp(prefix="truepix-perm-"))
    try:
        folder.chmod(0o777)
        good = _jpeg(folder / "good.jpg")
        secret = _jpeg(folder / "secret.jpg", seed=4)
        secret.chmod(0o000)
        locked = folder / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        if os.geteuid() != 0:
            code, _, err = _run([good, secret], capsys)
            assert code == 1 and "secret.jpg: permission denied" in err
            assert (folder / "good-truepix-x2.tif").exists()
            code, _, err = _run([good, "--out", locked], capsys)
            assert code == 1 and "not writable" in err
            return
        # Root reads and writes everything: the same runs happen in a forked child that drops to
        # uid 65534.  Both fail before any inference (ONNX Runtime's threads do not survive a
        # fork), and every module they need is imported here first (nobody cannot read root's
        # Python installation).
        assert _run([secret, "--out", folder / "warm"], capsys)[0] == 0
        code, err = _as_nobody([secret])
        assert code == 1, err
        assert "secret.jpg: permission denied" in err and "original untouched" in err
        assert not (folder / "secret-truepix-x2.tif").exists()
        code, err = _as_nobody([good, "--out", locked])
        assert code == 1, err
        assert "not writable" in err and "locked" in err
        assert list(locked.iterdir()) == []
        assert _no_temp_files(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_torch_is_not_imported_by_a_full_process_run(tmp_path):
    src = _jpeg(tmp_path / "a.jpg")
    code = (
        "import sys\n"
        "from truepix.cli import main\n"
        f"rc = main(['process', '-q', {str(src)!r}, '--format', 'png'])\n"
        "print(rc, 'torch' in sys.modules, 'onnxruntime' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.stdout.split() == ["0", "False", "True"], proc.stderr
    assert (tmp_path / "a-truepix-x2.png").exists()


def test_models_command_shows_the_provider(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "execution provider:" in out and "upscale-x2" in out and "sha256 ok" in out
    assert "\nprecision: " in out


def test_process_does_not_repeat_the_provider_line(tmp_path, capsys, monkeypatch):
    """`truepix process` says which provider runs only with -v (`truepix models` and the daemon's start
    say it); a fallback from what was configured is a warning, always shown."""
    from truepix.engine import models

    src = tmp_path / "a.png"
    Image.fromarray(np.round(photo_like(24, 32, seed=1) * 255).astype(np.uint8)).save(src)
    monkeypatch.setattr(models, "_announced", set())
    monkeypatch.setattr(models, "_sessions", {})
    assert main(["process", "-q", str(src)]) == 0
    assert "CPUExecutionProvider" not in capsys.readouterr().err
    monkeypatch.setattr(models, "_announced", set())
    monkeypatch.setattr(models, "_sessions", {})
    assert main(["process", "-q", "--force", "--provider", "cuda", str(src)]) == 0
    err = capsys.readouterr().err
    assert err.count("falling back to CPUExecutionProvider: CUDAExecutionProvider was asked for") == 1, err


def test_bundled_sample_is_small_and_credited():
    sample = REPO / "samples" / "colorchart.jpg"
    assert sample.stat().st_size <= 300_000
    assert "tinydng" in (REPO / "samples" / "README.md").read_text()


KDC = SHARED / "raw" / "RAW_KODAK_DC50.KDC"


@pytest.mark.skipif(not KDC.exists(), reason="the shared RAW sample is not beside the repo")
def test_camera_raw_to_tiff_with_srgb_profile_and_camera_exif(tmp_path, capsys):
    src = tmp_path / "DC50.KDC"
    shutil.copy(KDC, src)
    code, out, err = _run([src, "--json"], capsys)
    assert code == 0, err
    dest = pathlib.Path(json.loads(out)["results"][0]["output"])
    with tifffile.TiffFile(dest) as tif:
        page = tif.pages.first
        assert page.shape == (1024, 1536, 3) and page.dtype == np.uint16
        from truepix.io import srgb_icc

        assert bytes(page.tags["InterColorProfile"].value) == srgb_icc()
    with pyexiv2.Image(str(dest)) as m:
        exif = m.read_exif()
    assert "Kodak" in exif.get("Exif.Image.Make", "") or "KODAK" in exif.get("Exif.Image.Make", "").upper()


@pytest.mark.parametrize("flag, value, reason", [("--tile", "16", "--tile: must be"),
                                                 ("--threads", "5000", "--threads"), ("--threads", "-1", "--threads")])
def test_engine_flags_are_checked_like_the_config(tmp_path, capsys, flag, value, reason):
    """Issue 16.4: `--tile 16` reached run_tiled and failed with a ValueError."""
    src = _jpeg(tmp_path / "a.jpg")
    with pytest.raises(SystemExit) as exc:
        main(["process", "-q", str(src), flag, value])
    assert reason in str(exc.value) and "command line" in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]


def test_job_lines_say_cancelling_and_decoded_ahead(tmp_path, capsys):
    """`truepix cancel ID` on a running job: the worker stops it at its next tile, so the answer is
    "cancelling", not "running"; a job only decoded ahead of the running one reads as queued, next."""
    from truepix.cli import _print_job
    from truepix.recipes import BUILTIN
    from truepix.service.queue import JobQueue

    q = JobQueue(tmp_path / "q.sqlite3")
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    other = tmp_path / "b.png"
    Image.fromarray(np.ones((8, 8, 3), np.uint8)).save(other)
    running = q.submit(src, BUILTIN["upscale"])
    ahead = q.submit(other, BUILTIN["upscale"])
    q.claim()
    q.begin(running.id)
    q.claim(ahead=True)
    _print_job(q.cancel(running.id).as_dict())
    line = capsys.readouterr().out
    assert "cancelling" in line and "running" not in line, line
    _print_job(q.get(ahead.id).as_dict())
    line = capsys.readouterr().out
    assert " queued " in line and "next: decoded ahead" in line, line
