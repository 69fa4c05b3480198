"""The fidelity guard: an enhanced photo keeps the original's colour and brightness.

A network may sharpen, but it must not move the mean colour or brightness of
any region.  ``reanchor`` enforces that: it compares the output's local means
(over blocks of ``block`` input pixels) with the input's, and adds the smooth
(bilinearly interpolated) difference back to the output, so only the low
frequencies move and the detail the network added stays.  ``report`` measures
what was written: the colour shift (CIEDE2000 between local means of light) and the
back-projection PSNR (the output area-downscaled to the input's size against
the input).

All images are float32 (H, W, C), sRGB-encoded values in [0, 1] (the space
the upscalers' degradation is defined in); ``out`` is (H*s, W*s, C).
Work is done in row strips so the extra memory stays small next to the output.
"""

from __future__ import annotations

import math

import numpy as np

from truepix.colour import delta_e2000, linear_srgb_to_lab, linear_to_srgb, srgb_to_linear

STRIP = 256  # output rows handled at a time
_DECODE_LUT: np.ndarray | None = None  # sRGB code value (16-bit steps) -> linear light, for block means


def _decode_for_means(cells: np.ndarray) -> np.ndarray:
    """sRGB-encoded -> linear light through a 65536-entry table: half the time of the exact curve,
    and within 2e-5 of it, which is far below what a block mean can show."""
    global _DECODE_LUT
    if _DECODE_LUT is None:
        _DECODE_LUT = srgb_to_linear(np.arange(65536, dtype=np.float32) / np.float32(65535))
    idx = np.multiply(cells, 65535, dtype=np.float32)
    idx += 0.5
    np.clip(idx, 0, 65535, out=idx)
    # take with uint16 indices, which are in range: half the time of ``lut[idx]`` (which first widens them)
    return _DECODE_LUT.take(idx.astype(np.uint16), mode="wrap")


def block_means(img: np.ndarray, block: int, linear: bool = False) -> np.ndarray:
    """Mean of each ``block`` x ``block`` cell (edge cells may be smaller).

    linear: average light rather than code values (each strip of the sRGB-encoded
    ``img`` is decoded to linear first, and the means stay linear).
    Returns float64 (ceil(H/block), ceil(W/block), C).  Summed one row of
    cells at a time, so the float64 temporaries stay small.
    """
    h, w = img.shape[:2]
    xs = np.arange(0, w, block)
    widths = np.diff(np.append(xs, w))
    rows = []
    for y in range(0, h, block):
        # A strip of at most ``block`` rows sums exactly enough in float32 (and fast);
        # the cells, wider, are summed in float64.
        cells = _decode_for_means(img[y:y + block]) if linear else img[y:y + block]
        strip = cells.sum(axis=0, dtype=np.float32)  # (W, C)
        sums = np.add.reduceat(strip, xs, axis=0, dtype=np.float64)
        rows.append(sums / (widths[:, None] * min(block, h - y)))
    return np.stack(rows)


