"""PNG specifics Pillow does not cover: 16-bit samples, chunk parsing, writing iCCP.

Pillow reduces 16-bit RGB(A) PNGs to 8 bits, so 16-bit files are decoded and encoded with
imagecodecs (libpng), and the few chunks truepix needs are read and written here.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .samples import ReadFailure, Samples

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grey", 2: "rgb", 3: "palette", 4: "grey+alpha", 6: "rgba"}


def header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit_depth, colour_type) from the IHDR chunk; raises ReadFailure."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ReadFailure("truncated PNG header")
    width, height, depth, ctype = struct.unpack(">IIBB", data[16:26])
    if ctype not in _COLOUR_TYPES or depth not in (1, 2, 4, 8, 16):
        raise ReadFailure(f"invalid PNG header (bit depth {depth}, colour type {ctype})")
    return width, height, depth, ctype


def chunks(data: bytes):
    """Yield (type, payload) for each chunk, stopping at IEND or at the end of the data."""
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        yield kind, data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def icc_and_exif(data: bytes) -> tuple[bytes | None, bytes | None]:
    """The ICC profile (decompressed iCCP) and raw eXIf payload, each or None."""
    icc = exif = None
    for kind, payload in chunks(data):
        if kind == b"iCCP" and icc is None:
            name_end = payload.find(b"\0")
            try:
                icc = zlib.decompress(payload[name_end + 2 :])
            except zlib.error:
                icc = None  # a broken profile is dropped, the pixels are still good
        elif kind == b"eXIf" and exif is None:
            exif = payload
        elif kind in (b"tEXt", b"zTXt", b"iTXt") and exif is None:
            exif = _raw_profile_exif(kind, payload)
    return icc, exif


def _raw_profile_exif(kind: bytes, payload: bytes) -> bytes | None:
    """EXIF from ImageMagick/Exiv2's "Raw profile type exif" text chunk (hex-encoded), or None."""
    keyword, _, rest = payload.partition(b"\0")
    if keyword != b"Raw profile type exif":
        return None
    try:
        if kind == b"zTXt":
            rest = zlib.decompress(rest[1:])
        elif kind == b"iTXt":
            compressed, rest = rest[0], rest[2:]
            rest = rest.split(b"\0", 2)[2]  # skip language tag and translated keyword
            rest = zlib.decompress(rest) if compressed else rest
        lines = rest.decode("ascii").strip().split("\n")
        return bytes.fromhex("".join(lines[2:]))  # "exif", the length, then hex lines
    except (zlib.error, UnicodeDecodeError, ValueError, IndexError):
        return None


def decode16(data: bytes) -> Samples:
    """Decode a 16-bit PNG to uint16 (H, W, C) samples (alpha kept as the last channel)."""
    import imagecodecs

    ctype = header(data)[3]
    try:
        a = imagecodecs.png_decode(data)
    except Exception as err:  # imagecodecs.PngError and friends
        raise ReadFailure(f"damaged or truncated PNG data ({err})") from err
    if a.ndim == 2:
        a = a[:, :, None]
    return Samples(a.astype(np.uint16, copy=False), has_alpha=ctype in (4, 6))


def encode(samples: np.ndarray, icc: bytes | None, resolution=None) -> bytes:
    """Encode uint8 or uint16 (H, W, C) samples, C in 1..4, as a PNG with an optional iCCP chunk and,
    for a ``resolution`` (``io.resolution.Resolution``), a pHYs chunk."""
    import imagecodecs

    if samples.shape[2] == 1:
        samples = samples[:, :, 0]
    data = imagecodecs.png_encode(np.ascontiguousarray(samples))
    extra = (iccp(icc) if icc else b"") + (phys(resolution) if resolution is not None else b"")
    ihdr_end = len(SIGNATURE) + 8 + 13 + 4
    return data[:ihdr_end] + extra + data[ihdr_end:] if extra else data


def chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def iccp(icc: bytes) -> bytes:
    """The iCCP chunk embedding ``icc`` (it goes before PLTE/IDAT)."""
    return chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc))


def phys(resolution) -> bytes:
    """The pHYs chunk for ``resolution``: pixels per metre, unit 1 (the only unit PNG has)."""
    x, y = resolution.per_metre()
    return chunk(b"pHYs", struct.pack(">IIB", x, y, 1))


def insert_iccp(data: bytes, icc: bytes) -> bytes:
    """Return PNG ``data`` with an iCCP chunk right after IHDR (before any PLTE/IDAT)."""
    ihdr_end = len(SIGNATURE) + 8 + 13 + 4
    return data[:ihdr_end] + iccp(icc) + data[ihdr_end:]
