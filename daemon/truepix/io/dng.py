"""Linear DNG: developed camera RGB that a raw editor still treats as a raw.

The pixels are the demosaiced (and denoised, lens-corrected, maybe upscaled) camera RGB *before*
white balance, 16-bit, PhotometricInterpretation LinearRaw, with the colour tags of the source
(ColorMatrix1/2, CalibrationIlluminant, AsShotNeutral, BaselineExposure...) so Lightroom, Camera Raw
and darktable apply the photographer's white balance, exposure and colour profile as they would to
the original raw.  What the host must not do again is said twice: the DNG tag
NoiseReductionApplied = 1, and XMP Camera Raw defaults with sharpening and noise reduction at 0.

Layout: one IFD0 holding the full-resolution image (NewSubFileType 0), DNGVersion 1.4,
DNGBackwardVersion 1.1, in 256 x 256 tiles (``tile_shape``) compressed with lossless JPEG
(Compression 7, predictor 1, ``io/ljpeg.py``), as Adobe's DNG Converter writes them: LibRaw,
darktable's rawspeed and Adobe's SDK all read it (Deflate they take for floating-point data only:
LibRaw calls a 16-bit one corrupt, rawspeed refuses it), and developed real RAWs shrink 1.4-2.1x.
The tiles are made 16-bit and compressed one row of tiles at a time as they are written, so the
writer holds one band of samples, never the whole image again.  Written to a temporary name,
metadata copied in, fsynced and renamed, like every output (``atomic.output``).

A DNG source's own tags go over as ``io/dngtags.py``'s table decides, tag by tag: what stays true
of the developed camera RGB (the camera, its colour profile, the original's name) is carried
verbatim, what described the source's raw encoding, pixels or previews is dropped.
"""

from __future__ import annotations

import os
import pathlib
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np

from .. import __version__
from ..colour import SRGB_TO_XYZ
from . import atomic, ljpeg
from .dngtags import carried_tags
from .raw import ILLUMINANT_D65, RawMosaic

# TIFF types.
BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10

# XMP written into every linear DNG: the host's own sharpening and noise reduction start at zero.
RAW_XMP_DEFAULTS = {
    "Xmp.crs.Sharpness": "0",
    "Xmp.crs.LuminanceSmoothing": "0",
    "Xmp.crs.ColorNoiseReduction": "0",
}


def _rational(x: float, signed: bool) -> tuple[int, int]:
    f = Fraction(float(x)).limit_denominator(1_000_000)
    num, den = f.numerator, f.denominator
    limit = 2 ** 31 - 1 if signed else 2 ** 32 - 1
    while abs(num) > limit or den > 2 ** 32 - 1:
        num, den = num // 2, max(den // 2, 1)
    return num, den


def _rationals(values, signed: bool) -> tuple[int, ...]:
    out: list[int] = []
    for v in np.asarray(values, np.float64).ravel():
        out += _rational(v, signed)
    return tuple(out)


def _tiff_value(value, dtype: int):
    """A tifffile-read value back into what ``TiffWriter``'s extratags take."""
    if dtype in (RATIONAL, SRATIONAL):  # flat (num, den, ...), 0/0 kept: DNG's "unknown" (LensInfo)
        return tuple(int(x) for x in np.asarray(value).ravel())
    if isinstance(value, (bytes, str)):
        return value
    if isinstance(value, np.ndarray):
        return tuple(value.ravel().tolist())
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return value


