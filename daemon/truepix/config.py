"""``config.toml`` -> frozen dataclasses.  Every error names the file, the key and the reason.

The file lives in the user config folder (``truepix config-path`` prints it);
no file at all means the defaults.  ``config.example.toml`` in the repository
lists every key with its default.
"""

from __future__ import annotations

import os
import pathlib
import tomllib
from dataclasses import dataclass, field

from truepix.engine.pipeline import EngineOptions
from truepix.errors import TruepixError
from truepix.recipes import BUILTIN, Recipe, from_mapping


class ConfigError(TruepixError):
    """The config file is unreadable or has a wrong key or value."""


@dataclass(frozen=True)
class Config:
    engine: EngineOptions = EngineOptions()
    recipes: dict[str, Recipe] = field(default_factory=lambda: dict(BUILTIN))
    path: pathlib.Path | None = None


def default_config_path() -> pathlib.Path:
    """``$TRUEPIX_CONFIG`` or ``<user config dir>/truepix/config.toml`` (platformdirs)."""
    env = os.environ.get("TRUEPIX_CONFIG")
    if env:
        return pathlib.Path(env)
    from platformdirs import user_config_path

    return user_config_path("truepix", appauthor=False) / "config.toml"


_ENGINE_KEYS = {"provider": str, "threads": int, "tile": int, "overlap": int}


def _engine(table: object, where: str) -> EngineOptions:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [engine] must be a table")
    values = {}
    for key, value in table.items():
        kind = _ENGINE_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"{where}: engine.{key}: unknown key; known: {', '.join(_ENGINE_KEYS)}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: engine.{key}: must be {kind.__name__}, not {value!r}")
        values[key] = value
    opts = EngineOptions(**values)
    if opts.tile < 64:
        raise ConfigError(f"{where}: engine.tile: must be at least 64 pixels, not {opts.tile}")
    if opts.threads < 0:
        raise ConfigError(f"{where}: engine.threads: must be 0 (auto) or more, not {opts.threads}")
    return opts


def load_config(path: pathlib.Path | None = None) -> Config:
    """Read the config at ``path`` (default: ``default_config_path()``); absent = defaults.

    A path given explicitly must exist.
    """
    explicit = path is not None
    path = path or default_config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: config file not found") from None
        return Config()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    # [server] and [[folders]] are the daemon's (truepix run): accepted here, not read yet.
    known = {"engine", "recipes", "server", "folders"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    engine = _engine(data.get("engine", {}), str(path))
    recipes = dict(BUILTIN)
    table = data.get("recipes", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [recipes] must be a table of [recipes.NAME] tables")
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: recipes.{name}: must be a table")
        try:
            recipes[name] = from_mapping(name, {"name": name, **spec}, f"{path}: recipes.{name}")
        except TruepixError as e:
            raise ConfigError(str(e)) from None
    return Config(engine=engine, recipes=recipes, path=path)
