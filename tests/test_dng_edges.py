"""Issue 20's rough edges of RAW development: colour for a camera without a matrix, lossless
compressed linear DNGs, and the DNG tags a developed DNG carries over.

Saturation here is the mean HSV S (0..255) of the 8-bit sRGB rendering: 0 for a grey picture.
"""

import shutil
import subprocess

import numpy as np
import pytest
import rawpy
import tifffile
from PIL import Image

from conftest import SHARED
from truepix.io import dng, dngtags, ljpeg, raw, rawcolour
from truepix.io.raw import RawMosaic
from truepix.process import process_file
from truepix.recipes import BUILTIN

RAW_DIR = SHARED / "raw"
KDC = RAW_DIR / "RAW_KODAK_DC50.KDC"  # 0.4 MP; LibRaw has no matrix for it
CANON = RAW_DIR / "canon_eos_6d.dng"  # an already demosaiced (lossy, linear) DNG from Adobe's converter
needs = pytest.mark.skipif(not KDC.exists() or not CANON.exists(), reason=f"{RAW_DIR} not present")
exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")


def saturation(rgb8: np.ndarray) -> float:
    return float(np.asarray(Image.fromarray(rgb8).convert("HSV"), np.float32)[..., 1].mean())


def libraw_saturation(path) -> float:
    """LibRaw's own rendering: camera white balance, sRGB, no auto-brightening."""
    with rawpy.imread(str(path)) as r:
        return saturation(r.postprocess(use_camera_wb=True, no_auto_bright=True))


def xmp_of(path) -> str:
    with tifffile.TiffFile(path) as tif:
        value = tif.pages.first.tags[700].value
    return value.decode() if isinstance(value, bytes) else value


# -- 1. a camera LibRaw has no matrix for -----------------------------------------------------------

@needs
def test_a_camera_without_a_matrix_develops_in_colour_and_says_where_its_colours_come_from(tmp_path):
    reference = libraw_saturation(KDC)  # 72: LibRaw's stand-in matrix (Apple QuickTake's, for RADC cameras)
    res = process_file(KDC, BUILTIN["develop-tiff"], out_dir=tmp_path)
    assert res.status == "done", res.error
    px = tifffile.imread(res.output)
    got = saturation(np.round(px / 257).astype(np.uint8))
    assert got >= 0.7 * reference, (got, reference)  # camera RGB taken for sRGB gave 21
    assert any("LibRaw's rendering colours" in n for n in res.notes), res.notes
    assert 'ColourSource="libraw-rendering"' in xmp_of(res.output).replace("'", '"') \
        or "<truepix:ColourSource>libraw-rendering<" in xmp_of(res.output)


