"""Issue 18: ``truepix process --engine ray`` on a real local Ray cluster of two nodes: the same
outputs as the local engine, exactly once through a kill -9 of a worker, a re-run that skips what
is done, a bad file that fails alone.  Needs the ``ray`` extra (skipped without it)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import photo_like

ray = pytest.importorskip("ray", reason="the Ray engine's tests need the ray extra: pip install -e '.[ray]'")
pytestmark = pytest.mark.ray

N = 40


def _truepix(*args, env=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "truepix.cli", "process", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def _photos(folder: pathlib.Path) -> list[pathlib.Path]:
    folder.mkdir()
    paths = []
    for i in range(N):
        p = folder / f"p{i:02d}.png"
        Image.fromarray(np.round(photo_like(40, 56, seed=i) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    (folder / "zz-bad.png").write_bytes(b"not an image at all")
    return paths


def _outputs(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".tif")


def test_a_backlog_on_two_nodes_equals_the_local_engine_survives_a_kill_and_resumes(tmp_path, cluster):
    src = tmp_path / "in"
    photos = _photos(src)
    local = _truepix(src, "--out", tmp_path / "local", "--json", "--threads", "1")
    assert local.returncode == 1  # the bad file
    assert local.stdout.strip(), local.stderr[-2000:]
    assert json.loads(local.stdout)["done"] == N

    # Two workers, one per node; one of them killed (-9) while it works on a file.
    pids = tmp_path / "pids"
    pids.mkdir()
    killed: list[int] = []

    def kill_one():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            seen = list(pids.iterdir())
            if len(seen) >= 2 and sum(1 for p in (tmp_path / "out").glob("*.tif")) >= 6:
                pid = int(seen[0].name)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    first = _truepix(src, "--engine", "ray", "--ray-address", cluster.address, "--workers", "2",
                     "--out", tmp_path / "out", "--json", env={"TRUEPIX_RAY_PIDS": str(pids)})
    killer.join()
    assert killed, "no worker was killed"
    assert first.returncode == 1, first.stderr[-3000:]
    assert first.stdout.lstrip().startswith("{"), first.stdout[:1500]
    report = json.loads(first.stdout)
    assert report["engine"] == "ray"
    bad = [r for r in report["results"] if r["status"] == "failed"]
    assert [pathlib.Path(r["source"]).name for r in bad] == ["zz-bad.png"] and "not a PNG" in bad[0]["error"]
    assert report["done"] + report["skipped"] == N  # a file published just before the kill is skipped on retry

    # Each output once (no -1), nothing partial, the same pixels as the local engine, bit for bit.
    out = tmp_path / "out"
    assert _outputs(out) == [f"{p.stem}-truepix-x2.tif" for p in photos]
    assert not [p for p in out.iterdir() if ".truepix-tmp-" in p.name]
    for p in photos:
        name = f"{p.stem}-truepix-x2.tif"
        np.testing.assert_array_equal(tifffile.imread(out / name), tifffile.imread(tmp_path / "local" / name))
    nodes = {json.loads(line)["node"] for line in (out / ".truepix-ledger.jsonl").read_text().splitlines()}
    assert len(nodes) >= 1

    # A re-run: nothing processed again, every photo skipped from the ledger; the bad file fails again.
    again = _truepix(src, "--engine", "ray", "--ray-address", cluster.address, "--out", out, "--json")
    rep = json.loads(again.stdout)
    assert (rep["done"], rep["skipped"], rep["failed"]) == (0, N, 1)
    assert _outputs(out) == [f"{p.stem}-truepix-x2.tif" for p in photos]


def test_without_ray_the_engine_says_how_to_install_it(tmp_path, monkeypatch):
    import builtins

    from truepix.process import expand_inputs
    from truepix.rayengine import RayEngineError, process_on_ray
    from truepix.recipes import BUILTIN

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real(name, *a, **k)

    src = tmp_path / "in"
    _photos(src)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RayEngineError, match=r"pip install 'truepix\[ray\]'"):
        process_on_ray(expand_inputs([str(src)]), BUILTIN["upscale"], out_dir=tmp_path / "out")


def test_every_node_is_checked_for_the_inputs_and_the_output_folder_before_any_work(tmp_path, cluster):
    """preflight runs a check on each alive node of the cluster: a path one of them cannot read
    is refused with the node's name and what to do."""
    from truepix.rayengine import RayEngineError, preflight

    ray.init(address=cluster.address, logging_level="warning", log_to_driver=False)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        preflight(ray, [_photos(tmp_path / "in")[0]], tmp_path / "out")  # both nodes see both
        with pytest.raises(RayEngineError, match=r"node .*: cannot read .*missing\.png; every node must see"):
            preflight(ray, [tmp_path / "missing.png"], tmp_path / "out")
    finally:
        ray.shutdown()


