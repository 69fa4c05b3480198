"""EXIF hints for the default upscaler's input-kind decision (io/hints.py, engine/inputkind.prior)."""

from __future__ import annotations

import dataclasses
import math
import pathlib
import warnings

import numpy as np
import pytest
from PIL import Image

from truepix.colour import linear_to_srgb
from truepix.engine import models
from truepix.engine.inputkind import camera_weight, estimate, hint_of, prior
from truepix.engine.pipeline import EngineOptions
from truepix.engine.run import run
from truepix.errors import RecipeError
from truepix.io import read_image
from truepix.io.hints import RAW_DEVELOPMENT, Hints, from_exif, from_exif_bytes
from truepix.recipes import BUILTIN, Recipe, Step, from_mapping
from truepix.resize import imresize
from truepix.service.app import sample_photo

MODEL = "upscale-x2-adaptive"
OPTS = EngineOptions(provider="cpu", threads=1)


def camera(**fields) -> Hints:
    """A camera JPEG's hints at 6000 x 4000, as the camera wrote them (overridable)."""
    base = dict(make="Canon", model="Canon EOS R6", software="Firmware Version 1.8.1", iso=400.0,
                exif_width=6000, exif_height=4000, width=6000, height=4000)
    return Hints(**{**base, **fields})


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --- the rules, on constructed hints ---------------------------------------------------------


def test_no_hints_or_no_exif_shift_nothing():
    assert prior(None)[0] == 0.0
    assert prior(Hints()) == (0.0, "no EXIF")
    assert prior(Hints(width=640, height=480)) == (0.0, "no EXIF")  # a size alone is not EXIF


def test_a_raw_development_is_a_camera_file():
    assert prior(RAW_DEVELOPMENT) == (3.0, "RAW development")
    assert prior(Hints(raw=True, make="Canon", iso=100.0, exif_width=9000, exif_height=6000, width=100,
                       height=50))[0] == 3.0  # whatever else it says


def test_a_camera_original_gets_plus_two_and_plus_three_at_high_iso():
    assert prior(camera())[0] == 2.0
    assert prior(camera(iso=1599.0))[0] == 2.0
    assert prior(camera(iso=1600.0))[0] == 3.0
    assert prior(camera(iso=12800.0))[0] == 3.0
    assert prior(camera(iso=None))[0] == 2.0
    assert prior(camera(make=None))[0] == 2.0                       # the Model alone names a camera
    assert prior(camera(software=None))[0] == 2.0
    assert prior(camera(exif_width=None, exif_height=None))[0] == 2.0  # no size to compare
    assert prior(camera(width=4000, height=6000))[0] == 2.0          # turned upright: the same size
    shift, reason = prior(camera(iso=3200.0))
    assert "Canon EOS R6" in reason and "3200" in reason


@pytest.mark.parametrize("firmware", ["Ver.1.00", "Version1.10", "HDR+ 1.0.540104767zd", "17.1.2",
                                      "G998BXXU5CVDD", "ILCE-7M4 v2.01", "Digital Camera DC50 Ver 1.0"])
def test_camera_firmware_is_not_taken_for_an_editor(firmware):
    assert prior(camera(software=firmware))[0] == 2.0


@pytest.mark.parametrize("software", [
    "Adobe Photoshop Lightroom Classic 13.1 (Windows)", "Adobe Photoshop 25.0 (Macintosh)",
    "Adobe Photoshop Camera Raw 16.0 (Windows)", "GIMP 2.10.36", "darktable 4.6.1", "RawTherapee 5.10",
    "Capture One 23 Macintosh", "ImageMagick 7.1.1-21", "GraphicsMagick 1.3.42", "Affinity Photo 2",
    "Pixelmator Pro 3.5", "digiKam-8.2.0", "Paint.NET 5.0", "Snapseed 2.0", "ON1 Photo RAW 2024",
    "DxO PhotoLab 7.2", "LIGHTROOM"])
def test_an_editors_export_without_size_evidence_is_left_to_the_estimator(software):
    assert prior(camera(software=software, iso=6400.0)) == (0.0, f"written by an editor ({software})")