@needs
def test_its_linear_dng_carries_a_matching_matrix_so_raw_readers_render_it_in_colour(tmp_path):
    res = process_file(KDC, BUILTIN["develop"], out_dir=tmp_path)
    assert res.status == "done", res.error
    # ColorMatrix1 (XYZ -> camera) is made so a reader's camera -> sRGB is LibRaw's for the original
    np.testing.assert_allclose(rawcolour.libraw_rgb_cam(res.output), rawcolour.libraw_rgb_cam(KDC), atol=2e-3)
    reference = libraw_saturation(KDC)
    assert libraw_saturation(res.output) >= 0.7 * reference
    assert "libraw-rendering" in xmp_of(res.output)
    if shutil.which("darktable-cli"):  # rawspeed reads the matrix its own way: in colour there too (57)
        jpg = tmp_path / "dt.jpg"
        proc = subprocess.run(["darktable-cli", res.output, str(jpg), "--core", "--configdir", str(tmp_path / "dt"),
                               "--library", ":memory:"], capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0 and jpg.exists(), proc.stdout + proc.stderr
        assert saturation(np.asarray(Image.open(jpg).convert("RGB"))) >= 0.7 * reference


def test_without_librarys_colours_a_generic_matrix_is_used_and_named(monkeypatch):
    monkeypatch.setattr(rawcolour, "libraw_rgb_cam", lambda path: None)
    wb = np.array([2.0, 1.0, 1.6])
    cam_xyz, source = rawcolour.fallback_cam_xyz("any.raw", wb)
    assert source == "generic" and "not this camera's own" in rawcolour.colour_note(source)
    d65 = rawcolour.SRGB_TO_XYZ @ np.ones(3)
    np.testing.assert_allclose(cam_xyz @ d65, 1 / wb)  # the as-shot neutral means D65, as LibRaw takes it
    rgb_cam = RawMosaic(path=None, mosaic=None, pattern="", wb=wb, cam_xyz=cam_xyz).rgb_cam()
    np.testing.assert_allclose(rgb_cam.sum(axis=1), 1, atol=1e-9)  # white stays white
    assert not np.allclose(rgb_cam, np.eye(3), atol=0.2)  # and colours are not left grey


@needs
def test_the_rawbin_developer_uses_the_same_fallback():
    from truepix.evaluate import rawbin

    mos = raw.read_mosaic(KDC)
    assert mos.colour_source == "libraw-rendering"
    full = rawbin.visible_mosaic(mos.mosaic, mos.crop)[:256, :256]
    srgb = rawbin.develop(full, mos.pattern, mos.wb, mos.rgb_cam())
    got = saturation(np.round(np.clip(srgb, 0, 1) * 255).astype(np.uint8))
    grey = saturation(np.round(np.clip(rawbin.develop(full, mos.pattern, mos.wb, np.eye(3)), 0, 1) * 255)
                      .astype(np.uint8))
    assert got > 2 * grey, (got, grey)


# -- 2. lossless JPEG tiles ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["noise", "smooth", "extremes"])
def test_lossless_jpeg_frames_decode_exactly(kind):
    rng = np.random.default_rng(1)
    shape = (40, 56, 3)
    if kind == "noise":
        a = rng.integers(0, 65536, shape)
    elif kind == "smooth":
        a = np.cumsum(rng.normal(0, 40, shape), axis=1) + 30000
    else:  # differences of +-65535 and 32768 (category 16) wrap modulo 2**16
        a = np.where(rng.random(shape) > 0.5, 65535, 0)
        a[0, :4, 0] = (0, 32768, 0, 32768)
    a = np.clip(a, 0, 65535).astype(np.uint16)
    import imagecodecs

    assert np.array_equal(imagecodecs.jpegsof3_decode(ljpeg.encode(a)).reshape(shape), a)


@pytest.mark.parametrize("size", [(96, 128), (300, 270), (37, 22)])
def test_linear_dng_tiles_read_back_bit_exact_with_libraw(tmp_path, size):
    info = RawMosaic(path=None, mosaic=None, pattern="RGGB", wb=np.array([2.0, 1.0, 1.5]), cam_xyz=None)
    rgb = np.random.default_rng(2).random(size + (3,), dtype=np.float32)
    out = dng.write_linear_dng(tmp_path / "t.dng", rgb, info)
    with tifffile.TiffFile(out) as tif:
        tags = tif.pages.first.tags
        assert tags[259].value == 7 and tags[322].value <= size[1] and tags[323].value == dng.TILE
    with rawpy.imread(str(out)) as r:  # narrower tiles than the image: LibRaw misplaces wider ones
        assert np.array_equal(r.raw_image[..., :3], dng.encode(rgb))


@needs
def test_a_developed_dng_is_compressed_and_reads_like_the_uncompressed_one(tmp_path):
    from truepix.process import read_raw

    mos = read_raw(CANON)
    rgb = mos.rgb / np.asarray(mos.wb, np.float32)
    small = dng.write_linear_dng(tmp_path / "c.dng", rgb, mos)
    h, w = rgb.shape[:2]
    with tifffile.TiffWriter(tmp_path / "u.dng") as tw:  # today's layout before: uncompressed strips
        tw.write(dng.encode(rgb), photometric=34892, planarconfig="contig", subfiletype=0, rowsperstrip=64,
                 extratags=dng.dng_tags(mos, w, h, None, 1), metadata=None)
    assert small.stat().st_size < 0.6 * (tmp_path / "u.dng").stat().st_size  # 3.1 MB against 6.1 MB
    with rawpy.imread(str(small)) as a, rawpy.imread(str(tmp_path / "u.dng")) as b:
        assert np.array_equal(a.raw_image, b.raw_image)


# -- 3. the DNG tags a developed DNG carries --------------------------------------------------------

def _exif(path, names) -> dict:
    """{tag name: value} of the DNG tags ``names`` in IFD0 or the raw SubIFD, as exiftool reads them
    (named one by one: exiftool leaves large arrays and opcode lists out of a plain listing)."""
    import json

    out = subprocess.run(["exiftool", "-j", "-b", "-a", "-G1", "-n", "-m", *[f"-{n}" for n in names], str(path)],
                         capture_output=True, text=True, timeout=60).stdout
    return {k.split(":", 1)[1]: v for k, v in json.loads(out)[0].items() if k.startswith(("IFD0:", "SubIFD:"))}


KEPT = ["UniqueCameraModel", "ColorMatrix1", "ColorMatrix2", "CameraCalibration1", "CameraCalibration2",
        "AnalogBalance", "BaselineExposure", "BaselineNoise", "BaselineSharpness", "LinearResponseLimit",
        "CameraSerialNumber", "DNGLensInfo", "ShadowScale", "CalibrationIlluminant1", "CalibrationIlluminant2",
        "OriginalRawFileName", "CameraCalibrationSig", "ProfileCalibrationSig", "ProfileName",
        "ProfileHueSatMapDims", "ProfileHueSatMapData1", "ProfileHueSatMapData2", "ProfileEmbedPolicy",
        "ProfileCopyright", "ForwardMatrix1", "ForwardMatrix2", "ProfileLookTableDims", "ProfileLookTableData",
        "OriginalDefaultFinalSize", "DefaultScale", "AntiAliasStrength", "BestQualityScale"]
DROPPED = ["OpcodeList2", "NoiseProfile", "RawDataUniqueID", "NewRawImageDigest", "PreviewApplicationName",
           "PreviewApplicationVersion", "PreviewSettingsDigest", "PreviewColorSpace", "PreviewDateTime",
           "BlackLevelRepeatDim"]


@needs
@exiftool
def test_developing_a_demosaiced_dng_keeps_every_tag_that_stays_true(tmp_path):
    res = process_file(CANON, BUILTIN["develop"], out_dir=tmp_path)
    assert res.status == "done", res.error
    names = KEPT + DROPPED + ["BlackLevel", "WhiteLevel"]
    src, out = _exif(CANON, names), _exif(res.output, names)
    for name in KEPT:
        assert name in src, name
        assert out.get(name) == src[name], name  # verbatim
    for name in DROPPED:
        assert name in src and name not in out, name
    # LibRaw applied OpcodeList2's curves (the lossy DNG's MapPolynomial): the data is linear now
    assert out["BlackLevel"] == "0 0 0" and out["WhiteLevel"] == "65535 65535 65535"


def test_names_go_only_with_what_they_name():
    matrix = (7034, 10000, -804, 10000, -1014, 10000, -442, 1000, 12564, 10000, 2058, 10000, -851, 10000,
              1994, 10000, 5758, 10000)
    source = {50721: ("ColorMatrix1", matrix, 10, 9),
              50722: ("ColorMatrix2", (0, 0) * 9, 10, 9),            # undefined: cannot go over
              50936: ("ProfileName", "Adobe Standard", 2, 15),
              50942: ("ProfileCopyright", "Copyright", 2, 10),
              50941: ("ProfileEmbedPolicy", 0, 4, 1),
              50735: ("CameraSerialNumber", "0330", 2, 5),
              51022: ("OpcodeList3", b"\0\0\0\0", 7, 4),
              51009: ("OpcodeList2", b"\0\0\0\0", 7, 4)}
    kept = dngtags.carried_tags(source, same_grid=True)
    assert kept == {50721, 50735, 51022}  # the profile's name, copyright and policy left with its matrix
    assert dngtags.carried_tags(source, same_grid=False) == {50721, 50735}  # an upscale leaves the lens opcodes
    source[50722] = ("ColorMatrix2", matrix, 10, 9)
    assert dngtags.carried_tags(source, same_grid=True) == {50721, 50722, 50936, 50942, 50941, 50735, 51022}
    assert all(action in (dngtags.CARRY, dngtags.DROP, dngtags.OURS, dngtags.SAME_GRID)
               for _, action in dngtags.SOURCE_TAGS.values())
