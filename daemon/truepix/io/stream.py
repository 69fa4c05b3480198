"""Files written row band by row band, as the engine finishes them: memory follows the tiles.

``TiffStrips`` and ``PngRows`` take uint8/uint16 rows (n, W, C) top to bottom and write them at
once: a TIFF as deflate-compressed strips of ``ROWS_PER_STRIP`` rows with the horizontal
predictor (compressed on every core; the directory, written last, points back at them), a PNG
as one zlib stream of "Up"-filtered scanlines in IDAT chunks.  Only a strip, or one scanline,
is ever held back.  Each writes the format as ``formats``' whole-image encoders do (the same
tags, chunks and ICC profile), so readers and the metadata copy see no difference; a TIFF whose
pixels could pass 4 GB is a BigTIFF.

JPEG has no such writer here (Pillow encodes a whole image), so a JPEG output still gathers its
8-bit samples first (``encode.Samples``): 3 bytes a pixel.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

from .png import SIGNATURE, iccp, phys

ROWS_PER_STRIP = 64
# TIFF deflate level, the streamed and the whole-image writer's (io.tiff.encode): libdeflate's level 1
# writes photographs' 16-bit samples 1.6x faster than its level 6 and no larger (0.844 of the
# predicted strips against 0.857), 8-bit ones 3.6x faster and 2% larger (0.539 against 0.527):
# tools/deflate-levels, docs/benchmarks.md "Writing the file".
LEVEL = 1


def _deflate(data: bytes) -> bytes:
    """A TIFF strip's zlib stream (Adobe Deflate), made by libdeflate as tifffile's whole-image writer
    makes it (a zlib stream, as ``zlib.compress`` writes; at level 6 libdeflate is 3x (16-bit
    samples) to 4x (8-bit) faster than zlib here, at the same size: tools/deflate-levels)."""
    return _encoder()(data, LEVEL)


def _encoder():
    import imagecodecs

    if getattr(imagecodecs, "DEFLATE", None) is not None and imagecodecs.DEFLATE.available:
        return imagecodecs.deflate_encode
    return zlib.compress  # an imagecodecs built without libdeflate


class TiffStrips:
    """A baseline TIFF (or BigTIFF) of contiguous RGB or grey samples, optional unassociated alpha,
    written strip by strip to ``fh`` (positioned at 0, seekable)."""

    def __init__(self, fh: BinaryIO, width: int, height: int, channels: int, depth: int, has_alpha: bool,
                 icc: bytes | None, software: str = "truepix", big: bool | None = None, resolution=None):
        self.fh, self.width, self.height, self.channels = fh, width, height, channels
        self.resolution = resolution  # io.resolution.Resolution, or None: 1/1, unit none (as tifffile writes)
        self.dtype = np.dtype("<u1" if depth == 8 else "<u2")
        self.has_alpha, self.icc, self.software = has_alpha, icc, software
        # BigTIFF when the samples alone could pass 4 GB (deflate may not shrink them)
        self.big = width * height * channels * self.dtype.itemsize > (1 << 32) - (1 << 25) if big is None else big
        fh.write(b"II+\0" + struct.pack("<HHQ", 8, 0, 0) if self.big else b"II*\0" + struct.pack("<I", 0))
        self.offsets: list[int] = []
        self.counts: list[int] = []
        self.held: np.ndarray | None = None  # rows short of a strip
        self.rows_done = 0
        self.pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)

    def write(self, rows: np.ndarray) -> None:
        rows = rows.astype(self.dtype, copy=False)
        self.rows_done += len(rows)
        if self.held is not None:
            rows = np.concatenate([self.held, rows])
            self.held = None
        last = self.rows_done >= self.height
        whole = len(rows) if last else len(rows) - len(rows) % ROWS_PER_STRIP
        strips = [rows[y:y + ROWS_PER_STRIP] for y in range(0, whole, ROWS_PER_STRIP)]
        for data in self.pool.map(lambda s: _deflate(self._predict(s).tobytes()), strips):
            self.offsets.append(self.fh.tell())
            self.counts.append(len(data))
            self.fh.write(data)
        if whole < len(rows):
            self.held = rows[whole:].copy()

    @staticmethod
    def _predict(strip: np.ndarray) -> np.ndarray:
        """TIFF predictor 2: each sample minus the same sample of the pixel to its left (wrapping)."""
        out = strip.copy()
        out[:, 1:] -= strip[:, :-1]
        return out

    def close(self) -> None:
        self.pool.shutdown()
        if self.rows_done != self.height or self.held is not None:
            raise ValueError(f"TIFF: {self.rows_done} rows written of {self.height}")
        short, long_ = 3, (16 if self.big else 4)
        bits = 8 * self.dtype.itemsize
        entries = [
            (256, long_, [self.width]),
            (257, long_, [self.height]),
            (258, short, [bits] * self.channels),
            (259, short, [8]),                               # deflate
            (262, short, [2 if self.channels - self.has_alpha == 3 else 1]),  # RGB or min-is-black
            (273, long_, self.offsets),
            (277, short, [self.channels]),
            (278, long_, [ROWS_PER_STRIP]),
            (279, long_, self.counts),
            *self._resolution(),
            (284, short, [1]),                               # contiguous
            (305, 2, self.software.encode() + b"\0"),
            (317, short, [2]),                               # horizontal predictor
        ]
        if self.has_alpha:
            entries.append((338, short, [2]))                # unassociated alpha
        entries.append((339, short, [1] * self.channels))    # unsigned integers
        if self.icc:
            entries.append((34675, 7, self.icc))
        self._directory(entries)

    def _resolution(self) -> list:
        """XResolution, YResolution (rationals) and ResolutionUnit, as ``tiff.encode`` writes them."""
        if self.resolution is None:
            return [(282, 5, [(1, 1)]), (283, 5, [(1, 1)]), (296, 3, [1])]
        x, y = self.resolution.rationals()
        return [(282, 5, [x]), (283, 5, [y]), (296, 3, [self.resolution.tiff_unit])]

    def _directory(self, entries: list) -> None:
        fh, big = self.fh, self.big
        entries = sorted(entries, key=lambda e: e[0])  # TIFF wants a directory's tags in ascending order
        fh.seek(0, os.SEEK_END)
        if fh.tell() % 2:
            fh.write(b"\0")
        ifd = fh.tell()
        slot = 8 if big else 4
        size = (8 + len(entries) * 20 + 8) if big else (2 + len(entries) * 12 + 4)
        extra, blobs, packed = ifd + size, [], []
        for tag, typ, values in entries:
            if isinstance(values, bytes):
                data, count = values, len(values)
            elif typ == 5:  # rationals: (numerator, denominator) pairs
                data, count = b"".join(struct.pack("<II", n, d) for n, d in values), len(values)
            else:
                fmt = {3: "H", 4: "I", 16: "Q"}[typ]
                data, count = struct.pack(f"<{len(values)}{fmt}", *values), len(values)
            if len(data) <= slot:
                field = data.ljust(slot, b"\0")
            else:
                field = struct.pack("<Q" if big else "<I", extra)
                blobs.append(data + (b"\0" if len(data) % 2 else b""))
                extra += len(blobs[-1])
            packed.append(struct.pack("<HHQ" if big else "<HHI", tag, typ, count) + field)
        fh.write(struct.pack("<Q" if big else "<H", len(entries)) + b"".join(packed)
                 + (b"\0" * (8 if big else 4)) + b"".join(blobs))
        fh.seek(8 if big else 4)
        fh.write(struct.pack("<Q" if big else "<I", ifd))
        fh.seek(0, os.SEEK_END)


class PngRows:
    """A PNG of grey, grey+alpha, RGB or RGBA samples, 8 or 16 bits, with an optional iCCP chunk,
    written to ``fh`` scanline band by band (filter "Up", one zlib stream over IDAT chunks)."""

    CHUNK = 1 << 20  # IDAT payload gathered before a chunk is written

    def __init__(self, fh: BinaryIO, width: int, height: int, channels: int, depth: int, has_alpha: bool,
                 icc: bytes | None, resolution=None):
        self.fh, self.height = fh, height
        self.dtype = np.dtype(">u1" if depth == 8 else ">u2")
        colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        fh.write(SIGNATURE)
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
        if icc:
            fh.write(iccp(icc))
        if resolution is not None:
            fh.write(phys(resolution))  # io.resolution.Resolution: pHYs, as png.encode writes it
        self.z = zlib.compressobj(LEVEL)
        self.prev = np.zeros(width * channels * self.dtype.itemsize, np.uint8)
        self.out = bytearray()
        self.rows_done = 0

    def _chunk(self, kind: bytes, payload: bytes) -> None:
        self.fh.write(struct.pack(">I", len(payload)) + kind + payload
                      + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    def write(self, rows: np.ndarray) -> None:
        raw = np.ascontiguousarray(rows.astype(self.dtype, copy=False)).view(np.uint8).reshape(len(rows), -1)
        lines = np.empty((len(rows), raw.shape[1] + 1), np.uint8)
        lines[:, 0] = 2  # "Up": each byte minus the byte above it
        np.subtract(raw[1:], raw[:-1], out=lines[1:, 1:])
        np.subtract(raw[0], self.prev, out=lines[0, 1:])
        self.prev = raw[-1].copy()
        self.rows_done += len(rows)
        self.out += self.z.compress(lines.tobytes())
        if len(self.out) >= self.CHUNK:
            self._chunk(b"IDAT", bytes(self.out))
            self.out.clear()

    def close(self) -> None:
        if self.rows_done != self.height:
            raise ValueError(f"PNG: {self.rows_done} rows written of {self.height}")
        self.out += self.z.flush()
        self._chunk(b"IDAT", bytes(self.out))
        self._chunk(b"IEND", b"")
