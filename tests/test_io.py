"""truepix.io.image: decode, encode, round trips, orientation, bad input, atomic writes."""

from __future__ import annotations

import os
import pathlib
import struct
import shutil
import tempfile

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from conftest import SHARED, huge_tiff
from truepix.errors import ImageReadError, ImageWriteError
from truepix.io import (linear_to_srgb, read_image, srgb_icc, srgb_to_linear, unique_path,
                        write_image)

KDC = SHARED / "raw" / "RAW_KODAK_DC50.KDC"
RNG = np.random.default_rng(7)


def _u16(shape):
    return RNG.integers(0, 65536, size=shape, dtype=np.uint16)


def _u8(shape):
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _encoded(d, full):
    """Decoded -> the integer samples it came from (its pixels are the stored values, scaled)."""
    assert d.transfer == "srgb"
    return np.rint(d.pixels * full).astype(np.int64)


def _adobe_like_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


# --- transfer curves ------------------------------------------------------------------------

def test_curves_invert_every_16_bit_code():
    codes = np.arange(65536, dtype=np.float32) / 65535
    back = np.rint(linear_to_srgb(srgb_to_linear(codes)) * 65535)
    assert np.array_equal(back, np.arange(65536))
    assert srgb_to_linear(np.float32(0.5)).dtype == np.float32
    assert abs(float(srgb_to_linear(np.float32(0.5))) - 0.21404) < 1e-4


def test_curves_clip_and_take_nan_and_infinities_to_the_range():
    x = np.array([np.nan, np.inf, -np.inf, -0.5, 1.5, 0.04045, 0.0031308], np.float32)
    dec, enc = srgb_to_linear(x), linear_to_srgb(x)
    assert np.allclose(dec[:5], [0, 1, 0, 0, 1], atol=1e-6) and np.allclose(enc[:5], [0, 1, 0, 0, 1], atol=1e-6)
    assert dec[5] == np.float32(0.04045) / np.float32(12.92)  # the linear segment up to its end
    assert enc[6] == np.float32(0.0031308) * np.float32(12.92)


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [3, 1])
def test_tiff16_round_trip_is_bit_exact(tmp_path, channels):
    src = _u16((9, 13, channels)) if channels == 3 else _u16((9, 13))
    tifffile.imwrite(tmp_path / "a.tif", src, photometric="rgb" if channels == 3 else "minisblack")
    d = read_image(tmp_path / "a.tif")
    assert (d.kind, d.bit_depth, d.pixels.dtype, d.pixels.shape) == ("tiff", 16, np.float32, (9, 13, channels))
    out = write_image(tmp_path / "b.tif", d.linear())
    back = tifffile.imread(out)
    assert back.dtype == np.uint16 and np.array_equal(back, src)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages.first.photometric.name == ("RGB" if channels == 3 else "MINISBLACK")


def test_tiff8_round_trip_through_16_bit_output(tmp_path):
    src = _u8((7, 5, 3))
    tifffile.imwrite(tmp_path / "a.tif", src, photometric="rgb", compression="lzw")
    d = read_image(tmp_path / "a.tif")
    assert d.bit_depth == 8
    assert np.array_equal(_encoded(d, 255), src)
    back = read_image(write_image(tmp_path / "b.tif", d.linear()))
    assert np.array_equal(_encoded(back, 255), src)


def test_float_tiff_is_read_as_encoded_values(tmp_path):
    src = RNG.random((4, 6, 3), dtype=np.float32)
    tifffile.imwrite(tmp_path / "f.tif", src, photometric="rgb")
    d = read_image(tmp_path / "f.tif")
    assert (d.bit_depth, d.transfer) == (16, "srgb")
    np.testing.assert_array_equal(d.pixels, src)  # the values as stored
    np.testing.assert_allclose(d.linear(), srgb_to_linear(src), atol=1e-6)


@pytest.mark.parametrize("mode,shape", [("RGB", (6, 8, 3)), ("L", (6, 8))])
def test_png8_round_trip(tmp_path, mode, shape):
    src = _u8(shape)
    Image.fromarray(src, mode).save(tmp_path / "a.png")
    d = read_image(tmp_path / "a.png")
    assert (d.kind, d.bit_depth) == ("png", 8)
    assert np.array_equal(_encoded(d, 255).reshape(shape), src)
    out = write_image(tmp_path / "b.png", d.linear(), fmt="png")
    d2 = read_image(out)
    assert d2.bit_depth == 16 and d2.pixels.shape == d.pixels.shape
    assert np.array_equal(_encoded(d2, 255).reshape(shape), src)