def _interp_matrix(n_out: int, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation from samples at ``centres`` to pixel centres 0..n_out-1.

    Returns (left index, right index, right weight); edges are held constant.
    """
    pos = np.arange(n_out) + 0.5
    right = np.clip(np.searchsorted(centres, pos), 1, len(centres) - 1) if len(centres) > 1 else np.zeros(n_out, int)
    left = np.maximum(right - 1, 0)
    if len(centres) > 1:
        span = centres[right] - centres[left]
        t = np.clip((pos - centres[left]) / span, 0.0, 1.0)
    else:
        t = np.zeros(n_out)
    return left, right, t.astype(np.float32)


def _centres(length: int, block: int) -> np.ndarray:
    starts = np.arange(0, length, block)
    stops = np.minimum(starts + block, length)
    return (starts + stops) / 2.0


def reanchor(out: np.ndarray, inp: np.ndarray, scale: int, block: int = 16, tolerance: float = 0.0,
             linear: bool = False) -> float:
    """Shift ``out``'s local means onto ``inp``'s, in place (``Anchor`` over the whole output at once).

    Args:
        out: float32 (H*scale, W*scale, C), modified in place.
        inp: float32 (H, W, C), the step's input.
        scale: integer size ratio.
        block: cell size in input pixels; larger keeps more of the network's
            own low-frequency output, smaller anchors tighter.
        tolerance: block-mean differences up to this much (0..1 scale, relative
            to the input mean plus 0.005) are the network's to keep; only the
            excess is corrected.  0 anchors exactly.  A denoiser needs some: the
            mean of a noisy input is itself biased (clipped at black), and the
            network's correction of that bias is right.
        linear: compare and correct means of *light*: ``out`` and ``inp`` stay sRGB-encoded, the
            block means are taken in linear light, and the correction is added to the decoded
            output.  Only the pixels whose correction is not zero are decoded and re-encoded (with
            a tolerance most blocks need none), so the cost follows what is corrected, not the
            photo's size; the rest of ``out`` is left bit for bit.

    Returns:
        The largest absolute correction applied (0..1 scale), for the report.
    """
    anchor = Anchor(inp, scale, block, tolerance, linear)
    for _ in anchor.push(out):
        pass
    return anchor.max_correction


class Anchor:
    """The guard over output rows that arrive top to bottom (``reanchor``'s arguments).

    ``push(rows)`` takes the next rows of the output and returns the rows it has finished, as
    ``(y, rows)`` views corrected in place: a row is finished as soon as the (one or two) rows of
    blocks its correction interpolates between are complete, so only about two rows of blocks are
    held (``block * scale * 2`` output rows), whatever the photo's height.  Rows are kept as the
    segments they came in (views, never joined), so a band costs no copy.
    """

    def __init__(self, inp: np.ndarray, scale: int, block: int = 16, tolerance: float = 0.0,
                 linear: bool = False):
        h, w, _ = inp.shape
        self.scale, self.rows_per_block, self.height = scale, block * scale, h * scale
        self.linear, self.tolerance = linear, tolerance
        self.mean_in = block_means(inp, block, linear=linear)
        self.ly, self.ry, self.ty = _interp_matrix(h * scale, _centres(h, block) * scale)
        self.lx, self.rx, self.tx = _interp_matrix(w * scale, _centres(w, block) * scale)
        # the last block row each output row needs: its right one where it blends, else its left
        self.need = np.where((self.ry != self.ly) & (self.ty > 0), self.ry, self.ly)
        self.cols: dict[int, np.ndarray] = {}    # block row -> its correction, interpolated along x
        self.nonzero: dict[int, np.ndarray] = {}
        self.pending: list[np.ndarray] = []     # rows received, not yet finished
        self.start = 0                          # output row of pending[0]
        self.blocks_done = 0
        self.max_correction = 0.0

    def push(self, rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
        if len(rows) == 0:
            return []
        self.pending.append(rows)  # segments, never concatenated: a band is pushed and finished as it is
        received = self.start + sum(len(r) for r in self.pending)
        if received > self.height:
            raise ValueError(f"Anchor: {received} rows pushed into an output of {self.height}")
        n_blocks = len(self.mean_in)
        while self.blocks_done < n_blocks:
            k = self.blocks_done
            y0, y1 = k * self.rows_per_block, min((k + 1) * self.rows_per_block, self.height)
            if y1 > received:
                break
            self._take_means(k, self._rows(y0, y1))
            self.blocks_done += 1
        stop = int(np.searchsorted(self.need, self.blocks_done)) if self.blocks_done < n_blocks else self.height
        if stop < self.height:
            stop -= stop % self.scale
        stop = min(stop, received)
        done = []
        while self.pending and self.start < stop:
            seg = self.pending[0]
            n = min(len(seg), stop - self.start)
            self._correct(seg[:n], self.start)
            done.append((self.start, seg[:n]))
            self.start += n
            if n == len(seg):
                self.pending.pop(0)
            else:
                self.pending[0] = seg[n:]
        for k in [k for k in self.cols if k < self.ly[min(self.start, self.height - 1)]]:
            del self.cols[k], self.nonzero[k]  # no row left to finish needs them
        return done

    def _rows(self, y0: int, y1: int) -> np.ndarray:
        """Pending output rows ``y0 .. y1``: a view when one segment holds them, else a (small) copy."""
        parts, y = [], self.start
        for seg in self.pending:
            a, b = max(y0 - y, 0), min(y1 - y, len(seg))
            if a < b:
                parts.append(seg[a:b])
            y += len(seg)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _take_means(self, k: int, cells: np.ndarray) -> None:
        mean_out = block_means(cells, self.rows_per_block, linear=self.linear)[0]
        diff = (self.mean_in[k] - mean_out).astype(np.float32)
        if self.tolerance > 0:
            allowed = (self.tolerance * (np.abs(self.mean_in[k]) + 0.005)).astype(np.float32)
            diff = np.sign(diff) * np.maximum(np.abs(diff) - allowed, 0)
        if diff.size:
            self.max_correction = max(self.max_correction, float(np.abs(diff).max()))
        cols = diff[self.lx] * (1 - self.tx)[:, None] + diff[self.rx] * self.tx[:, None]
        self.cols[k] = cols.astype(np.float32)
        self.nonzero[k] = (cols != 0).any(axis=1)

    def _correct(self, rows: np.ndarray, y0: int) -> None:
        spans: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i in range(len(rows)):
            y = y0 + i
            k, r = int(self.ly[y]), int(self.ry[y])
            t = self.ty[y] if r != k else 0.0
            left = self.cols[k]
            if not self.linear:
                rows[i] += left
                if t:
                    rows[i] += t * (self.cols[r] - left)
                continue
            # In light: only the runs of columns whose correction is not zero are converted.
            key = (k, r if t else k)
            if key not in spans:
                spans[key] = _runs(self.nonzero[k] | self.nonzero[r] if t else self.nonzero[k])
            for a, b in spans[key]:
                seg = rows[i, a:b]
                light = srgb_to_linear(seg)
                light += left[a:b]
                if t:
                    light += t * (self.cols[r][a:b] - left[a:b])
                np.clip(light, 0.0, 1.0, out=light)
                linear_to_srgb(light, out=seg)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def area_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Mean over each ``scale`` x ``scale`` cell: (H*s, W*s, C) -> (H, W, C) float32."""
    hs, ws, c = img.shape
    h, w = hs // scale, ws // scale
    # the rows of a cell first (whole rows: contiguous adds), then its columns on the result, a
    # quarter of the data at x2: 0.8 of the time of scale^2 adds of strided views
    rows = img[:h * scale].reshape(h, scale, ws * c)
    acc = rows[:, 0].copy()
    for dy in range(1, scale):
        acc += rows[:, dy]
    cols = acc.reshape(h, ws, c)[:, :w * scale].reshape(h, w, scale * c)
    out = cols[:, :, :c].copy()
    for dx in range(1, scale):
        out += cols[:, :, dx * c:(dx + 1) * c]
    out *= np.float32(1.0 / (scale * scale))
    return out




def report(out: np.ndarray, inp: np.ndarray, scale: int, block: int = 8) -> dict[str, float]:
    """Fidelity figures for an output against the input it was made from (``Report`` over the
    whole output at once).

    Returns a dict:
        colour_shift_mean, colour_shift_max: CIEDE2000 between the
            ``block``-pixel local means of input and output (1.0 is a just
            noticeable difference).  The means average light (linear RGB),
            as a lens or a downscale does: detail that sends a region the
            same light is not a colour shift, whether the output is sharper
            or softer than the input (averaged sRGB code values would count
            a blur of 1.5 px as ~1 dE00, Jensen's inequality on the curve).
        backprojection_psnr_db: PSNR (dB) of the
            output area-downscaled to the input size, against the input.
    """
    rep = Report(inp, scale, block)
    rows = max(1, STRIP // scale) * scale
    for y in range(0, out.shape[0], rows):
        rep.push(out[y:y + rows])
    return rep.result()


class Report:
    """``report`` over output rows that arrive top to bottom: ``push(rows)``, then ``result()``.
    Holds at most one row of blocks (a copy only of the rows it holds).

    Each row of blocks is measured whole while it is in the cache -- its means in light, then its
    back-projection -- rather than each measure passing over a whole band: the band is read from
    memory once, not twice (the int8 x2 engine at 6 MP, best of three, two alternations: 2.45 and
    2.46 s against 2.62 and 2.51 s: a few per cent, the size of this machine's noise)."""

    def __init__(self, inp: np.ndarray, scale: int, block: int = 8):
        self.inp, self.scale, self.rows_per_block = inp, scale, block * scale
        self.mean_in = block_means(inp, block, linear=True)
        self.means: list[np.ndarray] = []
        self.pending: np.ndarray | None = None  # rows of an incomplete row of blocks
        self.done = 0                           # output rows measured
        self.total = inp.shape[0] * scale
        self.sq, self.n = 0.0, 0

    def push(self, rows: np.ndarray) -> None:
        b = self.rows_per_block
        if self.pending is not None:  # complete the held row of blocks first (a copy of its rows only)
            head, rows = rows[:b - len(self.pending)], rows[b - len(self.pending):]
            self.pending = np.concatenate([self.pending, head])
            if len(self.pending) < b and self.done + len(self.pending) < self.total:
                return
            self._measure(self.pending)
            self.pending = None
        whole = len(rows) - len(rows) % b
        for y in range(0, whole, b):
            self._measure(rows[y:y + b])
        rest = rows[whole:]
        if len(rest):
            if self.done + len(rest) == self.total:
                self._measure(rest)  # the photo's last, short row of blocks
            else:
                self.pending = rest.copy()

    def _measure(self, cells: np.ndarray) -> None:
        """One row of blocks (``rows_per_block`` output rows, fewer at the bottom): its means in light
        and its back-projection error against the input rows it came from."""
        s = self.scale
        if self.done + len(cells) > self.total or len(cells) % s:
            raise ValueError(f"Report: rows {self.done}..{self.done + len(cells)} do not fit an output of "
                             f"{self.total} rows at scale {s}")
        self.means.append(block_means(cells, self.rows_per_block, linear=True))
        down = area_downscale(cells, s)
        y = self.done // s
        err = (down - self.inp[y:y + len(down)]).ravel()
        self.sq += float(np.dot(err, err))
        self.n += err.size
        self.done += len(cells)

    def result(self) -> dict[str, float]:
        mi, mo = self.mean_in, np.concatenate(self.means)
        if mi.shape[-1] == 1:
            mi, mo = np.repeat(mi, 3, axis=-1), np.repeat(mo, 3, axis=-1)
        de = delta_e2000(linear_srgb_to_lab(mi), linear_srgb_to_lab(mo))
        mse = self.sq / max(self.n, 1)
        return {
            "colour_shift_mean": round(float(de.mean()), 4),
            "colour_shift_max": round(float(de.max()), 4),
            "backprojection_psnr_db": round(10 * math.log10(1 / max(mse, 1e-12)), 3),
        }
