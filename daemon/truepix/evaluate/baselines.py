"""Classical and peer upscalers to compare truepix's models with.

Each upscaler maps float32 sRGB-encoded RGB (H, W, 3) in [0, 1] to
(H*s, W*s, 3).  Peers from OpenCV's dnn_superres need the ``eval`` extra
(opencv-contrib-python-headless) and their ``.pb`` files.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable

import numpy as np
from PIL import Image

from truepix.resize import imresize

Upscaler = Callable[[np.ndarray], np.ndarray]


def bicubic(scale: int) -> Upscaler:
    """MATLAB-compatible bicubic (the protocol's own interpolator)."""
    return lambda img: imresize(img, float(scale))


def lanczos(scale: int) -> Upscaler:
    """Pillow's Lanczos-3, per channel in float precision."""

    def up(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c]), mode="F")
                            .resize((w * scale, h * scale), Image.LANCZOS)) for c in range(img.shape[2])]
        return np.stack(chans, axis=-1).astype(np.float32)

    return up


_PEER = re.compile(r"^(?P<algo>[A-Za-z]+)(?P<small>-small)?_x(?P<scale>\d+)\.pb$")


def find_peers(peer_dir: pathlib.Path, scale: int) -> dict[str, pathlib.Path]:
    """OpenCV dnn_superres model files for ``scale`` in ``peer_dir``, by display name."""
    found = {}
    for f in sorted(peer_dir.glob("*.pb")):
        m = _PEER.match(f.name)
        if m and int(m["scale"]) == scale:
            found[f.stem] = f
    return found


def opencv_peer(path: pathlib.Path, scale: int) -> Upscaler:
    """An OpenCV dnn_superres network (FSRCNN, ESPCN, LapSRN...), 8-bit in and out."""
    from truepix.evaluate.extras import require

    cv2 = require("cv2", "the OpenCV peers (--peer-dir)")
    m = _PEER.match(path.name)
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(path))
    sr.setModel(m["algo"].lower(), scale)

    def up(img: np.ndarray) -> np.ndarray:
        bgr = np.round(np.clip(img[..., ::-1], 0, 1) * 255).astype(np.uint8)
        return sr.upsample(np.ascontiguousarray(bgr))[..., ::-1].astype(np.float32) / 255.0

    return up
