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

"auto" also weighs what the file's EXIF says of its origin (``io.hints.Hints``, read at decode;
``prior``): a shift added to the estimator's mean logit before the sigmoid, so p = sigmoid(mean
logit + shift).  The rules, first match wins:

- a RAW that truepix develops (``engine.develop``, or a RAW read as RGB): +3.0.  It is a camera file
  at its native resolution by construction.
- no EXIF at all: 0.  Renders, screenshots, web images and files whose EXIF was stripped alike.
- the EXIF's PixelXDimension x PixelYDimension is the pixels' size enlarged by the same factor f on
  both sides (the aspect ratio kept within 2%; either orientation): the file was downsized by a
  tool that kept the camera's EXIF.  f >= 3: -2.0.  A camera photo downsized that much has its
  noise, demosaicing and blur averaged to a third or less; it is what the estimator's clean class
  is made of (its teachers are photos downsized several times).  1 < f < 3: 0, and no camera
  bonus either: the estimator's training labels camera photos an editor downsized 2x *camera*
  (``simulate.family``'s camera-resized shots, ``models.train.data``), so a mild downsize says
  nothing either way.  Smaller on both sides (f < 1: the file was enlarged): 0.
  A crop changes the aspect ratio and is not taken for a downsize: its pixels are native.
- Software naming an editor or converter (``EDITORS``, case-insensitive, whole words): 0.  An
  export may be full size or not, sharpened or denoised; editors rewrite PixelXDimension to the
  exported size, so a matching size proves nothing.  The estimator decides alone.
- Make or Model present (a camera wrote it: camera firmware writes its own Software, which names no
  editor): +2.0, and +3.0 at ISO >= 1600.  The larger shift at high ISO follows the cost of a
  mistake: a noisy file upscaled as clean has its noise sharpened into texture, a clean low-ISO file
  upscaled as camera loses little.
- anything else (EXIF naming no camera: a Software or an ISO alone): 0.

The sizes of the shifts are set by reasoning, not measured on real files: no labelled set of real
camera files and real exports exists here.  Against the calibration (models/README.md, input-kind)
they mean: +2.0 lifts the camera files the estimator doubts most (p = 0.12 at the 5th percentile,
logit -2) to the blend band's lower edge; +3.0 to p = 0.73 (blended, three fifths camera); a clean
render at its 95th percentile (p = 0.27) that carried a camera's EXIF untouched would be lifted
into the band by +2.0 (p = 0.73), which is why only an original-looking file gets it.  -2.0 takes
a typical camera file (p = 0.996, logit 5.5) to 0.97, still camera: the EXIF moves the unsure
photos, not the ones the estimator is sure of.  A step's ``hints = false`` ignores them.

``grain`` (0..1) puts back that share of what the upscaler removed from the input (its noise, for
a camera file): the input minus the output's area average, enlarged bicubically, added to the
output.  At 1 the output averages back to the input exactly, grain and all.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

from truepix.engine import models
from truepix.errors import RecipeError

if TYPE_CHECKING:
    from truepix.io.hints import Hints

INPUTS = {"clean": 0.0, "camera": 1.0}
UNSURE, SURE = 0.5, 0.9  # "auto": clean below UNSURE, camera from SURE, a blend of both between
CROP = 256      # crop side the estimator sees (input pixels)
MAX_CROPS = 9   # a 3x3 grid of crops over the photo at most

# ``prior``'s logit shifts (module docstring: set by reasoning, not measured on real files)
RAW_SHIFT = 3.0         # a RAW truepix develops
CAMERA_SHIFT = 2.0      # a camera original: Make/Model, no editor in Software, not downsized
HIGH_ISO_SHIFT = 3.0    # the same at ISO >= HIGH_ISO
HIGH_ISO = 1600
DOWNSIZED_SHIFT = -2.0  # downsized by at least DOWNSIZED_FACTOR with the camera's EXIF kept
DOWNSIZED_FACTOR = 3.0
ASPECT_TOLERANCE = 0.02  # a downsize keeps the aspect ratio within this (rounding); a crop does not
# Software that edits, converts or resizes (whole words, case-insensitive); camera firmware names none.
EDITORS = ("lightroom", "photoshop", "camera raw", "gimp", "darktable", "rawtherapee", "capture one",
           "captureone", "imagemagick", "graphicsmagick", "affinity", "pixelmator", "digikam", "paint.net",
           "paintshop", "snapseed", "on1", "dxo", "luminar", "acdsee", "xnview", "irfanview", "faststone",
           "picasa", "photoscape", "corel", "silkypix", "photodirector", "polarr", "vsco", "canva", "krita",
           "photopea", "exiftool")
_EDITOR = re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(e) for e in EDITORS) + r")(?![a-z0-9])", re.I)


def _crops(pixels: np.ndarray) -> list[np.ndarray]:
    """Up to MAX_CROPS crops of CROP pixels spread over the frame (the whole image when smaller)."""
    h, w = pixels.shape[:2]
    if h <= CROP or w <= CROP:
        return [pixels]
    n = 3 if h >= 3 * CROP and w >= 3 * CROP else 2
    ys = np.linspace(0, h - CROP, n).astype(int)
    xs = np.linspace(0, w - CROP, n).astype(int)
    return [pixels[y:y + CROP, x:x + CROP] for y in ys for x in xs][:MAX_CROPS]


