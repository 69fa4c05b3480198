"""JPEG and 8-bit PNG through Pillow: decode to uint8 samples, encode 8-bit JPEG."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image, ImageCms

from .hints import from_exif
from .orientation import valid_orientation
from .samples import ReadFailure, Samples

# truepix applies its own, configurable pixel limit (read_image's max_pixels) from the header
# before decoding; Pillow's global bomb guard would refuse large panoramas below that limit.
Image.MAX_IMAGE_PIXELS = None

_MODES = {"L": "L", "1": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "I;16": "I;16"}


def decode(path, check_size) -> Samples:
    """Decode a JPEG or 8-bit PNG. ``check_size(w, h)`` raises before pixels are allocated."""
    try:
        im = Image.open(path)
    except Image.UnidentifiedImageError as err:
        raise ReadFailure("not an image Pillow can read (damaged header?)") from err
    with im:
        check_size(*im.size)
        icc = im.info.get("icc_profile") or None
        try:
            im.load()  # LOAD_TRUNCATED_IMAGES stays False: a short file raises here
        except (OSError, SyntaxError, ValueError) as err:
            raise ReadFailure(f"damaged or truncated {im.format} data ({err})") from err
        # after load(): Pillow finds PNG eXIf / "Raw profile type exif" chunks after IDAT too
        exif = im.getexif()
        orientation = valid_orientation(exif.get(0x0112))
        hints = from_exif(exif)  # the input-kind decision's EXIF hints; never raises
        im, icc = _to_plain_mode(im, icc)
        a = np.asarray(im)
    if a.ndim == 2:
        a = a[:, :, None]
    return Samples(a, has_alpha=a.shape[2] in (2, 4), icc=icc, orientation=orientation, hints=hints)


def _to_plain_mode(im: Image.Image, icc: bytes | None):
    """Convert to L, LA, RGB or RGBA; CMYK goes through its ICC profile to sRGB when it has one."""
    if im.mode == "CMYK":
        if icc:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(im, src, dst, outputMode="RGB"), None
        return im.convert("RGB"), None
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB"), icc
    if im.mode == "PA":
        return im.convert("RGBA"), icc
    if im.mode in _MODES:
        return (im if im.mode != "1" else im.convert("L")), icc
    return im.convert("RGB"), icc


def encode_jpeg(samples: np.ndarray, icc: bytes | None, quality: int = 95, resolution=None) -> bytes:
    """Encode uint8 (H, W, 1|3) samples as a baseline JPEG, 4:4:4, with an optional ICC profile and
    ``resolution`` (``io.resolution.Resolution``) as the JFIF density, in its unit (None: no unit)."""
    if samples.shape[2] == 1:
        im = Image.fromarray(np.ascontiguousarray(samples[:, :, 0]), mode="L")
    else:
        im = Image.fromarray(np.ascontiguousarray(samples), mode="RGB")
    buf = io.BytesIO()
    kwargs = {"icc_profile": icc} if icc else {}
    im.save(buf, format="JPEG", quality=quality, subsampling=0, **kwargs)
    data = buf.getvalue()
    return data if resolution is None else _jfif_density(data, resolution)


def _jfif_density(data: bytes, resolution) -> bytes:
    """``data`` with its JFIF APP0 density set to ``resolution``: 16-bit whole dots per inch (unit 1)
    or per cm (unit 2), the unit kept (Pillow's ``dpi`` would turn a cm into inches)."""
    if data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\0":
        return data  # Pillow always writes JFIF first; anything else is left as it is
    unit = 1 if resolution.unit == "inch" else 2
    x, y = (max(1, min(65535, round(v))) for v in (resolution.x, resolution.y))
    return data[:13] + struct.pack(">BHH", unit, x, y) + data[18:]
