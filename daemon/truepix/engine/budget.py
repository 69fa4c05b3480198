"""A job's peak memory and output size, estimated from the input's header before anything is decoded.

The engine holds the decoded input (its sRGB working copy, for the fidelity guard), each step's
input and output up to the last step (an ``input = "auto"`` upscale may run two branches and blend
them); the last step runs band by band (``pipeline.Sink``): a band of tiles per branch, never its
whole float output, and a TIFF or PNG is written as the bands come (a JPEG's 8-bit samples are
gathered for its encoder).  So a job's peak grows with its input, its intermediate steps and the
output's width: a 219 KB PNG of 15000 x 15000 pixels upscaled 2x still needs about 10 GB, and
three chained x4 steps multiply the pixels by 4096.  Such a job is refused before it starts, with
the estimate and the limit in the message, instead of failing after minutes of work or being
killed by the system.

The model, in bytes, for P input pixels of width W, steps of scale s_i, the output's samples
O bytes (3 channels at the recipe's bit depth; 0 for a TIFF or PNG, written band by band;
12 bytes = one float32 RGB pixel)::

    peak = 24 P + max(max_{i<last} 12 (p_i + k_i p_i s_i^2), 16 p_last + 3 k_last band) + O + BASE
    band = 12 (tile + 16) s_last^2 W_last

with p_i the pixels entering step i (16 bytes a pixel for the last step's network input with its
extra plane), k_i = 2 for a step that may blend two runs, else 1, three bands a run (the one being
built, the one the guard and the sink finish in their own thread, the carry between them); BASE
covers ONNX Runtime's arena, the libraries and one cell's network run; each further cell run side
by side on the CPU (``models.runner``, two) adds its network's feature maps for a tile with its
margins, ``device.bytes_per_input_pixel`` x (tile + 32)^2 (0.23 GB for the 48-channel upscalers).  Measured against it
(docs/reliability.md, "Memory"): a 24 MP 16-bit TIFF upscaled 2x to a 96 MP TIFF file to file
peaked at 1375 MB (`truepix bench --sizes 24 --model upscale-x2`, its file-to-file row; 2518 MB
before the output streamed); the estimate for it is 1.57 GB (two bands a run then; 1.71 GB with
three) — meant to be on the safe side, not exact.
A RAW developed by truepix's own demosaic keeps its whole output (``develop``); the
estimate's 24 P covers its mosaic and camera RGB at the input's size.

The limit is ``[engine] memory_limit_mb``, or three quarters of the machine's RAM when it is 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from truepix.engine.models import CELL_WORKERS
from truepix.io import formats

BASE = 400 << 20
GB = 1 << 30


@dataclass(frozen=True)
class Estimate:
    peak_bytes: int
    out_width: int
    out_height: int
    out_bytes: int  # the output's pixels as the recipe's bit depth, uncompressed


def total_ram() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit(limit_mb: int = 0) -> int:
    """Bytes a job may use at its peak: ``limit_mb`` MiB, or 3/4 of the RAM when 0 (8 GB if unknown)."""
    if limit_mb > 0:
        return limit_mb << 20
    ram = total_ram()
    return int(0.75 * ram) if ram else 8 * GB


def _steps(recipe, table) -> list[tuple[int, int, int]]:
    """(scale, branches, bytes of one cell's network run) of each step the manifest knows."""
    from truepix.engine.device import bytes_per_input_pixel

    out = []
    for step in recipe.steps:
        info = table.get(step.model)
        if info is None:
            continue
        blend = info.kind.may_blend(step.params)
        out.append((int(info.scale), 2 if blend else 1, bytes_per_input_pixel(info)))
    return out


def estimate(width: int, height: int, recipe, table, tile: int = 512, workers: int = CELL_WORKERS) -> Estimate:
    """The job's peak memory and output for an input of ``width`` x ``height`` pixels, its cells run
    ``workers`` side by side (``models.runner``)."""
    p = width * height
    steps = _steps(recipe, table)
    peak_steps = 0
    scale = 1
    for i, (s, branches, per_pixel) in enumerate(steps):
        p_in, w_in = p * scale * scale, width * scale
        scale *= s
        cells = (workers - 1) * per_pixel * (tile + 32) ** 2  # the cells run beside the one BASE covers
        if i < len(steps) - 1:
            peak_steps = max(peak_steps, 12 * (p_in + branches * p_in * s * s) + cells)
        else:  # band by band into the output's samples
            band = 12 * (tile + 16) * s * s * w_in
            peak_steps = max(peak_steps, 16 * p_in + 3 * branches * band + cells)
    p_out = p * scale * scale
    out_bytes = p_out * 3 * (recipe.bit_depth // 8 if hasattr(recipe, "bit_depth") else 2)
    # a TIFF or PNG is written band by band (io/stream.py): only a JPEG's samples (or a photo with
    # alpha, which the header check does not know of) are held whole
    fmt = formats.encoded(getattr(recipe, "format", "tiff"))
    held = 0 if fmt is not None and fmt.streamer is not None else out_bytes
    peak = 24 * p + peak_steps + held + BASE
    return Estimate(peak, width * scale, height * scale, out_bytes)


def check(path, width: int, height: int, recipe, limit_mb: int = 0, table=None) -> Estimate:
    """Raise ImageReadError (naming ``path``) when the job would exceed the memory limit; the
    estimate otherwise.  (A disk too full for the output fails at the write, cleanly.)"""
    from truepix.engine import models
    from truepix.errors import ImageReadError

    est = estimate(width, height, recipe, table if table is not None else models.load_manifest())
    limit = memory_limit(limit_mb)
    if est.peak_bytes > limit:
        how = f"[engine] memory_limit_mb = {limit_mb}" if limit_mb else "three quarters of this machine's RAM"
        raise ImageReadError(path, f"too large for recipe {recipe.name!r}: {width} x {height} in, "
                                   f"{est.out_width} x {est.out_height} out, about {est.peak_bytes / GB:.1f} GB of "
                                   f"memory at its peak, over the limit of {limit / GB:.1f} GB ({how}); refused "
                                   "before any work. Use a recipe with a smaller scale, or crop the photo")
    return est