def test_png16_round_trip_is_bit_exact(tmp_path):
    import imagecodecs

    src = _u16((5, 7, 3))
    (tmp_path / "a.png").write_bytes(imagecodecs.png_encode(src))
    d = read_image(tmp_path / "a.png")
    assert d.bit_depth == 16
    out = write_image(tmp_path / "b.png", d.linear(), fmt="png")
    assert np.array_equal(imagecodecs.png_decode(out.read_bytes()), src)


def test_jpeg_round_trip_is_close(tmp_path):
    src = np.kron(_u8((4, 4, 3)), np.ones((8, 8, 1), np.uint8))  # flat blocks: JPEG-friendly
    Image.fromarray(src).save(tmp_path / "a.jpg", quality=98, subsampling=0)
    d = read_image(tmp_path / "a.jpg")
    assert (d.kind, d.bit_depth, d.pixels.shape) == ("jpeg", 8, (32, 32, 3))
    out = write_image(tmp_path / "b.jpg", d.linear(), fmt="jpeg")
    back = np.asarray(Image.open(out)).astype(int)
    assert np.abs(back - src.astype(int)).mean() < 3


@pytest.mark.parametrize("fmt", ["tiff", "png"])
def test_alpha_kept_and_not_gamma_encoded(tmp_path, fmt):
    rgba = _u16((6, 5, 4))
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    d = read_image(tmp_path / "a.tif")
    assert d.pixels.shape == (6, 5, 3) and d.alpha.shape == (6, 5)
    np.testing.assert_allclose(d.alpha, rgba[:, :, 3] / 65535, atol=1e-7)
    out = write_image(tmp_path / f"b.{fmt}", d.linear(), alpha=d.alpha, fmt=fmt)
    d2 = read_image(out)
    assert np.array_equal(np.rint(d2.alpha * 65535), rgba[:, :, 3])
    assert np.array_equal(_encoded(d2, 65535), rgba[:, :, :3])


def test_png8_rgba_and_grey_alpha(tmp_path):
    Image.fromarray(_u8((4, 4, 4)), "RGBA").save(tmp_path / "a.png")
    Image.fromarray(_u8((4, 4, 2)), "LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "a.png").alpha.shape == (4, 4)
    la = read_image(tmp_path / "la.png")
    assert la.pixels.shape == (4, 4, 1) and la.alpha is not None
    out = read_image(write_image(tmp_path / "la.tif", la.linear(), alpha=la.alpha))
    assert out.pixels.shape == (4, 4, 1) and np.allclose(out.alpha, la.alpha, atol=1e-6)


def test_jpeg_output_drops_alpha_and_keeps_grey(tmp_path):
    grey = np.full((8, 8, 1), 0.2, np.float32)
    out = write_image(tmp_path / "g.jpg", grey, alpha=np.ones((8, 8), np.float32), fmt="jpeg")
    assert Image.open(out).mode == "L"
    png_out = write_image(tmp_path / "g.png", grey, fmt="png")
    assert Image.open(png_out).mode in ("I;16", "I")


# --- ICC ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,ext", [("tiff", "tif"), ("png", "png"), ("jpeg", "jpg")])
def test_icc_carried_from_source_to_output(tmp_path, fmt, ext):
    icc = _adobe_like_icc()
    tifffile.imwrite(tmp_path / "a.tif", _u16((4, 4, 3)), photometric="rgb", iccprofile=icc)
    d = read_image(tmp_path / "a.tif")
    assert d.icc == icc
    out = write_image(tmp_path / f"b.{ext}", d.linear(), fmt=fmt, icc=d.icc)
    assert read_image(out).icc == icc
    assert Image.open(out).info.get("icc_profile") == icc


def test_no_icc_reads_as_none_and_writes_none(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _u16((4, 4, 3)), photometric="rgb")
    d = read_image(tmp_path / "a.tif")
    assert d.icc is None
    for ext, fmt in (("tif", "tiff"), ("png", "png"), ("jpg", "jpeg")):
        assert read_image(write_image(tmp_path / f"b.{ext}", d.linear(), fmt=fmt)).icc is None


def test_png_and_jpeg_icc_read(tmp_path):
    icc = srgb_icc()
    Image.fromarray(_u8((4, 4, 3))).save(tmp_path / "a.png", icc_profile=icc)
    Image.fromarray(_u8((4, 4, 3))).save(tmp_path / "a.jpg", icc_profile=icc)
    assert read_image(tmp_path / "a.png").icc == icc
    assert read_image(tmp_path / "a.jpg").icc == icc


# --- orientation ---------------------------------------------------------------------------

def _marker_image():
    """8x4 RGB, every pixel distinct, a red marker in the top-left corner."""
    a = np.arange(8 * 4 * 3, dtype=np.uint8).reshape(4, 8, 3) * 2
    a[0, 0] = (255, 0, 0)
    return a


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillow_exif_transpose(tmp_path, orientation):
    stored = _marker_image()
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif)  # PNG: lossless, so pixels compare exactly
    d = read_image(tmp_path / "o.png")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    assert d.orientation == orientation
    assert np.array_equal(_encoded(d, 255), expected)


