"""Camera RAW through rawpy (LibRaw).

Two ways in:

* ``decode`` -- LibRaw's own demosaic to linear 16-bit sRGB primaries (recipes that start from an
  RGB image, e.g. ``upscale`` on a RAW file);
* ``read_mosaic`` -- the undemosaiced Bayer data and everything the neural development needs
  (``RawMosaic``): the mosaic as float32 after per-channel black-level subtraction and white-level
  scaling, the CFA pattern, the as-shot white balance, the camera colour matrices, ISO and the noise
  profile, orientation and default crop.  Sensors the Bayer network cannot read (X-Trans, Foveon,
  four-colour CFAs) and already-demosaiced (linear) DNGs raise ``NotBayer``; ``develop_libraw``
  then gives their camera RGB through LibRaw's demosaic, with the same ``RawMosaic`` description.

rawpy's ``rgb_xyz_matrix`` comes from LibRaw's built-in camera table and is all zeros for a camera
it does not know, even when a DNG carries ColorMatrix1: the DNG colour tags are read with tifffile
then, and kept verbatim for the linear DNG writer (``io/dng.py``).  A camera with neither still gets
colour: ``io/rawcolour.py``'s fallback, named in ``RawMosaic.colour_source``.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import numpy as np

from ..colour import SRGB_TO_XYZ  # sRGB (D65) primaries -> CIE XYZ, IEC 61966-2-1
from .hints import RAW_DEVELOPMENT
from .rawcolour import colour_note, fallback_cam_xyz
from .samples import ReadFailure, Samples

# LibRaw's sizes.flip -> the EXIF orientation it has applied to the output.
_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}

ILLUMINANT_D65 = 21

class NotBayer(ReadFailure):
    """The RAW file is readable but is not a Bayer mosaic the demosaic network can develop.

    ``kind``: "xtrans", "foveon", "linear" (an already-demosaiced DNG) or "cfa" (another CFA).
    """

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass
class RawMosaic:
    """A RAW file's sensor data and the facts its development needs.

    mosaic:       float32 (H, W), the visible area: 0 = black level, 1 = white level, per channel.
                  None for the LibRaw fallback (``develop_libraw``), which fills ``rgb`` instead.
    pattern:      the 2x2 CFA over the mosaic's first rows and columns, e.g. "RGGB".
    wb:           as-shot white-balance multipliers (R, G, B), G = 1.
    cam_xyz:      3x3 XYZ (D65 white) -> camera RGB (before white balance), or None (no colour facts,
                  e.g. a hand-made RawMosaic: camera RGB is then taken for sRGB).
    colour_source: where cam_xyz came from, a key of ``rawcolour.COLOUR_SOURCES`` ("" when None).
    iso, exposure_time, f_number, focal_length: from the file (0 when absent).
    noise_profile: (scale, offset) of the DNG NoiseProfile averaged over the planes: variance of a
                  normalised value x is scale * x + offset.  None when the file has none.
    orientation:  EXIF orientation (1..8) of the sensor data.
    crop:         (top, left, height, width) of the default crop inside the mosaic, or None.
    make, model, unique_camera_model: names for the DNG.
    dng_tags:     the source DNG's own tags {code: (name, value, tiff type, count)} (empty for
                  other RAWs), as tifffile reads them (rationals flat: num, den, num, den...);
                  ``io.dng.SOURCE_TAGS`` says which a linear DNG carries.
    notes:        what was done differently from the recipe, one sentence each.
    rgb:          float32 (H, W, 3) white-balanced camera RGB (LibRaw fallback only).
    """

    path: pathlib.Path
    mosaic: np.ndarray | None
    pattern: str
    wb: np.ndarray
    cam_xyz: np.ndarray | None
    iso: float = 0.0
    exposure_time: float = 0.0
    f_number: float = 0.0
    focal_length: float = 0.0
    noise_profile: tuple[float, float] | None = None
    orientation: int = 1
    crop: tuple[int, int, int, int] | None = None
    make: str = ""
    model: str = ""
    unique_camera_model: str = ""
    dng_tags: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rgb: np.ndarray | None = None
    colour_source: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return (self.mosaic if self.mosaic is not None else self.rgb).shape[:2]

    def rgb_cam(self) -> np.ndarray:
        """3x3 white-balanced camera RGB -> linear sRGB (dcraw's construction: the camera matrix
        times sRGB -> XYZ, rows normalised so white maps to white, inverted).  The identity when
        ``cam_xyz`` is None."""
        if self.cam_xyz is None:
            return np.eye(3)
        cam_rgb = self.cam_xyz @ SRGB_TO_XYZ
        cam_rgb = cam_rgb / cam_rgb.sum(axis=1, keepdims=True)
        return np.linalg.inv(cam_rgb)


def unsupported_message(path) -> str:
    """Why LibRaw refused a file, with what the photographer can do about it."""
    if pathlib.Path(path).suffix.lower() == ".gpr":
        return ("a GoPro GPR (VC-5 compressed raw), which LibRaw cannot decode: convert it to DNG with "
                "GoPro's gpr_tools (`gpr_tools -i FILE.GPR -o FILE.DNG`) and give truepix the DNG")
    return ("not a RAW file LibRaw can read (this format or camera is not supported by LibRaw; "
            "convert it to DNG with Adobe DNG Converter first)")


def _open(path):
    """rawpy.imread, unpacked (LibRaw reads the data lazily; damage and unsupported codecs show there)."""
    import rawpy

    try:
        raw = rawpy.imread(str(path))
    except rawpy.LibRawFileUnsupportedError as err:
        raise ReadFailure(unsupported_message(path)) from err
    except rawpy.LibRawError as err:
        raise ReadFailure(f"cannot read RAW data ({type(err).__name__}: {err})") from err
    try:
        raw.unpack()
    except rawpy.LibRawFileUnsupportedError as err:
        raw.close()
        raise ReadFailure(unsupported_message(path)) from err
    except rawpy.LibRawError as err:
        raw.close()
        raise ReadFailure(f"damaged or truncated RAW data ({type(err).__name__}: {err})") from err
    return raw


def decode(path, check_size) -> Samples:
    """Demosaic a RAW file to linear uint16 (H, W, 3) in sRGB primaries, camera white balance.

    LibRaw rotates the result by the RAW's own flip; ``applied`` reports it as EXIF orientation.
    """
    import rawpy

    with _open(path) as raw:
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
    return Samples(np.asarray(rgb, dtype=np.uint16), linear=True, applied=applied, hints=RAW_DEVELOPMENT)


def _dng_tags(path) -> dict:
    """A DNG's own tags, {code: (name, value, tiff type, count)}, as tifffile reads them; {} if not
    a DNG.  Every DNG-range tag (50706 and up) of IFD0 and of the raw IFD (the full-resolution
    image, IFD0 or one of its SubIFDs: its values win), plus Make, Model and ISO.  Which of them a
    linear DNG made from this file carries is ``io.dng.SOURCE_TAGS``' decision."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            first = tif.pages.first
            tags = first.tags
            if 50706 not in tags:  # DNGVersion
                return {}
            ifds = [first]
            if tags.get(254) is not None and tags[254].value != 0:  # IFD0 is a preview: the raw is a SubIFD
                ifds += [sub for sub in (first.pages or []) if 254 in sub.tags and sub.tags[254].value == 0][:1]
            found = {}
            for ifd in ifds:
                for tag in ifd.tags.values():
                    if tag.code >= 50706 or tag.code in (271, 272, 34855):
                        found[tag.code] = (tag.name, tag.value, int(tag.dtype), tag.count)
            exif = tags[34665].value if 34665 in tags else None  # the EXIF IFD, parsed by tifffile
            if 34855 not in found and isinstance(exif, dict) and "ISOSpeedRatings" in exif:
                found[34855] = ("ISOSpeedRatings", exif["ISOSpeedRatings"], 3, 1)
            return found
    except Exception:  # not a TIFF container, or damaged tags: LibRaw's view is all we have
        return {}


