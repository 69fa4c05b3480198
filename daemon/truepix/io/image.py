"""Read any supported photo into linear float32 pixels; write pixels atomically.

``read_image`` finds the format from the file's first bytes (camera RAWs by extension, since
many are TIFF containers), refuses bad or oversized input with an ``ImageReadError`` naming
the file, turns the pixels upright and linearises them. ``write_image`` encodes 16-bit TIFF,
16-bit PNG or 8-bit JPEG to a temporary name beside the destination, copies metadata into it,
fsyncs and renames: a destination either appears complete or not at all.
"""

from __future__ import annotations

import errno
import os
import pathlib
import secrets
from dataclasses import dataclass

import numpy as np

from ..errors import ImageReadError, ImageWriteError
from . import pil, png, raw, tiff
from .colour import linear_to_srgb, srgb_to_linear
from .orientation import apply_orientation, valid_orientation
from .regular import open_regular
from .samples import ReadFailure, Samples

RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .bay .cap .cr2 .cr3 .crw .dcr .dcs .dng .drf .eip .erf .fff .gpr .iiq .k25 "
    ".kdc .mdc .mef .mos .mrw .nef .nrw .orf .pef .ptx .pxn .r3d .raf .raw .rw2 .rwl .rwz .sr2 "
    ".srf .srw .x3f".split()
)
# Everything ``read_image`` may decode, by file name (the content is checked too).
SUPPORTED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"}) | RAW_EXTENSIONS
_FORMATS = {"tiff": "tiff", "tif": "tiff", "png": "png", "jpeg": "jpeg", "jpg": "jpeg"}


@dataclass
class Decoded:
    """A decoded photo.

    pixels:      float32 (H, W, C), C = 3 (RGB) or 1 (grey), linear light 0..1, upright.
    alpha:       float32 (H, W) 0..1 as stored (not linearised), or None.
    icc:         the source's ICC profile bytes, or None (= assume sRGB).
    bit_depth:   8 or 16, the source's sample depth (RAW and float TIFF -> 16).
    kind:        "jpeg" | "png" | "tiff" | "raw".
    orientation: EXIF/TIFF orientation (1..8) found and applied to ``pixels`` (1 = none).
    source:      the path read.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    icc: bytes | None
    bit_depth: int
    kind: str
    orientation: int
    source: pathlib.Path


def sniff(head: bytes) -> str | None:
    """The container format from a file's first bytes: "jpeg", "png", "tiff" or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(png.SIGNATURE):
        return "png"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    return None


def read_image(path, *, max_pixels: int = 250_000_000, size_check=None) -> Decoded:
    """Decode a JPEG, PNG (8/16-bit), TIFF (8/16-bit/float) or camera RAW file.

    Raises ImageReadError (message starts with the file name) for anything it cannot decode
    fully: missing, unreadable, empty, truncated, not an image, or over ``max_pixels``
    (checked from the header, before the pixels are allocated).  ``size_check(width, height)``,
    when given, is called from the header too and may raise (the job's memory budget).
    """
    path = pathlib.Path(path)
    kind = "image"
    try:
        kind, head = _probe(path)
        samples = _decode(path, kind, head, max_pixels, size_check)
    except ReadFailure as err:
        raise ImageReadError(path, str(err)) from None
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this image") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot read file ({err.strerror or err})") from None
    except Exception as err:  # a decoder tripped over damaged data in a way it did not foresee
        raise ImageReadError(path, f"damaged {kind.upper()} file ({type(err).__name__}: {err})") from err
    return _finish(path, kind, samples)


def _probe(path: pathlib.Path) -> tuple[str, bytes]:
    if not path.exists():
        raise ReadFailure("no such file")
    if path.is_dir():
        raise ReadFailure("is a folder, not an image file")
    with open_regular(path) as fh:  # never blocks on a FIFO; PermissionError surfaces here, before any decoder
        head = fh.read(64)
    if not head:
        raise ReadFailure("empty file (0 bytes)")
    if path.suffix.lower() in RAW_EXTENSIONS:
        return "raw", head
    kind = sniff(head)
    if kind is None:
        expected = {".jpg": "a JPEG", ".jpeg": "a JPEG", ".png": "a PNG", ".tif": "a TIFF",
                    ".tiff": "a TIFF"}.get(path.suffix.lower(), "a JPEG, PNG, TIFF or camera RAW file")
        # Say what the file is not, never what it holds (its bytes may be private: a text or a key).
        raise ReadFailure(f"not {expected} (no image or camera RAW format recognised in its first bytes; "
                          f"{_size_words(path)})")
    return kind, head


def _size_words(path: pathlib.Path) -> str:
    try:
        return f"{path.stat().st_size} bytes"
    except OSError:
        return "size unknown"