def test_jpeg_orientation_6_read_upright(tmp_path):
    # Stored 16 wide x 8 high: left half black, right half white. Orientation 6 means "rotate
    # 90 degrees clockwise to view": upright it is 8 wide x 16 high, black on top.
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, 8:] = 255
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    d = read_image(tmp_path / "r.jpg")
    assert d.orientation == 6 and d.pixels.shape == (16, 8, 3)
    lin = d.linear()
    assert lin[1, 4].mean() < 0.05 and lin[14, 4].mean() > 0.9


def test_tiff_orientation_tag_applied(tmp_path):
    stored = _u16((3, 5))
    tifffile.imwrite(tmp_path / "o.tif", stored, photometric="minisblack", extratags=[(274, "H", 1, 8, True)])
    d = read_image(tmp_path / "o.tif")
    assert d.orientation == 8 and d.pixels.shape == (5, 3, 1)
    assert np.array_equal(_encoded(d, 65535)[:, :, 0], np.rot90(stored))


# --- the transfer the pixels are in (issue 17) --------------------------------------------------

def test_an_8_and_16_bit_file_decodes_to_its_samples_in_srgb(tmp_path):
    """No transfer-curve pass at decode: ``pixels`` are the stored samples / 255 (/ 65535), exactly."""
    import imagecodecs

    Image.fromarray(_u8((6, 9, 3))).save(tmp_path / "a.jpg", quality=90)
    stored8 = np.asarray(Image.open(tmp_path / "a.jpg"))
    src16 = _u16((5, 7, 3))
    (tmp_path / "b.png").write_bytes(imagecodecs.png_encode(src16))
    grey8 = _u8((4, 6))
    Image.fromarray(grey8, "L").save(tmp_path / "g.png")
    for name, stored, full in (("a.jpg", stored8, 255), ("b.png", src16, 65535), ("g.png", grey8[..., None], 255)):
        d = read_image(tmp_path / name)
        assert d.transfer == "srgb" and d.pixels.dtype == np.float32, name
        np.testing.assert_array_equal(d.pixels, stored.astype(np.float32) / np.float32(full))
        before = d.pixels.copy()
        light = d.linear()  # a converted copy; the decoded values stay as they were
        assert light is not d.pixels and np.array_equal(d.pixels, before)
        np.testing.assert_array_equal(light, srgb_to_linear(before))


def test_linear_samples_decode_with_transfer_linear(tmp_path):
    """What a reader hands back as linear light (a RAW through LibRaw) stays linear: ``linear()`` is
    the pixels themselves; a ``Decoded`` built without a transfer is linear (the old meaning)."""
    from truepix.io.image import Decoded, _finish
    from truepix.io.samples import Samples

    stored = _u16((4, 5, 3))
    d = _finish(tmp_path / "x.nef", "raw", Samples(stored, linear=True))
    assert d.transfer == "linear" and d.linear() is d.pixels
    np.testing.assert_array_equal(d.pixels, stored.astype(np.float32) / np.float32(65535))
    assert Decoded(d.pixels, None, None, 16, "raw", 1, None).transfer == "linear"
    with pytest.raises(ValueError):
        Decoded(d.pixels, None, None, 16, "raw", 1, None, transfer="gamma").linear()


