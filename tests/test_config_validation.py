"""Every config and recipe value is validated when it is loaded (issue 16, items 4 and 8): one line
naming the file, the key and the reason, instead of corrupt outputs, failing jobs, hangs or
tracebacks later."""

import json
import os
import pathlib
import re

import pytest

from conftest import REPO
from truepix.config import ConfigError, load_config
from truepix.errors import RecipeError
from truepix.recipes import from_mapping, load_recipe


def _config_error(tmp_path: pathlib.Path, body: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message.strip(), message
    return message


# -- [engine] ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body,words", [
    # a negative overlap corrupted every output; 1000 failed every job with a traceback
    ("[engine]\noverlap = -8\n", "engine.overlap: must be 0..128 pixels"),
    ("[engine]\noverlap = 1000\n", "engine.overlap: must be 0..128 pixels"),
    ("[engine]\ntile = 64\noverlap = 17\n", "engine.overlap: must be 0..16 pixels"),
    ("[engine]\ntile = 100000\n", "engine.tile: must be at most 4096"),
    ("[engine]\nthreads = 5000\n", "engine.threads: must be at most"),
    ("[engine]\nthreads = -1\n", "engine.threads: must be 0 (auto) or more"),
    ("[engine]\nprovider = 'cdua'\n", "engine.provider: must be auto, cpu, cuda"),
    ("[engine]\nmemory_limit_mb = -1\n", "engine.memory_limit_mb: must be 0 (automatic)"),
    ("[engine]\nmemory_limit_mb = 1e3\n", "engine.memory_limit_mb: must be int"),
    ("[engine]\nmemory_limit_mb = true\n", "engine.memory_limit_mb: must be int"),
    ("[engine]\ntile = inf\n", "engine.tile: must be int"),
])
def test_engine_values_out_of_range(tmp_path, body, words):
    assert words in _config_error(tmp_path, body)


def test_engine_limits_that_are_fine(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[engine]\ntile = 4096\noverlap = 0\nthreads = 4\nprovider = 'CPUExecutionProvider'\n"
                    "memory_limit_mb = 2048\n")
    engine = load_config(path).engine
    assert (engine.tile, engine.overlap, engine.threads, engine.memory_limit_mb) == (4096, 0, 4, 2048)
    path.write_text(f"[engine]\ntile = 64\noverlap = 16\nthreads = {4 * (os.cpu_count() or 64)}\n")
    assert load_config(path).engine.overlap == 16


def test_memory_limit_defaults_to_automatic(tmp_path):
    from truepix.engine.pipeline import EngineOptions

    assert EngineOptions().memory_limit_mb == 0
    assert load_config(REPO / "config.example.toml").engine.memory_limit_mb == 0
    text = (REPO / "config.example.toml").read_text()
    assert "three quarters of the machine's RAM" in text


# -- [server] and [[folders]]: finite seconds ------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "3601", "1e9"])
def test_grace_must_be_finite_seconds(tmp_path, value):
    # grace = inf crashed on SIGTERM
    message = _config_error(tmp_path, f"[server]\ngrace = {value}\n")
    assert "server.grace: must be a finite number of seconds from 0 to 3600" in message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.5", "86400"])
def test_settle_must_be_finite_seconds(tmp_path, value):
    # settle = nan/inf: a hot folder that never fires
    message = _config_error(tmp_path, f"[[folders]]\npath = '{tmp_path}'\nsettle = {value}\n")
    assert "folders[0].settle: must be a finite number of seconds from 0 to 3600" in message


def test_finite_seconds_are_kept_as_floats(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f"[server]\ngrace = 0\n\n[[folders]]\npath = '{tmp_path}'\nsettle = 3600\n")
    cfg = load_config(path)
    assert cfg.server.grace == 0.0 and isinstance(cfg.server.grace, float)
    assert cfg.hot_folders()[0].settle == 3600.0 and isinstance(cfg.hot_folders()[0].settle, float)


def test_folder_path_that_is_a_file(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"x")
    message = _config_error(tmp_path, f"[[folders]]\npath = '{photo}'\n")
    assert f"folders[0].path: {photo}: is a file, not a folder" in message


def test_missing_folder_is_left_to_the_watcher(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f"[[folders]]\npath = '{tmp_path / 'later'}'\n")
    assert load_config(path).hot_folders()[0].path == tmp_path / "later"


def test_folder_path_with_nul(tmp_path):
    assert "folders[0].path: must not contain a NUL" in _config_error(tmp_path, '[[folders]]\npath = "/x\\u0000y"\n')


# -- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "x = " + "[" * 3000 + "]" * 3000 + "\n",
    "[recipes.deep]\nsteps = [{ model = 'upscale-x2', p = " + "{ a = " * 3000 + "1" + " }" * 3000 + " }]\n",
])
def test_deeply_nested_toml_is_one_line_not_a_recursion_error(tmp_path, body):
    assert "not valid TOML: nested too deeply" in _config_error(tmp_path, body)