def _decode(path: pathlib.Path, kind: str, head: bytes, max_pixels: int, size_check=None) -> Samples:
    def check_size(width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ReadFailure(f"image has no pixels ({width} x {height})")
        if width * height > max_pixels:
            raise ReadFailure(
                f"image too large: {width} x {height} pixels ({width * height / 1e6:.0f} MP), "
                f"the limit is {max_pixels / 1e6:.0f} MP")
        if size_check is not None:
            size_check(width, height)

    if kind == "raw":
        return raw.decode(path, check_size)
    if kind == "tiff":
        return tiff.decode(path, check_size)
    if kind == "png":
        width, height, depth, _ = png.header(head)
        if depth == 16:
            check_size(width, height)
            data = path.read_bytes()
            samples = png.decode16(data)
            samples.icc, exif = png.icc_and_exif(data)
            samples.orientation = _exif_orientation(exif)
            return samples
    return pil.decode(path, check_size)


def _exif_orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    from PIL import Image

    ex = Image.Exif()
    try:
        ex.load(exif)
    except Exception:  # a damaged eXIf chunk loses only the orientation hint
        return 1
    return valid_orientation(ex.get(0x0112))


def _finish(path: pathlib.Path, kind: str, s: Samples) -> Decoded:
    """Scale to 0..1, split alpha, turn upright, linearise."""
    a = s.data
    if a.dtype in (np.uint8, np.uint16):
        depth = 8 if a.dtype == np.uint8 else 16
        values = a.astype(np.float32)
        values /= np.float32(255 if depth == 8 else 65535)
    else:
        depth, values = 16, np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    alpha = None
    if s.has_alpha:
        values, alpha = values[:, :, :-1], values[:, :, -1]
        alpha = np.ascontiguousarray(apply_orientation(alpha, s.orientation))
    values = np.ascontiguousarray(apply_orientation(values, s.orientation))
    pixels = values if s.linear else srgb_to_linear(values, out=values)
    orientation = s.applied if s.applied != 1 else s.orientation
    return Decoded(pixels, alpha, s.icc, depth, kind, orientation, path)


def write_image(dest, pixels, *, alpha=None, fmt="tiff", icc=None, metadata_source=None,
                xmp_info: dict | None = None, overwrite=False, bits: int = 16, encode=linear_to_srgb) -> pathlib.Path:
    """Encode linear float32 ``pixels`` (H, W, C), C = 1 or 3, 0..1, and write them to ``dest``.

    fmt:  "tiff" (deflate) or "png", ``bits`` 16 (default) or 8; "jpeg" is always 8-bit,
          quality 95, alpha dropped.
    alpha: float32 (H, W) 0..1, written as stored (no transfer curve).
    icc: profile bytes to embed (pass ``srgb_icc()`` for RAW-sourced outputs).
    encode: the transfer curve, linear float -> encoded 0..1 (sRGB's by default; a developed RAW
    in Adobe RGB or ProPhoto passes its own, matching ``icc``).
    metadata_source / xmp_info: when either is given, EXIF/IPTC/XMP are copied from the source
    and the truepix XMP record is written (see metadata.copy_metadata).
    Atomic: temp file beside ``dest``, fsync, rename, fsync folder. Refuses an existing ``dest``
    unless ``overwrite``. Raises ImageWriteError and leaves no file behind on failure.
    Returns the final path.
    """
    dest = pathlib.Path(dest)
    fmt_name = _FORMATS.get(str(fmt).lower())
    if fmt_name is None:
        raise ImageWriteError(dest, f"unknown output format {fmt!r} (tiff, png or jpeg)")
    if not overwrite and os.path.lexists(dest):
        raise ImageWriteError(dest, "file already exists")
    if bits not in (8, 16):
        raise ImageWriteError(dest, f"bit depth must be 8 or 16, not {bits!r}")
    samples, has_alpha = _quantise(dest, pixels, alpha, 8 if fmt_name == "jpeg" else bits, encode)
    tmp = temp_path(dest)
    try:
        with open(tmp, "xb") as fh:
            if fmt_name == "tiff":
                tiff.encode(fh, samples, has_alpha, icc)
            elif fmt_name == "png":
                fh.write(png.encode(samples, icc))
            else:
                fh.write(pil.encode_jpeg(samples[:, :, : samples.shape[2] - has_alpha], icc))
        height, width = samples.shape[:2]
        # Exiv2 holds the whole encoded file in memory while it edits the metadata:
        # let the samples go first (a 96 MP output: 576 MB less at the peak).
        del samples
        if metadata_source is not None or xmp_info is not None:
            from .metadata import copy_metadata

            copy_metadata(metadata_source, tmp, width=width, height=height, xmp_info=xmp_info)
        _fsync_file(tmp)
        _publish(tmp, dest, overwrite)
        _fsync_dir(dest.parent)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, ImageWriteError):
            raise
        if isinstance(err, Exception):
            raise ImageWriteError(dest, _why(err, dest)) from err
        raise
    return dest