def _rationals(value) -> np.ndarray:
    """tifffile's flat (num, den, num, den, ...) or plain values -> float array."""
    v = np.asarray(value, dtype=np.float64).ravel()
    if v.size % 2 == 0 and v.size >= 2 and np.all(v[1::2] != 0) and v.size in (6, 18, 2):
        return v[0::2] / v[1::2]
    return v


def _dng_cam_xyz(tags: dict) -> np.ndarray | None:
    """XYZ -> camera from the DNG's ColorMatrix for D65 (or the later illuminant), with the
    CameraCalibration and AnalogBalance the DNG specification multiplies in."""
    pairs = [(50721, 50778, 50723), (50722, 50779, 50724)]
    chosen = None
    for cm, ill, cc in pairs:
        if cm in tags:
            illuminant = int(np.asarray(tags[ill][1]).ravel()[0]) if ill in tags else 0
            chosen = (cm, cc) if chosen is None or illuminant == ILLUMINANT_D65 else chosen
    if chosen is None:
        return None
    m = _rationals(tags[chosen[0]][1])
    if m.size != 9:
        return None
    m = m.reshape(3, 3)
    if chosen[1] in tags:
        cc = _rationals(tags[chosen[1]][1])
        if cc.size == 9:
            m = cc.reshape(3, 3) @ m
    if 50727 in tags:
        ab = _rationals(tags[50727][1])
        if ab.size == 3:
            m = np.diag(ab) @ m
    return m if np.all(np.isfinite(m)) and abs(np.linalg.det(m)) > 1e-9 else None