# --- camera RAW ----------------------------------------------------------------------------

@pytest.mark.skipif(not KDC.exists(), reason=f"{KDC} not present")
def test_kodak_raw_decodes_linear():
    d = read_image(KDC)
    assert (d.kind, d.bit_depth, d.icc, d.transfer) == ("raw", 16, None, "linear")
    assert d.linear() is d.pixels
    h, w, c = d.pixels.shape
    assert c == 3 and h > 100 and w > 100 and d.pixels.dtype == np.float32
    assert 0.0 <= d.pixels.min() and d.pixels.max() <= 1.0
    # Linear (no gamma): an sRGB-encoded photo has a mean near 0.3-0.5; linear data of the same
    # scene sits far lower, and the raw's median is well below the encoded median.
    assert float(np.median(d.pixels)) < float(np.median(linear_to_srgb(d.pixels))) * 0.6
    assert d.pixels.mean() < 0.35


# --- bad input -----------------------------------------------------------------------------

def _expect_read_error(path, words):
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert pathlib.Path(path).name in msg
    assert words in msg, msg
    return msg


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    _expect_read_error(tmp_path / "empty.jpg", "empty file (0 bytes)")


def test_truncated_jpeg(tmp_path):
    Image.fromarray(_u8((64, 64, 3))).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    _expect_read_error(tmp_path / "cut.jpg", "truncated")


def test_truncated_png(tmp_path):
    Image.fromarray(_u8((64, 64, 3))).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _expect_read_error(tmp_path / "cut.png", "truncated")


@pytest.mark.parametrize("compression", [None, "zlib", "lzw"])
def test_truncated_tiff(tmp_path, compression):
    tifffile.imwrite(tmp_path / "full.tif", _u16((64, 64, 3)), photometric="rgb", compression=compression)
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    _expect_read_error(tmp_path / "cut.tif", "truncated")


def test_random_bytes_named_cr2(tmp_path):
    (tmp_path / "IMG_0042.CR2").write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_read_error(tmp_path / "IMG_0042.CR2", "not a RAW file LibRaw can read")


def test_text_named_tif(tmp_path):
    (tmp_path / "notes.tif").write_text("hello, this is not a picture\n")
    _expect_read_error(tmp_path / "notes.tif", "not a TIFF")


def test_huge_tiff_refused_from_header(tmp_path):
    path = tmp_path / "huge.tif"
    huge_tiff(path)
    with tifffile.TiffFile(path) as tif:
        w, h = tif.pages.first.imagewidth, tif.pages.first.imagelength
    assert (w, h) == (100000, 100000)
    _expect_read_error(path, "too large: 100000 x 100000 pixels")


def test_huge_png_refused_from_header(tmp_path):
    import zlib

    Image.fromarray(_u8((1, 1, 3))).save(tmp_path / "p.png")
    data = bytearray((tmp_path / "p.png").read_bytes())
    data[16:24] = struct.pack(">II", 100000, 100000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "huge.png").write_bytes(bytes(data))
    _expect_read_error(tmp_path / "huge.png", "too large")


def test_max_pixels_argument(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _u8((10, 10)), photometric="minisblack")
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "a.tif", max_pixels=99)


def test_nonexistent_path(tmp_path):
    _expect_read_error(tmp_path / "missing.jpg", "no such file")


def test_directory(tmp_path):
    (tmp_path / "folder.tif").mkdir()
    _expect_read_error(tmp_path / "folder.tif", "folder")


def test_unreadable_file(tmp_path):
    if os.geteuid() != 0:
        path = tmp_path / "secret.png"
        Image.fromarray(_u8((4, 4, 3))).save(path)
        path.chmod(0o000)
        _expect_read_error(path, "permission denied")
        return
    # Root reads anything, so a forked child drops to "nobody" (truepix is already imported)
    # and reads a mode-000 file in a folder everyone may enter.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="truepix-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "secret.png"
        Image.fromarray(_u8((4, 4, 3))).save(path)
        path.chmod(0o000)
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    read_image(path)
                    msg = "no error"
                except ImageReadError as err:
                    msg = str(err)
                os.write(wfd, msg.encode())
            finally:
                os._exit(0)
        os.close(wfd)
        with os.fdopen(rfd) as fh:
            msg = fh.read()
        os.waitpid(pid, 0)
        if not msg:
            pytest.skip("could not drop to uid 65534 in a child process")
        assert msg == "secret.png: permission denied"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- writing -------------------------------------------------------------------------------

