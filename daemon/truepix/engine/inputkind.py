"""What kind of file an upscaler is given, and the grain it may put back.

The default upscaler (manifest ``input = "rgb+kind"``) takes one plane besides the colours: 0 for a
clean render an editor downsized (sharp, aliased, noise-free), 1 for a camera file at its native
resolution (lens blur, demosaiced sensor noise, in-camera sharpening, JPEG).  A recipe step says
which with ``input = "auto" | "camera" | "clean"``; "auto" asks the small network the model's row
names (``kind_model``, trained by ``models/train/train_kind.py``) on a few crops of the photo.

"auto" does not bet the photo on an uncertain answer.  Below ``UNSURE`` (p = 0.5) the photo is
upscaled as a clean file; from ``SURE`` (p = 0.9) as a camera file; in between both ways, and the
two results are blended with the camera share rising linearly from 0 to 1 across the band
(``camera_weight``).  On simulated students the estimator never saw, clean files score p < 0.27 in
95 of 100 and camera files p >= 0.89 in 75 of 100, so the band holds few photos of either kind,
and only those pay for two passes (models/README.md, input-kind).

``grain`` (0..1) puts back that share of what the upscaler removed from the input (its noise, for
a camera file): the input minus the output's area average, enlarged bicubically, added to the
output.  At 1 the output averages back to the input exactly, grain and all.
"""

from __future__ import annotations

import math

import numpy as np

from truepix.engine import models
from truepix.errors import RecipeError

INPUTS = {"clean": 0.0, "camera": 1.0}
UNSURE, SURE = 0.5, 0.9  # "auto": clean below UNSURE, camera from SURE, a blend of both between
CROP = 256      # crop side the estimator sees (input pixels)
MAX_CROPS = 9   # a 3x3 grid of crops over the photo at most


def _crops(pixels: np.ndarray) -> list[np.ndarray]:
    """Up to MAX_CROPS crops of CROP pixels spread over the frame (the whole image when smaller)."""
    h, w = pixels.shape[:2]
    if h <= CROP or w <= CROP:
        return [pixels]
    n = 3 if h >= 3 * CROP and w >= 3 * CROP else 2
    ys = np.linspace(0, h - CROP, n).astype(int)
    xs = np.linspace(0, w - CROP, n).astype(int)
    return [pixels[y:y + CROP, x:x + CROP] for y in ys for x in xs][:MAX_CROPS]


def estimate(model: models.ModelInfo, srgb: np.ndarray, provider: str = "auto", threads: int = 0) -> float:
    """The probability that ``srgb`` ((H, W, 3) sRGB-encoded 0..1) is a camera file, from the
    estimator ``model`` names (its mean logit over the crops)."""
    name = model.kind_model
    if not name:
        raise RecipeError(f"{model.name}: input = \"auto\" needs a kind estimator, and its manifest row names "
                          "none; set input = \"camera\" or \"clean\" in the recipe")
    estimator = models.get_model(name, model.path.parent)
    sess = models.session(estimator, provider, threads)
    feed = sess.get_inputs()[0].name
    logits = [float(sess.run(None, {feed: np.ascontiguousarray(c.transpose(2, 0, 1)[None], np.float32)})[0].ravel()[0])
              for c in _crops(np.clip(srgb, 0.0, 1.0))]
    return 1.0 / (1.0 + math.exp(-float(np.mean(logits))))


def camera_weight(p: float) -> float:
    """The camera result's share of the output for an estimated probability ``p`` of a camera file:
    0 below UNSURE, 1 from SURE, linear between."""
    return float(min(1.0, max(0.0, (p - UNSURE) / (SURE - UNSURE))))


def resolve(model: models.ModelInfo, srgb: np.ndarray, params: dict, provider: str = "auto",
            threads: int = 0) -> tuple[float, float | None]:
    """(the camera result's share of the output, 0..1; the estimated probability of a camera file,
    or None when the recipe says which) for the step's ``input``."""
    value = params.get("input", "auto")
    if value in INPUTS:
        return INPUTS[value], None
    if value != "auto":
        raise RecipeError(f"{model.name}: input must be \"auto\", \"camera\" or \"clean\", not {value!r}")
    p = estimate(model, srgb, provider, threads)
    return camera_weight(p), p


def grain_of(model: models.ModelInfo, params: dict) -> float:
    value = params.get("grain", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RecipeError(f"{model.name}: grain must be a number from 0 (removed) to 1 (all kept), not {value!r}")
    return float(value)


def put_back_grain(out: np.ndarray, source: np.ndarray, scale: int, grain: float) -> np.ndarray:
    """``out`` (H*s, W*s, C) plus ``grain`` times the bicubic enlargement of what it lost of ``source``
    (H, W, C): the source minus the output's ``scale`` x ``scale`` area average.  In place."""
    from truepix.engine.fidelity import area_downscale
    from truepix.resize import imresize

    h, w = source.shape[:2]
    lost = source - area_downscale(out, scale)[:h, :w]
    out += np.float32(grain) * imresize(lost, float(scale)).astype(np.float32)[:out.shape[0], :out.shape[1]]
    return out
