"""Print resolution: read from the original, scaled with the pixels, written in every output format.

A photo's print resolution (pixels per inch or per centimetre) says how large it prints.  An x2
upscale doubles the pixels; carrying 300 ppi over unchanged would double the print size too, so
the output gets the original's resolution times the scale factor (300 -> 600 ppi): the print size
stays what it was.  A recipe that does not resize keeps the original's value.  An original that
states none (no tag, or a TIFF/JFIF/PNG unit of "none", which gives only an aspect ratio) gives an
output that states none: the encoders' neutral value, never an invented 1 or 72 ppi.

Where each format keeps it: TIFF tags XResolution/YResolution/ResolutionUnit (282, 283, 296),
PNG's pHYs chunk (pixels per metre), JPEG's JFIF density (dots per inch or per cm) and EXIF's
IFD0 tags of the same names, which ``metadata.copy_metadata`` sets to agree with the file's own.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from fractions import Fraction

INCH, CM = "inch", "cm"
KEEP = "keep"  # ``metadata.copy_metadata``'s default: the source's EXIF resolution copied as it is
_PER_METRE = {INCH: 1 / 0.0254, CM: 100.0}  # pixels per metre for one pixel per unit


@dataclass(frozen=True)
class Resolution:
    """Pixels per ``unit`` ("inch" or "cm") across (``x``) and down (``y``), both > 0."""

    x: float
    y: float
    unit: str = INCH

    def scaled(self, sx: float, sy: float) -> Resolution:
        """This resolution for pixels ``sx`` times as many across and ``sy`` times down."""
        return Resolution(self.x * sx, self.y * sy, self.unit)

    def swapped(self) -> Resolution:
        """Across and down exchanged (the pixels were turned a quarter)."""
        return Resolution(self.y, self.x, self.unit)

    def per_metre(self) -> tuple[int, int]:
        """(x, y) in pixels per metre, rounded (PNG's pHYs)."""
        k = _PER_METRE[self.unit]
        return round(self.x * k), round(self.y * k)

    def rationals(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(x, y) as TIFF/EXIF rationals (numerator, denominator), each within 32 bits."""
        def rational(v: float) -> tuple[int, int]:
            f = Fraction(v).limit_denominator(1000)
            while f.numerator >= 1 << 32:
                f = Fraction(v).limit_denominator(max(1, f.denominator // 10))
            return f.numerator, f.denominator
        return rational(self.x), rational(self.y)

    @property
    def tiff_unit(self) -> int:
        """TIFF/EXIF ResolutionUnit: 2 inch, 3 centimetre."""
        return 2 if self.unit == INCH else 3

    def words(self) -> str:
        """"300 ppi", "118.11 px/cm", "300x200 ppi"."""
        nums = _num(self.x) if _num(self.x) == _num(self.y) else f"{_num(self.x)}x{_num(self.y)}"
        return f"{nums} {'ppi' if self.unit == INCH else 'px/cm'}"


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def for_output(source: Resolution | None, in_size: tuple[int, int], out_size: tuple[int, int]) -> Resolution | None:
    """The output's resolution: ``source``'s scaled by output/input pixels per axis (sizes (h, w)),
    so the print size stays the same; None when the original states none."""
    if source is None or not all(in_size) or not all(out_size):
        return None
    return source.scaled(out_size[1] / in_size[1], out_size[0] / in_size[0])


def note(source: Resolution | None, output: Resolution | None) -> str | None:
    """The line the job's notes and the XMP record carry when the resolution was scaled:
    "print size kept: 300 → 600 ppi"; None when it was not (same value, or none)."""
    if source is None or output is None or source.words() == output.words():
        return None
    return f"print size kept: {source.words().split(' ')[0]} → {output.words()}"


def from_values(x, y, unit) -> Resolution | None:
    """A resolution from tag values (numbers, rationals as (num, den) pairs or "n/d" strings) and a
    TIFF/EXIF unit (2 inch, 3 cm; None: inch, as EXIF says); None for "no unit" (1) or a value <= 0."""
    def value(v) -> float:
        if isinstance(v, (tuple, list)) and len(v) == 2:
            return v[0] / v[1] if v[1] else 0.0
        if isinstance(v, str) and "/" in v:
            num, _, den = v.partition("/")
            return float(num) / float(den) if float(den) else 0.0
        return float(v)

    try:
        unit = 2 if unit is None else int(unit)
        xv, yv = value(x), value(y)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if unit not in (2, 3) or not (xv > 0 and yv > 0):
        return None
    return Resolution(xv, yv, INCH if unit == 2 else CM)


def read(path, orientation: int = 1) -> Resolution | None:
    """``path``'s print resolution as its pixels are stored, turned with them when ``orientation``
    (EXIF, 1..8) swaps across and down; None when it states none or cannot be read (never raises:
    a resolution is a nicety, not a reason to fail a photo)."""
    try:
        res = _read(os.fspath(path))
    except Exception:  # a damaged header: the photo's decode says what is wrong with it, not this
        return None
    return res.swapped() if res is not None and orientation in (5, 6, 7, 8) else res


def _read(path: str) -> Resolution | None:
    from .formats import by_suffix, sniff
    from .regular import open_regular

    with open_regular(path) as fh:
        head = fh.read(16)
        fmt = sniff(head) or by_suffix(os.path.splitext(path)[1])
        if fmt is None:
            return None
        if fmt.name == "png":
            return _png(fh)
        if fmt.name == "tiff":
            return _tiff(fh, os.path.basename(path))
        if fmt.name == "jpeg":
            fh.seek(0)
            return _jpeg(fh)
    return _exif(path)  # a camera RAW: what its IFD0 says


def _png(fh) -> Resolution | None:
    """The pHYs chunk (before IDAT), unit 1 = metre; 0 = aspect ratio only: none."""
    fh.seek(8)
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", fh.read(9))
            # per metre, the only unit PNG has; said in ppi, as photographers do (11811 -> 300 ppi)
            # to 1/100 ppi: a whole number of pixels per metre is never a whole ppi (11811 -> 299.9994)
            return Resolution(round(x * 0.0254, 2), round(y * 0.0254, 2), INCH) if unit == 1 and x and y else None
        if kind in (b"IDAT", b"IEND"):
            return None
        fh.seek(length + 4, os.SEEK_CUR)


def _tiff(fh, name: str) -> Resolution | None:
    import tifffile

    fh.seek(0)
    with tifffile.TiffFile(fh, name=name) as tif:  # a descriptor's file: its name said
        tags = tif.pages.first.tags
        if 282 not in tags:
            return None
        return from_values(tags[282].value, tags[283].value if 283 in tags else None,
                           tags[296].value if 296 in tags else 2)


def _jpeg(fh) -> Resolution | None:
    """JFIF's density when it has a unit (1 inch, 2 cm), else EXIF's (as Pillow and most readers do)."""
    from PIL import Image

    with Image.open(fh) as im:
        unit, density = im.info.get("jfif_unit"), im.info.get("jfif_density")
        if unit in (1, 2) and density and all(density):
            return Resolution(float(density[0]), float(density[1]), INCH if unit == 1 else CM)
        exif = im.getexif()
        return from_values(exif.get(0x011A), exif.get(0x011B), exif.get(0x0128)) if 0x011A in exif else None


def _exif(path: str) -> Resolution | None:
    import pyexiv2

    img = pyexiv2.Image(path)
    try:
        exif = img.read_exif()
    finally:
        img.close()
    if "Exif.Image.XResolution" not in exif:
        return None
    return from_values(exif["Exif.Image.XResolution"], exif.get("Exif.Image.YResolution"),
                       exif.get("Exif.Image.ResolutionUnit"))
