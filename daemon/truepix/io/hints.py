"""What a photo's EXIF says about where it came from, for the upscaler's input-kind decision.

``Hints`` holds the few fields ``engine.inputkind.prior`` weighs: the camera's Make and Model
(0x010F, 0x0110), the Software that wrote the file (0x0131), and from the Exif IFD (0x8769) the ISO
(0x8827, PhotographicSensitivity / ISOSpeedRatings) and the size the EXIF was written for
(PixelXDimension 0xA002, PixelYDimension 0xA003), beside the size of the pixels actually decoded.
A camera RAW that truepix develops is marked ``raw``.

They are read at decode from the EXIF the decoder already holds (Pillow's ``getexif()``, a 16-bit
PNG's eXIf chunk, a TIFF's tags): no second open of the file, no extra pass over it.  Reading them
never fails a decode: damaged or odd EXIF gives hints whose fields are None (``from_exif`` and the
others catch everything).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXIF_IFD = 0x8769
MAKE, MODEL, SOFTWARE = 0x010F, 0x0110, 0x0131
ISO, PIXEL_X, PIXEL_Y = 0x8827, 0xA002, 0xA003
_TEXT_MAX = 128       # longer strings are cut (the report never holds them; the reason may)
_SIZE_MAX = 1 << 20   # a PixelXDimension beyond a million pixels is damage, not a size


@dataclass(frozen=True)
class Hints:
    """The EXIF fields the input-kind decision weighs (None: absent or unreadable).

    width, height: the decoded pixels (upright); exif_width, exif_height: PixelX/YDimension as
    stored (before any orientation).  raw: the pixels are truepix's own development of a RAW.
    """

    make: str | None = None
    model: str | None = None
    software: str | None = None
    iso: float | None = None
    exif_width: int | None = None
    exif_height: int | None = None
    width: int | None = None
    height: int | None = None
    raw: bool = False

    @property
    def has_exif(self) -> bool:
        """Whether any EXIF field was found (the decoded size is not EXIF)."""
        return any(v is not None for v in (self.make, self.model, self.software, self.iso, self.exif_width,
                                           self.exif_height))

    def sized(self, width: int, height: int) -> Hints:
        """These hints with the decoded pixels' size."""
        return dataclasses.replace(self, width=int(width), height=int(height))


RAW_DEVELOPMENT = Hints(raw=True)


def _first(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", " ").strip()
    return value[:_TEXT_MAX] or None


def _number(value: Any) -> float | None:
    value = _first(value)
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _size(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == int(number) and number <= _SIZE_MAX else None


def _hints(top: Mapping, sub: Mapping) -> Hints:
    return Hints(make=_text(top.get(MAKE)), model=_text(top.get(MODEL)), software=_text(top.get(SOFTWARE)),
                 iso=_number(sub.get(ISO, top.get(ISO))), exif_width=_size(sub.get(PIXEL_X)),
                 exif_height=_size(sub.get(PIXEL_Y)))


def from_exif(exif: Any) -> Hints:
    """Hints from a Pillow ``Image.Exif`` (``im.getexif()``), or empty hints when there is none or
    it cannot be read."""
    if exif is None:
        return Hints()
    try:
        sub = exif.get_ifd(EXIF_IFD) if hasattr(exif, "get_ifd") else {}
        return _hints(exif, sub or {})
    except Exception:  # damaged EXIF loses only the hints
        return Hints()


def from_exif_bytes(data: bytes | None) -> Hints:
    """Hints from raw EXIF bytes (a PNG's eXIf chunk); empty hints when absent or damaged."""
    if not data:
        return Hints()
    try:
        from PIL import Image

        exif = Image.Exif()
        exif.load(data)
    except Exception:
        return Hints()
    return from_exif(exif)


_TIFF_NAMES = {ISO: ("PhotographicSensitivity", "ISOSpeedRatings"), PIXEL_X: ("PixelXDimension",),
               PIXEL_Y: ("PixelYDimension",)}


def from_tiff_tags(tags: Any) -> Hints:
    """Hints from a tifffile page's ``tags`` (its Exif IFD parsed by tifffile into a dict by name)."""
    try:
        top = {code: tags[code].value for code in (MAKE, MODEL, SOFTWARE, ISO) if code in tags}
        ifd = tags[EXIF_IFD].value if EXIF_IFD in tags else None
        sub: dict[int, Any] = {}
        if isinstance(ifd, Mapping):
            for code, names in _TIFF_NAMES.items():
                found = next((ifd[n] for n in names if n in ifd), None)
                if found is not None:
                    sub[code] = found
        return _hints(top, sub)
    except Exception:
        return Hints()
