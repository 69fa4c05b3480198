"""config.toml: defaults without a file, the example file, and errors that name file, key and reason."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, photo_like
from truepix.cli import main
from truepix.config import ConfigError, load_config


def test_no_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUEPIX_CONFIG", str(tmp_path / "absent.toml"))
    cfg = load_config()
    assert cfg.engine.tile == 512 and cfg.engine.provider == "auto" and "upscale" in cfg.recipes


def test_example_config_is_valid_and_documents_every_engine_key():
    cfg = load_config(REPO / "config.example.toml")
    text = (REPO / "config.example.toml").read_text()
    for key in ("provider", "threads", "tile", "overlap"):
        assert f"\n{key} = " in text
    assert cfg.engine.tile == 512


@pytest.mark.parametrize("body,words", [
    ("[engine]\ntile = 'big'\n", "engine.tile: must be int"),
    ("[engine]\ntiles = 256\n", "engine.tiles: unknown key"),
    ("[engine]\ntile = 16\n", "engine.tile: must be at least 64"),
    ("[nonsense]\n", "unknown section(s) nonsense"),
    ("[recipes.big]\nsteps = 'upscale-x2'\n", "recipes.big"),
    ("[recipes.big]\nsteps = [{ model = 'upscale-x2' }]\nformat = 'gif'\n", "format must be one of"),
    ("engine = [", "not valid TOML"),
])
def test_errors_name_file_key_and_reason(tmp_path, body, words):
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_config_recipe_and_engine_used_by_process(tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[engine]\ntile = 64\n\n[recipes.web]\nsteps = [{ model = 'upscale-x2' }]\n"
                   "format = 'jpeg'\nsuffix = '-web'\n")
    src = tmp_path / "a.png"
    Image.fromarray(np.round(photo_like(40, 50) * 255).astype(np.uint8)).save(src)
    assert main(["--config", str(cfg), "process", "-q", str(src), "--recipe", "web"]) == 0
    assert Image.open(tmp_path / "a-web.jpg").size == (100, 80)
    assert main(["--config", str(tmp_path / "missing.toml"), "process", "-q", str(src)]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_config_path_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRUEPIX_CONFIG", str(tmp_path / "c.toml"))
    assert main(["config-path"]) == 0
    out = capsys.readouterr().out
    assert str(pathlib.Path(tmp_path / "c.toml")) in out and "absent" in out
