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
    return _DECODE_LUT[idx.astype(np.uint16)]


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
    """Shift ``out``'s local means onto ``inp``'s, in place.

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
    h, w, _ = inp.shape
    mean_in = block_means(inp, block, linear=linear)
    diff = (mean_in - block_means(out, block * scale, linear=linear)).astype(np.float32)
    if tolerance > 0:
        allowed = (tolerance * (np.abs(mean_in) + 0.005)).astype(np.float32)
        diff = np.sign(diff) * np.maximum(np.abs(diff) - allowed, 0)
    ly, ry, ty = _interp_matrix(h * scale, _centres(h, block) * scale)
    lx, rx, tx = _interp_matrix(w * scale, _centres(w, block) * scale)
    # Interpolate along x once per block row: (nby, W*s, C), then along y row by row
    # as cols[left] + t * (cols[right] - cols[left]), in place.
    cols = diff[:, lx] * (1 - tx)[None, :, None] + diff[:, rx] * tx[None, :, None]
    slopes = np.diff(cols, axis=0, append=cols[-1:])  # cols[k+1] - cols[k]; 0 past the last row
    if linear:
        _add_in_light(out, cols, slopes, ly, ry, ty)
        return float(np.abs(diff).max()) if diff.size else 0.0
    for y in range(h * scale):
        row = out[y]
        row += cols[ly[y]]
        if ry[y] != ly[y] and ty[y]:
            row += ty[y] * slopes[ly[y]]
    return float(np.abs(diff).max()) if diff.size else 0.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _add_in_light(out: np.ndarray, cols: np.ndarray, slopes: np.ndarray, ly, ry, ty) -> None:
    """``out`` (sRGB-encoded) += the interpolated correction, in linear light, clipped to 0..1;
    only the runs of columns where the correction of a row is not zero are converted."""
    nonzero = (cols != 0).any(axis=2)  # (block rows, W*s)
    # Row y blends block rows ly[y] and ly[y] + 1 (the next one's cols = cols + slopes).
    spans = [_runs(nonzero[k] | nonzero[min(k + 1, len(nonzero) - 1)]) for k in range(len(nonzero))]
    for y in range(out.shape[0]):
        k = ly[y]
        blend = ry[y] != k and ty[y]
        for a, b in spans[k]:
            seg = out[y, a:b]
            light = srgb_to_linear(seg)
            light += cols[k, a:b]
            if blend:
                light += ty[y] * slopes[k, a:b]
            np.clip(light, 0.0, 1.0, out=light)
            linear_to_srgb(light, out=seg)


def area_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Mean over each ``scale`` x ``scale`` cell: (H*s, W*s, C) -> (H, W, C) float32."""
    hs, ws, c = img.shape
    h, w = hs // scale, ws // scale
    out = np.zeros((h, w, c), np.float32)
    for dy in range(scale):  # scale^2 strided adds beat a mean over non-adjacent axes
        for dx in range(scale):
            out += img[dy:h * scale:scale, dx:w * scale:scale]
    out *= np.float32(1.0 / (scale * scale))
    return out




def report(out: np.ndarray, inp: np.ndarray, scale: int, block: int = 8) -> dict[str, float]:
    """Fidelity figures for an output against the input it was made from.

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
    h, w, c = inp.shape
    mi, mo = block_means(inp, block, linear=True), block_means(out, block * scale, linear=True)
    if c == 1:
        mi, mo = np.repeat(mi, 3, axis=-1), np.repeat(mo, 3, axis=-1)
    de = delta_e2000(linear_srgb_to_lab(mi), linear_srgb_to_lab(mo))
    sq, n = 0.0, 0
    rows = max(1, STRIP // scale)
    for y0 in range(0, h, rows):
        y1 = min(y0 + rows, h)
        down = area_downscale(out[y0 * scale:y1 * scale], scale)
        err = (down - inp[y0:y1]).ravel()
        sq += float(np.dot(err, err))
        n += err.size
    mse = sq / max(n, 1)
    return {
        "colour_shift_mean": round(float(de.mean()), 4),
        "colour_shift_max": round(float(de.max()), 4),
        "backprojection_psnr_db": round(10 * math.log10(1 / max(mse, 1e-12)), 3),
    }
