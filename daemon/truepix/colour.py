"""Colour in truepix: transfer curves, colour differences, output colour spaces and ICC profiles.

Inside truepix pixels are linear light; decoders and encoders convert at the edge, and the engine
measures colour shifts here too.

- The sRGB transfer curves (IEC 61966-2-1), ``srgb_to_linear`` and ``linear_to_srgb``: plain
  functions on float arrays that work chunk by chunk, optionally in place (``out=x``), so converting a
  100-megapixel image costs a few megabytes of temporaries, not gigabytes.
- CIELAB (``linear_srgb_to_lab``) and CIEDE2000 (``delta_e2000``) for colour shifts.
- Output colour spaces for developed RAWs: sRGB, Adobe RGB (1998) and ProPhoto RGB (ROMM).
  ``from_camera`` turns white-balanced linear camera RGB into a space's linear RGB; ``encode``
  applies its transfer curve; ``icc`` is the matching ICC profile (sRGB: LittleCMS's, through
  Pillow, which ``srgb_icc`` also gives for outputs whose source had none, e.g. RAW; Adobe RGB and
  ProPhoto: a small ICC v2 matrix/TRC display profile built here, with D50-adapted colorants as ICC
  requires and a pure-gamma curve that equals what ``encode`` writes).
"""

from __future__ import annotations

import datetime
import functools
import struct

import numpy as np

# -- sRGB transfer curves ---------------------------------------------------------------------------

_CHUNK = 1 << 20  # elements converted at a time
_A = np.float32(0.055)