def _describe(raw, path: pathlib.Path, tags: dict) -> dict:
    """The RawMosaic fields shared by the network path and the LibRaw fallback."""
    other = raw.other
    # LibRaw's matrix is the DNG's own ColorMatrix when the file has one (LibRaw reads it then)
    cam_xyz, colour_source = np.asarray(raw.rgb_xyz_matrix, np.float64)[:3], "dng" if 50721 in tags else "libraw"
    if not np.any(cam_xyz):
        cam_xyz, colour_source = _dng_cam_xyz(tags), "dng"
    wb = np.asarray(raw.camera_whitebalance, np.float64)[:3]
    if not np.all(wb > 0) and 50728 in tags:  # AsShotNeutral: the camera's reading of white
        neutral = _rationals(tags[50728][1])
        if neutral.size == 3 and np.all(neutral > 0):
            wb = 1.0 / neutral
    if not np.all(wb > 0):
        wb = np.asarray(raw.daylight_whitebalance, np.float64)[:3]
    if not np.all(wb > 0):
        wb = np.ones(3)
    wb = wb / wb[1]
    notes = []
    if cam_xyz is None:
        cam_xyz, colour_source = fallback_cam_xyz(path, wb)
        notes.append(colour_note(colour_source))
    noise = None
    if 51041 in tags:
        v = np.asarray(tags[51041][1], np.float64).ravel()
        if v.size >= 2 and v.size % 2 == 0:
            noise = (float(v[0::2].mean()), float(v[1::2].mean()))
    name = lambda code: str(tags[code][1]).strip("\0 ") if code in tags else ""  # noqa: E731
    make, model = name(271), name(272)
    iso = float(other.iso_speed or 0.0)
    if not iso and 34855 in tags:
        value = np.asarray(tags[34855][1]).ravel()
        iso = float(value[0]) if value.size else 0.0
    return dict(
        path=path, wb=wb, cam_xyz=cam_xyz, colour_source=colour_source, notes=notes, iso=iso,
        exposure_time=float(other.shutter_speed or 0.0), f_number=float(other.aperture or 0.0),
        focal_length=float(other.focal_length or 0.0), noise_profile=noise,
        orientation=_FLIP_TO_EXIF.get(raw.sizes.flip, 1), make=make, model=model,
        unique_camera_model=name(50708) or " ".join(x for x in (make, model) if x) or "unknown camera",
        dng_tags=tags,
    )


def _crop(raw) -> tuple[int, int, int, int] | None:
    s = raw.sizes
    if not s.crop_width or not s.crop_height:
        return None
    top, left = s.crop_top_margin - s.top_margin, s.crop_left_margin - s.left_margin
    if top < 0 or left < 0 or top + s.crop_height > s.height or left + s.crop_width > s.width:
        return None
    if (top, left, s.crop_height, s.crop_width) == (0, 0, s.height, s.width):
        return None
    return (top, left, s.crop_height, s.crop_width)