def downsized_by(hints: Hints) -> float | None:
    """The factor the pixels were downsized by since the EXIF's PixelX/YDimension was written
    (> 1 smaller, < 1 enlarged), when both sides changed by the same factor (either orientation,
    ``ASPECT_TOLERANCE``); None without both sizes, or when they differ otherwise (a crop)."""
    if not (hints.exif_width and hints.exif_height and hints.width and hints.height):
        return None
    ew, eh = sorted((hints.exif_width, hints.exif_height))
    w, h = sorted((hints.width, hints.height))
    fx, fy = ew / w, eh / h
    if abs(fx - fy) > ASPECT_TOLERANCE * max(fx, fy):
        return None
    return (fx + fy) / 2


def prior(hints: Hints | None) -> tuple[float, str]:
    """(the logit shift, why) that the photo's EXIF ``hints`` give its input-kind estimate; the
    rules and their reasons are the module docstring's."""
    if hints is None:
        return 0.0, "no hints"
    if hints.raw:
        return RAW_SHIFT, "RAW development"
    if not hints.has_exif:
        return 0.0, "no EXIF"
    f = downsized_by(hints)
    if f is not None and f >= DOWNSIZED_FACTOR:
        return DOWNSIZED_SHIFT, (f"downsized {f:.1f}x since its EXIF was written "
                                 f"({hints.exif_width}x{hints.exif_height} -> {hints.width}x{hints.height})")
    if f is not None and f > 1 + ASPECT_TOLERANCE:
        return 0.0, f"downsized {f:.1f}x since its EXIF was written: a camera photo exported smaller"
    if f is not None and f < 1 - ASPECT_TOLERANCE:
        return 0.0, f"enlarged {1 / f:.1f}x since its EXIF was written"
    editor = _EDITOR.search(hints.software or "")
    if editor:
        return 0.0, f"written by an editor ({hints.software})"
    if hints.make or hints.model:
        camera = " ".join(v for v in (hints.make, hints.model) if v)
        if hints.iso is not None and hints.iso >= HIGH_ISO:
            return HIGH_ISO_SHIFT, f"a camera original ({camera}) at ISO {hints.iso:g}"
        return CAMERA_SHIFT, f"a camera original ({camera})"
    return 0.0, "EXIF names no camera"


def hint_of(model: models.ModelInfo, params: dict, hints: Hints | None) -> tuple[float, str]:
    """``prior(hints)``, unless the step says ``hints = false`` (then no shift)."""
    use = params.get("hints", True)
    if not isinstance(use, bool):
        raise RecipeError(f"{model.name}: hints must be true or false, not {use!r}")
    return prior(hints) if use else (0.0, "hints = false")


def estimate(model: models.ModelInfo, srgb: np.ndarray, provider: str = "auto", threads: int = 0,
             shift: float = 0.0) -> float:
    """The probability that ``srgb`` ((H, W, 3) sRGB-encoded 0..1) is a camera file, from the
    estimator ``model`` names: the sigmoid of its mean logit over the crops plus ``shift`` (the
    EXIF's ``prior``)."""
    name = model.kind_model
    if not name:
        raise RecipeError(f"{model.name}: input = \"auto\" needs a kind estimator, and its manifest row names "
                          "none; set input = \"camera\" or \"clean\" in the recipe")
    estimator = models.get_model(name, model.path.parent)
    sess = models.session(estimator, provider, threads)
    feed = sess.get_inputs()[0].name
    logits = [float(sess.run(None, {feed: np.ascontiguousarray(c.transpose(2, 0, 1)[None], np.float32)})[0].ravel()[0])
              for c in _crops(np.clip(srgb, 0.0, 1.0))]
    return 1.0 / (1.0 + math.exp(-(float(np.mean(logits)) + float(shift))))


def camera_weight(p: float) -> float:
    """The camera result's share of the output for an estimated probability ``p`` of a camera file:
    0 below UNSURE, 1 from SURE, linear between."""
    return float(min(1.0, max(0.0, (p - UNSURE) / (SURE - UNSURE))))


def resolve(model: models.ModelInfo, srgb: np.ndarray, params: dict, provider: str = "auto",
            threads: int = 0, hints: Hints | None = None) -> tuple[float, float | None]:
    """(the camera result's share of the output, 0..1; the estimated probability of a camera file,
    or None when the recipe says which) for the step's ``input``; "auto" weighs the photo's EXIF
    ``hints`` (``prior``) unless the step says ``hints = false``."""
    shift, _ = hint_of(model, params, hints)  # a bad "hints" is an error whichever the input
    value = params.get("input", "auto")
    if value in INPUTS:
        return INPUTS[value], None
    if value != "auto":
        raise RecipeError(f"{model.name}: input must be \"auto\", \"camera\" or \"clean\", not {value!r}")
    p = estimate(model, srgb, provider, threads, shift=shift)
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
