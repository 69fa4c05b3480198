import pathlib
import struct
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def photo_like(h: int, w: int, seed: int = 0, noise: float = 0.03) -> np.ndarray:
    """A float32 (h, w, 3) image in [0, 1] with edges, gradients and texture (+ Gaussian noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 11.0),
        (x / w) * 0.8 + 0.1,
        ((x // 16 + y // 16) % 2) * 0.6 + 0.2,
    ], axis=-1)
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def huge_tiff(path: pathlib.Path) -> None:
    """A valid 1x1 TIFF whose IFD is patched to claim 100000 x 100000 pixels."""
    import tifffile

    tifffile.imwrite(path, np.zeros((1, 1), np.uint8), photometric="minisblack", metadata=None)
    data = bytearray(path.read_bytes())
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd:ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        (tag,) = struct.unpack("<H", data[entry:entry + 2])
        if tag in (256, 257):  # ImageWidth, ImageLength -> LONG 100000
            data[entry:entry + 12] = struct.pack("<HHII", tag, 4, 1, 100000)
    path.write_bytes(bytes(data))


# Every bad input of the foundation issue -> the words its error must contain.
BAD_INPUTS = {"empty.jpg": "empty", "cut.jpg": "truncated", "cut.tif": "truncated",
              "random.CR2": "not a RAW file", "text.tif": "not a TIFF", "huge.tif": "too large"}


def make_bad_inputs(folder: pathlib.Path, good_jpeg: pathlib.Path) -> list[pathlib.Path]:
    """Write the files of ``BAD_INPUTS`` into ``folder`` (``good_jpeg`` is cut in half for cut.jpg)."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    full = good_jpeg.read_bytes()
    (folder / "cut.jpg").write_bytes(full[: len(full) // 2])
    whole = folder / ".whole.tif"
    tifffile.imwrite(whole, np.round(photo_like(64, 64) * 65535).astype(np.uint16))
    t = whole.read_bytes()
    whole.unlink()
    (folder / "cut.tif").write_bytes(t[: len(t) // 2])
    (folder / "random.CR2").write_bytes(np.random.default_rng(0).bytes(20000))
    (folder / "text.tif").write_text("this is not an image\n" * 20)
    huge_tiff(folder / "huge.tif")
    return [folder / name for name in BAD_INPUTS]


def wait_until(predicate, timeout: float = 60.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def need_tools(*tools: str) -> None:
    """Skip unless each command is on PATH; under CI (TRUEPIX_REQUIRE_TOOLS=1, set by .ci/run once its apt
    install succeeded) a missing one fails the test instead, so a plug-in test cannot quietly stop running."""
    import os
    import shutil

    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    reason = (f"{', '.join(missing)} not installed "
              "(Debian: lua5.1 lua5.4 lua-busted lua-check lua-socket curl darktable xvfb)")
    if os.environ.get("TRUEPIX_REQUIRE_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)
