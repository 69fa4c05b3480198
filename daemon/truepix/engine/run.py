"""``run``: the engine's one entry for a decoded photo.  It picks the way itself: a RAW mosaic is
developed (``develop``: the Bayer step on the mosaic, the rest on camera RGB), an RGB image
enhanced (``pipeline.enhance``).  It knows nothing of file names, folders, formats or queues."""

from __future__ import annotations

from truepix.engine.control import Control
from truepix.engine.pipeline import EngineOptions, Sink, enhance


def run(decoded, recipe, options: EngineOptions = EngineOptions(), control: Control | None = None,
        sink: Sink | None = None):
    """``develop.Developed`` for a ``RawMosaic``, ``pipeline.Enhanced`` for an ``io.Decoded`` (its rows
    into ``sink`` as they are finished, when one is given: ``pipeline.Sink``)."""
    from truepix.io.raw import RawMosaic

    progress = control.progress if control is not None else None
    if isinstance(decoded, RawMosaic):
        from truepix.engine.develop import develop

        return develop(decoded, recipe, options, progress)
    # the file's EXIF hints (io.hints) weigh the adaptive upscaler's input-kind decision; its pixels
    # go in the transfer they were stored in (an 8/16-bit photo's sRGB values: no curve passes)
    return enhance(decoded.pixels, decoded.alpha, recipe, options, progress, sink=sink,
                   hints=getattr(decoded, "hints", None), transfer=getattr(decoded, "transfer", "linear"))
