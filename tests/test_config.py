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


def test_example_config_is_valid_and_documents_every_key_with_its_default():
    import dataclasses

    from truepix.config import Config, FolderSpec, ServerOptions, default_hot_folder
    from truepix.engine.pipeline import EngineOptions
    from truepix.recipes import Recipe

    cfg = load_config(REPO / "config.example.toml")
    text = (REPO / "config.example.toml").read_text()
    for cls in (ServerOptions, EngineOptions, FolderSpec):
        for f in dataclasses.fields(cls):
            assert f"\n{f.name} = " in text, f"config.example.toml does not document {cls.__name__}.{f.name}"
    for f in dataclasses.fields(Recipe):
        assert f.name == "name" or f"\n{f.name} = " in text, f.name
    defaults = Config()
    assert cfg.engine == defaults.engine and cfg.server == defaults.server
    assert cfg.hot_folders() == (FolderSpec(default_hot_folder()),)  # the example's folder is the default one
    assert cfg.recipes["upscale-jpeg"].format == "jpeg" and cfg.recipes["upscale-jpeg"].output is None


@pytest.mark.parametrize("body,words", [
    ("[engine]\ntile = 'big'\n", "engine.tile: must be int"),
    ("[engine]\ntiles = 256\n", "engine.tiles: unknown key"),
    ("[engine]\ntile = 16\n", "engine.tile: must be at least 64"),
    ("[nonsense]\n", "unknown section(s) nonsense"),
    ("[recipes.big]\nsteps = 'upscale-x2'\n", "recipes.big"),
    ("[recipes.big]\nsteps = [{ model = 'upscale-x2' }]\nformat = 'gif'\n", "format must be one of"),
    ("engine = [", "not valid TOML"),
    ("[server]\nport = 70000\n", "server.port: must be 1..65535"),
    ("[server]\nhost = '0.0.0.0'\n", "server.host: unknown key"),
    ("[server]\ntray = 'kde'\n", "server.tray: must be one of"),
    ("[[folders]]\nrecipe = 'upscale'\n", "folders[0].path: missing"),
    ("[[folders]]\npath = 'rel/dir'\n", "folders[0].path: must be absolute"),
    ("[[folders]]\npath = '/x'\nrecipe = 'nope'\n", "folders[0].recipe: unknown recipe 'nope'"),
    ("[[folders]]\npath = '/x'\nsettle = 'slow'\n", "folders[0].settle: must be int or float"),
    ("[[folders]]\npath = '/x'\nignore = [1]\n", "folders[0].ignore: must be a list of file-name patterns"),
    ("[[folders]]\npath = '/x'\nrecursive = 1\n", "folders[0].recursive: must be bool"),
    ("folders = {path = '/x'}\n", "folders: must be an array"),
    ("[recipes.big]\nsteps = [{ model = 'upscale-x2' }]\nbits = 12\n", "bits must be 8 or 16"),
    ("[recipes.big]\nsteps = [{ model = 'upscale-x2' }]\noutput = 'out'\n", "output must be an absolute folder"),
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
    captured = capsys.readouterr()
    # The path alone on stdout, so `cp config.example.toml "$(truepix config-path)"` works; the note on stderr.
    assert captured.out == f"{tmp_path / 'c.toml'}\n"
    assert "absent" in captured.err


def test_config_path_is_usable_in_a_shell(tmp_path):
    """What config.example.toml tells users to do, run for real in a shell."""
    import os
    import shutil
    import subprocess
    import sys

    cfg = tmp_path / "sub dir" / "config.toml"
    cfg.parent.mkdir()
    env = {**os.environ, "TRUEPIX_CONFIG": str(cfg)}
    example = pathlib.Path(__file__).resolve().parents[1] / "config.example.toml"
    truepix = shutil.which("truepix") or f"{sys.executable} -m truepix.cli"
    subprocess.run(f'cp "{example}" "$({truepix} config-path)"', shell=True, check=True, env=env,
                   stderr=subprocess.DEVNULL)
    assert cfg.read_bytes() == example.read_bytes()
    assert sorted(p.name for p in cfg.parent.iterdir()) == ["config.toml"]


def test_config_after_the_sub_command(tmp_path, capsys):
    """`truepix config-path --config FILE` (and `truepix run --config FILE`) as users type it."""
    assert main(["config-path", "--config", str(tmp_path / "a.toml")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'a.toml'}\n"
    assert main(["--config", str(tmp_path / "b.toml"), "config-path"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'b.toml'}\n"
    from truepix.cliargs import build_parser

    args = build_parser().parse_args(["run", "--config", str(tmp_path / "c.toml"), "--no-tray"])
    assert args.config == tmp_path / "c.toml" and args.no_tray


def test_daemon_defaults_and_folders_off(tmp_path, monkeypatch):
    from truepix.config import DEFAULT_PORT, default_hot_folder

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_PICTURES_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("TRUEPIX_CONFIG", str(tmp_path / "absent.toml"))
    cfg = load_config()
    assert cfg.server.port == DEFAULT_PORT and cfg.server.grace == 30.0 and cfg.server.tray == "auto"
    (spec,) = cfg.hot_folders()
    assert spec.path == default_hot_folder() == tmp_path / "Pictures" / "truepix" and spec.recipe == "upscale"
    off = tmp_path / "off.toml"
    off.write_text("folders = []\n")
    assert load_config(off).hot_folders() == ()


def test_recipe_bits_and_output_folder_reach_the_file(tmp_path):
    import tifffile

    cfg = tmp_path / "config.toml"
    out = tmp_path / "elsewhere"
    cfg.write_text(f"[recipes.small]\nsteps = [{{ model = 'upscale-x2' }}]\nbits = 8\noutput = '{out}'\n")
    src = tmp_path / "a.png"
    Image.fromarray(np.round(photo_like(30, 40) * 255).astype(np.uint8)).save(src)
    assert main(["--config", str(cfg), "process", str(src), "--recipe", "small", "-q"]) == 0
    px = tifffile.imread(out / "a-truepix-x2.tif")
    assert px.dtype == np.uint8 and px.shape == (60, 80, 3)
