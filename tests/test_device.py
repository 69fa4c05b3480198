"""The engine's GPU specifics, checked on the CPU: IO binding gives the plain run's numbers, the
tile grows with the free GPU memory only where it should."""

import numpy as np

from conftest import photo_like
from truepix.engine import device, models


class _FakeGpu:
    """A session that says it runs on CUDA (for ``tile_for``: only the providers are asked)."""

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_io_binding_gives_the_plain_run_bit_for_bit():
    info = models.get_model("upscale-x2")
    sess = models.session(info, "cpu", 1)
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(photo_like(40, 56, seed=4).transpose(2, 0, 1)[None])
    plain = device.run(sess, name, x)
    bound = device.run(sess, name, x, bound=True)
    assert bound.shape == (1, 3, 80, 112) and np.array_equal(bound, plain)


def test_the_tile_grows_with_free_gpu_memory_only_from_the_default():
    info = models.get_model("upscale-x2-adaptive")
    cpu = models.session(models.get_model("upscale-x2"), "cpu", 1)
    gpu = _FakeGpu()
    per_px = device.bytes_per_input_pixel(info)
    assert 700 < per_px < 1200  # 48 channels: four live maps of float32, and the output
    assert device.tile_for(info, cpu, 512, free=80 << 30) == 512  # the CPU keeps the configured tile
    assert device.tile_for(info, gpu, 768, free=80 << 30) == 768  # so does a tile the user set
    assert device.tile_for(info, gpu, 512, free=80 << 30) == device.GPU_TILE_MAX  # a large GPU: capped
    small = device.tile_for(info, gpu, 512, free=1 << 30)  # 1 GB free: what half of it holds
    assert 512 <= small < device.GPU_TILE_MAX and small % 64 == 0 and small ** 2 * per_px <= 0.5 * (1 << 30)
    assert device.tile_for(info, gpu, 512, free=64 << 20) == 512  # never below the default


def test_without_nvidia_smi_the_free_memory_is_unknown(monkeypatch):
    device.gpu_free_bytes.cache_clear()
    monkeypatch.setattr(device.shutil, "which", lambda exe: None)
    try:
        assert device.gpu_free_bytes() is None
        assert device.tile_for(models.get_model("upscale-x2"), _FakeGpu(), 512) == 512
    finally:
        device.gpu_free_bytes.cache_clear()
