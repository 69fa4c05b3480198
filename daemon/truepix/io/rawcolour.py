"""Where a RAW's colour comes from when neither LibRaw's camera table nor the file has a matrix.

Camera RGB shown as if it were sRGB is nearly grey (camera primaries overlap far more than sRGB's):
the Kodak DC50 developed so had a mean HSV saturation of 21 against 72 in LibRaw's own rendering.
LibRaw itself never renders a camera so: it has a stand-in for such cameras (Apple's QuickTake
matrix for Kodak's RADC cameras, the DC40/DC50, dcraw's choice) in its ``rgb_cam``, which rawpy does
not expose.  ``fallback_cam_xyz`` takes that (read from the LibRaw library rawpy ships), else a
typical sensor's matrix, as an XYZ -> camera matrix the rendered outputs and a linear DNG's
ColorMatrix1 share; ``COLOUR_SOURCES`` names each source for the job's notes and the output's XMP
(Xmp.truepix.ColourSource).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ..colour import SRGB_TO_XYZ  # sRGB (D65) primaries -> CIE XYZ, IEC 61966-2-1

# Where ``RawMosaic.cam_xyz`` came from -> how the job's notes and the output's XMP
# (Xmp.truepix.ColourSource) name it.
COLOUR_SOURCES = {
    "libraw": "LibRaw's matrix for this camera",
    "dng": "the DNG's own ColorMatrix",
    "libraw-rendering": "LibRaw's rendering colours for this file (LibRaw's own choice; for a camera it lacks, "
                        "a stand-in such as Apple's QuickTake matrix, not this camera's own)",
    "generic": "a typical Bayer sensor's matrix (Adobe's Canon EOS 6D D65 matrix), not this camera's own",
}
# XYZ (D65) -> camera of a typical Bayer CMOS sensor (Adobe's Canon EOS 6D matrix, as LibRaw carries
# it): the last resort when neither the file nor LibRaw knows the camera.  Not its colours, but far
# nearer than camera RGB taken for sRGB, which is nearly grey.
GENERIC_CAM_XYZ = np.array([[0.7034, -0.0804, -0.1014], [-0.4420, 1.2564, 0.2058], [-0.0851, 0.1994, 0.5758]])


def libraw_rgb_cam(path) -> np.ndarray | None:
    """The 3x3 white-balanced camera RGB -> linear sRGB matrix LibRaw's own rendering of ``path``
    applies (its ``rgb_cam``: from its camera table, or the stand-in it picks for a camera it lacks),
    or None when it cannot be read.

    rawpy does not expose rgb_cam, so it is asked of the LibRaw library rawpy ships (``libraw_r``,
    through its C API: open_file parses the header only, no pixels are read).
    """
    import ctypes
    import ctypes.util

    import rawpy

    folder = pathlib.Path(rawpy.__file__).parent
    names = [str(n) for glob in ("libraw_r*.so*", "libraw*.dylib", "*raw*.dll") for n in sorted(folder.glob(glob))]
    names = names or [ctypes.util.find_library("raw_r") or "libraw_r.so"]
    lib = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None or not hasattr(lib, "libraw_get_rgb_cam"):
        return None
    lib.libraw_init.restype, lib.libraw_init.argtypes = ctypes.c_void_p, [ctypes.c_uint]
    lib.libraw_open_file.restype, lib.libraw_open_file.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]
    lib.libraw_get_rgb_cam.restype = ctypes.c_float
    lib.libraw_get_rgb_cam.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.libraw_close.restype, lib.libraw_close.argtypes = None, [ctypes.c_void_p]
    handle = lib.libraw_init(0)
    if not handle:
        return None
    try:
        if lib.libraw_open_file(handle, os.fsencode(path)) != 0:
            return None
        m = np.array([[lib.libraw_get_rgb_cam(handle, i, j) for j in range(3)] for i in range(3)], np.float64)
    finally:
        lib.libraw_close(handle)
    return m if np.all(np.isfinite(m)) and abs(np.linalg.det(m)) > 1e-6 else None


def cam_xyz_from_rgb_cam(rgb_cam: np.ndarray, wb) -> np.ndarray:
    """XYZ (D65) -> camera matrix that renders as ``rgb_cam`` (white-balanced camera RGB -> linear
    sRGB) under ``RawMosaic.rgb_cam``'s construction, its rows scaled so D65 white gives the camera
    values 1 / ``wb``: a DNG reader then finds the as-shot neutral (1 / wb) to be D65 and renders the
    same colours as LibRaw (no chromatic adaptation on top)."""
    cam_rgb = np.linalg.inv(np.asarray(rgb_cam, np.float64))
    cam_rgb = cam_rgb / cam_rgb.sum(axis=1, keepdims=True)
    return np.diag(1.0 / np.asarray(wb, np.float64)) @ cam_rgb @ np.linalg.inv(SRGB_TO_XYZ)


def fallback_cam_xyz(path, wb) -> tuple[np.ndarray, str]:
    """(cam_xyz, colour source) for a camera whose matrix neither LibRaw's table nor the file has.

    LibRaw's rendering colours first (``libraw_rgb_cam``: what LibRaw shows this file in, e.g. Apple's
    QuickTake matrix for Kodak's RADC cameras), when they are more than the identity; else
    ``GENERIC_CAM_XYZ``.  Both scaled so the as-shot white balance ``wb`` (R, G, B multipliers)
    means D65, as LibRaw's rendering takes it.
    """
    rgb_cam = libraw_rgb_cam(path) if path is not None else None
    if rgb_cam is not None and not np.allclose(rgb_cam, np.eye(3), atol=1e-4):
        return cam_xyz_from_rgb_cam(rgb_cam, wb), "libraw-rendering"
    generic = GENERIC_CAM_XYZ / (GENERIC_CAM_XYZ @ (SRGB_TO_XYZ @ np.ones(3)))[:, None]
    return np.diag(1.0 / np.asarray(wb, np.float64)) @ generic, "generic"


def colour_note(source: str) -> str:
    """The job's note for a colour source other than the camera's own."""
    return (f"the camera's colour matrix is unknown (not in LibRaw's table, no DNG ColorMatrix): "
            f"colours from {COLOUR_SOURCES[source]}")
