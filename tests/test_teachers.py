"""The teacher manifest (models/data/teachers.toml) is well formed and the downscale is clean.

Nothing is downloaded here: the images themselves are built by ``python -m models.train.teachers``.
"""

import importlib.util
import re
import tomllib

import numpy as np
from PIL import Image

from conftest import REPO

MANIFEST = REPO / "models" / "data" / "teachers.toml"
ALLOWED = {"GPL-2+", "GPL-3+", "LGPL-2.1+", "LGPL-3", "LGPL-3+", "CC-BY-3.0", "CC-BY-4.0",
           "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "public-domain"}


def _teachers():
    spec = importlib.util.spec_from_file_location("teachers", REPO / "models" / "train" / "teachers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows():
    with open(MANIFEST, "rb") as f:
        return tomllib.load(f)["image"]


def test_manifest_rows_are_complete_and_licensed():
    rows = _rows()
    assert len(rows) >= 20
    for row in rows:
        for key in ("name", "package", "version", "path", "licence", "sha256", "size"):
            assert row.get(key), f"{row.get('name')}: no {key}"
        assert row["licence"] in ALLOWED, f"{row['name']}: licence {row['licence']}"
        assert re.fullmatch(r"[0-9a-f]{64}", row["sha256"]), row["name"]
        assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", row["package"]), row["package"]
        assert not row["path"].startswith("/") and ".." not in row["path"].split("/")
        assert re.fullmatch(r"[a-z0-9-]+", row["name"]), row["name"]  # a safe output file name
        assert len(row["size"]) == 2 and min(row["size"]) >= 2 * 256  # still >= 256 px once reduced


def test_manifest_has_no_duplicates():
    rows = _rows()
    for key in ("name", "sha256"):
        values = [r[key] for r in rows]
        assert len(values) == len(set(values)), f"duplicate {key}"
    paths = [(r["package"], r["path"]) for r in rows]
    assert len(paths) == len(set(paths)), "duplicate path"


def test_downscale_reduces_at_least_twice_and_fits():
    teachers = _teachers()
    rng = np.random.default_rng(0)
    for h, w in [(600, 800), (3391, 6028), (1277, 1920), (1530, 1306)]:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        out = teachers.downscale(img)
        k = teachers.reduction(w, h)
        assert k >= 2 and out.size == (w // k, h // k) and max(out.size) <= 1200
        assert out.mode == "RGB"


def test_downscale_averages_noise_away_and_keeps_the_mean():
    teachers = _teachers()
    rng = np.random.default_rng(1)
    x = np.clip(128 + rng.normal(0, 20, (1000, 1400, 3)), 0, 255).astype(np.uint8)
    out = np.asarray(teachers.downscale(Image.fromarray(x)), np.float32)
    assert abs(out.mean() - x.mean()) < 0.5
    assert out.std() < x.std() / 1.8  # a 2x2 (or larger) average halves white noise at least