def dng_tags(info: RawMosaic, width: int, height: int, crop: tuple[int, int, int, int] | None,
             orientation: int, scale: int = 1) -> list[tuple]:
    """tifffile ``extratags`` for a linear DNG of ``info``'s camera, (code, type, count, value, True).

    scale: output size / source size (SAME_GRID tags go over at 1 only)."""
    model = info.unique_camera_model or "unknown camera"
    tags: list[tuple] = [
        (50706, BYTE, 4, (1, 4, 0, 0), True),    # DNGVersion
        (50707, BYTE, 4, (1, 1, 0, 0), True),    # DNGBackwardVersion
        (50708, ASCII, 0, model, True),          # UniqueCameraModel
        (50714, LONG, 3, (0, 0, 0), True),       # BlackLevel
        (50717, LONG, 3, (65535, 65535, 65535), True),  # WhiteLevel
        (274, SHORT, 1, int(orientation), True),
        (50935, RATIONAL, 1, (1, 1), True),      # NoiseReductionApplied: fully
    ]
    if info.make:
        tags.append((271, ASCII, 0, info.make, True))
    if info.model:
        tags.append((272, ASCII, 0, info.model, True))
    copied = carried_tags(info.dng_tags, same_grid=scale == 1)
    for code in sorted(copied):
        _name, value, dtype, count = info.dng_tags[code]
        value = _tiff_value(value, dtype)
        if isinstance(value, (bytes, str)):
            count = len(value) if isinstance(value, bytes) else 0  # tifffile counts (and ends) a string
        tags.append((code, dtype, count, value, True))
    if 50721 not in copied:  # a non-DNG raw: LibRaw's D65 matrix, or io.rawcolour's fallback
        cam_xyz = info.cam_xyz if info.cam_xyz is not None else np.linalg.inv(SRGB_TO_XYZ)
        tags.append((50721, SRATIONAL, 9, _rationals(cam_xyz, True), True))
        tags.append((50778, SHORT, 1, ILLUMINANT_D65, True))
    neutral = 1.0 / np.asarray(info.wb, np.float64)
    tags.append((50728, RATIONAL, 3, _rationals(neutral, False), True))  # AsShotNeutral
    if 50730 not in copied:
        tags.append((50730, SRATIONAL, 1, (0, 1), True))  # BaselineExposure
    if crop is not None:
        top, left, h, w = crop
        tags.append((50719, LONG, 2, (left, top), True))  # DefaultCropOrigin (x, y)
        tags.append((50720, LONG, 2, (w, h), True))       # DefaultCropSize (w, h)
    else:
        tags.append((50719, LONG, 2, (0, 0), True))
        tags.append((50720, LONG, 2, (width, height), True))
    return tags


TILE = 256  # tile side, as Adobe's DNG Converter writes its lossless JPEG tiles