def _leftovers(folder: pathlib.Path):
    return [p.name for p in folder.iterdir() if "truepix-tmp" in p.name]


def test_write_into_missing_folder(tmp_path):
    with pytest.raises(ImageWriteError, match="folder does not exist"):
        write_image(tmp_path / "nope" / "out.tif", np.zeros((2, 2, 3), np.float32))
    assert not (tmp_path / "nope").exists()


def test_write_into_a_file_as_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageWriteError, match="not a folder"):
        write_image(tmp_path / "file" / "out.tif", np.zeros((2, 2, 3), np.float32))
    assert _leftovers(tmp_path) == []


def test_failed_encode_leaves_no_temp_file(tmp_path):
    with pytest.raises(ImageWriteError):  # an ICC that is not bytes makes the encoder fail
        write_image(tmp_path / "out.png", np.zeros((2, 2, 3), np.float32), fmt="png", icc=12345)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_unless_asked(tmp_path):
    dest = write_image(tmp_path / "o.tif", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ImageWriteError, match="already exists"):
        write_image(dest, np.ones((2, 2, 3), np.float32))
    assert tifffile.imread(dest).max() == 0
    write_image(dest, np.ones((2, 2, 3), np.float32), overwrite=True)
    assert tifffile.imread(dest).min() == 65535
    assert _leftovers(tmp_path) == []


def test_unique_path(tmp_path):
    assert unique_path(tmp_path / "a.tif") == tmp_path / "a.tif"
    (tmp_path / "a.tif").write_bytes(b"x")
    (tmp_path / "a-1.tif").write_bytes(b"x")
    assert unique_path(tmp_path / "a.tif") == tmp_path / "a-2.tif"


def test_write_clips_and_rounds(tmp_path):
    px = np.array([[[-0.5, 2.0, np.nan]]], np.float32)
    out = write_image(tmp_path / "c.tif", px)
    assert tifffile.imread(out).tolist() == [[[0, 65535, 0]]]


def test_srgb_icc_is_a_profile():
    icc = srgb_icc()
    assert icc[36:40] == b"acsp" and len(icc) > 100


def test_damaged_files_only_ever_raise_image_read_error(tmp_path):
    """Bit flips and cuts in headers and data: a clear error or a decode, never a traceback."""
    rng = np.random.default_rng(3)
    Image.fromarray(_u8((16, 16, 3))).save(tmp_path / "s.jpg")
    Image.fromarray(_u8((16, 16, 3))).save(tmp_path / "s.png")
    tifffile.imwrite(tmp_path / "s.tif", _u16((16, 16, 3)), photometric="rgb", compression="zlib")
    for name in ("s.jpg", "s.png", "s.tif"):
        data = (tmp_path / name).read_bytes()
        for i in range(15):
            bad = bytearray(data)
            for pos in rng.integers(0, min(len(bad), 300), size=3):
                bad[pos] = rng.integers(0, 256)
            if i % 3 == 0:
                bad = bad[: rng.integers(8, len(bad))]
            path = tmp_path / f"bad{i}.{name[2:]}"
            path.write_bytes(bytes(bad))
            try:
                read_image(path)
            except ImageReadError as err:
                assert path.name in str(err)


@pytest.mark.parametrize("how", ["eXIf", "zTXt"])
def test_png16_orientation(tmp_path, how):
    """16-bit PNGs bypass Pillow: EXIF comes from eXIf (Exiv2, Pillow) or from the older
    ImageMagick "Raw profile type exif" zTXt chunk."""
    import zlib

    import imagecodecs

    stored = _u16((3, 5, 3))
    data = imagecodecs.png_encode(stored)
    exif = Image.Exif()
    exif[0x0112] = 6
    tiff_bytes = exif.tobytes()
    if how == "eXIf":
        kind, payload = b"eXIf", tiff_bytes
    else:
        text = f"\nexif\n{len(tiff_bytes):8d}\n{tiff_bytes.hex()}\n".encode()
        kind, payload = b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(text)
    chunk = struct.pack(">I", len(payload)) + kind + payload
    chunk += struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    (tmp_path / "o16.png").write_bytes(data[:33] + chunk + data[33:])
    d = read_image(tmp_path / "o16.png")
    assert d.orientation == 6 and d.pixels.shape == (5, 3, 3)
    assert np.array_equal(_encoded(d, 65535), np.rot90(stored, -1))


