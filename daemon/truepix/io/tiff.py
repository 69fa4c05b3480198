"""TIFF through tifffile: decode the first page to samples, encode 16-bit RGB/grey (+alpha).

Camera RAWs that happen to be TIFF containers (CR2, NEF, DNG...) never come here; they are
routed to raw.py by extension.
"""

from __future__ import annotations

import os

import numpy as np
import tifffile
from tifffile import PHOTOMETRIC

from . import stream
from .hints import from_tiff_tags
from .orientation import valid_orientation
from .samples import ReadFailure, Samples

_COLOUR = {PHOTOMETRIC.RGB: 3, PHOTOMETRIC.YCBCR: 3, PHOTOMETRIC.MINISBLACK: 1,
           PHOTOMETRIC.MINISWHITE: 1, PHOTOMETRIC.PALETTE: 1}


def decode(path, check_size) -> Samples:
    """Decode the first page of a TIFF. ``check_size(w, h)`` raises before pixels are allocated."""
    try:
        tif = tifffile.TiffFile(path)
    except tifffile.TiffFileError as err:
        raise ReadFailure(f"not a readable TIFF ({err})") from err
    with tif:
        if not tif.pages:
            raise ReadFailure("TIFF has no image")
        page = tif.pages.first
        check_size(page.imagewidth, page.imagelength)
        photometric = page.photometric
        if photometric not in _COLOUR:
            raise ReadFailure(f"unsupported TIFF colour model {photometric.name}")
        _check_complete(page, tif.filehandle.size)
        try:
            a = page.asarray()
        except Exception as err:  # codec errors from imagecodecs, ValueError, ...
            raise ReadFailure(f"damaged or truncated TIFF data ({err})") from err
        tags = page.tags
        icc = tags[34675].value if 34675 in tags else None
        orientation = valid_orientation(tags[274].value if 274 in tags else 1)
        hints = from_tiff_tags(tags)  # never raises
        a = _channels_last(a, page)
        if photometric == PHOTOMETRIC.PALETTE:
            a = np.moveaxis(page.colormap[:, a[:, :, 0]], 0, -1)  # (3, H, W) -> (H, W, 3) uint16
        elif photometric == PHOTOMETRIC.MINISWHITE:
            a = _invert(a)
        base = 3 if photometric == PHOTOMETRIC.PALETTE else _COLOUR[photometric]
        a, has_alpha = _split_extra(a, base, tuple(page.extrasamples or ()))
    icc = bytes(icc) if icc else None
    return Samples(_plain_dtype(a), has_alpha=has_alpha, icc=icc, orientation=orientation, hints=hints)


def _check_complete(page, file_size: int) -> None:
    """Refuse a TIFF whose strips/tiles point past the end of the file (truncated copy)."""
    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if n]
    if not ends:
        raise ReadFailure("TIFF has no image data")
    if max(ends) > file_size:
        raise ReadFailure(f"truncated TIFF (image data needs {max(ends)} bytes, file has {file_size})")


def _channels_last(a: np.ndarray, page) -> np.ndarray:
    """Reshape tifffile's page array (axes like 'YXS', 'SYX', 'YX') to (H, W, C)."""
    axes = page.axes
    if "S" in axes and axes.index("S") < axes.index("X"):
        a = np.moveaxis(a, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    keep = [i for i, ax in enumerate(axes) if ax in "YXS"]
    a = a.reshape([a.shape[i] for i in keep]) if len(keep) != a.ndim else a
    return a[:, :, None] if a.ndim == 2 else a


def _split_extra(a: np.ndarray, base: int, extrasamples: tuple) -> tuple[np.ndarray, bool]:
    """Keep the colour channels plus the first extra sample if it is alpha (1 = associated,
    2 = unassociated); associated alpha is un-premultiplied. Other extra samples are dropped."""
    if a.shape[2] <= base or not extrasamples or extrasamples[0] not in (1, 2):
        return a[:, :, :base], False
    colour, alpha = a[:, :, :base], a[:, :, base : base + 1]
    if extrasamples[0] == 1:
        c, al = colour.astype(np.float64), alpha.astype(np.float64)
        colour = np.where(al > 0, np.clip(c / np.maximum(al, 1e-12), 0, 1) * _full(a), 0).astype(a.dtype)
    return np.concatenate([colour, alpha], axis=2), True


def _full(a: np.ndarray) -> float:
    return float(np.iinfo(a.dtype).max) if a.dtype.kind in "ui" else 1.0


def _invert(a: np.ndarray) -> np.ndarray:
    return (np.iinfo(a.dtype).max - a) if a.dtype.kind == "u" else (1.0 - a)


def _plain_dtype(a: np.ndarray) -> np.ndarray:
    """uint8/uint16/float32 stay; bool -> uint8 0/255; other ints -> uint16; floats -> float32."""
    if a.dtype in (np.uint8, np.uint16, np.float32):
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    info = np.iinfo(a.dtype)
    scaled = np.clip(a.astype(np.float64), 0, None) / info.max * 65535
    return np.rint(scaled).astype(np.uint16)


def encode(fh, samples: np.ndarray, has_alpha: bool, icc: bytes | None, resolution=None) -> None:
    """Write uint8 or uint16 (H, W, C) samples to ``fh``: RGB or grey, alpha as an unassociated extra
    sample, deflate-compressed with horizontal predictor, ICC in tag 34675.  ``resolution``
    (``io.resolution.Resolution``) in XResolution/YResolution/ResolutionUnit; None: 1/1, unit none,
    the baseline TIFF way of stating no resolution."""
    colour = samples.shape[2] - (1 if has_alpha else 0)
    res = {} if resolution is None else {"resolution": resolution.rationals(),
                                         "resolutionunit": resolution.tiff_unit}
    tifffile.imwrite(
        fh,
        samples if samples.shape[2] > 1 else samples[:, :, 0],
        photometric="rgb" if colour == 3 else "minisblack",
        planarconfig="contig" if samples.shape[2] > 1 else None,
        extrasamples=("unassalpha",) if has_alpha else None,
        compression="zlib",  # libdeflate, at the streamed writer's level
        compressionargs={"level": stream.LEVEL},
        predictor=True,
        # Strips of 64 rows let tifffile deflate on every core (1.8x faster here on 2 cores).
        rowsperstrip=64,
        maxworkers=os.cpu_count() or 1,
        iccprofile=icc or None,
        metadata=None,  # no tifffile JSON description that a later copy could contradict
        software="truepix",
        **res,
    )
