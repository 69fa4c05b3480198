"""Camera RAW through rawpy (LibRaw): LibRaw's own demosaic to linear 16-bit sRGB primaries."""

from __future__ import annotations

import numpy as np

from .samples import ReadFailure, Samples

# LibRaw's sizes.flip -> the EXIF orientation it has applied to the output.
_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}


def decode(path, check_size) -> Samples:
    """Demosaic a RAW file to linear uint16 (H, W, 3) in sRGB primaries, camera white balance.

    LibRaw rotates the result by the RAW's own flip; ``applied`` reports it as EXIF orientation.
    """
    import rawpy

    try:
        raw = rawpy.imread(str(path))
    except rawpy.LibRawFileUnsupportedError as err:
        raise ReadFailure("not a RAW file LibRaw can read") from err
    except rawpy.LibRawError as err:
        raise ReadFailure(f"cannot read RAW data ({type(err).__name__}: {err})") from err
    with raw:
        sizes = raw.sizes
        check_size(sizes.width, sizes.height)
        try:
            rgb = raw.postprocess(
                gamma=(1, 1), no_auto_bright=True, output_bps=16,
                output_color=rawpy.ColorSpace.sRGB, use_camera_wb=True,
            )
        except rawpy.LibRawError as err:
            raise ReadFailure(f"damaged or truncated RAW data ({type(err).__name__}: {err})") from err
        applied = _FLIP_TO_EXIF.get(sizes.flip, 1)
    return Samples(np.asarray(rgb, dtype=np.uint16), linear=True, applied=applied)
