"""Lossless JPEG (ITU T.81 process 14, SOF3), the compression every raw reader takes in a DNG.

DNG allows Compression 7 (lossless JPEG) for integer raw data, and LibRaw, rawspeed (darktable)
and Adobe's SDK all read it; Deflate (8) they read for floating-point data only (LibRaw says
"Corrupted data", rawspeed "Only float format is supported for deflate-compressed data" for a
16-bit one).  A linear DNG tile of (h, w, c) samples is one JPEG frame of c interleaved components,
predictor 1 (the left neighbour; the first column from above), as Adobe's converter writes them.

Each frame gets its own Huffman tables, one per component, from the histogram of its difference
categories (T.81 Annex K.2), so a frame costs what its own statistics allow.  Encoding is numpy
throughout: differences in uint16 arithmetic (modulo 2**16, as the standard takes them), their
categories and extra bits looked up in 65536-entry tables, the variable-length codes laid into
32-bit words with ``np.bincount`` (codes never overlap, so a sum is an OR), 0xFF bytes stuffed.
"""

from __future__ import annotations

import numpy as np

PREDICTOR = 1  # Ra, the sample to the left: the one predictor rawspeed (darktable) decodes


def _difference_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each difference modulo 2**16 (a uint16, read as -32768..32767): its category (bit length
    of its magnitude, T.81 Table H.2; 16 for -32768), how many extra bits follow its code (the
    category, 0 for 16) and their value (the difference, less 1 when negative, in that many bits)."""
    d = np.arange(65536, dtype=np.int64)
    d[d >= 32768] -= 65536
    category = np.frexp(np.abs(d).astype(np.float64))[1].astype(np.uint8)
    extra_len = np.where(category == 16, 0, category).astype(np.int64)
    extra = ((d - (d < 0)) & ((1 << extra_len) - 1)).astype(np.uint64)
    return category, extra_len, extra


_CATEGORY, _EXTRA_LEN, _EXTRA = _difference_tables()


def _code_lengths(freq: np.ndarray) -> tuple[list[int], list[int]]:
    """JPEG Huffman table (BITS: how many codes of each length 1..16, HUFFVAL: the symbols in code
    order) for category frequencies ``freq`` (17 counts), after T.81 Annex K.2: a reserved symbol
    keeps the all-ones code unused, and lengths over 16 are folded back."""
    freq = [int(f) for f in freq] + [1]  # symbol 17: the reserved one
    n = len(freq)
    size, others = [0] * n, [-1] * n
    while True:
        live = [i for i in range(n) if freq[i]]
        if len(live) < 2:
            break
        c1 = min(live, key=lambda i: (freq[i], -i))
        c2 = min((i for i in live if i != c1), key=lambda i: (freq[i], -i))
        freq[c1] += freq[c2]
        freq[c2] = 0
        size[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            size[c1] += 1
        others[c1] = c2
        size[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            size[c2] += 1
    bits = [0] * 40
    for s in size:
        if s:
            bits[s] += 1
    for i in range(39, 16, -1):  # Annex K.3's adjustment to 16 bits at most
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # drop the reserved symbol's code (the longest, all ones)
    order = sorted((s for s in range(n - 1) if size[s]), key=lambda s: (size[s], s))
    return bits[1:17], order


def _canonical(bits: list[int], values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(code, length) per category 0..16 of a table (T.81 Annex C); length 0 for unused ones."""
    code = np.zeros(17, np.uint64)
    length = np.zeros(17, np.uint64)
    c, k = 0, 0
    for n_len, count in enumerate(bits, start=1):
        for _ in range(count):
            code[values[k]], length[values[k]] = c, n_len
            c += 1
            k += 1
        c <<= 1
    return code, length