def _chunked(x, out, fn) -> np.ndarray:
    """``out[...] = fn(x)`` in slabs along the first axis (works for any memory layout)."""
    x = np.asarray(x, dtype=np.float32)
    if out is None:
        out = np.empty(x.shape, np.float32)
    if x.ndim == 0:
        out[...] = fn(x.reshape(1))[0]
        return out
    rows = max(1, _CHUNK // max(1, x.size // max(1, x.shape[0])))
    for i in range(0, x.shape[0], rows):
        out[i:i + rows] = fn(x[i:i + rows])
    return out


def _clipped(s: np.ndarray) -> np.ndarray:
    """``s`` clipped to 0..1 with NaN -> 0 (fmax ignores a NaN; +-inf clip to 1 and 0)."""
    return np.fmin(np.fmax(s, np.float32(0)), np.float32(1))


def _decode(s: np.ndarray) -> np.ndarray:
    s = _clipped(s)
    r = s + _A
    r /= np.float32(1.055)
    np.power(r, np.float32(2.4), out=r)
    np.copyto(r, s / np.float32(12.92), where=s <= np.float32(0.04045))
    return r


def _encode(s: np.ndarray) -> np.ndarray:
    s = _clipped(s)
    r = np.power(s, np.float32(1 / 2.4))
    r *= np.float32(1.055)
    r -= _A
    np.copyto(r, s * np.float32(12.92), where=s <= np.float32(0.0031308))
    return r


def srgb_to_linear(x, out: np.ndarray | None = None) -> np.ndarray:
    """Decode sRGB-encoded values to linear light (IEC 61966-2-1), float32, any shape.

    Values are clipped to 0..1 first (NaN -> 0).  ``out`` may be ``x`` itself.
    """
    return _chunked(x, out, _decode)


def linear_to_srgb(x, out: np.ndarray | None = None) -> np.ndarray:
    """Encode linear light with the sRGB curve, float32 in 0..1, any shape.

    Values are clipped to 0..1 first (NaN -> 0).  ``out`` may be ``x`` itself.
    """
    return _chunked(x, out, _encode)


# -- CIELAB and CIEDE2000 ---------------------------------------------------------------------------

# IEC 61966-2-1 linear sRGB -> CIE XYZ (D65), and the D65 white point.
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def linear_srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Linear sRGB in [0, 1] -> CIELAB (L* in 0..100) under D65."""
    xyz = np.asarray(rgb, np.float64) @ SRGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), per pixel."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    cbar7 = ((c1 + c2) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(cbar7 / (cbar7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dLp, dCp = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dHp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    Lbar, Cbar = (L1 + L2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hbar = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, hsum + 360, hsum - 360), hsum) / 2
    hbar = np.where(c1p * c2p == 0, hsum, hbar)
    t = (1 - 0.17 * np.cos(np.radians(hbar - 30)) + 0.24 * np.cos(np.radians(2 * hbar))
         + 0.32 * np.cos(np.radians(3 * hbar + 6)) - 0.20 * np.cos(np.radians(4 * hbar - 63)))
    d_theta = 30 * np.exp(-(((hbar - 275) / 25) ** 2))
    rc = 2 * np.sqrt(Cbar**7 / (Cbar**7 + 25.0**7))
    sl = 1 + 0.015 * (Lbar - 50) ** 2 / np.sqrt(20 + (Lbar - 50) ** 2)
    sc = 1 + 0.045 * Cbar
    sh = 1 + 0.015 * Cbar * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dLp / sl) ** 2 + (dCp / sc) ** 2 + (dHp / sh) ** 2 + rt * (dCp / sc) * (dHp / sh))


# -- output colour spaces and their ICC profiles ----------------------------------------------------

@functools.cache
def srgb_icc() -> bytes:
    """An sRGB ICC profile (bytes) to embed in outputs whose source had none, e.g. RAW."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


SPACES = ("srgb", "adobe-rgb", "prophoto")

ADOBE_TO_XYZ = np.array([[0.5767309, 0.1855540, 0.1881852],    # D65 white
                         [0.2973769, 0.6273491, 0.0752741],
                         [0.0270343, 0.0706872, 0.9911085]])
PROPHOTO_TO_XYZ_D50 = np.array([[0.7976749, 0.1351917, 0.0313534],
                                [0.2880402, 0.7118741, 0.0000857],
                                [0.0000000, 0.0000000, 0.8252100]])
# Bradford chromatic adaptation D65 -> D50 (Lindbloom).
D65_TO_D50 = np.array([[1.0478112, 0.0228866, -0.0501270],
                       [0.0295424, 0.9904844, -0.0170491],
                       [-0.0092345, 0.0150436, 0.7521316]])
D50_WHITE = (0.9642, 1.0, 0.8249)

# Pure-gamma curves, exactly representable in ICC's u8Fixed8 (Adobe RGB's is 563/256 by definition).
GAMMA = {"adobe-rgb": 563 / 256, "prophoto": 461 / 256}
NAMES = {"srgb": "sRGB IEC61966-2.1", "adobe-rgb": "Adobe RGB (1998) compatible (truepix)",
         "prophoto": "ProPhoto RGB (ROMM) compatible (truepix)"}


def check(space: str) -> str:
    if space not in SPACES:
        raise ValueError(f"colour space must be one of {', '.join(SPACES)}, not {space!r}")
    return space


def xyz_d65_to(space: str) -> np.ndarray:
    """3x3 CIE XYZ (D65 white) -> the space's linear RGB."""
    if check(space) == "srgb":
        return np.linalg.inv(SRGB_TO_XYZ)
    if space == "adobe-rgb":
        return np.linalg.inv(ADOBE_TO_XYZ)
    return np.linalg.inv(PROPHOTO_TO_XYZ_D50) @ D65_TO_D50


def camera_matrix(rgb_cam: np.ndarray, space: str) -> np.ndarray:
    """3x3 white-balanced camera RGB -> linear ``space``, given camera -> linear sRGB (``rgb_cam``)."""
    return (xyz_d65_to(space) @ SRGB_TO_XYZ @ np.asarray(rgb_cam, np.float64)).astype(np.float32)


def from_camera(rgb: np.ndarray, rgb_cam: np.ndarray, space: str) -> np.ndarray:
    """White-balanced linear camera RGB (H, W, 3) -> linear ``space`` RGB, clipped to 0..1, in place
    row block by row block (the result replaces ``rgb``'s contents and is returned)."""
    m = camera_matrix(rgb_cam, space).T
    rows = max(1, (1 << 20) // max(1, rgb.shape[1] * 3))
    for i in range(0, rgb.shape[0], rows):
        block = rgb[i:i + rows] @ m
        np.clip(block, 0.0, 1.0, out=block)
        rgb[i:i + rows] = block
    return rgb


def encode(linear: np.ndarray, space: str) -> np.ndarray:
    """Linear 0..1 -> the space's encoded values (new float32 array)."""
    if check(space) == "srgb":
        return linear_to_srgb(linear)
    return np.power(np.clip(linear, 0.0, 1.0), np.float32(1.0 / GAMMA[space]), dtype=np.float32)


def _s15(x: float) -> bytes:
    return struct.pack(">i", int(round(x * 65536)))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in xyz)


def _curve_tag(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"


def _text_tag(text: str) -> bytes:
    return b"text" + b"\0" * 4 + text.encode("ascii") + b"\0"


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_ + struct.pack(">II", 0, 0)
            + struct.pack(">HB", 0, 0) + b"\0" * 67)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


@functools.cache
def icc(space: str) -> bytes:
    """ICC profile bytes for ``space``."""
    if check(space) == "srgb":
        return srgb_icc()
    # Colorants: the primaries' XYZ under D50 (ICC's PCS white), i.e. the columns of RGB -> XYZ(D50).
    to_d50 = PROPHOTO_TO_XYZ_D50 if space == "prophoto" else D65_TO_D50 @ ADOBE_TO_XYZ
    gamma = GAMMA[space]
    tags = [
        (b"desc", _desc_tag(NAMES[space])),
        (b"cprt", _text_tag("No copyright, use freely")),
        (b"wtpt", _xyz_tag(D50_WHITE)),
        (b"rXYZ", _xyz_tag(to_d50[:, 0])),
        (b"gXYZ", _xyz_tag(to_d50[:, 1])),
        (b"bXYZ", _xyz_tag(to_d50[:, 2])),
        (b"rTRC", _curve_tag(gamma)),
    ]
    table_size = 4 + 12 * (len(tags) + 2)
    offset = 128 + table_size
    entries, data = [], b""
    for sig, body in tags:
        entries.append((sig, offset + len(data), len(body)))
        data += _pad4(body)
    trc = entries[-1]
    entries += [(b"gTRC", trc[1], trc[2]), (b"bTRC", trc[1], trc[2])]  # one curve shared by all three
    table = struct.pack(">I", len(entries)) + b"".join(s + struct.pack(">II", o, n) for s, o, n in entries)
    size = 128 + len(table) + len(data)
    now = datetime.datetime(2026, 1, 1)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr" + b"RGB " + b"XYZ "
              + struct.pack(">6H", now.year, now.month, now.day, 0, 0, 0) + b"acsp" + b"\0" * 4
              + struct.pack(">I", 0) + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + struct.pack(">I", 0)
              + b"".join(_s15(v) for v in D50_WHITE) + b"tpix" + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + table + data