# --- the format registry (truepix.io.formats) -------------------------------------------------


def test_every_recipe_format_is_in_the_registry():
    from truepix import recipes
    from truepix.io import formats

    assert recipes.FORMATS == formats.OUTPUT_FORMATS == ("tiff", "png", "jpeg", "dng")
    for name in recipes.FORMATS:
        fmt = formats.FORMATS[name]
        assert fmt.name == name and fmt.extension in fmt.suffixes and recipes.EXTENSIONS[name] == fmt.extension
        for bits in (8, 16):
            depth = recipes.Recipe("r", (), format=name, bits=bits).bit_depth
            assert depth == {"jpeg": 8, "dng": 16}.get(name, bits) and depth in fmt.bit_depths
    assert formats.BIT_DEPTHS == (8, 16)
    # Rendered formats have an encoder; a linear DNG is written from camera RGB by io.dng.
    assert [f.name for f in formats.FORMATS.values() if f.encoder] == ["tiff", "png", "jpeg"]


def test_the_cli_offers_the_registry_formats(capsys):
    from truepix.cli import build_parser
    from truepix.io import formats

    parser = build_parser()
    for name in formats.OUTPUT_FORMATS:
        assert parser.parse_args(["process", "a.jpg", "--format", name]).format == name
    for name in ("raw", "tif", "bmp"):
        with pytest.raises(SystemExit):
            parser.parse_args(["process", "a.jpg", "--format", name])


@pytest.mark.parametrize("name", ["tiff", "png", "jpeg"])
def test_each_suffix_sniffs_to_its_format(tmp_path, name):
    from truepix.io import formats
    from truepix.io.image import SUPPORTED_SUFFIXES, sniff

    fmt = formats.FORMATS[name]
    for i, suffix in enumerate(fmt.suffixes):
        assert suffix in SUPPORTED_SUFFIXES and formats.by_suffix(suffix.upper()) is fmt
        out = write_image(tmp_path / f"p{i}{suffix}", np.full((4, 6, 3), 0.5, np.float32), fmt=name, bits=8)
        head = out.read_bytes()[:64]
        assert formats.sniff(head) is fmt and sniff(head) == name and read_image(out).kind == name
        # Whatever the name says, the content decides: the same bytes under another format's suffix.
        other = tmp_path / f"q{i}{'.png' if name != 'png' else '.tif'}"
        other.write_bytes(out.read_bytes())
        assert read_image(other).kind == name
        (tmp_path / f"t{i}{suffix}").write_text("not an image")
        with pytest.raises(ImageReadError, match=f"not a {fmt.label} "):
            read_image(tmp_path / f"t{i}{suffix}")


def test_raw_suffixes_are_read_as_raw():
    from truepix.io import RAW_EXTENSIONS, SUPPORTED_SUFFIXES, formats

    assert RAW_EXTENSIONS == formats.RAW_SUFFIXES and RAW_EXTENSIONS <= SUPPORTED_SUFFIXES
    assert SUPPORTED_SUFFIXES == {".jpg", ".jpeg", ".png", ".tif", ".tiff"} | RAW_EXTENSIONS
    assert all(formats.by_suffix(s) is formats.RAW for s in RAW_EXTENSIONS)
    assert formats.by_suffix(".dng") is formats.RAW  # a DNG (linear or not) is read with LibRaw
    assert formats.by_suffix(".bmp") is None and formats.sniff(b"BM\0\0") is None
    if KDC.exists():  # the shared RAW samples beside the repository
        assert read_image(KDC).kind == "raw"


@pytest.mark.parametrize("fmt", ["tiff", "tif", "png", "jpeg", "jpg", "JPG"])
def test_write_image_takes_names_and_aliases(tmp_path, fmt):
    from truepix.io import formats

    out = write_image(tmp_path / "o", np.zeros((2, 3, 3), np.float32), fmt=fmt)
    assert read_image(out).kind == formats.encoded(fmt).name


