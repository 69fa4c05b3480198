"""The file formats truepix reads and writes, in one registry.

A ``Format`` gives a format's name, its file name suffixes and the extension an output gets, the
bit depths it is written with, the metadata it carries (EXIF, XMP, IPTC, ICC), the first bytes
that identify it, and the encoder ``write_image`` uses.  Everything else derives from here: a
recipe's ``format`` and its extension and bit depth (``recipes``), the suffixes ``read_image``
accepts and how it tells formats apart (``image.sniff``, camera RAWs by suffix, since many are TIFF
containers), and the names ``write_image`` takes (``tif`` and ``jpg`` too).

``OUTPUT_FORMATS`` is what a recipe's ``format`` (and the CLI's ``--format``) may be: tiff, png and
jpeg are rendered by ``write_image``; dng is the linear DNG of a developed RAW, written from camera
RGB by ``dng.write_linear_dng``.  ``raw`` (input only) is every camera RAW LibRaw reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from . import pil, png, stream, tiff

EXIF, XMP, IPTC, ICC = "exif", "xmp", "iptc", "icc"

# (file, samples uint8/uint16 (H, W, C[+alpha]), has_alpha, icc bytes or None, resolution) -> None;
# resolution: the output's ``resolution.Resolution``, or None (the format's way of stating none)
Encoder = Callable[..., None]


@dataclass(frozen=True)
class Format:
    """One file format.

    name:       what recipes, ``--format``, ``write_image`` and ``Decoded.kind`` call it.
    label:      how messages name it ("not a JPEG").
    suffixes:   lower-case file name suffixes it is read from or written with.
    extension:  the suffix an output in this format gets, or None (input only).
    bit_depths: the sample depths it is written with (one: fixed, whatever a recipe asks); () input only.
    metadata:   what it carries: EXIF, XMP, IPTC, ICC.
    magic:      first bytes that identify it (``sniff``); () when it is known by suffix only.
    encoder:    what ``write_image`` encodes it with, or None (not written by ``write_image``).
    aliases:    other names ``write_image`` accepts for it.
    streamer:   a writer that takes the output band by band as the engine finishes it
                (``io.stream``: ``(fh, width, height, channels, depth, has_alpha, icc,
                resolution=None)``, then
                ``write(rows)`` and ``close()``), or None: the samples are gathered for ``encoder``.
    """

    name: str
    label: str
    suffixes: tuple[str, ...]
    extension: str | None
    bit_depths: tuple[int, ...]
    metadata: frozenset[str]
    magic: tuple[bytes, ...] = ()
    encoder: Encoder | None = None
    aliases: tuple[str, ...] = ()
    streamer: type | None = None

    def carries(self, what: str) -> bool:
        """True when this format holds ``what`` (EXIF, XMP, IPTC or ICC)."""
        return what in self.metadata

    def bit_depth(self, bits: int) -> int:
        """The depth an output gets when ``bits`` is asked for (JPEG is always 8, DNG 16)."""
        return self.bit_depths[0] if len(self.bit_depths) == 1 else bits

    def sniffs(self, head: bytes) -> bool:
        """True when a file starting with ``head`` is this format (False for a suffix-only format)."""
        return head.startswith(self.magic)


def _encode_tiff(fh: BinaryIO, samples: np.ndarray, has_alpha: bool, icc: bytes | None, resolution=None) -> None:
    tiff.encode(fh, samples, has_alpha, icc, resolution)


def _encode_png(fh: BinaryIO, samples: np.ndarray, has_alpha: bool, icc: bytes | None, resolution=None) -> None:
    fh.write(png.encode(samples, icc, resolution))


def _encode_jpeg(fh: BinaryIO, samples: np.ndarray, has_alpha: bool, icc: bytes | None, resolution=None) -> None:
    # JPEG has no alpha
    fh.write(pil.encode_jpeg(samples[:, :, : samples.shape[2] - has_alpha], icc, resolution=resolution))


_ALL = frozenset({EXIF, XMP, IPTC, ICC})
# Read with LibRaw, by suffix (many are TIFF containers; a DNG too).
RAW_SUFFIXES = frozenset(
    ".3fr .ari .arw .bay .cap .cr2 .cr3 .crw .dcr .dcs .dng .drf .eip .erf .fff .gpr .iiq .k25 "
    ".kdc .mdc .mef .mos .mrw .nef .nrw .orf .pef .ptx .pxn .r3d .raf .raw .rw2 .rwl .rwz .sr2 "
    ".srf .srw .x3f".split()
)

TIFF = Format("tiff", "TIFF", (".tif", ".tiff"), ".tif", (8, 16), _ALL,
              magic=(b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), encoder=_encode_tiff, aliases=("tif",),
              streamer=stream.TiffStrips)
PNG = Format("png", "PNG", (".png",), ".png", (8, 16), _ALL, magic=(png.SIGNATURE,), encoder=_encode_png,
             streamer=stream.PngRows)
JPEG = Format("jpeg", "JPEG", (".jpg", ".jpeg"), ".jpg", (8,), _ALL, magic=(b"\xff\xd8\xff",),
              encoder=_encode_jpeg, aliases=("jpg",))
# Written by dng.write_linear_dng (its colour is in DNG tags, not an ICC profile); read back as a RAW.
DNG = Format("dng", "linear DNG", (".dng",), ".dng", (16,), frozenset({EXIF, XMP, IPTC}))
RAW = Format("raw", "camera RAW file", tuple(sorted(RAW_SUFFIXES)), None, (), frozenset({EXIF, XMP, IPTC}))

FORMATS: dict[str, Format] = {f.name: f for f in (TIFF, PNG, JPEG, DNG, RAW)}
# A recipe's ``format``, in the order messages and ``--format`` list them.
OUTPUT_FORMATS = tuple(name for name, f in FORMATS.items() if f.extension is not None)
# What ``bits`` may ask for (a format with one depth ignores it).
BIT_DEPTHS = tuple(sorted({d for f in FORMATS.values() for d in f.bit_depths}))
# Told apart by their first bytes.
SNIFFED = tuple(f for f in FORMATS.values() if f.magic)
# Everything ``read_image`` may decode, by file name (the content is checked too).
READ_SUFFIXES = frozenset(s for f in SNIFFED for s in f.suffixes) | RAW_SUFFIXES
# write_image's ``fmt``, lower-cased: name or alias -> format.
_ENCODED = {n: f for f in FORMATS.values() if f.encoder is not None for n in (f.name, *f.aliases)}


def encoded(fmt) -> Format | None:
    """The format ``write_image`` encodes for ``fmt`` (a name or alias, any case), or None."""
    return _ENCODED.get(str(fmt).lower())


def by_suffix(suffix: str) -> Format | None:
    """The format a file named ``...suffix`` is read as (any case; a RAW suffix: RAW), or None."""
    suffix = suffix.lower()
    if suffix in RAW_SUFFIXES:
        return RAW
    return next((f for f in SNIFFED if suffix in f.suffixes), None)


def sniff(head: bytes) -> Format | None:
    """The format a file's first bytes identify (JPEG, PNG or TIFF), or None."""
    return next((f for f in SNIFFED if f.sniffs(head)), None)


def words(items, last: str = "or") -> str:
    """"a, b or c" (how messages list choices)."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"