def _quantise(dest, pixels, alpha, bits: int, encode=linear_to_srgb) -> tuple[np.ndarray, bool]:
    """Linear float (H, W[, C]) + alpha -> encoded (sRGB by default) uint8/uint16 (H, W, C[+1]), rounded."""
    p = np.asarray(pixels, dtype=np.float32)
    if p.ndim == 2:
        p = p[:, :, None]
    if p.ndim != 3 or p.shape[2] not in (1, 3) or 0 in p.shape:
        raise ImageWriteError(dest, f"pixels must be (H, W, 1|3), got shape {p.shape}")
    full = np.float32(255 if bits == 8 else 65535)
    dtype = np.uint8 if bits == 8 else np.uint16
    al = None
    if alpha is not None:
        al = np.asarray(alpha, dtype=np.float32)
        if al.ndim == 3 and al.shape[2] == 1:
            al = al[:, :, 0]
        if al.shape != p.shape[:2]:
            raise ImageWriteError(dest, f"alpha shape {al.shape} does not match pixels {p.shape[:2]}")
    c = p.shape[2]
    out = np.empty(p.shape[:2] + (c + (al is not None),), dtype)
    # Row strips: a 100-megapixel output needs its integer samples, not several float copies.
    rows = max(1, (1 << 22) // (p.shape[1] * c))
    for y in range(0, p.shape[0], rows):
        out[y:y + rows, :, :c] = np.rint(encode(p[y:y + rows]) * full)
        if al is not None:
            out[y:y + rows, :, c] = np.rint(np.clip(np.nan_to_num(al[y:y + rows]), 0, 1) * full)
    return out, al is not None


def _publish(tmp: pathlib.Path, dest: pathlib.Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # atomic "create if absent": never clobbers a file made meanwhile
    except FileExistsError:
        raise ImageWriteError(dest, "file already exists") from None
    except OSError:  # file systems without hard links (FAT, some network shares)
        if os.path.lexists(dest):
            raise ImageWriteError(dest, "file already exists") from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


def _fsync_file(path: pathlib.Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: pathlib.Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename already happened
    finally:
        os.close(fd)


def _why(err: Exception, dest: pathlib.Path) -> str:
    if isinstance(err, FileNotFoundError):
        return f"folder does not exist: {dest.parent}"
    if isinstance(err, NotADirectoryError):
        return f"not a folder: {dest.parent}"
    if isinstance(err, PermissionError):
        return f"permission denied in {dest.parent}"
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return "disk full"
    return f"{type(err).__name__}: {err}"


def unique_path(path) -> pathlib.Path:
    """``path`` if free, else ``stem-1.ext``, ``stem-2.ext``, ... (first name not in use)."""
    path = pathlib.Path(path)
    n = 0
    candidate = path
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


# -- file names ----------------------------------------------------------------------------------

NAME_MAX = 255  # bytes in one file name (ext4, XFS, Btrfs, APFS; NTFS allows 255 UTF-16 units, never fewer)
TEMP_MARK = ".truepix-tmp-"
_TOKEN_LEN = 8  # hex digits of the random part of a temp name


def _name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def fit_name(stem: str, tail: str, limit: int = NAME_MAX) -> str:
    """``stem + tail``, with ``stem`` cut short (whole characters) when the name would exceed ``limit``
    bytes; ``tail`` (suffix, extension) is always kept.  ValueError when not even one character of
    the stem fits."""
    if _name_bytes(stem + tail) <= limit:
        return stem + tail
    budget = limit - _name_bytes(tail)
    while stem and _name_bytes(stem) > budget:
        stem = stem[: max(1, len(stem) - max(1, (_name_bytes(stem) - budget) // 4))]
    if not stem:
        raise ValueError(f"{tail!r} alone is longer than a file name may be ({limit} bytes)")
    return stem + tail


def temp_prefix(dest) -> str:
    """How every temp file name a writer uses for ``dest`` starts: ``.NAME.truepix-tmp-`` (then 8 hex
    digits).  A NAME too long to take those 22 bytes within NAME_MAX is cut short and followed by
    ``~`` and 8 hex digits of its hash (two long names that share a start keep apart)."""
    name = pathlib.Path(dest).name
    prefix = f".{name}{TEMP_MARK}"
    if _name_bytes(prefix) + _TOKEN_LEN <= NAME_MAX:
        return prefix
    import hashlib

    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    return fit_name("." + name, f"~{digest}{TEMP_MARK}", NAME_MAX - _TOKEN_LEN)


def temp_path(dest) -> pathlib.Path:
    """A fresh temp file name beside ``dest`` (hidden, at most NAME_MAX bytes, see ``temp_prefix``)."""
    dest = pathlib.Path(dest)
    return dest.with_name(temp_prefix(dest) + secrets.token_hex(_TOKEN_LEN // 2))


def remove_temp_files(dest) -> list[pathlib.Path]:
    """Delete the temp files a killed writer left for ``dest``; returns those removed.

    An exact match on the name (no glob: ``[``, ``*`` or ``?`` in a photo's name are plain characters)."""
    dest = pathlib.Path(dest)
    prefix = temp_prefix(dest)
    removed = []
    try:
        names = os.listdir(dest.parent)
    except OSError:
        return removed
    for name in names:
        token = name[len(prefix):]
        if name.startswith(prefix) and len(token) == _TOKEN_LEN and all(c in "0123456789abcdef" for c in token):
            try:
                os.unlink(dest.parent / name)
                removed.append(dest.parent / name)
            except OSError:
                pass
    return removed
