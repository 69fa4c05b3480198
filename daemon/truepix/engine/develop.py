"""Neural RAW development: Bayer mosaic -> demosaic (+ denoise) -> the recipe's RGB steps.

The result is white-balanced linear *camera* RGB, the space a linear DNG stores (after dividing the
white balance out again) and the one ``colour.from_camera`` converts to sRGB, Adobe RGB or ProPhoto.

The demosaic network reads the mosaic as four half-resolution planes in RGGB order plus four planes
of per-site noise deviation times the row's ``noise_map_scale`` (``models.train.bayer``'s layout,
built by ``kinds.Bayer.feed_mosaic``): other Bayer phases are turned into RGGB by mirroring one row
and/or column at the top/left edge, which is undone on the result.  The noise comes from
``rawnoise`` (the DNG's NoiseProfile, else an estimate from the mosaic, else the ISO).  The fidelity
guard anchors the result's block means of light (blocks of the manifest's ``anchor_block`` pixels)
to those of the mosaic itself (each channel's own sites; unbiased, if noisy): the network may
remove noise and aliasing, not move colour or brightness.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from truepix.engine import device, fidelity, models, rawnoise
from truepix.engine.pipeline import EngineOptions, enhance
from truepix.engine.tiling import run_tiled
from truepix.errors import RecipeError
from truepix.io.hints import Hints
from truepix.io.raw import RawMosaic
from truepix.recipes import Recipe

@dataclass
class Developed:
    rgb: np.ndarray                 # float32 (H, W, 3) white-balanced linear camera RGB
    scale: int                      # output size / mosaic size
    models: list[str]
    fidelity: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    noise: tuple[float, float] | None = None
    noise_source: str = ""
    seconds: float = 0.0


def to_rggb(mosaic: np.ndarray, pattern: str) -> tuple[np.ndarray, int, int]:
    """Mirror-pad ``mosaic`` so it starts with an RGGB tile and has even sides.

    Returns (padded, top, left): the padding added before the first row/column (0 or 1), to cut
    off the result again.  Reflection keeps every site's colour consistent: mirroring one row at
    the top puts row 1 (the other row phase) first.
    """
    r = pattern.index("R")
    top, left = r // 2, r % 2
    h, w = mosaic.shape
    bottom = (h + top) % 2
    right = (w + left) % 2
    if top or left or bottom or right:
        mosaic = np.pad(mosaic, ((top, bottom), (left, right)), mode="reflect")
    return mosaic, top, left


def pack_rggb(mosaic: np.ndarray) -> np.ndarray:
    """(H, W) RGGB mosaic, even sides -> (H/2, W/2, 4) planes R, G1, G2, B."""
    return np.stack([mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2]], axis=-1)


def noise_of(mos: RawMosaic, planes: np.ndarray) -> tuple[tuple[float, float], str]:
    """(scale, offset) of the raw noise and where it came from (see ``rawnoise``)."""
    if mos.noise_profile is not None:
        return mos.noise_profile, "DNG NoiseProfile"
    est = rawnoise.estimate(planes)
    if est is not None:
        return est, "estimated from the mosaic"
    return rawnoise.from_iso(mos.iso), f"ISO {mos.iso:g} with a typical sensor" if mos.iso else "ISO 100 assumed"


def _recentre(plane: np.ndarray, towards: int) -> np.ndarray:
    """A half-resolution plane whose sites sit half a pixel off their 2x2 tile's centre, moved onto
    it: 3/4 of each site plus 1/4 of its neighbour on the ``towards`` side (+1 or -1), per axis."""
    p = np.pad(plane, 1, mode="edge")
    h, w = plane.shape
    rows = np.float32(0.75) * p[1:h + 1] + np.float32(0.25) * p[1 + towards:h + 1 + towards]
    return np.float32(0.75) * rows[:, 1:w + 1] + np.float32(0.25) * rows[:, 1 + towards:w + 1 + towards]


def site_means(planes: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """(h, w, 3) white-balanced colour at the centre of each RGGB tile, from its own sites: red and
    blue recentred from their corners of the tile (``_recentre``), green the mean of G1 and G2.

    The guard's reference: its block means (``anchor_block / 2`` tiles a side) are the mosaic's own
    (unbiased, if noisy) means of light per channel over the block the output's means are compared with.
    """
    out = np.empty(planes.shape[:2] + (3,), np.float32)
    out[:, :, 0] = _recentre(planes[:, :, 0], +1) * np.float32(wb[0])
    np.add(planes[:, :, 1], planes[:, :, 2], out=out[:, :, 1])
    out[:, :, 1] *= np.float32(wb[1] / 2)
    out[:, :, 2] = _recentre(planes[:, :, 3], -1) * np.float32(wb[2])
    return out


def demosaic(mos: RawMosaic, model: models.ModelInfo, options: EngineOptions = EngineOptions(),
             progress: Callable[[int, int], None] | None = None, guard: bool = True, strength: float = 1.0):
    """White-balanced linear camera RGB (H, W, 3) from ``mos.mosaic`` through ``model``.

    strength: how much of the noise the network is told about (its noise planes are scaled by it):
    1 removes the noise the file has, lower values keep more grain (and more of the finest detail
    the network would otherwise take for noise), 0 demosaics only.
    Returns (rgb, noise, noise_source, max_correction).
    """
    padded, top, left = to_rggb(mos.mosaic, mos.pattern)
    planes = pack_rggb(padded)
    del padded
    noise, source = noise_of(mos, planes)
    told = (noise[0] * strength ** 2, noise[1] * strength ** 2)  # deviations scale by strength
    feed = getattr(model.kind, "feed_mosaic", None)
    if feed is None:
        raise RecipeError(f"{model.name}: takes {model.input} input, not a RAW mosaic")
    inp = feed(model, planes, mos.wb, told)
    ref = site_means(planes, mos.wb) if guard else None
    del planes
    sess, workers = models.runner(model, options.provider, options.threads)
    name = sess.get_inputs()[0].name

    def net(patch: np.ndarray) -> np.ndarray:
        return device.run(sess, name, patch)

    pad = max(model.receptive_radius, options.overlap)
    # The tile is counted in half-resolution sites: the same memory per cell as an RGB model's.
    rgb = run_tiled(net, inp, 2, tile=device.tile_for(model, sess, options.tile), pad=pad, overlap=options.overlap,
                    out_channels=3, progress=progress, workers=workers)
    del inp
    correction = 0.0
    if guard:  # on the padded result, whose RGGB tiles are those of ``ref``
        _, block, tolerance = model.kind.guard(model)
        block = max(block // 2, 1)  # in RGGB tiles
        correction = fidelity.reanchor(rgb, ref, 2, block=block, tolerance=tolerance)
    h, w = mos.mosaic.shape
    if top or left or rgb.shape[:2] != (h, w):
        rgb = rgb[top:top + h, left:left + w]  # a view: no second full-size copy
    return rgb, noise, source, correction


def develop(mos: RawMosaic, recipe: Recipe, options: EngineOptions = EngineOptions(),
            progress: Callable[[float], None] | None = None, model_dir=None) -> Developed:
    """Run ``recipe`` on a RAW file: its Bayer step (first) on the mosaic, the rest on camera RGB.

    ``mos`` from ``io.raw.read_mosaic`` (mosaic set) or ``develop_libraw`` (rgb set: the Bayer step
    is skipped, with a note).  RGB steps (lens, upscale) see the camera RGB divided by the largest
    white-balance multiplier, so highlights fit their 0..1 range, and multiplied back after.
    """
    t0 = time.perf_counter()
    table = models.with_precision(models.load_manifest(model_dir), options.precision, options.provider)
    infos = []
    for step in recipe.steps:
        if step.model not in table:
            raise RecipeError(f"recipe {recipe.name!r}: unknown model {step.model!r}; "
                              f"installed: {', '.join(sorted(table))}")
        infos.append(table[step.model])
    bayer = [i for i, info in enumerate(infos) if info.kind.needs_raw]
    if bayer and bayer != [0]:
        raise RecipeError(f"recipe {recipe.name!r}: a Bayer step ({infos[bayer[0]].name}) must be the first "
                          "and only one")
    rest = recipe.steps[1:] if bayer else recipe.steps
    share = 1.0 / (1 + len(rest))
    labels, notes, report = [], list(mos.notes), {}
    noise, source = None, ""
    if mos.mosaic is not None and bayer:
        def tick(done: int, total: int) -> None:
            if progress:
                progress(share * done / total)

        strength = infos[0].kind.strength(infos[0], recipe.steps[0].params)
        rgb, noise, source, corr = demosaic(mos, infos[0], options, tick, guard=recipe.guard, strength=strength)
        labels.append(infos[0].label)
        if recipe.guard:
            report["demosaic_anchor_max_correction"] = round(corr, 5)
    elif mos.mosaic is not None:
        from truepix.simulate.cfa import demosaic_bilinear

        rgb = demosaic_bilinear(mos.mosaic, mos.pattern).astype(np.float32) * np.asarray(mos.wb, np.float32)
        notes.append("no demosaic step in the recipe: bilinear demosaic used")
    else:
        rgb = mos.rgb
        if bayer:
            labels.append("LibRaw AHD")
    scale = 1
    if rest:
        top = float(max(np.max(mos.wb), 1.0))
        rgb /= np.float32(top)
        sub = dataclasses.replace(recipe, steps=tuple(rest))

        def sub_progress(f: float) -> None:
            if progress:
                progress(1 - share * len(rest) + share * len(rest) * f)

        # a RAW development is a camera file at its native resolution (inputkind.prior: +3 logits)
        hints = Hints(make=mos.make or None, model=mos.model or None, iso=mos.iso or None, raw=True)
        enhanced = enhance(rgb, None, sub, options, sub_progress, model_dir, hints=hints)
        rgb = enhanced.pixels
        rgb *= np.float32(top)
        labels += enhanced.models
        report.update(enhanced.fidelity)
        scale = rgb.shape[0] // mos.shape[0]
    if progress:
        progress(1.0)
    return Developed(rgb, scale, labels, report, notes, noise, source, time.perf_counter() - t0)
