"""What the engine does differently on a GPU: IO binding, and tiles sized to the free GPU memory.

- ``run``: one network call.  On a GPU provider through ONNX Runtime's IO binding — the input
  bound from host memory, the output left on the device and copied to the host once — so a tile's
  result is not staged through an extra host buffer per call; on the CPU provider a plain
  ``InferenceSession.run`` (binding changes nothing there).  ``bound=True`` forces the binding
  path on any provider (the tests run it on the CPU, where it must give the same numbers).
- ``tile_for``: on a GPU provider, a tile left at the default (``pipeline.EngineOptions().tile``,
  512 input pixels) grows to what half the GPU's free memory holds, up to ``GPU_TILE_MAX`` (more
  would only grow the host's bands: ``budget``), in steps of 64; a tile the user set is kept, and
  so is the default on the CPU or when the free memory cannot be read (no ``nvidia-smi``).  The
  network's memory per input pixel is estimated from its width (``ACTIVATION_TENSORS`` live
  feature maps of its channels, float32, plus its output), on the safe side for the half-
  resolution (folded, Bayer) networks.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess

import numpy as np

log = logging.getLogger("truepix.engine")

DEFAULT_TILE = 512
GPU_TILE_MAX = 1024
ACTIVATION_TENSORS = 4
GPU_SHARE = 0.5  # of the free memory, leaving room for ONNX Runtime's arena and other programs


def on_gpu(sess) -> bool:
    return sess.get_providers()[0] != "CPUExecutionProvider"


def run(sess, name: str, x: np.ndarray, bound: bool | None = None) -> np.ndarray:
    """The session's first output for input ``name`` = ``x`` (see the module's note)."""
    if not (on_gpu(sess) if bound is None else bound):
        return sess.run(None, {name: x})[0]
    binding = sess.io_binding()
    binding.bind_cpu_input(name, np.ascontiguousarray(x))
    # CUDA: the output stays on the device until the one copy below; other providers: host memory
    binding.bind_output(sess.get_outputs()[0].name, "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider"
                        else "cpu")
    sess.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]


@functools.lru_cache(maxsize=1)
def gpu_free_bytes() -> int | None:
    """Free memory of GPU 0 as ``nvidia-smi`` reports it (once per process), or None."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return int(float(out.strip().splitlines()[0])) << 20
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def bytes_per_input_pixel(info) -> int:
    """A network's device memory per input pixel while it runs (see the module's note)."""
    channels = int(((info.extra.get("training") or {}).get("arch_kwargs") or {}).get("channels", 64))
    out = 3 * int(info.scale) ** 2
    return 4 * (ACTIVATION_TENSORS * channels + out)


def tile_for(info, sess, tile: int, free: int | None = None) -> int:
    """The tile side for ``info`` run by ``sess`` when the engine was given ``tile`` (the note)."""
    if tile != DEFAULT_TILE or not on_gpu(sess):
        return tile
    free = gpu_free_bytes() if free is None else free
    if not free:
        return tile
    side = int((GPU_SHARE * free / bytes_per_input_pixel(info)) ** 0.5) // 64 * 64
    chosen = max(DEFAULT_TILE, min(GPU_TILE_MAX, side))
    if chosen != tile:
        log.debug("engine: %s on %s: tile %d (%.1f GB free on the GPU)", info.name, sess.get_providers()[0], chosen,
                  free / 2**30)
    return chosen