def test_write_image_refuses_what_the_registry_does_not_encode(tmp_path):
    with pytest.raises(ImageWriteError, match=r"unknown output format 'dng' \(tiff, png or jpeg\)"):
        write_image(tmp_path / "o.dng", np.zeros((2, 2, 3), np.float32), fmt="dng")
    with pytest.raises(ImageWriteError, match="bit depth must be 8 or 16, not 12"):
        write_image(tmp_path / "o.tif", np.zeros((2, 2, 3), np.float32), bits=12)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["tiff", "png", "jpeg"])
def test_written_formats_carry_the_metadata_the_registry_says(tmp_path, name):
    import pyexiv2

    from truepix.colour import icc as space_icc
    from truepix.io import formats, read_truepix_flag

    fmt = formats.FORMATS[name]
    src = tmp_path / "src.jpg"
    Image.fromarray(_u8((6, 8, 3))).save(src)
    img = pyexiv2.Image(str(src))
    img.modify_exif({"Exif.Image.Artist": "Ann Example"})
    img.modify_iptc({"Iptc.Application2.Keywords": ["harbour"]})
    img.close()
    profile = space_icc("adobe-rgb")
    out = write_image(tmp_path / f"o{fmt.extension}", np.zeros((6, 8, 3), np.float32), fmt=name, icc=profile,
                      metadata_source=src, xmp_info={"recipe": "r", "models": "m", "source": "src.jpg"})
    img = pyexiv2.Image(str(out))
    try:
        exif, iptc = img.read_exif(), img.read_iptc()
    finally:
        img.close()
    assert fmt.carries(formats.ICC) == (read_image(out).icc == profile)
    assert fmt.carries(formats.XMP) == read_truepix_flag(out)
    assert fmt.carries(formats.EXIF) == (exif.get("Exif.Image.Artist") == "Ann Example")
    assert fmt.carries(formats.IPTC) == (iptc.get("Iptc.Application2.Keywords") == ["harbour"])


# --- the atomic writer (truepix.io.atomic) ------------------------------------------------------


def test_atomic_output_publishes_only_a_finished_file(tmp_path):
    from truepix.io import atomic, image

    dest = tmp_path / "a.bin"
    with atomic.output(dest, overwrite=False) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(atomic.temp_prefix(dest)) and not dest.exists()
        tmp.write_bytes(b"done")
    assert dest.read_bytes() == b"done" and _leftovers(tmp_path) == []
    with pytest.raises(ImageWriteError, match="file already exists"):
        with atomic.output(dest, overwrite=False) as tmp:
            tmp.write_bytes(b"second")
    with pytest.raises(ImageWriteError, match="ValueError: half way"):
        with atomic.output(dest, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise ValueError("half way")
    with pytest.raises(KeyboardInterrupt):
        with atomic.output(dest, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert dest.read_bytes() == b"done" and _leftovers(tmp_path) == []
    with atomic.output(dest, overwrite=True) as tmp:
        tmp.write_bytes(b"again")
    assert dest.read_bytes() == b"again" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    # What io.image (and the queue's crash clean-up, through it) uses is this one writer's.
    assert image.remove_temp_files is atomic.remove_temp_files and image.fit_name is atomic.fit_name
    assert image.temp_path is atomic.temp_path


def test_the_linear_dng_writer_is_atomic_too(tmp_path, monkeypatch):
    from truepix.io import atomic
    from truepix.io.dng import write_linear_dng
    from truepix.io.raw import RawMosaic

    info = RawMosaic(path=None, mosaic=None, pattern="RGGB", wb=np.array([2.0, 1.0, 1.5]), cam_xyz=None)
    rgb = np.full((4, 6, 3), 0.25, np.float32)
    with pytest.raises(ImageWriteError, match="folder does not exist"):
        write_linear_dng(tmp_path / "nope" / "a.dng", rgb, info)
    seen = []

    def crash(tmp, dest, overwrite):
        seen.append(tmp)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "publish", crash)
    with pytest.raises(ImageWriteError, match="disk full"):
        write_linear_dng(tmp_path / "a.dng", rgb, info)
    assert seen and seen[0].name.startswith(".a.dng.truepix-tmp-") and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    out = write_linear_dng(tmp_path / "a.dng", rgb, info)
    with pytest.raises(ImageWriteError, match="file already exists"):
        write_linear_dng(out, rgb, info)
    assert tifffile.imread(out).shape == (4, 6, 3) and _leftovers(tmp_path) == []
