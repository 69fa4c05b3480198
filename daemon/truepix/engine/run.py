"""``run``: the engine's one entry for a decoded photo.  It picks the way itself: a RAW mosaic is
developed (``develop``: the Bayer step on the mosaic, the rest on camera RGB), an RGB image
enhanced (``pipeline.enhance``).  It knows nothing of file names, folders, formats or queues."""

from __future__ import annotations

import dataclasses
import logging

from truepix.engine.control import Control
from truepix.engine.pipeline import EngineOptions, Sink, enhance

log = logging.getLogger("truepix")


def for_depth(options: EngineOptions, bits: int) -> EngineOptions:
    """The options for a photo of ``bits`` per sample: "auto" precision keeps the float files for a
    photo of more than 8 bits when it would have chosen int8.  The int8 networks round their input
    to 8 bits for their int8 convolutions, and on a smooth 16-bit ramp their output moves by up to
    0.7 of an 8-bit step where the float network's moves by 0.04 (docs/benchmarks.md, "INT8"): the
    gradations a 16-bit file was kept for."""
    if options.precision != "auto" or bits <= 8:
        return options
    from truepix.engine import models

    if models.chosen_precision("auto", options.provider)[0] != "int8":
        return options
    log.debug("engine: a %d-bit photo runs the float32 files (the int8 ones round their input to 8 bits)", bits)
    return dataclasses.replace(options, precision="float32")


def run(decoded, recipe, options: EngineOptions = EngineOptions(), control: Control | None = None,
        sink: Sink | None = None):
    """``develop.Developed`` for a ``RawMosaic``, ``pipeline.Enhanced`` for an ``io.Decoded`` (its rows
    into ``sink`` as they are finished, when one is given: ``pipeline.Sink``)."""
    from truepix.io.raw import RawMosaic

    progress = control.progress if control is not None else None
    if isinstance(decoded, RawMosaic):
        from truepix.engine.develop import develop

        return develop(decoded, recipe, for_depth(options, 16), progress)
    options = for_depth(options, getattr(decoded, "bit_depth", 8))
    # the file's EXIF hints (io.hints) weigh the adaptive upscaler's input-kind decision; its pixels
    # go in the transfer they were stored in (an 8/16-bit photo's sRGB values: no curve passes)
    return enhance(decoded.pixels, decoded.alpha, recipe, options, progress, sink=sink,
                   hints=getattr(decoded, "hints", None), transfer=getattr(decoded, "transfer", "linear"))