def test_a_file_downsized_three_times_or_more_since_its_exif_gets_minus_two():
    assert prior(camera(width=1500, height=1000))[0] == -2.0
    assert prior(camera(width=1000, height=1500))[0] == -2.0          # and turned upright
    assert prior(camera(width=2000, height=1333))[0] == -2.0          # rounded
    assert prior(camera(width=1024, height=683, iso=6400.0))[0] == -2.0  # whatever the ISO
    shift, reason = prior(camera(width=1500, height=1000, software="Adobe Photoshop Lightroom Classic 13.1"))
    assert shift == -2.0 and "downsized 4.0x" in reason and "6000x4000 -> 1500x1000" in reason


def test_a_mild_downsize_an_enlargement_and_a_crop():
    # 2x: the estimator's training takes camera photos downsized 2x for camera files: no shift either way
    assert prior(camera(width=3000, height=2000))[0] == 0.0
    assert prior(camera(width=2400, height=1600, iso=6400.0))[0] == 0.0
    assert prior(camera(width=12000, height=8000))[0] == 0.0           # enlarged: not native either
    assert prior(camera(width=3000, height=3000))[0] == 2.0            # a crop: native pixels
    assert prior(camera(width=5000, height=4000, iso=3200.0))[0] == 3.0


def test_exif_naming_no_camera_shifts_nothing():
    assert prior(Hints(software="Some Converter 1.0", width=10, height=10))[0] == 0.0
    assert prior(Hints(iso=3200.0))[0] == 0.0


def test_the_step_parameter_turns_the_hints_off_and_is_checked():
    info = models.get_model(MODEL)
    assert hint_of(info, {}, camera())[0] == 2.0
    assert hint_of(info, {"hints": True}, camera())[0] == 2.0
    assert hint_of(info, {"hints": False}, camera()) == (0.0, "hints = false")
    with pytest.raises(RecipeError, match="hints must be true or false"):
        hint_of(info, {"hints": "no"}, camera())
    from_mapping("r", {"steps": [{"model": MODEL, "hints": False}]}, "test")
    with pytest.raises(RecipeError, match=r"steps\[0\]\.hints: must be true"):
        from_mapping("r", {"steps": [{"model": MODEL, "hints": 0}]}, "test")


# --- read at decode ------------------------------------------------------------------------------


def exif(make=None, model=None, software=None, iso=None, size=None) -> Image.Exif:
    ex = Image.Exif()
    for tag, value in ((0x010F, make), (0x0110, model), (0x0131, software)):
        if value is not None:
            ex[tag] = value
    sub = ex.get_ifd(0x8769)
    if iso is not None:
        sub[0x8827] = iso
    if size is not None:
        sub[0xA002], sub[0xA003] = size
    return ex


def test_hints_are_read_from_a_camera_jpeg(tmp_path):
    path = tmp_path / "IMG_0001.jpg"
    Image.new("RGB", (120, 96), (90, 120, 150)).save(
        path, quality=95, exif=exif("FUJIFILM", "X-T5", "Digital Camera X-T5 Ver3.00", 3200, (120, 96)))
    hints = read_image(path).hints
    assert hints == Hints(make="FUJIFILM", model="X-T5", software="Digital Camera X-T5 Ver3.00", iso=3200.0,
                          exif_width=120, exif_height=96, width=120, height=96)
    assert prior(hints)[0] == 3.0


def test_the_size_compared_is_the_upright_decoded_one(tmp_path):
    path = tmp_path / "rotated.jpg"
    ex = exif("Canon", "Canon EOS R5", None, 100, (480, 360))
    ex[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (120, 90)).save(path, exif=ex)
    decoded = read_image(path)
    assert decoded.pixels.shape[:2] == (120, 90)
    assert (decoded.hints.width, decoded.hints.height) == (90, 120)
    assert prior(decoded.hints)[0] == -2.0  # 480x360 -> 120x90: downsized 4x


