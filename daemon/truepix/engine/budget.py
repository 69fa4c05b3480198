"""A job's peak memory and output size, estimated from the input's header before anything is decoded.

The engine works on whole float32 images: the decoded input, the sRGB copy the fidelity guard keeps,
each step's input and output (an ``input = "auto"`` upscale may run two branches and blend them), and
the encoder's buffer.  So a job's peak grows with the *output*: a 219 KB PNG of 15000 x 15000 pixels
upscaled 2x needs over 20 GB, and three chained x4 steps multiply the pixels by 4096.  Such a job is
refused before it starts, with the estimate and the limit in the message, instead of failing after
minutes of work or being killed by the system.

The model, in bytes, for P input pixels and steps of scale s_i (12 bytes = one float32 RGB pixel)::

    peak = 24 P + max(max_i 12 (p_i + k_i p_i s_i^2), 24 P_out) + BASE

with p_i the pixels entering step i, k_i = 2 for a step that may blend two runs, else 1, and
P_out the output's pixels; BASE covers ONNX Runtime's arena, the libraries and the tiles in flight.
Measured against it (docs/reliability.md): ``truepix bench --sizes 24 --model upscale-x2-adaptive``
peaked at 2.65 GB, the estimate for that case (one branch, no encoder) is 2.4 GB and with the blend
allowance 3.6 GB — the estimate is meant to be on the safe side, not exact.

The limit is ``[engine] memory_limit_mb``, or three quarters of the machine's RAM when it is 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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


def _steps(recipe, table) -> list[tuple[int, int]]:
    """(scale, branches) of each step the manifest knows."""
    out = []
    for step in recipe.steps:
        info = table.get(step.model)
        if info is None:
            continue
        blend = info.kind.may_blend(step.params)
        out.append((int(info.scale), 2 if blend else 1))
    return out


def estimate(width: int, height: int, recipe, table) -> Estimate:
    """The job's peak memory and output for an input of ``width`` x ``height`` pixels."""
    p = width * height
    peak_steps = 0
    scale = 1
    for s, branches in _steps(recipe, table):
        p_in = p * scale * scale
        scale *= s
        peak_steps = max(peak_steps, 12 * (p_in + branches * p_in * s * s))
    p_out = p * scale * scale
    peak = 24 * p + max(peak_steps, 24 * p_out) + BASE
    out_bytes = p_out * 3 * (recipe.bit_depth // 8 if hasattr(recipe, "bit_depth") else 2)
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
