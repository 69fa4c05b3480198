"""Issue 19: on the CPU the tiled engine runs cells side by side, each ONNX Runtime call on its own
threads (``models.runner``), and the result is the one a single call at a time gives, bit for bit."""

from __future__ import annotations

import pathlib
import threading
import time

import numpy as np
import pytest

from conftest import photo_like
from truepix.engine import models
from truepix.engine.pipeline import EngineOptions, enhance
from truepix.engine.tiling import map_ordered, run_tiled
from truepix.recipes import Recipe, Step


def test_map_ordered_keeps_the_order_and_runs_calls_side_by_side():
    running, most = [0], [0]
    lock = threading.Lock()

    def slow(i):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 * ((i * 7) % 3))  # later items often finish first
        with lock:
            running[0] -= 1
        return i * i

    assert list(map_ordered(slow, range(12), workers=3)) == [i * i for i in range(12)]
    assert most[0] == 3  # three at once, never more
    assert list(map_ordered(slow, range(5), workers=1)) == [0, 1, 4, 9, 16]


def test_map_ordered_raises_a_calls_error_and_leaves_nothing_running_when_stopped():
    def fails_at_3(i):
        if i == 3:
            raise ValueError("cell 3")
        return i

    with pytest.raises(ValueError, match="cell 3"):
        list(map_ordered(fails_at_3, range(10), workers=2))

    started, finished = [], []

    def tracked(i):
        started.append(i)
        time.sleep(0.01)
        finished.append(i)
        return i

    it = map_ordered(tracked, range(100), workers=2)
    assert [next(it), next(it)] == [0, 1]
    it.close()  # the consumer stops (a job stopped at a tile boundary)
    time.sleep(0.05)
    assert sorted(started) == sorted(finished)  # every call started has ended: none runs behind
    assert len(started) <= 2 + 2 + 1  # two taken, at most workers + 1 started ahead


def test_cells_side_by_side_give_the_one_at_a_time_result_bit_for_bit():
    info = models.get_model("upscale-x2")
    img = photo_like(300, 700)
    sess, _ = models.runner(info, "cpu", 1)
    name = sess.get_inputs()[0].name
    outs = [run_tiled(lambda p: sess.run(None, {name: p})[0], img, 2, tile=128, pad=info.receptive_radius,
                      overlap=8, workers=workers) for workers in (1, 2, 3)]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    # and the engine with two CPU threads (two cells of one thread) as with one
    recipe = Recipe("upscale", (Step("upscale-x2"),))
    one = enhance(img, None, recipe, EngineOptions(provider="cpu", threads=1, tile=128)).pixels
    two = enhance(img, None, recipe, EngineOptions(provider="cpu", threads=2, tile=128)).pixels
    assert np.array_equal(one, two)


def test_the_cpu_threads_are_split_over_cells_and_a_gpu_runs_one_cell(monkeypatch):
    monkeypatch.setattr(models, "cpu_cores", lambda: 16)
    assert models.cell_split("cpu", 0) == (2, 8)
    assert models.cell_split("cpu", 1) == (1, 1)
    assert models.cell_split("cpu", 2) == (2, 1)
    assert models.cell_split("cpu", 7) == (2, 3)
    monkeypatch.setattr(models, "choose_providers", lambda p: (["CUDAExecutionProvider", "CPUExecutionProvider"], ""))
    assert models.cell_split("auto", 0) == (1, 0)
    assert models.cell_split("auto", 4) == (1, 4)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) / 1024


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_a_job_hands_onnx_runtimes_arena_back_before_its_metadata_and_the_next_job_is_unchanged():
    recipe = Recipe("upscale", (Step("upscale-x2"),))
    img = photo_like(1024, 1024)
    first = enhance(img, None, recipe, EngineOptions(provider="cpu", threads=2)).pixels
    before = _rss_mb()
    models.release_memory()
    after = _rss_mb()
    assert before - after > 50, (before, after)  # the arena held two cells' feature maps: ~110 MB here
    again = enhance(img, None, recipe, EngineOptions(provider="cpu", threads=2)).pixels
    np.testing.assert_array_equal(again, first)  # the arena grows back; the result is the same
