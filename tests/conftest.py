import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A float32 (h, w, 3) image in [0, 1] with edges, gradients and texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 11.0),
        (x / w) * 0.8 + 0.1,
        ((x // 16 + y // 16) % 2) * 0.6 + 0.2,
    ], axis=-1)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)