def _pack(values: np.ndarray, lengths: np.ndarray) -> bytes:
    """Concatenate codes (``values``: uint64, each ``lengths`` (int64) <= 32 bits, most significant first)
    into bytes, the last one padded with 1 bits, 0xFF followed by a stuffed 0x00."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if ends.size else 0
    starts = ends - lengths
    del ends
    word = starts >> 5
    # Each code into a 64-bit window beginning at its 32-bit word: its high half lands in that
    # word, its low half in the next.  offset + length <= 31 + 31 < 64.
    starts &= 31
    starts += lengths
    np.subtract(64, starts, out=starts)
    values = values << starts.view(np.uint64)
    del starts
    # Every word holds the start of a code (a code ends at most 62 bits after its word's start),
    # so the codes of word w are one run of ``word``: summed by reduceat (disjoint bits: sum = OR).
    first = np.flatnonzero(np.diff(word)) + 1
    first = np.concatenate(([0], first))
    hi = np.add.reduceat(values >> np.uint64(32), first)
    lo = np.add.reduceat(values & np.uint64(0xFFFFFFFF), first)
    nwords = (total + 31) // 32
    words = np.zeros(nwords + 1, np.uint64)
    words[:hi.size] = hi
    words[1:lo.size + 1] += lo
    words = words[:nwords]
    out = words.astype(">u4").tobytes()[:(total + 7) // 8]
    data = np.frombuffer(out, np.uint8).copy()
    if total % 8:
        data[-1] |= np.uint8((1 << (8 - total % 8)) - 1)
    ff = np.flatnonzero(data == 0xFF)
    if ff.size:
        data = np.insert(data, ff + 1, 0)
    return data.tobytes()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def encode(tile: np.ndarray, bits: int = 16) -> bytes:
    """One lossless JPEG frame of ``tile``: uint16 (h, w) or (h, w, c) with c <= 4, samples below
    2**bits.  Predictor 1, point transform 0: decodes to exactly ``tile``."""
    a = np.asarray(tile)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    if a.dtype != np.uint16 or not 1 <= c <= 4 or not 2 <= bits <= 16:
        raise ValueError(f"lossless JPEG takes uint16 (h, w, <=4) samples, got {a.dtype} {a.shape}")
    d = np.empty_like(a)  # uint16 arithmetic: differences modulo 2**16, as T.81 H.1.2.1 takes them
    np.subtract(a[:, 1:], a[:, :-1], out=d[:, 1:])
    np.subtract(a[1:, :1], a[:-1, :1], out=d[1:, :1])
    d[0, 0] = a[0, 0] - np.uint16(1 << (bits - 1))
    cat, extra_len, extra = _CATEGORY[d], _EXTRA_LEN[d].ravel(), _EXTRA[d].ravel()
    del d
    tables = []
    lookup_code, lookup_len = np.zeros(17 * c, np.uint64), np.zeros(17 * c, np.int64)
    for k in range(c):
        bits_k, values_k = _code_lengths(np.bincount(cat[:, :, k].ravel(), minlength=17))
        code, length = _canonical(bits_k, values_k)
        lookup_code[17 * k:17 * k + 17], lookup_len[17 * k:17 * k + 17] = code, length
        tables.append(bytes([k]) + bytes(bits_k) + bytes(values_k))
    index = (cat + np.arange(0, 17 * c, 17, dtype=np.uint8)).ravel()  # 17 * 4 < 256
    del cat
    values = lookup_code[index]
    values <<= extra_len.view(np.uint64)
    values |= extra
    lengths = lookup_len[index]
    lengths += extra_len
    del index, extra, extra_len
    entropy = _pack(values, lengths)
    sof = bytes([bits]) + h.to_bytes(2, "big") + w.to_bytes(2, "big") + bytes([c])
    sof += b"".join(bytes([k, 0x11, 0]) for k in range(c))
    sos = bytes([c]) + b"".join(bytes([k, k << 4]) for k in range(c)) + bytes([PREDICTOR, 0, 0])
    return (b"\xff\xd8" + _segment(0xC3, sof) + _segment(0xC4, b"".join(tables)) + _segment(0xDA, sos)
            + entropy + b"\xff\xd9")
