"""Run a recipe's steps over an image: model by model, tile by tile, then the guard.

Images are float32 (H, W, C) in [0, 1] (C = 3, or 1 for grey), linear light or sRGB-encoded as
``enhance``'s ``transfer`` says (a decoded 8/16-bit file comes as it was stored).  The working copy
is sRGB-encoded; each model says in its manifest row which values it was trained on
(``transfer = "srgb"`` for networks trained on ordinary 8-bit photos) and the conversion happens
here, around the network, only where one needs linear light.  The last step's output goes band
by band through the guard to a ``Sink`` (``Collect`` keeps it as linear light).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from truepix.colour import linear_to_srgb, srgb_to_linear
from truepix.engine import device, fidelity, models
from truepix.engine.restrain import restrain
from truepix.engine.tiling import iter_tiled, run_tiled
from truepix.errors import RecipeError
from truepix.recipes import Recipe
from truepix.resize import imresize

@dataclass(frozen=True)
class EngineOptions:
    """How models run: ONNX Runtime provider, threads, tile size (input px), memory limit (MB)."""

    provider: str = "auto"
    threads: int = 0
    tile: int = 512
    overlap: int = 8
    memory_limit_mb: int = 0  # 0: three quarters of the machine's RAM
    # auto | float32 | float16 | int8: which of a model's files runs (models.with_precision).  The
    # app's default (config.APP_ENGINE) is "auto"; a library caller that says nothing -- eval, bench,
    # tests -- runs the rows it names, float.
    precision: str = "float32"


@dataclass
class Enhanced:
    """An enhanced image: ``pixels`` float32 (H, W, C) linear light, or None when the rows went to
    a ``Sink`` as they were finished; ``shape`` (H, W) either way."""

    pixels: np.ndarray | None
    alpha: np.ndarray | None
    models: list[str]
    fidelity: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    shape: tuple[int, int] = (0, 0)


class Sink:
    """Where the last step's output goes, row band by row band as the guard finishes them, so a
    job's memory follows its tiles rather than its output: ``start(height, width)``, then
    ``write(y, rows)`` top to bottom, rows (n, width, 3) float32, sRGB-encoded, 0..1 (a view the
    sink may change).  ``Collect`` keeps them as the linear image ``Enhanced.pixels``; the
    encoder's sink (``io.encode.Samples``) quantises them straight into the file's samples."""

    def start(self, height: int, width: int) -> None:
        raise NotImplementedError

    def write(self, y: int, rows: np.ndarray) -> None:
        raise NotImplementedError


class Collect(Sink):
    """The whole output as linear light, (H, W, 3), or (H, W, 1) for a grey photo."""

    def __init__(self, grey: bool = False):
        self.grey, self.pixels = grey, None

    def start(self, height: int, width: int) -> None:
        self.pixels = np.empty((height, width, 1 if self.grey else 3), np.float32)

    def write(self, y: int, rows: np.ndarray) -> None:
        srgb_to_linear(rows, out=rows)
        if self.grey:
            rows = rows.mean(axis=2, keepdims=True, dtype=np.float32)
        self.pixels[y:y + len(rows)] = rows


def restraint_of(model: models.ModelInfo, pixels: np.ndarray) -> tuple[int, float, float] | None:
    """(clamp radius, noise gate, noise deviation) for ``restrain.restrain`` after a model whose
    manifest row asks for it (``clamp_radius``, ``noise_gate``: the lens optimizer's), else None.
    The noise deviation is estimated once, on the whole input (``noiselevel``)."""
    asked = model.kind.restraint(model)
    if asked is None:
        return None
    radius, gate = asked
    from truepix.engine.noiselevel import estimate_sigma

    return radius, gate, estimate_sigma(pixels) if gate else 0.0


def _prepare(model: models.ModelInfo, pixels: np.ndarray, options: EngineOptions, params: dict):
    """(the tile function, the network's input, the tile padding, the step's strength, the tile side:
    ``device.tile_for``, the cells run side by side: ``models.runner``) of one network over ``pixels``
    (``run_model``)."""
    kind = model.kind
    if not kind.rgb:
        raise RecipeError(f"{model.name}: takes {model.input} input, which only a RAW development can feed "
                          "(it must be the first step of a recipe for RAW files)")
    sess, workers = models.runner(model, options.provider, options.threads)
    name = sess.get_inputs()[0].name
    strength = kind.strength(model, params)
    feed = kind.feed(model, pixels, params, options.provider, options.threads)
    folded = kind.folds and model.scale == 1
    restraint = restraint_of(model, pixels)

    def net(patch: np.ndarray) -> np.ndarray:
        h, w = patch.shape[2:]
        if folded and (h % 2 or w % 2):  # the network folds 2x2 pixels: even sides
            out = device.run(sess, name, np.pad(patch, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)),
                                                mode="reflect"))[:, :, :h, :w]
        else:
            out = device.run(sess, name, patch)
        if restraint is not None:  # per tile: the tile's padding covers the filters' windows
            c = out.shape[1]
            for i in range(out.shape[0]):
                restrain(out[i].transpose(1, 2, 0), patch[i, :c].transpose(1, 2, 0), *restraint)
        return out

    tile = device.tile_for(model, sess, options.tile)
    return net, feed, max(model.receptive_radius, options.overlap), strength, tile, workers


def run_model(
    model: models.ModelInfo,
    pixels: np.ndarray,
    options: EngineOptions = EngineOptions(),
    progress: Callable[[int, int], None] | None = None,
    params: dict | None = None,
) -> np.ndarray:
    """One network over an RGB image, tiled.

    ``pixels`` must already be in the model's ``transfer`` space (sRGB-encoded
    or linear); the result is in the same space, unclipped.  The model's kind (``kinds``, by its
    ``input``) builds the network's input: a noise-map model (``input = "rgb+noise"``) also gets a
    plane of the noise level (``kinds.noise_level``) and its result is blended toward the input by
    the step's ``strength``; a lens model (``"rgb+field"``) gets the pixels' place in the frame
    (``kinds.field_planes``).  A row with ``clamp_radius`` or ``noise_gate`` (the lens's) has its result
    restrained (``restraint_of``: no overshoot past the input's local range, no correction where
    the input is flat and noisy).
    """
    params = params or {}
    net, feed, pad, strength, tile, workers = _prepare(model, pixels, options, params)
    out = run_tiled(net, feed, model.scale, tile=tile, pad=pad, overlap=options.overlap,
                    out_channels=pixels.shape[2], progress=progress, workers=workers)
    if strength < 1.0:
        out *= np.float32(strength)
        out += np.float32(1 - strength) * pixels
    model.kind.finish(model, out, pixels, params)
    return out


def model_rows(
    model: models.ModelInfo,
    pixels: np.ndarray,
    options: EngineOptions = EngineOptions(),
    progress: Callable[[int, int], None] | None = None,
    params: dict | None = None,
    whole: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """``run_model``'s result band by band (``tiling.iter_tiled``): ``(y, rows)``, top to bottom.
    A step whose kind puts something back over the whole result (``Kind.finishes``: an upscaler's
    grain), or any with ``whole``, is run whole and given as one band."""
    params = params or {}
    if whole or model.kind.finishes(model, params):
        yield 0, run_model(model, pixels, options, progress, params)
        return
    net, feed, pad, strength, tile, workers = _prepare(model, pixels, options, params)
    if strength < 1.0 and model.scale != 1:
        raise RecipeError(f"{model.name}: strength blends toward the input, which needs a same-size model")
    for y, rows in iter_tiled(net, feed, model.scale, tile=tile, pad=pad, overlap=options.overlap,
                              out_channels=pixels.shape[2], progress=progress, workers=workers):
        if strength < 1.0:
            rows *= np.float32(strength)
            rows += np.float32(1 - strength) * pixels[y:y + len(rows)]
        yield y, rows


def _convert_(x: np.ndarray, space: str, want: str) -> np.ndarray:
    if space == want:
        return x
    return linear_to_srgb(x, out=x) if want == "srgb" else srgb_to_linear(x, out=x)


def _srgb_view(x: np.ndarray, space: str) -> np.ndarray:
    """``x`` sRGB-encoded: itself when it is, else a converted copy."""
    return x if space == "srgb" else linear_to_srgb(x.copy())


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def _guard_of(info: models.ModelInfo, kind: float | None) -> tuple[str, int, float]:
    """(space, block, tolerance) of the guard after ``info`` (its kind's ``guard``); a model told it
    upscales a camera file (``rgb+kind`` = 1) is guarded as the camera-trained models are."""
    return info.kind.guard(info, kind)


def _blend_guards(guards: list[tuple[tuple[str, int, float], float]]) -> tuple[str, int, float]:
    """One guard for a blend of runs: the space of the larger share, the larger block and the
    share-weighted tolerance."""
    (space, _, _), _ = max(guards, key=lambda g: g[1])
    return (space, max(g[1] for g, _ in guards), sum(g[2] * w for g, w in guards))


def _anchor(source: np.ndarray, scale: int, guards: list[tuple[str, int, float]]) -> fidelity.Anchor:
    """The guard over the output, in the space the recipe's models were trained to keep means in.

    Both images are sRGB-encoded.  A model trained on the bicubic protocol keeps sRGB-encoded
    means (its degradation is defined there); a model trained on simulated cameras keeps *linear*
    means: it removes sensor noise, whose sRGB-encoded mean is biased (noise through the gamma curve,
    clipped at black), so anchoring to the noisy input's sRGB means would put that bias back.
    ``guards``: each step's ``_guard_of``.
    """
    space = "linear" if any(g[0] == "linear" for g in guards) else "srgb"
    block = max(g[1] for g in guards)
    tolerance = max(g[2] for g in guards)
    return fidelity.Anchor(source, scale, block, tolerance, linear=space == "linear")


def _in_srgb(bands: Iterable[tuple[int, np.ndarray]], space: str) -> Iterator[tuple[int, np.ndarray]]:
    for y, rows in bands:
        yield y, _convert_(rows, space, "srgb")


def _blended(runs: list[tuple[Iterator[tuple[int, np.ndarray]], float]]) -> Iterator[tuple[int, np.ndarray]]:
    """Bands of runs made in lockstep (the same tiles), blended by their shares, sRGB-encoded values."""
    if len(runs) == 1:
        yield from runs[0][0]
        return
    for parts in zip(*(bands for bands, _ in runs), strict=True):
        y, acc = parts[0]
        acc *= np.float32(runs[0][1])
        for (y2, other), (_, w) in zip(parts[1:], runs[1:], strict=True):
            assert y2 == y and len(other) == len(acc)
            acc += np.float32(w) * other
        yield y, acc


def enhance(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    recipe: Recipe,
    options: EngineOptions = EngineOptions(),
    progress: Callable[[float], None] | None = None,
    model_dir=None,
    sink: Sink | None = None,
    hints=None,
    transfer: str = "linear",
) -> Enhanced:
    """Apply ``recipe`` to an image.

    Args:
        pixels: float32 (H, W, 3|1) 0..1, in ``transfer``.
        alpha: float32 (H, W) or None; resized with the image (bicubic), never
            sent through a network trained on photographs.
        recipe: the steps; ``recipe.guard`` turns the fidelity guard on.
        progress: called with the fraction done, 0..1.
        sink: where the output rows go as they are finished (``Sink``); None keeps them
            (``Collect``) as ``Enhanced.pixels``.  The last step runs band by band: its output is
            never whole in memory unless the sink keeps it.  With a sink, RGB ``pixels`` are
            taken over as the engine's working copy (changed: the caller must not use them after).
        hints: what the file's EXIF says of its origin (``io.hints.Hints``; a RAW development's
            ``io.hints.RAW_DEVELOPMENT``), or None: weighed by a step decided per photo (the
            adaptive upscaler's ``input = "auto"``, ``engine.inputkind.prior``).
        transfer: the transfer of ``pixels``: "linear" (linear light) or "srgb" (sRGB-encoded, as
            an 8/16-bit file stores them: ``io.Decoded.transfer``), which the engine works in
            without a pass through the curves.  The output is linear light either way.

    Returns:
        ``Enhanced`` with the new pixels (same channel count; None with a ``sink``), alpha, the
        model labels used and the fidelity report (empty when the guard is off).
    """
    t0 = time.perf_counter()
    table = models.with_precision(models.load_manifest(model_dir), options.precision, options.provider)
    infos = []
    for step in recipe.steps:
        if step.model not in table:
            raise RecipeError(
                f"recipe {recipe.name!r}: unknown model {step.model!r}; installed: {', '.join(sorted(table))}"
            )
        infos.append(table[step.model])
    grey = pixels.shape[2] == 1
    # The guard's space follows the models (see _anchor): for the bicubic protocol it is
    # sRGB-encoded values; anchoring linear means there cost 0.27 dB PSNR-Y on Set5 (measured).
    # the working copy, sRGB-encoded; with a sink the caller's RGB pixels become it (one image less)
    owned = sink is not None and pixels.shape[2] == 3 and pixels.dtype == np.float32 and pixels.flags.writeable
    source = pixels if owned else _as_rgb(pixels).astype(np.float32, copy=True)
    if transfer == "srgb":
        np.clip(source, 0.0, 1.0, out=source)  # as the curve would have (a decoded file's values already are)
    elif transfer == "linear":
        linear_to_srgb(source, out=source)
    else:
        raise ValueError(f"unknown transfer {transfer!r} (srgb or linear)")
    current, space, total_scale = source, "srgb", 1
    guards, decided = [], {}
    labels = [info.label for info in infos]
    bands = None  # the last step's output, band by band, sRGB-encoded
    for i, info in enumerate(infos):
        def tick(done: int, total: int, i=i, part=0, parts=1) -> None:
            if progress:
                progress((i + (part + done / total) / parts) / len(infos))

        last = i == len(infos) - 1
        params = recipe.steps[i].params
        # A step decided per photo (rgb+kind) on the sRGB image it receives, once for the photo:
        # its runs, blended; any other runs once.
        plan = info.kind.branches(info, params, partial(_srgb_view, current, space), table, options.provider,
                                  options.threads, hints=hints)
        if plan is None:
            guards.append(_guard_of(info, None))
            if space != info.transfer:
                current = _convert_(current.copy() if current is source else current, space, info.transfer)
            if last:
                bands = _in_srgb(model_rows(info, current, options, tick, params), info.transfer)
            else:
                current, space = run_model(info, current, options, tick, params), info.transfer
        else:
            branches, told = plan
            decided.update(told)
            labels[i] = " + ".join(f"{b.label} x{w:.2f}" if len(branches) > 1 else b.label
                                   for b, _, _, w in branches)
            guards.append(_blend_guards([(_guard_of(b, k), w) for b, _, k, w in branches]))
            runs = []
            whole = any(b.kind.finishes(b, bparams) for b, bparams, _, _ in branches)  # bands must match
            for j, (b, bparams, _, w) in enumerate(branches):
                x = current if space == b.transfer else _convert_(current.copy(), space, b.transfer)
                rows = model_rows(b, x, options, partial(tick, part=j, parts=len(branches)), bparams, whole)
                runs.append((_in_srgb(rows, b.transfer), w))
            # the uncertain band: (1 - w) clean + w camera, in sRGB-encoded values, tile row by tile row
            bands = _blended(runs)
            if not last:
                h, w = current.shape[:2]
                current, space = np.empty((h * info.scale, w * info.scale, 3), np.float32), "srgb"
                for y, rows in bands:
                    current[y:y + len(rows)] = rows
                bands = None
        total_scale *= info.scale
    if bands is None:  # no steps: the photo as it came
        bands = iter([(0, _convert_(current.copy(), space, "srgb"))])
    out_h, out_w = source.shape[0] * total_scale, source.shape[1] * total_scale
    kept = Collect(grey) if sink is None else sink
    kept.start(out_h, out_w)
    anchor = _anchor(source, total_scale, guards) if recipe.guard else None
    measure = fidelity.Report(source, total_scale) if recipe.guard else None
    def finish(y: int, rows: np.ndarray) -> None:
        np.clip(rows, 0.0, 1.0, out=rows)
        for y0, done in anchor.push(rows) if anchor is not None else [(y, rows)]:
            if measure is not None:
                np.clip(done, 0.0, 1.0, out=done)
                measure.push(done)
            kept.write(y0, done)

    # The guard, the report and the sink take each band in a thread of their own, in order, while the
    # network computes the next band (numpy and ONNX Runtime both release the GIL): their single-
    # threaded work hides behind the network's.  One band waits at most; an error in either thread
    # ends the run.
    with ThreadPoolExecutor(1, thread_name_prefix="truepix-finish") as pool:
        pending = None
        for y, rows in bands:
            if pending is not None:
                pending.result()
            pending = pool.submit(finish, y, rows)
        if pending is not None:
            pending.result()
    report: dict[str, float] = dict(decided)
    if recipe.guard:
        report["anchor_max_correction"] = round(anchor.max_correction, 5)
        report.update(measure.result())
        # The colour shift compares local means with the input's.  A step that removes noise (a
        # denoiser; a camera-trained upscaler, guarded in linear light for that reason) leaves the
        # input's noise in its means only: 1-3 dE00 of it is the noise removed, not a colour change
        # (a perfect denoise of AWGN sigma 25 reads about 2.5 at these 8-pixel blocks).  Say so.
        noisy = any(info.task == "denoise" for info in infos) or any(g[0] == "linear" for g in guards)
        report["colour_shift_against"] = "noisy input" if noisy else "input"
    del source
    if alpha is not None and total_scale != 1:
        alpha = np.clip(imresize(alpha, float(total_scale)), 0.0, 1.0).astype(np.float32)
    pixels_out = kept.pixels if sink is None else None
    return Enhanced(pixels_out, alpha, labels, report, time.perf_counter() - t0, (out_h, out_w))