def encode(camera_rgb: np.ndarray) -> np.ndarray:
    """White-balance-free camera RGB, linear 0..1 (white level 1) -> uint16 (H, W, 3), rounded."""
    out = np.empty(camera_rgb.shape, np.uint16)
    rows = max(1, (1 << 20) // max(1, camera_rgb.shape[1] * 3))
    for i in range(0, camera_rgb.shape[0], rows):
        chunk = np.clip(camera_rgb[i:i + rows], 0.0, 1.0) * np.float32(65535)
        np.rint(chunk, out=chunk)
        out[i:i + rows] = chunk
    return out


def tile_shape(width: int) -> tuple[int, int] | None:
    """(length, width) of the tiles for an image ``width`` pixels wide, or None for one strip.

    LibRaw (0.22) reads a lossless JPEG tile wider than the image wrongly (it starts a new row at
    the image's width, inside the tile), so a tile is never wider than the image: TILE, or the
    image's width rounded down to the 16 TIFF asks tiles to be multiples of; under 16 pixels, one
    strip holding the whole image as one frame."""
    if width < 16:
        return None
    return TILE, min(TILE, width // 16 * 16)


def compressed_tiles(camera_rgb: np.ndarray, tile: tuple[int, int] | None = (TILE, TILE), workers: int | None = None):
    """Lossless JPEG tiles of ``camera_rgb`` (H, W, 3) float32 in TIFF order (rows of tiles, left
    to right), each band of tile rows made 16-bit (``encode``) only when its turn comes, so one
    band is held at a time.  Edge tiles are filled out by repeating the last row and column (TIFF
    tiles are whole; readers cut them, and a repeated edge costs almost no bits).  ``tile`` None:
    the whole image as one frame (a strip).  ``workers`` threads compress a band's tiles side by
    side (numpy lets go of the GIL)."""
    height, width = camera_rgb.shape[:2]
    if tile is None:
        yield ljpeg.encode(encode(camera_rgb))
        return
    th, tw = tile
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for top in range(0, height, th):
            band = encode(camera_rgb[top:top + th])
            pad_rows, pad_cols = th - band.shape[0], -width % tw
            if pad_rows or pad_cols:
                band = np.pad(band, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")
            yield from pool.map(ljpeg.encode, [band[:, x:x + tw] for x in range(0, band.shape[1], tw)])
            del band


def write_linear_dng(dest, camera_rgb: np.ndarray, info: RawMosaic, *, crop=None, orientation: int = 1,
                     metadata_source=None, xmp_info: dict | None = None, overwrite: bool = False,
                     scale: int = 1) -> pathlib.Path:
    """Write ``camera_rgb`` (H, W, 3) float32, camera RGB without white balance (1 = white level),
    as a linear DNG at ``dest`` with ``info``'s colour description, lossless JPEG tiles.

    crop: (top, left, height, width) default crop in the written pixels, or None.
    orientation: EXIF orientation of the pixels (they stay in sensor orientation, like a raw).
    scale: output size / the source's (an upscaled output leaves the SAME_GRID source tags out).
    Atomic like io.write_image; raises ImageWriteError and leaves nothing behind on failure.
    """
    import tifffile

    dest = pathlib.Path(dest)
    atomic.refuse_existing(dest, overwrite)
    height, width = camera_rgb.shape[:2]
    extratags = dng_tags(info, width, height, crop, orientation, scale)
    with atomic.output(dest, overwrite=overwrite) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=False) as tw:
            tile = tile_shape(width)
            layout = {"tile": tile} if tile else {"rowsperstrip": height}
            tw.write(compressed_tiles(camera_rgb, tile), shape=(height, width, 3), dtype=np.uint16, **layout,
                     compression=7, photometric=34892, planarconfig="contig", subfiletype=0,
                     software=f"truepix {__version__}", extratags=extratags, metadata=None)
        if metadata_source is not None or xmp_info is not None:
            from .metadata import copy_metadata

            extra = {**RAW_XMP_DEFAULTS, **(xmp_info or {}).get("extra", {})}
            copy_metadata(metadata_source, tmp, width=width, height=height,
                          xmp_info={**(xmp_info or {}), "extra": extra}, orientation=orientation, keep_target_exif=True)
    return dest


_CFA_CODES = {"R": 0, "G": 1, "B": 2}


def write_cfa_dng(dest, mosaic: np.ndarray, pattern: str, *, white: int = 65535, black: int = 0,
                  cam_xyz: np.ndarray | None = None, neutral=(1.0, 1.0, 1.0), model: str = "truepix simulated camera",
                  iso: float | None = None, orientation: int = 1) -> pathlib.Path:
    """A Bayer-mosaic (CFA) DNG from an (H, W) uint16 ``mosaic`` in ``pattern`` (e.g. "RGGB").

    For test material: the simulated camera's raws (``truepix.simulate``) and the classical
    demosaics of the evaluation (LibRaw's AHD, DCB... read the mosaic back from this file).
    cam_xyz: XYZ (D65) -> camera matrix for ColorMatrix1 (default: sRGB's, camera = sRGB primaries).
    neutral: AsShotNeutral (camera values of white).  Written directly (not atomic: test data).
    """
    import tifffile

    m = np.asarray(mosaic)
    if m.ndim != 2 or m.dtype != np.uint16:
        raise ValueError(f"mosaic must be (H, W) uint16, got {m.shape} {m.dtype}")
    cm = np.linalg.inv(SRGB_TO_XYZ) if cam_xyz is None else np.asarray(cam_xyz, np.float64)
    tags = [
        (50706, BYTE, 4, (1, 4, 0, 0), True),
        (50707, BYTE, 4, (1, 1, 0, 0), True),
        (50708, ASCII, 0, model, True),
        (33421, SHORT, 2, (2, 2), True),                                   # CFARepeatPatternDim
        (33422, BYTE, 4, tuple(_CFA_CODES[c] for c in pattern.upper()), True),  # CFAPattern
        (50710, BYTE, 3, (0, 1, 2), True),                                 # CFAPlaneColor
        (50711, SHORT, 1, 1, True),                                        # CFALayout: rectangular
        (50714, LONG, 1, int(black), True),
        (50717, LONG, 1, int(white), True),
        (50721, SRATIONAL, 9, _rationals(cm, True), True),
        (50778, SHORT, 1, ILLUMINANT_D65, True),
        (50728, RATIONAL, 3, _rationals(neutral, False), True),
        (50730, SRATIONAL, 1, (0, 1), True),
        (271, ASCII, 0, "truepix", True),
        (272, ASCII, 0, model, True),
        (274, SHORT, 1, int(orientation), True),
    ]
    if iso:
        tags.append((34855, SHORT, 1, int(min(iso, 65535)), True))  # ISOSpeedRatings (TIFF/EP, IFD0)
    dest = pathlib.Path(dest)
    with tifffile.TiffWriter(dest) as tw:
        tw.write(m, photometric=32803, subfiletype=0, rowsperstrip=max(1, (1 << 20) // (m.shape[1] * 2)),
                 software=f"truepix {__version__}", extratags=tags, metadata=None)
    return dest
