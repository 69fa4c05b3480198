"""The real-camera protocol for ``truepix eval --task upscale --degradation rawbin``.

Ground truth and input both come from one real RAW file: the Bayer mosaic as recorded (full
resolution), and a half-resolution mosaic made from it by binning each colour's same-colour sites
2x2 (pack into the 4 CFA planes, average 2x2 blocks in each, unpack with the same pattern).  The
half mosaic keeps the real lens, the real sensor and real noise statistics (binned: 4 sites
averaged); only the resolution changes.  Both mosaics are developed by the SAME
classical developer (``develop``), and an upscaler's x2 of the half render is scored against the
full render.

Binning is *registered*: plain 2x2 averaging would put each colour's binned sample at the centroid
of its four sites, half a full-resolution pixel off the half-resolution site's centre and in a
different direction per CFA site (R and B a full pixel apart), a colour misregistration that no
camera of half the resolution has and no upscaler can undo (it cost bicubic about 2.5 dB on two of
the three files).  Weighting the two sites along each axis 3/4 and 1/4 puts every sample on its
site's centre; the noise then falls 1.6x instead of 2x (``bin_mosaic(registered=False)`` keeps the
plain average for comparison).

Large frames: a centred crop of at most ``MAX_HALF_PIXELS`` of the half render (and the matching
2x crop of the full mosaic) is evaluated, to keep a run to minutes.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from truepix.colour import linear_to_srgb
from truepix.errors import EvalError
from truepix.simulate.cfa import _site_offsets, cfa_masks, pack, unpack

MAX_HALF_PIXELS = 1_500_000   # the half render is cropped (centred) to at most this many pixels
DEVELOPER = "white levels and as-shot white balance from the file, highlight clip, Menon 2007 demosaic, " \
            "camera -> sRGB matrix, sRGB curve, clip"


def raw_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """Every visible file in ``folder``, sorted (what is not a readable Bayer RAW is skipped later)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def bin_mosaic(mosaic: np.ndarray, pattern: str, registered: bool = True) -> np.ndarray:
    """Half-resolution mosaic with the same ``pattern``: each colour plane's same-colour sites averaged 2x2.

    mosaic: (H, W) with H and W multiples of 4.  Returns (H/2, W/2) in the mosaic's float dtype.
    registered=True weights the two sites of each axis 3/4 and 1/4 instead of 1/2 and 1/2, which puts
    every binned sample on its half-resolution site's centre (no colour misregistration, see the
    module docstring) at the cost of less noise averaging (noise down 1.6x instead of 2x).
    """
    h, w = mosaic.shape
    if h % 4 or w % 4:
        raise ValueError(f"binning needs sides that are multiples of 4, got {h}x{w}")
    planes = pack(mosaic, pattern).astype(np.float64)  # (H/2, W/2, 4): R, G1, G2, B
    blocks = planes.reshape(h // 4, 2, w // 4, 2, 4)
    if not registered:
        return unpack(blocks.mean(axis=(1, 3)).astype(mosaic.dtype), pattern)
    near, far = np.array([0.75, 0.25]), np.array([0.25, 0.75])
    out = np.empty((h // 4, w // 4, 4))
    for c, (dy, dx) in enumerate(_site_offsets(pattern)):  # the site's phase inside the 2x2 CFA tile
        out[:, :, c] = np.einsum("aibj,i,j->ab", blocks[..., c], near if dy == 0 else far, near if dx == 0 else far)
    return unpack(out.astype(mosaic.dtype), pattern)


def visible_mosaic(mosaic: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    """The file's default crop, its origin moved to even rows and columns so the CFA pattern holds."""
    if crop is None:
        return mosaic
    top, left, height, width = crop
    t, lf = top + top % 2, left + left % 2
    return mosaic[t:top + height, lf:left + width]


def centred_crop(mosaic: np.ndarray, max_half_pixels: int = MAX_HALF_PIXELS) -> tuple[np.ndarray, tuple]:
    """A centred crop whose sides are multiples of 4 (even origin: the pattern holds) and whose binned
    half has at most ``max_half_pixels`` pixels.  Returns (crop, (top, left, height, width))."""
    h, w = mosaic.shape
    f = min(1.0, math.sqrt(4 * max_half_pixels / (h * w)))
    ch, cw = int(h * f) // 4 * 4, int(w * f) // 4 * 4
    top, left = (h - ch) // 4 * 2, (w - cw) // 4 * 2
    return mosaic[top:top + ch, left:left + cw], (top, left, ch, cw)


def develop(mosaic: np.ndarray, pattern: str, wb: np.ndarray, rgb_cam: np.ndarray) -> np.ndarray:
    """The classical developer both mosaics go through: sRGB float32 (H, W, 3) in 0..1.

    mosaic: normalised raw (0 = black, 1 = white level, as ``read_mosaic`` gives it).  As-shot white
    balance per site, clipped at white (highlights stay neutral), Menon 2007 demosaic, camera RGB ->
    linear sRGB (``RawMosaic.rgb_cam``: a camera without a matrix gets ``io.rawcolour``'s fallback,
    the one the develop recipes use, not a grey identity), clip, sRGB curve.  Nothing is clipped at
    black before the matrix, so noise keeps its mean.
    """
    from truepix.evaluate.independent import menon_demosaic

    gains = cfa_masks(pattern, *mosaic.shape).astype(np.float32) @ np.asarray(wb, np.float32)
    balanced = np.minimum(mosaic * gains, 1.0)
    rgb = menon_demosaic(balanced, pattern)
    lin = np.clip(rgb @ np.asarray(rgb_cam, np.float32).T, 0.0, 1.0)
    return linear_to_srgb(lin)


def cases(files: list[pathlib.Path], scale: int, skipped: dict, crops: dict, max_half_pixels: int = MAX_HALF_PIXELS,
          registered: bool = True):
    """(name, truth, lr) for each readable Bayer RAW in ``files``: the full render and the half render.

    Files ``read_mosaic`` refuses (not Bayer, unreadable) go into ``skipped`` {name: reason}; the
    evaluated crop goes into ``crops`` {name: {"mosaic": its size, "default_crop": the file's, "crop": top, left,
    height, width inside the default crop, "pattern"}}.  ``registered``: see
    ``bin_mosaic``.
    """
    from truepix.io.raw import read_mosaic
    from truepix.io.samples import ReadFailure

    if scale != 2:
        raise EvalError("eval: the rawbin protocol bins 2x2 and tests x2 only (use --scale 2)")
    for path in files:
        try:
            raw = read_mosaic(path)
        except ReadFailure as err:
            skipped[path.name] = f"{type(err).__name__}: {err}"
            continue
        full = visible_mosaic(raw.mosaic, raw.crop)
        full, box = centred_crop(full, max_half_pixels)
        if min(full.shape) < 32:
            skipped[path.name] = f"too small after cropping ({full.shape[1]}x{full.shape[0]})"
            continue
        half = bin_mosaic(full, raw.pattern, registered)
        rgb_cam = raw.rgb_cam()
        crops[path.name] = {"mosaic": list(raw.shape), "default_crop": list(raw.crop) if raw.crop else None,
                            "crop": list(box), "pattern": raw.pattern}
        truth = develop(full, raw.pattern, raw.wb, rgb_cam)
        lr = develop(half, raw.pattern, raw.wb, rgb_cam)
        yield path.name, truth, lr