def test_an_output_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    from truepix.process import expand_inputs
    from truepix.rayengine import RayEngineError, process_on_ray
    from truepix.recipes import BUILTIN

    (tmp_path / "file").write_text("x")
    _photos(tmp_path / "in")
    with pytest.raises(RayEngineError, match="cannot create the output folder"):
        process_on_ray(expand_inputs([str(tmp_path / "in")]), BUILTIN["upscale"], out_dir=tmp_path / "file" / "out")


def test_the_ledger_knows_a_file_by_its_content_and_its_recipe_settings(tmp_path):
    """A re-run skips a file whose mtime moved but whose bytes did not (sha256 in the ledger), and redoes
    one whose bytes changed, or whose recipe changed under the same name."""
    import dataclasses

    from truepix.rayengine import Ledger, _key
    from truepix.recipes import BUILTIN

    src, out = tmp_path / "a.png", tmp_path / "a-truepix-x2.tif"
    src.write_bytes(b"pixels" * 100)
    out.write_bytes(b"out")
    recipe = BUILTIN["upscale"]
    from truepix.service.jobs import file_sha256

    row = {**_key(src, recipe), "status": "done", "output": str(out), "sha256": file_sha256(src)[0]}
    (tmp_path / "ledger.jsonl").write_text(json.dumps(row) + "\n" + '{"cut by a cra')
    book = Ledger(tmp_path / "ledger.jsonl")
    assert book.finished(src, recipe) is not None
    os.utime(src, ns=(1, 1))  # touched: same bytes
    assert book.finished(src, recipe) is not None
    assert book.finished(src, dataclasses.replace(recipe, guard=not recipe.guard)) is None  # other settings
    src.write_bytes(b"PIXELS" * 100)  # same size, other bytes
    os.utime(src, ns=(2, 2))
    assert book.finished(src, recipe) is None
    out.unlink()
    assert book.finished(src, recipe) is None


def test_a_worker_retries_a_transient_failure_and_not_a_bad_file(tmp_path, monkeypatch):
    """``FileWorker.run`` without a cluster: an EIO on a network share is tried again (and noted),
    a corrupt file fails at once with its reason."""
    import errno

    from truepix import rayengine
    from truepix.process import FileResult, is_transient
    from truepix.rayengine import FileWorker, Job
    from truepix.recipes import BUILTIN

    calls = []

    def flaky(path, job):
        calls.append(path.name)
        if path.name == "share.png" and len(calls) < 2:
            return FileResult(source=str(path), status="failed", error="share.png: input/output error",
                              transient=True)
        if path.name == "bad.png":
            return FileResult(source=str(path), status="failed", error="bad.png: not an image")
        return FileResult(source=str(path), status="done", output=str(path) + ".tif")

    monkeypatch.setattr(rayengine, "run_file", flaky)
    monkeypatch.setattr(rayengine, "RETRY_BACKOFF", (0.0,))
    worker = FileWorker(Job(BUILTIN["upscale"], None, rayengine.EngineOptions(threads=1)))
    res = worker.run(tmp_path / "share.png")
    assert res.status == "done" and calls == ["share.png", "share.png"] and "try 2" in res.notes[-1]
    calls.clear()
    res = worker.run(tmp_path / "bad.png")
    assert res.status == "failed" and calls == ["bad.png"] and not res.notes
    # what counts as transient: the OSError a truepix error was raised from, not the wrapper's words
    from truepix.errors import ImageWriteError

    try:
        try:
            raise OSError(errno.EIO, "Input/output error")
        except OSError:
            raise ImageWriteError(tmp_path / "x.tif", "cannot write output") from None
    except ImageWriteError as e:
        assert is_transient(e)
    assert not is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_transient(PermissionError(errno.EACCES, "denied")) and is_transient(MemoryError())


def test_the_engine_bench_pair_runs_local_two_threads_against_two_ray_workers(tmp_path, cluster):
    """--pair: the two-core rows only; --ray-address: the Ray row joins the running (test) cluster.
    (A fresh local instance beside this module's cluster is not started here: ``ray.init()`` would
    find the running one.)"""
    out = tmp_path / "pair.json"
    proc = subprocess.run([sys.executable, "-m", "truepix.cli", "bench", "--engine", "ray", "--pair", "--files", "2",
                           "--sizes", "0.02", "--json", str(out), "--ray-address", cluster.address],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["batch"]
    assert [r["method"] for r in rows] == ["local, 2 threads", "ray, 2 workers x 1 thread"], rows
    assert all(r.get("files") == 2 and r["seconds"] > 0 for r in rows), rows
    assert result["ray_address"] == cluster.address