def test_hints_from_an_export_a_png_a_16_bit_png_and_a_tiff(tmp_path):
    export = tmp_path / "export.jpg"
    Image.new("RGB", (150, 100)).save(export, exif=exif("NIKON CORPORATION", "NIKON D850",
                                                        "Adobe Photoshop Lightroom Classic 13.1 (Windows)",
                                                        64, (8256, 5504)))
    hints = read_image(export).hints
    assert hints.software.startswith("Adobe Photoshop Lightroom") and (hints.exif_width, hints.width) == (8256, 150)
    assert prior(hints)[0] == -2.0

    png8 = tmp_path / "p8.png"
    Image.new("RGB", (40, 30)).save(png8, exif=exif("Apple", "iPhone 15 Pro", "17.1.2", 1000, (40, 30)))
    assert read_image(png8).hints == Hints(make="Apple", model="iPhone 15 Pro", software="17.1.2", iso=1000.0,
                                           exif_width=40, exif_height=30, width=40, height=30)

    png16 = tmp_path / "p16.png"
    Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(png16, exif=exif("SONY", "ILCE-7M4", None, 6400))
    decoded = read_image(png16)
    assert decoded.bit_depth == 16 and decoded.hints.model == "ILCE-7M4" and decoded.hints.iso == 6400.0

    import tifffile

    tif = tmp_path / "t.tif"
    tifffile.imwrite(tif, np.zeros((20, 30, 3), np.uint8), photometric="rgb", software="darktable 4.6.1",
                     extratags=[(271, "s", 0, "NIKON CORPORATION", True), (272, "s", 0, "NIKON D850", True)])
    assert read_image(tif).hints == Hints(make="NIKON CORPORATION", model="NIKON D850", software="darktable 4.6.1",
                                          width=30, height=20)


def test_a_file_without_exif_has_empty_hints(tmp_path):
    path = tmp_path / "render.png"
    Image.new("RGB", (32, 24)).save(path)
    hints = read_image(path).hints
    assert hints == Hints(width=32, height=24) and not hints.has_exif


def test_damaged_exif_never_fails_the_decode(tmp_path):
    path = tmp_path / "bad.jpg"
    Image.new("RGB", (32, 24), (200, 10, 10)).save(path, exif=b"Exif\x00\x00garbage, not TIFF")
    decoded = read_image(path)
    assert decoded.pixels.shape == (24, 32, 3) and decoded.hints == Hints(width=32, height=24)
    # an Exif IFD pointer past the end; values of the wrong type
    broken = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x69\x87\x04\x00\x01\x00\x00\x00\xff\xff\x00\x00\x00\x00"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data"
        assert from_exif_bytes(broken[6:]).make is None

    class Hostile(dict):
        def get_ifd(self, tag):
            raise ValueError("damaged")

    assert from_exif(Hostile({0x010F: "Canon"})) == Hints()
    assert from_exif({0x010F: 5, 0x0110: b"EOS\x00\x00", 0x8827: (3200, 3200)}) == Hints(model="EOS", iso=3200.0)
    assert from_exif({0x010F: "  \x00"}) == Hints()


# --- end to end, with the shipped models ---------------------------------------------------------


def _photo() -> np.ndarray:
    """A 96 x 128 piece of the bundled sample, downsized: the estimator is unsure of it (p about 0.6)."""
    with Image.open(sample_photo()) as im:
        a = np.asarray(im.convert("RGB"), np.float32)[:192, :256] / 255
    return np.round(np.clip(imresize(a, 0.5), 0, 1) * 255).astype(np.uint8)


