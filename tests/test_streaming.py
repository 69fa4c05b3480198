"""Issue 16.7 / 19: an output is written band by band as the engine finishes it, so a job's memory
follows its tiles, not its output; the files are the ones the whole-image encoders write."""

from __future__ import annotations

import errno
import io
import pathlib
import tracemalloc
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import photo_like
from truepix.colour import srgb_icc
from truepix.engine.control import Control, Stopped
from truepix.engine.pipeline import EngineOptions
from truepix.io import read_image, stream
from truepix.process import decode_source, finish, process_file
from truepix.recipes import Recipe, Step


def _bands(a: np.ndarray, sizes=(1, 63, 64, 130, 7)):
    y, i = 0, 0
    while y < len(a):
        n = sizes[i % len(sizes)]
        yield a[y:y + n]
        y, i = y + n, i + 1


@pytest.mark.parametrize("depth,channels", [(16, 3), (8, 3), (16, 1), (8, 1)])
@pytest.mark.parametrize("big", [False, True])
def test_tiff_strips_read_back_exactly_with_the_tags_of_the_whole_image_encoder(tmp_path, depth, channels, big):
    rng = np.random.default_rng(depth + channels)
    dtype = np.uint8 if depth == 8 else np.uint16
    a = rng.integers(0, np.iinfo(dtype).max, (301, 157, channels), dtype=dtype, endpoint=True)
    path = tmp_path / "s.tif"
    icc = srgb_icc()
    with open(path, "wb") as fh:
        w = stream.TiffStrips(fh, 157, 301, channels, depth, False, icc, big=big)
        for band in _bands(a):
            w.write(band)
        w.close()
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff == big
        page = tif.pages[0]
        np.testing.assert_array_equal(page.asarray().reshape(a.shape), a)
        tags = {t.name: t.value for t in page.tags}
        assert tags["Compression"] == 8 and tags["Predictor"] == 2 and tags["RowsPerStrip"] == 64
        assert tags["InterColorProfile"] == icc and tags["Software"] == "truepix"
        # each strip a plain zlib stream (libdeflate writes it), as libtiff and every other reader inflate it
        with open(path, "rb") as fh:
            fh.seek(page.dataoffsets[0])
            strip = zlib.decompress(fh.read(page.databytecounts[0]))
        assert len(strip) == 64 * 157 * channels * a.dtype.itemsize
    if not big:  # and as truepix itself reads it
        decoded = read_image(path)
        assert decoded.pixels.shape == a.shape


@pytest.mark.parametrize("depth,channels", [(16, 3), (8, 3), (16, 1), (8, 1)])
def test_png_rows_read_back_exactly(tmp_path, depth, channels):
    rng = np.random.default_rng(7)
    dtype = np.uint8 if depth == 8 else np.uint16
    a = rng.integers(0, np.iinfo(dtype).max, (203, 99, channels), dtype=dtype, endpoint=True)
    a[50:120] = a[50]  # repeated rows: the Up filter makes them zeros
    buf = io.BytesIO()
    w = stream.PngRows(buf, 99, 203, channels, depth, False, srgb_icc())
    for band in _bands(a):
        w.write(band)
    w.close()
    import imagecodecs

    back = imagecodecs.png_decode(buf.getvalue())
    np.testing.assert_array_equal(back.reshape(a.shape), a)
    assert Image.open(io.BytesIO(buf.getvalue())).info.get("icc_profile") == srgb_icc()


def _samples(path) -> np.ndarray:
    """A file's stored samples, as written (no transfer curve)."""
    if str(path).endswith((".tif", ".tiff")):
        return tifffile.imread(path)
    import imagecodecs

    return imagecodecs.png_decode(pathlib.Path(path).read_bytes())


def _photo(tmp_path: pathlib.Path, h=300, w=420, name="in.png") -> pathlib.Path:
    src = tmp_path / name
    Image.fromarray(np.round(photo_like(h, w, seed=3) * 255).astype(np.uint8)).save(src)
    return src


