"""What an output says about itself: its name (which recipe made it), its record (which content, which
recipe: a second run skips it), its print resolution (scaled with the pixels, the print size kept)."""

import json
import os
import pathlib
import struct

import numpy as np
import pyexiv2
import pytest
import tifffile
from PIL import Image

from conftest import photo_like
from truepix.cli import main
from truepix.errors import RecipeError
from truepix.recipes import BUILTIN, OWN_SUFFIXES, load_recipe, own_outputs


def _run(args, capsys):
    code = main(["process", "-q", "--json", *map(str, args)])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _pixels(h=48, w=64, seed=0) -> np.ndarray:
    return np.round(photo_like(h, w, seed) * 255).astype(np.uint8)


def _names(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- names ---------------------------------------------------------------------------------------------

def test_each_builtin_recipe_names_its_outputs():
    assert {n: r.suffix for n, r in BUILTIN.items()} == {
        "upscale": "-truepix-x2", "upscale-x4": "-truepix-x4",
        "upscale-camera": "-truepix-x2-camera", "upscale-x4-camera": "-truepix-x4-camera",
        "denoise": "-truepix-denoise", "lens": "-truepix-lens",
        "develop": "-truepix-develop", "develop-tiff": "-truepix-develop",  # a .dng and a .tif: apart
    }
    assert "-truepix" in OWN_SUFFIXES  # what every recipe wrote before: still truepix's own


def test_a_recipe_file_sets_or_derives_its_suffix(tmp_path):
    plain = tmp_path / "raw-2x.toml"
    plain.write_text('steps = [ { model = "demosaic" }, { model = "upscale-x2" } ]\n')
    assert load_recipe(str(plain)).suffix == "-truepix-develop-x2"
    assert load_recipe(model="upscale-x4-bicubic").suffix == "-truepix-x4-bicubic"
    named = tmp_path / "web.toml"
    named.write_text('steps = [ { model = "upscale-x2" } ]\nsuffix = "_2x web"\n')
    assert load_recipe(str(named)).suffix == "_2x web"
    bad = tmp_path / "bad.toml"
    bad.write_text('steps = [ { model = "upscale-x2" } ]\nsuffix = "-x2/web"\n')
    with pytest.raises(RecipeError, match=r"bad\.toml: suffix must be a plain string"):
        load_recipe(str(bad))


def test_own_outputs_are_told_by_name_old_and_new():
    own = own_outputs(("-web",))
    for stem in ("IMG_1-truepix", "IMG_1-truepix-3", "IMG_1-truepix-x2", "IMG_1-TRUEPIX-X4-CAMERA-12",
                 "IMG_1-truepix-develop", "IMG_1-web"):
        assert own.search(stem), stem
    for stem in ("IMG_1", "IMG_1-truepixel", "IMG_1-truepix-x", "truepix-x2-holiday"):
        assert not own.search(stem), stem


# -- already done ----------------------------------------------------------------------------------------

def test_a_second_run_skips_what_is_done_until_content_or_recipe_change(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_pixels(seed=1)).save(photos / "IMG_0001.jpg", quality=92)
    Image.fromarray(_pixels(seed=2)).save(photos / "IMG_0002.png")
    recipe = tmp_path / "sharp.toml"
    recipe.write_text('steps = [ { model = "upscale-x2-adaptive", input = "clean" } ]\n')

    code, first, err = _run([photos, "--recipe", recipe], capsys)
    assert code == 0 and first["done"] == 2, err
    outputs = ["IMG_0001-truepix-x2.tif", "IMG_0002-truepix-x2.tif"]
    assert _names(photos) == sorted(["IMG_0001.jpg", "IMG_0002.png", *outputs])
    with pyexiv2.Image(str(photos / outputs[0])) as m:
        xmp = m.read_xmp()
    assert len(xmp["Xmp.truepix.SourceSHA256"]) == 64 and len(xmp["Xmp.truepix.RecipeSHA256"]) == 64

    # again: nothing to do, nothing written; the outputs in the folder are not taken for inputs
    code, again, err = _run([photos, "--recipe", recipe], capsys)
    assert code == 0 and (again["done"], again["skipped"]) == (0, 2)
    assert [r["status"] for r in again["results"]] == ["skipped", "skipped"]
    assert again["results"][0]["output"] == str(photos / outputs[0])
    assert "IMG_0001.jpg: already enhanced with recipe sharp (IMG_0001-truepix-x2.tif); --force to redo" in err
    assert _names(photos) == sorted(["IMG_0001.jpg", "IMG_0002.png", *outputs])

    # touched, same bytes: still done
    os.utime(photos / "IMG_0001.jpg", (1e9, 1e9))
    code, touched, _ = _run([photos, "--recipe", recipe], capsys)
    assert (touched["done"], touched["skipped"]) == (0, 2)

    # --force: redone under new names, nothing overwritten
    code, forced, _ = _run([photos, "--recipe", recipe, "--force"], capsys)
    assert forced["done"] == 2 and (photos / "IMG_0001-truepix-x2-1.tif").exists()
    assert (photos / "IMG_0002-truepix-x2-1.tif").exists()

    # a new content for one original: that one only
    Image.fromarray(_pixels(seed=3)).save(photos / "IMG_0002.png")
    code, changed, _ = _run([photos, "--recipe", recipe], capsys)
    assert (changed["done"], changed["skipped"]) == (1, 1)
    assert (photos / "IMG_0002-truepix-x2-2.tif").exists()

    # the recipe's parameter changed (same name, same file): both again
    recipe.write_text('steps = [ { model = "upscale-x2-adaptive", input = "camera" } ]\n')
    code, other, _ = _run([photos, "--recipe", recipe], capsys)
    assert (other["done"], other["skipped"]) == (2, 0)


def test_the_output_folder_is_looked_at_too(tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_pixels()).save(src)
    out = tmp_path / "out"
    assert _run([src, "--out", out, "--recipe", "denoise"], capsys)[1]["done"] == 1
    code, again, _ = _run([src, "--out", out, "--recipe", "denoise"], capsys)
    assert again["skipped"] == 1 and _names(out) == ["a-truepix-denoise.tif"]
    # another recipe is another piece of work, under its own name
    assert _run([src, "--out", out], capsys)[1]["done"] == 1
    assert _names(out) == ["a-truepix-denoise.tif", "a-truepix-x2.tif"]


def test_an_output_without_the_hashes_is_not_taken_for_done(tmp_path, capsys):
    """An output an earlier truepix wrote (no SourceSHA256 in its record) says nothing of its content."""
    src = tmp_path / "a.png"
    Image.fromarray(_pixels()).save(src)
    assert _run([src], capsys)[1]["done"] == 1
    with pyexiv2.Image(str(tmp_path / "a-truepix-x2.tif")) as m:
        m.modify_xmp({"Xmp.truepix.SourceSHA256": None, "Xmp.truepix.RecipeSHA256": None})
    code, again, _ = _run([src], capsys)
    assert again["done"] == 1 and (tmp_path / "a-truepix-x2-1.tif").exists()


def test_the_ray_engine_and_the_daemon_keep_the_same_rule(tmp_path):
    """The Ray engine's per-file step (``rayengine.run_file``) and the daemon's (``process.finish``, which
    reads the original's hash itself) write the same record, and skip by it the same way; a forced Ray
    run redoes an older output but never one written since it began (a task retried after publishing)."""
    import time

    from truepix.engine.pipeline import EngineOptions
    from truepix.process import decode_source, finish, process_file
    from truepix.rayengine import Job, run_file

    src = tmp_path / "a.png"
    Image.fromarray(_pixels()).save(src)
    recipe, options = BUILTIN["upscale"], EngineOptions(threads=1)
    made = finish(src, decode_source(src, recipe=recipe), recipe, options=options)  # as the worker does
    assert made.status == "done"
    again = process_file(src, recipe, options=options)
    assert again.status == "skipped" and again.output == made.output
    job = Job(recipe, None, options)
    assert run_file(src, job).status == "skipped"
    hour_ago = time.time() - 3600
    os.utime(made.output, (hour_ago, hour_ago))  # made in an earlier run
    forced = run_file(src, Job(recipe, None, options, force=True, started=time.time() - 60))
    assert forced.status == "done" and forced.output.endswith("a-truepix-x2-1.tif")
    retried = run_file(src, Job(recipe, None, options, force=True, started=time.time() - 60))
    assert retried.status == "skipped" and retried.output == forced.output
    assert _names(tmp_path) == ["a-truepix-x2-1.tif", "a-truepix-x2.tif", "a.png"]


# -- print resolution ------------------------------------------------------------------------------------

def _original(path: pathlib.Path, fmt: str, dpi: float | None, alpha: bool = False) -> pathlib.Path:
    px = _pixels()
    if alpha:
        px = np.concatenate([px, np.full(px.shape[:2] + (1,), 200, np.uint8)], axis=2)
    im = Image.fromarray(px)
    kwargs = {"dpi": (dpi, dpi)} if dpi else {}
    if fmt == "tiff":
        res = {"resolution": (dpi, dpi), "resolutionunit": "INCH"} if dpi else {}
        tifffile.imwrite(path, px, photometric="rgb", extrasamples=("unassalpha",) if alpha else None,
                         metadata=None, **res)
    else:
        im.save(path, quality=92, **kwargs) if fmt == "jpeg" else im.save(path, **kwargs)
    return path


def _resolution(path: pathlib.Path):
    """(x, y, unit) as the file itself states it (TIFF tags, PNG pHYs, JPEG JFIF), and EXIF's."""
    if path.suffix == ".tif":
        with tifffile.TiffFile(path) as t:
            tags = t.pages.first.tags
            x, y = (tags[c].value[0] / tags[c].value[1] for c in (282, 283))
            own = (round(x, 2), round(y, 2), int(tags[296].value)) if int(tags[296].value) != 1 else None
    elif path.suffix == ".png":
        data = path.read_bytes()
        at = data.find(b"pHYs")
        own = None
        if at > 0:
            px, py, unit = struct.unpack(">IIB", data[at + 4:at + 13])
            own = (round(px * 0.0254, 2), round(py * 0.0254, 2), 2) if unit == 1 else None
    else:
        with Image.open(path) as im:
            unit, density = im.info.get("jfif_unit"), im.info.get("jfif_density")
        own = (float(density[0]), float(density[1]), unit + 1) if unit in (1, 2) else None
    with pyexiv2.Image(str(path)) as m:
        exif = m.read_exif()
    exif_res = None  # a TIFF's EXIF is its own tags: 1/1, unit 1 ("no absolute unit") states none
    if "Exif.Image.XResolution" in exif and exif.get("Exif.Image.ResolutionUnit") != "1":
        n, d = map(int, exif["Exif.Image.XResolution"].split("/"))
        exif_res = (round(n / d, 2), int(exif.get("Exif.Image.ResolutionUnit", 2)))
    return own, exif_res


@pytest.mark.parametrize("fmt,alpha", [("tiff", False), ("tiff", True), ("png", False), ("png", True),
                                       ("jpeg", False)])
def test_the_print_size_is_kept_in_every_format(tmp_path, capsys, fmt, alpha):
    """x2: 300 -> 600 ppi, so the print is as large as the original's; a recipe that does not resize
    keeps 300.  TIFF and PNG without alpha are written band by band (io/stream.py), with alpha whole."""
    src = _original(tmp_path / {"tiff": "in.tif", "png": "in.png", "jpeg": "in.jpg"}[fmt], fmt, 300, alpha)
    code, res, err = _run([src, "--format", fmt], capsys)
    assert code == 0, err
    out = pathlib.Path(res["results"][0]["output"])
    assert _resolution(out) == ((600.0, 600.0, 2), (600.0, 2))
    w, h = Image.open(out).size
    assert (w / 600, h / 600) == (64 / 300, 48 / 300)  # the print size, in inches, is the original's
    assert "print size kept: 300 → 600 ppi" in res["results"][0]["notes"]
    with pyexiv2.Image(str(out)) as m:
        assert m.read_xmp()["Xmp.truepix.PrintSize"] == "print size kept: 300 → 600 ppi"

    code, same, err = _run([src, "--format", fmt, "--recipe", "denoise"], capsys)
    out = pathlib.Path(same["results"][0]["output"])
    assert _resolution(out) == ((300.0, 300.0, 2), (300.0, 2))
    assert not [n for n in same["results"][0]["notes"] if n.startswith("print size")]


@pytest.mark.parametrize("fmt", ["tiff", "png", "jpeg"])
def test_an_original_without_a_resolution_gives_none(tmp_path, capsys, fmt):
    src = _original(tmp_path / {"tiff": "in.tif", "png": "in.png", "jpeg": "in.jpg"}[fmt], fmt, None)
    for out_fmt in ("tiff", "png", "jpeg"):
        code, res, err = _run([src, "--format", out_fmt, "--force"], capsys)
        assert code == 0, err
        assert _resolution(pathlib.Path(res["results"][0]["output"])) == (None, None), out_fmt


def test_a_centimetre_resolution_keeps_its_unit(tmp_path, capsys):
    src = tmp_path / "scan.tif"
    tifffile.imwrite(src, _pixels(), photometric="rgb", resolution=(120, 120), resolutionunit="CENTIMETER",
                     metadata=None)
    code, res, _ = _run([src], capsys)
    assert _resolution(pathlib.Path(res["results"][0]["output"])) == ((240.0, 240.0, 3), (240.0, 3))
    assert "print size kept: 120 → 240 px/cm" in res["results"][0]["notes"]
    code, res, _ = _run([src, "--format", "jpeg"], capsys)
    assert _resolution(pathlib.Path(res["results"][0]["output"])) == ((240.0, 240.0, 3), (240.0, 3))
