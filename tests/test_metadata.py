"""truepix.io.metadata: EXIF/IPTC/XMP carried into outputs, fixed up, truepix's record."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pyexiv2
import pytest
import tifffile
from PIL import Image

import truepix
from conftest import SHARED
from truepix.io import copy_metadata, read_image, read_truepix_flag, srgb_icc, write_image

RAW_DIR = SHARED / "raw"
KDC = RAW_DIR / "RAW_KODAK_DC50.KDC"
DNG = RAW_DIR / "canon_eos_6d.dng"
INFO = {"recipe": "upscale-2x", "models": "upscale-x2@1", "source": "IMG_0042.jpg"}


def _meta(path):
    img = pyexiv2.Image(str(path))
    try:
        return img.read_exif(), img.read_iptc(), img.read_xmp()
    finally:
        img.close()


def _tagged_jpeg(path, orientation=6, size=(16, 8)):
    """A JPEG (W x H = size, stored) with Artist, Keywords, dc.subject, Orientation, PixelXDimension."""
    w, h = size
    a = np.zeros((h, w, 3), np.uint8)
    a[:, w // 2 :] = 255
    Image.fromarray(a).save(path, quality=95)
    img = pyexiv2.Image(str(path))
    img.modify_exif({"Exif.Image.Artist": "Ann Example", "Exif.Image.Orientation": str(orientation),
                     "Exif.Photo.PixelXDimension": str(w), "Exif.Photo.PixelYDimension": str(h),
                     "Exif.Image.Make": "TestCam"})
    img.modify_iptc({"Iptc.Application2.Keywords": ["harbour", "dawn"]})
    img.modify_xmp({"Xmp.dc.subject": ["boats", "sea"], "Xmp.tiff.Orientation": str(orientation),
                    "Xmp.exif.PixelXDimension": str(w)})
    img.close()
    return path


@pytest.mark.parametrize("fmt,ext", [("tiff", "tif"), ("png", "png"), ("jpeg", "jpg")])
def test_jpeg_metadata_carried_and_fixed(tmp_path, fmt, ext):
    src = _tagged_jpeg(tmp_path / "IMG_0042.jpg")
    d = read_image(src)
    assert d.orientation == 6 and d.pixels.shape == (16, 8, 3)
    big = np.repeat(np.repeat(d.linear(), 2, 0), 2, 1)  # a stand-in "2x upscale": 16 x 32
    out = write_image(tmp_path / f"out.{ext}", big, fmt=fmt, icc=srgb_icc(), metadata_source=src,
                      xmp_info=INFO)
    exif, iptc, xmp = _meta(out)
    assert exif["Exif.Image.Artist"] == "Ann Example" and exif["Exif.Image.Make"] == "TestCam"
    assert iptc["Iptc.Application2.Keywords"] == ["harbour", "dawn"]
    assert xmp["Xmp.dc.subject"] == ["boats", "sea"]
    # upright pixels: orientation reset, never applied twice
    assert exif["Exif.Image.Orientation"] == "1" and xmp["Xmp.tiff.Orientation"] == "1"
    again = read_image(out)
    assert again.orientation == 1 and again.pixels.shape == (32, 16, 3)
    lin = again.linear()
    assert lin[2, 8].mean() < 0.05 and lin[29, 8].mean() > 0.9
    # new size recorded
    assert (exif["Exif.Photo.PixelXDimension"], exif["Exif.Photo.PixelYDimension"]) == ("16", "32")
    assert xmp["Xmp.exif.PixelXDimension"] == "16"
    # truepix's record
    assert xmp["Xmp.truepix.Enhanced"] == "True"
    assert xmp["Xmp.truepix.Models"] == "upscale-x2@1" and xmp["Xmp.truepix.Recipe"] == "upscale-2x"
    assert xmp["Xmp.truepix.Source"] == "IMG_0042.jpg"
    assert xmp["Xmp.truepix.Version"] == truepix.__version__
    assert xmp["Xmp.xmp.CreatorTool"] == f"truepix {truepix.__version__}"
    assert read_truepix_flag(out) and not read_truepix_flag(src)
    assert again.icc == srgb_icc()  # the encoder's profile survived the metadata rewrite


def test_tiff_output_structure_is_its_own(tmp_path):
    src = tmp_path / "src.tif"
    tifffile.imwrite(src, np.zeros((8, 12, 3), np.uint16), photometric="rgb")
    img = pyexiv2.Image(str(src))
    img.modify_exif({"Exif.Image.Artist": "Bob", "Exif.Image.Orientation": "3"})
    img.close()
    px = np.random.default_rng(1).random((20, 30, 3), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tifffile warns when a copied description contradicts the shape
        out = write_image(tmp_path / "out.tif", px, metadata_source=src, xmp_info=INFO)
        with tifffile.TiffFile(out) as tif:
            page = tif.pages.first
            assert page.shape == (20, 30, 3) and page.dtype == np.uint16
            back = page.asarray()
    assert np.array_equal(back, tifffile.imread(write_image(tmp_path / "plain.tif", px)))
    exif, _, _ = _meta(out)
    assert exif["Exif.Image.Artist"] == "Bob"
    assert exif["Exif.Image.ImageWidth"] == "30" and exif["Exif.Image.ImageLength"] == "20"
    assert exif["Exif.Image.Orientation"] == "1"
    assert "shape" not in exif.get("Exif.Image.ImageDescription", "")


def test_png_output_drops_source_structure_tags(tmp_path):
    src = tmp_path / "src.tif"
    tifffile.imwrite(src, np.zeros((8, 12, 3), np.uint16), photometric="rgb")
    img = pyexiv2.Image(str(src))
    img.modify_exif({"Exif.Image.Artist": "Bob"})
    img.close()
    out = write_image(tmp_path / "out.png", np.zeros((4, 6, 3), np.float32), fmt="png",
                      metadata_source=src, xmp_info=INFO)
    exif, _, _ = _meta(out)
    assert exif["Exif.Image.Artist"] == "Bob"
    for tag in ("ImageWidth", "ImageLength", "StripOffsets", "BitsPerSample", "ImageDescription"):
        assert f"Exif.Image.{tag}" not in exif


def test_thumbnail_dropped(tmp_path):
    src = _tagged_jpeg(tmp_path / "t.jpg", orientation=1)
    thumb = tmp_path / "thumb.jpg"
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(thumb)
    img = pyexiv2.Image(str(src))
    img.modify_thumbnail(thumb.read_bytes())
    img.close()
    assert any(k.startswith("Exif.Thumbnail.") for k in _meta(src)[0])
    out = write_image(tmp_path / "o.jpg", np.zeros((8, 16, 3), np.float32), fmt="jpeg",
                      metadata_source=src, xmp_info=INFO)
    exif, _, _ = _meta(out)
    assert not any(k.startswith("Exif.Thumbnail.") for k in exif)
    assert exif["Exif.Image.Artist"] == "Ann Example"


def test_unreadable_source_metadata_is_a_warning(tmp_path, caplog):
    src = tmp_path / "notes.txt"
    src.write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="truepix.io.metadata"):
        out = write_image(tmp_path / "o.tif", np.zeros((2, 2, 3), np.float32), metadata_source=src,
                          xmp_info=INFO)
    assert "metadata not copied" in caplog.text
    assert read_truepix_flag(out)


def test_no_source_still_records_truepix(tmp_path):
    out = write_image(tmp_path / "o.png", np.zeros((2, 2, 1), np.float32), fmt="png", xmp_info=INFO)
    assert read_truepix_flag(out)
    assert not read_truepix_flag(write_image(tmp_path / "p.png", np.zeros((2, 2, 1), np.float32), fmt="png"))


def test_flag_on_missing_or_non_image_file_is_false(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    assert not read_truepix_flag(tmp_path / "x.txt")
    assert not read_truepix_flag(tmp_path / "missing.jpg")


@pytest.mark.skipif(not KDC.exists(), reason=f"{KDC} not present")
def test_raw_source_to_tiff(tmp_path):
    d = read_image(KDC)
    small = d.linear()[:32, :48]
    out = write_image(tmp_path / "k.tif", small, icc=srgb_icc(), metadata_source=KDC, xmp_info=INFO)
    src_exif = _meta(KDC)[0]
    exif, _, xmp = _meta(out)
    if "Exif.Image.Make" in src_exif:
        assert exif["Exif.Image.Make"] == src_exif["Exif.Image.Make"]
    assert tifffile.imread(out).shape == (32, 48, 3)
    assert read_image(out).icc == srgb_icc()
    assert xmp["Xmp.truepix.Enhanced"] == "True"


@pytest.mark.skipif(not DNG.exists(), reason=f"{DNG} not present")
@pytest.mark.parametrize("ext", ["tif", "jpg"])
def test_dng_source_tags_do_not_make_output_a_dng(tmp_path, ext):
    out = write_image(tmp_path / f"d.{ext}", np.zeros((6, 9, 3), np.float32),
                      fmt="tiff" if ext == "tif" else "jpeg", metadata_source=DNG, xmp_info=INFO)
    exif, _, _ = _meta(out)
    src_exif = _meta(DNG)[0]
    assert "Exif.Image.DNGVersion" in src_exif
    assert "Exif.Image.DNGVersion" not in exif and "Exif.Image.ColorMatrix1" not in exif
    assert not any(k.startswith(("Exif.SubImage", "Exif.Thumbnail.")) for k in exif)
    assert exif.get("Exif.Image.Model") == src_exif.get("Exif.Image.Model")
    with tifffile.TiffFile(out) if ext == "tif" else Image.open(out) as f:
        shape = f.pages.first.shape if ext == "tif" else (f.height, f.width, 3)
    assert shape == (6, 9, 3)


def test_copy_metadata_directly(tmp_path):
    src = _tagged_jpeg(tmp_path / "s.jpg")
    dst = tmp_path / "d.tif"
    tifffile.imwrite(dst, np.zeros((3, 4, 3), np.uint16), photometric="rgb", metadata=None)
    copy_metadata(src, dst, width=4, height=3, xmp_info={"models": ["denoise@2", "upscale-x2@1"]})
    _, _, xmp = _meta(dst)
    assert xmp["Xmp.truepix.Models"] == "denoise@2, upscale-x2@1"
    assert xmp["Xmp.truepix.Source"] == "s.jpg"