@pytest.mark.parametrize("fmt", ["tiff", "png"])
def test_a_streamed_output_equals_the_gathered_one(tmp_path, fmt):
    """The same job to TIFF/PNG (written as the bands come) and through the whole-image encoder
    (a copy of the engine's result written by write_image): the same pixels, and the metadata."""
    from truepix.engine.run import run
    from truepix.io.image import write_image

    src = _photo(tmp_path)
    recipe = Recipe("x2", (Step("upscale-x2"),), format=fmt)
    options = EngineOptions(tile=96, threads=1)
    result = process_file(src, recipe, options=options)
    assert result.status == "done", result.error
    decoded = decode_source(src, recipe=recipe)
    whole = run(decoded, recipe, options)  # no sink: the whole linear image
    ref = write_image(tmp_path / f"ref.{fmt}", whole.pixels, fmt=fmt, bits=16, metadata_source=src,
                      xmp_info={"recipe": "x2", "models": "m", "source": src.name})
    got, want = _samples(result.output), _samples(ref)
    assert got.shape == want.shape == (600, 840, 3) and got.dtype == np.uint16
    # at most one code value apart: the rounding of the two transfer-curve passes no longer made
    assert np.abs(got.astype(int) - want).max() <= 1
    assert result.fidelity == whole.fidelity
    assert not [p for p in tmp_path.iterdir() if ".truepix-tmp-" in p.name]


def _traced_peak(src: pathlib.Path, fmt: str, tmp_path: pathlib.Path) -> int:
    """Python-side peak memory (numpy's arrays, traced after the decode; ONNX Runtime's own arena
    is not counted) of a 2x job, the session loaded beforehand."""
    recipe = Recipe("x2", (Step("upscale-x2"),), format=fmt)
    warm = tmp_path / "warm"
    warm.mkdir(exist_ok=True)
    options = EngineOptions(tile=64, threads=1)
    finish(src, decode_source(src, recipe=recipe), recipe, out_dir=warm, options=options, overwrite=True)
    decoded = decode_source(src, recipe=recipe)
    tracemalloc.start()
    try:
        result = finish(src, decoded, recipe, options=options, overwrite=True)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert result.status == "done"


def test_a_streamed_jobs_memory_follows_its_tiles_not_its_output(tmp_path):
    """Four times the rows, four times the output: the TIFF job's peak grows by less than a quarter
    of the output's growth (what grows is input-sized: the source file's bytes the metadata copy
    reads), and stays under a third of the larger output's 16-bit samples; a JPEG, which Pillow
    encodes whole, holds at least its 8-bit samples."""
    short, tall = _photo(tmp_path, 1024, 256, "short.png"), _photo(tmp_path, 4096, 256, "tall.png")
    short_samples, tall_samples = 2048 * 512 * 3 * 2, 8192 * 512 * 3 * 2
    peaks = {name: _traced_peak(src, "tiff", tmp_path) for name, src in (("short", short), ("tall", tall))}
    assert peaks["tall"] - peaks["short"] < (tall_samples - short_samples) / 4, peaks
    assert peaks["tall"] < tall_samples / 3, peaks
    assert _traced_peak(tall, "jpeg", tmp_path) > 0.95 * tall_samples / 2


def test_a_stopped_or_failing_streamed_write_leaves_nothing(tmp_path, monkeypatch):
    src = _photo(tmp_path)
    recipe = Recipe("x2", (Step("upscale-x2"),), format="tiff")
    control = Control()
    calls = []

    def tick(fraction):
        calls.append(fraction)
        if len(calls) == 3:
            control.stop("cancel")
    control._on_progress = tick
    with pytest.raises(Stopped):
        finish(src, decode_source(src, recipe=recipe), recipe, options=EngineOptions(tile=96, threads=1),
               control=control)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]

    def full(self, rows):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(stream.TiffStrips, "write", full)
    result = process_file(src, recipe, options=EngineOptions(tile=96, threads=1))
    assert result.status == "failed", result
    assert "in-truepix-x2.tif: cannot write output: disk full; original untouched, nothing written" in result.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