def _write(path: pathlib.Path, pixels: np.ndarray, ex: Image.Exif | None) -> pathlib.Path:
    Image.fromarray(pixels).save(path, quality=95, subsampling=0, **({"exif": ex} if ex is not None else {}))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same pixels as four JPEGs: no EXIF, a camera original at ISO 3200, a camera file exported
    at a quarter of its size, and an editor's export of the same size."""
    tmp = tmp_path_factory.mktemp("hints")
    pixels = _photo()
    h, w = pixels.shape[:2]
    out = {
        "plain": _write(tmp / "plain.jpg", pixels, None),
        "camera": _write(tmp / "camera.jpg", pixels, exif("Canon", "Canon EOS R6", "Firmware Version 1.8.1", 3200,
                                                          (w, h))),
        "resized": _write(tmp / "resized.jpg", pixels, exif("Canon", "Canon EOS R6", None, 3200, (4 * w, 4 * h))),
        "edited": _write(tmp / "edited.jpg", pixels, exif("Canon", "Canon EOS R6", "GIMP 2.10.36", 3200, (w, h))),
    }
    return {k: read_image(v) for k, v in out.items()}


def test_the_same_pixels_go_camera_with_camera_exif_and_clean_when_resized(files):
    base = files["plain"].pixels  # sRGB-encoded, as the JPEG stores them (``Decoded.transfer``)
    for decoded in files.values():
        assert decoded.transfer == "srgb"
        np.testing.assert_array_equal(decoded.pixels, base)  # the EXIF is all that differs
    logit = math.log((p := estimate(models.get_model(MODEL), base.copy(), "cpu", 1)) / (1 - p))
    assert 0.5 < p < 0.9  # unsure: the photo the hints are for

    reports = {k: run(d, BUILTIN["upscale"], OPTS).fidelity for k, d in files.items()}
    assert "input_kind_hint" not in reports["plain"] and "input_kind_hint" not in reports["edited"]
    assert reports["plain"]["input_kind_p"] == pytest.approx(p, abs=1e-4)
    assert reports["edited"]["input_kind_p"] == reports["plain"]["input_kind_p"]
    assert reports["camera"]["input_kind_hint"] == 3.0
    assert reports["camera"]["input_kind_p"] == pytest.approx(sigmoid(logit + 3.0), abs=1e-4)
    assert reports["camera"]["input_kind_camera"] == 1.0  # sure now: the camera way only
    assert reports["resized"]["input_kind_hint"] == -2.0
    assert reports["resized"]["input_kind_p"] == pytest.approx(sigmoid(logit - 2.0), abs=1e-4)
    assert reports["resized"]["input_kind_camera"] == 0.0  # the clean way only
    assert 0 < reports["plain"]["input_kind_camera"] < 1  # blended, as before
    assert reports["plain"]["input_kind_camera"] == pytest.approx(camera_weight(p), abs=1e-3)


def test_hints_false_ignores_the_exif(files):
    recipe = Recipe("no-hints", (Step(MODEL, {"hints": False}),), guard=False)
    plain = run(files["plain"], recipe, OPTS)
    for name in ("camera", "resized"):
        got = run(files[name], recipe, OPTS)
        assert "input_kind_hint" not in got.fidelity and got.fidelity == plain.fidelity
        np.testing.assert_array_equal(got.pixels, plain.pixels)


def test_a_told_kind_ignores_the_hints(files):
    recipe = Recipe("camera", (Step(MODEL, {"input": "camera"}),), guard=False)
    assert run(files["resized"], recipe, OPTS).fidelity == {"input_kind_camera": 1.0}


def test_a_raw_development_tells_the_upscaler_it_is_a_camera_file(files):
    from truepix.engine.develop import develop
    from truepix.io.raw import RawMosaic

    rgb = files["plain"].linear()  # a RAW's camera RGB is linear light
    mos = RawMosaic(path=pathlib.Path("x.dng"), mosaic=None, pattern="RGGB", wb=np.ones(3), cam_xyz=None, rgb=rgb,
                    iso=100.0)
    p = estimate(models.get_model(MODEL), linear_to_srgb(rgb.copy()), "cpu", 1)
    report = develop(dataclasses.replace(mos, rgb=rgb.copy()), Recipe("r", (Step(MODEL, {}),), guard=False),
                     OPTS).fidelity
    assert report["input_kind_hint"] == 3.0
    assert report["input_kind_p"] == pytest.approx(sigmoid(math.log(p / (1 - p)) + 3.0), abs=1e-4)