def test_deeply_nested_recipe_file(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("steps = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(RecipeError, match=re.escape(f"{path}: not valid TOML: nested too deeply")):
        load_recipe(str(path))


def test_deeply_nested_recipe_mapping_from_json():
    # nested below the recursion limit for json.loads, above what a recipe can hold
    data = json.loads('{"steps": [{"model": "upscale-x2", "p": ' + "[" * 500 + "]" * 500 + "}]}")
    with pytest.raises(RecipeError, match=re.escape("recipe: steps[0].p: nested too deeply")):
        from_mapping("inline", data, "recipe")
    with pytest.raises(RecipeError, match=re.escape("recipe: steps[0].p: nested too deeply")):
        from_mapping("inline", {"steps": [{"model": "upscale-x2", "p": _nested(100_000)}]}, "recipe")


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_moderate_nesting_in_a_config_is_still_read(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[recipes.r]\nsteps = [{ model = 'lens', frame = [0, 0, 100, 200] }]\n")
    assert load_config(path).recipes["r"].steps[0].params == {"frame": [0, 0, 100, 200]}


# -- recipes: models and their parameters ------------------------------------------------------


def test_unknown_model_in_a_config_recipe(tmp_path):
    message = _config_error(tmp_path, "[recipes.big]\nsteps = [{ model = 'upscale-x2' }, { model = 'upscale-x9' }]\n")
    assert "recipes.big: steps[1].model: unknown model 'upscale-x9'; installed: " in message
    assert "upscale-x2-adaptive" in message and "demosaic" in message


def test_unknown_model_in_a_recipe_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("steps = [{ model = 'upscale-x9' }]\n")
    with pytest.raises(RecipeError, match=re.escape(f"{path}: steps[0].model: unknown model 'upscale-x9'")):
        load_recipe(str(path))


@pytest.mark.parametrize("step,words", [
    ("{ model = 'denoise', strenght = 0.5 }",
     "steps[0].strenght: unknown parameter 'strenght' for model denoise; it takes: noise (a number of 0..255 "
     "code values), strength (a number from 0 (off) to 1 (full))"),
    ("{ model = 'upscale-x2-adaptive', grian = 0.5 }",
     "steps[0].grian: unknown parameter 'grian' for model upscale-x2-adaptive; it takes: input"),
    ("{ model = 'upscale-x2', strength = 0.5 }",
     "steps[0].strength: unknown parameter 'strength' for model upscale-x2; it takes none"),
    ("{ model = 'demosaic', noise = 3 }",
     "steps[0].noise: unknown parameter 'noise' for model demosaic; it takes: strength"),
    ("{ model = 'lens', strength = 1 }",
     "steps[0].strength: unknown parameter 'strength' for model lens; it takes: frame"),
    ("{ model = 'upscale-x2-adaptive', _kind = 1.0 }",
     "steps[0]._kind: unknown parameter '_kind' for model upscale-x2-adaptive"),
    ("{ model = 'denoise', strength = 2 }", "steps[0].strength: must be a number from 0 (off) to 1 (full), not 2"),
    ("{ model = 'denoise', strength = nan }", "steps[0].strength: must be a number from 0 (off) to 1 (full), not nan"),
    ("{ model = 'denoise', noise = inf }", "steps[0].noise: must be a number of 0..255 code values, not inf"),
    ("{ model = 'denoise', noise = true }", "steps[0].noise: must be a number of 0..255 code values, not True"),
    ("{ model = 'upscale-x2-adaptive', input = 'cam' }", "steps[0].input: must be \"auto\", \"camera\" or \"clean\""),
    ("{ model = 'upscale-x2-adaptive', grain = -0.1 }", "steps[0].grain: must be a number from 0 (removed) to 1"),
    ("{ model = 'demosaic', strength = 1.5 }", "steps[0].strength: must be a number from 0 (demosaic only) to 1"),
    ("{ model = 'lens', frame = [0, 0, 100] }", "steps[0].frame: must be [top, left, height, width]"),
    ("{ model = 'lens', frame = [0, 0, 0, 100] }", "steps[0].frame: must be [top, left, height, width]"),
])
def test_step_parameters_are_checked_against_the_model(tmp_path, step, words):
    message = _config_error(tmp_path, f"[recipes.r]\nsteps = [{step}]\n")
    assert f"recipes.r: {words}" in message


def test_step_parameters_the_models_take(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[recipes.r]\nsteps = [{ model = 'demosaic', strength = 0.6 }, { model = 'lens', "
                    "frame = [10, 20, 3000, 4000.5] }, { model = 'denoise', noise = 12, strength = 0 }, "
                    "{ model = 'upscale-x2-adaptive', input = 'camera', grain = 1 }]\n")
    steps = load_config(path).recipes["r"].steps
    assert [s.params for s in steps] == [{"strength": 0.6}, {"frame": [10, 20, 3000, 4000.5]},
                                         {"noise": 12, "strength": 0}, {"input": "camera", "grain": 1}]


def test_every_toml_example_in_the_recipe_docs_loads():
    text = (REPO / "docs" / "recipes.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    import tomllib

    for block in blocks:
        from_mapping("doc", tomllib.loads(block), "docs/recipes.md", require_installed=True)


def test_parameters_of_a_model_not_installed_are_left_to_the_api():
    # the API names missing models itself (test_api: "unknown model(s) upscale-x9")
    recipe = from_mapping("inline", {"steps": [{"model": "upscale-x9", "whatever": 1}]}, "recipe")
    assert recipe.steps[0].model == "upscale-x9"


def test_the_api_refuses_misspelt_parameters_with_the_same_parser():
    from types import SimpleNamespace

    from truepix.service.api import Api, ApiError

    api = Api(SimpleNamespace(recipes=lambda: {}))
    with pytest.raises(ApiError) as err:
        api._recipe({"steps": [{"model": "denoise", "strenght": 0.5}]})
    assert err.value.status == 400
    assert "recipe: steps[0].strenght: unknown parameter 'strenght' for model denoise" in err.value.message
    with pytest.raises(ApiError) as err:
        api._recipe({"steps": [{"model": "upscale-x2"}], "output": "/tmp/out/../../etc"})
    assert "recipe: output: '/tmp/out/../../etc': '..' is not allowed" in err.value.message
    with pytest.raises(ApiError) as err:
        api._recipe({"steps": [{"model": "upscale-x2"}], "suffix": "-a\x00b"})
    assert "recipe: suffix must be a plain string" in err.value.message


# -- recipes: output and suffix (item 8) ---------------------------------------------------------


@pytest.mark.parametrize("output,words", [
    ("/tmp/out/../../etc", "output: '/tmp/out/../../etc': '..' is not allowed in a path"),
    ("~/../../etc", "output: '~/../../etc': '..' is not allowed in a path"),
    ("/tmp/a\\u0000b", "output: must not contain a NUL character"),
    ("out", "output must be an absolute folder path"),
])
def test_recipe_output_folder(tmp_path, output, words):
    message = _config_error(tmp_path, f'[recipes.r]\nsteps = [{{ model = "upscale-x2" }}]\noutput = "{output}"\n')
    assert f"recipes.r: {words}" in message


def test_recipe_output_that_is_a_file(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("")
    message = _config_error(tmp_path, f"[recipes.r]\nsteps = [{{ model = 'upscale-x2' }}]\noutput = '{blocker}'\n")
    assert f"recipes.r: output: {blocker}: exists and is not a folder" in message


@pytest.mark.parametrize("suffix,words", [
    ('"-a\\u0000b"', "suffix must be a plain string without path separators, control characters"),
    ('"-a\\nb"', "suffix must be a plain string without path separators, control characters"),
    ('"-a\\tb"', "suffix must be a plain string without path separators, control characters"),
    ('"-a\\u007fb"', "suffix must be a plain string without path separators, control characters"),
    ('"-a/b"', "suffix must be a plain string without path separators"),
    ('"-a:b"', "suffix must be a plain string without path separators"),
    ('"' + "x" * 300 + '"', "suffix must be at most 64 characters, not 300"),
    ("3", "suffix must be a plain string"),
])
def test_recipe_suffix(tmp_path, suffix, words):
    message = _config_error(tmp_path, f"[recipes.r]\nsteps = [{{ model = 'upscale-x2' }}]\nsuffix = {suffix}\n")
    assert f"recipes.r: {words}" in message


@pytest.mark.parametrize("suffix", ["", "-truepix", "_2x web", "-" + "x" * 63, "-é"])
def test_recipe_suffixes_that_are_fine(suffix):
    assert from_mapping("r", {"steps": [{"model": "upscale-x2"}], "suffix": suffix}, "recipe").suffix == suffix


def test_recipe_name_with_a_control_character():
    with pytest.raises(RecipeError, match=re.escape("recipe: name must be at most 100 characters without control")):
        from_mapping("r", {"name": "a\nb", "steps": [{"model": "upscale-x2"}]}, "recipe")


def test_recipe_name_with_a_newline_in_the_config_is_one_line(tmp_path):
    message = _config_error(tmp_path, '[recipes."a\\nb"]\nsteps = [{ model = "upscale-x2" }]\n')
    assert "recipes.'a\\nb': name must be at most 100 characters without control characters" in message
