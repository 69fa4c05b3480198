"""Tile-by-tile inference, so memory follows the tile size, not the photo's.

The image is cut into ``tile`` x ``tile`` cells whose neighbours overlap by
``overlap`` pixels.  Each cell is run with ``pad`` extra pixels of context on
every side (cut from the real image, so a cell at the image border sees the
same zero padding as the whole image would), and only the cell itself is kept.
With ``pad`` >= the network's receptive radius a cell's output is exactly what
the whole-image run would give there; the overlaps are then blended with
complementary linear ramps (they sum to one, so no weight image is needed)
which hides any residual difference for networks whose reach exceeds ``pad``.

Arrays are float32 (H, W, C); ``fn`` maps a (1, C, h, w) array to
(1, C, h*scale, w*scale).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["iter_tiled", "map_ordered", "run_tiled", "tile_starts"]


@dataclass(frozen=True)
class _Cell:
    start: int
    stop: int
    ramp_in: int   # input pixels at the start blended with the previous cell
    ramp_out: int  # input pixels at the end blended with the next cell


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of equal cells (at most ``tile`` long) covering ``[0, length)``.

    Consecutive cells overlap by ``overlap`` pixels; the last one is clipped
    at ``length``.  Cells are spread evenly rather than packed, so no pixel is
    covered by more than two cells along an axis.
    """
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    step = math.ceil((length - overlap) / n)
    return [i * step for i in range(n)]


def map_ordered(fn: Callable, items: Iterable, workers: int = 1) -> Iterator:
    """``map(fn, items)`` with ``workers`` calls side by side in threads (``fn`` must be thread-safe:
    an ONNX Runtime session is), results in order.  At most ``workers`` + 1 calls are started ahead
    of the consumer, so memory follows the workers, not the items.  An error in a call is raised
    where its result is taken; a consumer that stops early leaves no call running behind it."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="truepix-cell")
    ahead: deque = deque()
    try:
        for item in items:
            ahead.append(pool.submit(fn, item))
            if len(ahead) > workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        for future in ahead:
            future.cancel()
        pool.shutdown(wait=True)


def _cells(length: int, tile: int, overlap: int) -> list[_Cell]:
    starts = tile_starts(length, tile, overlap)
    size = tile if len(starts) == 1 else starts[1] + overlap
    stops = [min(s + size, length) for s in starts]
    cells = []
    for i, (s, e) in enumerate(zip(starts, stops, strict=True)):
        ramp_in = stops[i - 1] - s if i > 0 else 0
        ramp_out = e - starts[i + 1] if i + 1 < len(starts) else 0
        cells.append(_Cell(s, e, ramp_in, ramp_out))
    return cells


def _ramps(cell: _Cell, scale: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Blend weights for the cell's first and last overlap (output pixels), or None."""
    up = down = None
    if cell.ramp_in:
        n = cell.ramp_in * scale
        up = (np.arange(n, dtype=np.float32) + 0.5) / n
    if cell.ramp_out:
        n = cell.ramp_out * scale
        down = 1.0 - (np.arange(n, dtype=np.float32) + 0.5) / n
    return up, down


def _feather_(tile: np.ndarray, rows: _Cell, cols: _Cell, scale: int) -> None:
    """Multiply a (C, h, w) tile's overlap strips by their ramps, in place (the rest keeps weight 1)."""
    up, down = _ramps(rows, scale)
    if up is not None:
        tile[:, : len(up)] *= up[:, None]
    if down is not None:
        tile[:, tile.shape[1] - len(down):] *= down[:, None]
    left, right = _ramps(cols, scale)
    if left is not None:
        tile[:, :, : len(left)] *= left
    if right is not None:
        tile[:, :, tile.shape[2] - len(right):] *= right