def read_mosaic(path, check_size=lambda w, h: None) -> RawMosaic:
    """The Bayer mosaic of a RAW file, normalised, with its development facts (see RawMosaic).

    Raises ReadFailure for unreadable files and NotBayer for sensors the network cannot develop.
    """
    path = pathlib.Path(path)
    tags = _dng_tags(path)
    with _open(path) as raw:
        sizes = raw.sizes
        check_size(sizes.width, sizes.height)
        desc = raw.color_desc.decode("ascii", "replace")
        pattern_ix = raw.raw_pattern
        if raw.raw_type.name != "Flat" or pattern_ix is None:
            raise NotBayer("linear", "an already demosaiced (linear) DNG: there is no Bayer mosaic to develop")
        if pattern_ix.shape == (6, 6):
            raise NotBayer("xtrans", "an X-Trans sensor: the demosaic network reads 2x2 Bayer mosaics only")
        if raw.num_colors != 3 or set(desc) - set("RGB") or pattern_ix.shape != (2, 2):
            raise NotBayer("cfa", f"a {desc} colour filter array: the demosaic network reads RGB Bayer mosaics only")
        try:
            visible = raw.raw_image_visible
            colours = raw.raw_colors_visible
        except Exception as err:  # LibRaw unpacks lazily: damage shows up here
            raise ReadFailure(f"damaged or truncated RAW data ({type(err).__name__}: {err})") from err
        if visible.ndim != 2 or min(visible.shape) < 2:
            raise NotBayer("foveon", "not a single-plane sensor mosaic (Foveon or similar)")
        pattern = "".join(desc[int(c)] for c in colours[:2, :2].ravel())
        if sorted(pattern) != ["B", "G", "G", "R"]:
            raise NotBayer("cfa", f"an unusual colour filter layout ({pattern})")
        black = np.asarray(raw.black_level_per_channel, np.float32)
        whites = raw.camera_white_level_per_channel
        white = np.asarray(whites if whites else [raw.white_level] * 4, np.float32)
        if np.any(white - black <= 0):
            raise ReadFailure(f"white level {white.tolist()} not above black level {black.tolist()}")
        mosaic = visible.astype(np.float32)
        for dy in range(2):  # per site phase: no full-size lookup arrays
            for dx in range(2):
                c = int(colours[dy, dx])
                site = mosaic[dy::2, dx::2]
                site -= black[c]
                site *= np.float32(1.0 / (white[c] - black[c]))
        info = _describe(raw, path, tags)
        crop = _crop(raw)
    return RawMosaic(mosaic=mosaic, pattern=pattern, crop=crop, **info)


def develop_libraw(path, check_size=lambda w, h: None, algorithm: str = "AHD") -> RawMosaic:
    """LibRaw's demosaic of any RAW it reads, as white-balanced linear camera RGB in ``rgb``.

    For the files ``read_mosaic`` refuses (X-Trans, Foveon, linear DNGs).  ``algorithm`` is a
    rawpy.DemosaicAlgorithm name present in the wheel (LINEAR, VNG, PPG, AHD, DCB, DHT, AAHD).
    The result is not rotated (``orientation`` says how to) and keeps the full visible area.
    """
    import rawpy

    path = pathlib.Path(path)
    tags = _dng_tags(path)

    def run(alg: str):
        with _open(path) as raw:
            sizes = raw.sizes
            check_size(sizes.width, sizes.height)
            info = _describe(raw, path, tags)
            rgb = raw.postprocess(
                demosaic_algorithm=rawpy.DemosaicAlgorithm[alg], gamma=(1, 1), no_auto_bright=True,
                output_bps=16, output_color=rawpy.ColorSpace.raw, use_camera_wb=True, user_flip=0,
            )
        return rgb, info

    notes = []
    try:
        try:
            rgb, info = run(algorithm)
        except rawpy.LibRawError:
            if algorithm == "LINEAR":
                raise
            rgb, info = run("LINEAR")  # LibRaw's X-Trans passes refuse very small frames, for one
            notes.append(f"LibRaw's {algorithm} failed on this file; its LINEAR demosaic was used")
    except rawpy.LibRawError as err:
        raise ReadFailure(f"damaged or truncated RAW data ({type(err).__name__}: {err})") from err
    out = np.asarray(rgb, np.float32)
    out /= np.float32(65535)
    mos = RawMosaic(mosaic=None, pattern="", rgb=out, **info)
    mos.notes += notes
    return mos