def iter_tiled(
    fn: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    scale: int,
    *,
    tile: int = 512,
    pad: int = 16,
    overlap: int = 8,
    out_channels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> Iterator[tuple[int, np.ndarray]]:
    """``run_tiled``'s output as it is finished, one band of cells at a time, top to bottom.

    Yields ``(y, rows)``: output rows ``y .. y + len(rows)`` (float32 (n, W*scale, C')), each
    final (a band's overlap with the next one is held back until the next band is added to it),
    together covering the whole output once.  Memory follows one band of cells, not the image.
    Arguments as ``run_tiled``.
    """
    if tile < 4 * overlap:
        raise ValueError(f"tile ({tile}) must be at least four times the overlap ({overlap})")
    h, w, c = image.shape
    oc = out_channels or c
    rows, cols = _cells(h, tile, overlap), _cells(w, tile, overlap)
    total, done = len(rows) * len(cols), 0
    carry: np.ndarray | None = None  # the previous band's bottom overlap, already weighted

    def run_cell(cell: tuple[_Cell, _Cell]) -> np.ndarray:
        ry, rx = cell
        y0, y1 = max(ry.start - pad, 0), min(ry.stop + pad, h)
        x0, x1 = max(rx.start - pad, 0), min(rx.stop + pad, w)
        return fn(np.ascontiguousarray(image[y0:y1, x0:x1].transpose(2, 0, 1)[None]))[0]

    # the cells' results in order, ``workers`` computed side by side (a band's last cells beside the
    # next band's first)
    results = map_ordered(run_cell, ((ry, rx) for ry in rows for rx in cols), workers)
    try:
        for i, ry in enumerate(rows):
            # Each output pixel is written once and added to only where cells overlap: the band's top rows
            # hold the previous band's weighted overlap (``carry``), a cell's left columns the cell before.
            band = np.empty(((ry.stop - ry.start) * scale, w * scale, oc), np.float32)
            top = 0 if carry is None else len(carry)
            if top:
                band[:top] = carry
            prev_stop = 0
            y0 = max(ry.start - pad, 0)
            for rx in cols:
                x0 = max(rx.start - pad, 0)
                result = next(results)  # (C', h*s, w*s), a fresh array we may change
                # Keep the cell itself; the context margins are discarded.
                oy, ox = (ry.start - y0) * scale, (rx.start - x0) * scale
                kept = result[:, oy:oy + (ry.stop - ry.start) * scale, ox:ox + (rx.stop - rx.start) * scale]
                if not kept.flags.writeable:
                    kept = kept.copy()
                _feather_(kept, ry, rx, scale)
                region, src = band[:, rx.start * scale:rx.stop * scale], kept.transpose(1, 2, 0)
                ov = max(0, prev_stop - rx.start) * scale  # columns the cell before already wrote
                if top:
                    np.add(region[:top], src[:top], out=region[:top])
                if ov:
                    np.add(region[top:, :ov], src[top:, :ov], out=region[top:, :ov])
                for ch in range(kept.shape[0]):  # plane by plane: a third of the time of one transposed copy
                    region[top:, ov:, ch] = kept[ch, top:, ov:]
                prev_stop = rx.stop
                done += 1
                if progress:
                    progress(done, total)
            final = (rows[i + 1].start - ry.start) * scale if i + 1 < len(rows) else len(band)
            carry = band[final:].copy() if final < len(band) else None
            yield ry.start * scale, band[:final]
    finally:
        results.close()  # a consumer that stopped early: no cell left running


def run_tiled(
    fn: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    scale: int,
    *,
    tile: int = 512,
    pad: int = 16,
    overlap: int = 8,
    out_channels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Apply ``fn`` to ``image`` cell by cell and blend the results.

    Args:
        fn: the network, (1, C, h, w) float32 -> (1, C', h*scale, w*scale).
        image: float32 (H, W, C).
        scale: output size / input size (an integer, 1 for same-size models).
        tile: cell side in input pixels (memory grows with its square).
        pad: context pixels added around each cell and thrown away after.
        overlap: minimum overlap between neighbouring cells, blended.
        out_channels: C' if it differs from C.
        progress: called as ``progress(cells_done, cells_total)``.
        workers: cells computed side by side (``map_ordered``; ``fn`` must then be thread-safe).

    Returns:
        float32 (H*scale, W*scale, C').
    """
    h, w, c = image.shape
    out = np.empty((h * scale, w * scale, out_channels or c), np.float32)
    for y, rows in iter_tiled(fn, image, scale, tile=tile, pad=pad, overlap=overlap,
                              out_channels=out_channels, progress=progress, workers=workers):
        out[y:y + len(rows)] = rows
    return out
