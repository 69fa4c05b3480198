"""``config.toml`` -> frozen dataclasses.  Every error names the file, the key and the reason.

The file lives in the user config folder (``truepix config-path`` prints it);
no file at all means the defaults: the built-in recipes, the API on
127.0.0.1:48620 and one hot folder, ``<Pictures>/truepix``, with the
``upscale`` recipe.  ``config.example.toml`` in the repository lists every key
with its default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import tomllib
from dataclasses import dataclass, field

from truepix.engine.pipeline import EngineOptions
from truepix.errors import TruepixError
from truepix.recipes import BUILTIN, Recipe, expand_path, from_mapping


class ConfigError(TruepixError):
    """The config file is unreadable or has a wrong key or value."""


DEFAULT_PORT = 48620


@dataclass(frozen=True)
class ServerOptions:
    """The daemon's localhost API and its lifecycle (``[server]``)."""

    port: int = DEFAULT_PORT      # on 127.0.0.1 only; 0 = any free port (written to the state file)
    grace: float = 30.0           # seconds SIGTERM/SIGINT waits for the running job before requeueing it
    tray: str = "auto"            # auto | gtk | appindicator | xorg | win32 | darwin | none


@dataclass(frozen=True)
class FolderSpec:
    """One hot folder (``[[folders]]``): files that settle in ``path`` are queued with ``recipe``."""

    path: pathlib.Path
    recipe: str = "upscale"
    recursive: bool = False
    ignore: tuple[str, ...] = ()  # fnmatch patterns on the file name, on top of the built-in rules
    settle: float = 2.0           # seconds a file's size and mtime must stay unchanged
    polling: bool = False         # poll instead of OS events (network drives)


def default_hot_folder() -> pathlib.Path:
    """``<user Pictures folder>/truepix`` (platformdirs; ~/Pictures when there is none)."""
    from platformdirs import user_pictures_path

    return user_pictures_path() / "truepix"


APP_ENGINE = EngineOptions(precision="auto")  # the app's [engine] defaults: the library's, but precision auto


@dataclass(frozen=True)
class Config:
    engine: EngineOptions = APP_ENGINE
    recipes: dict[str, Recipe] = field(default_factory=lambda: dict(BUILTIN))
    path: pathlib.Path | None = None
    server: ServerOptions = ServerOptions()
    folders: tuple[FolderSpec, ...] | None = None  # None: no [[folders]] key, the default hot folder

    def hot_folders(self) -> tuple[FolderSpec, ...]:
        """The configured folders, or the default one when the config names none."""
        if self.folders is None:
            return (FolderSpec(default_hot_folder()),)
        return self.folders


def default_config_path() -> pathlib.Path:
    """``$TRUEPIX_CONFIG`` or ``<user config dir>/truepix/config.toml`` (platformdirs)."""
    env = os.environ.get("TRUEPIX_CONFIG")
    if env:
        return pathlib.Path(env)
    from platformdirs import user_config_path

    return user_config_path("truepix", appauthor=False) / "config.toml"


_ENGINE_KEYS = {"provider": str, "threads": int, "tile": int, "overlap": int, "memory_limit_mb": int,
                "precision": str}
TILE_RANGE = (64, 4096)                 # input pixels
MAX_MEMORY_MB = 64 << 20                # 64 TiB: anything above is a typo
MAX_SECONDS = 3600.0                    # server.grace, folders.settle


def max_threads() -> int:
    """Four threads per core: more only makes ONNX Runtime's spinning threads fight (5000 hangs)."""
    cores = os.cpu_count()
    return 4 * cores if cores else 256


def _provider_ok(value: str) -> bool:
    from truepix.engine.models import PROVIDER_ALIASES

    return value == "auto" or value.lower() in PROVIDER_ALIASES or value.endswith("ExecutionProvider")


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
    opts = dataclasses.replace(APP_ENGINE, **values)
    if not _provider_ok(opts.provider):
        from truepix.engine.models import PROVIDER_ALIASES

        raise ConfigError(f"{where}: engine.provider: must be auto, {', '.join(PROVIDER_ALIASES)} or an ONNX Runtime "
                          f"provider name (...ExecutionProvider), not {opts.provider!r}")
    from truepix.engine.models import PRECISIONS

    if opts.precision not in PRECISIONS:
        raise ConfigError(f"{where}: engine.precision: must be {', '.join(PRECISIONS)}, not {opts.precision!r}")
    lo, hi = TILE_RANGE
    if opts.tile < lo:
        raise ConfigError(f"{where}: engine.tile: must be at least {lo} pixels, not {opts.tile}")
    if opts.tile > hi:
        raise ConfigError(f"{where}: engine.tile: must be at most {hi} pixels, not {opts.tile}")
    if not 0 <= opts.overlap <= opts.tile // 4:
        raise ConfigError(f"{where}: engine.overlap: must be 0..{opts.tile // 4} pixels (at most a quarter of "
                          f"engine.tile = {opts.tile}), not {opts.overlap}")
    if opts.threads < 0:
        raise ConfigError(f"{where}: engine.threads: must be 0 (auto) or more, not {opts.threads}")
    if opts.threads > max_threads():
        raise ConfigError(f"{where}: engine.threads: must be at most {max_threads()} (four per core on this machine; "
                          f"0 = one per core), not {opts.threads}")
    if not 0 <= opts.memory_limit_mb <= MAX_MEMORY_MB:
        raise ConfigError(f"{where}: engine.memory_limit_mb: must be 0 (automatic) to {MAX_MEMORY_MB} megabytes, "
                          f"not {opts.memory_limit_mb}")
    return opts


def _seconds(values: dict, key: str, name: str, where: str) -> None:
    """``values[key]``, when given, must be a finite number of seconds in 0..MAX_SECONDS (made a float)."""
    if key not in values:
        return
    value = values[key]
    if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
        raise ConfigError(f"{where}: {name}.{key}: must be a finite number of seconds from 0 to {MAX_SECONDS:g}, "
                          f"not {value!r}")
    values[key] = float(value)


_SERVER_KEYS = {"port": int, "grace": (int, float), "tray": str}
TRAY_BACKENDS = ("auto", "gtk", "appindicator", "xorg", "win32", "darwin", "none")


def _check_table(table: object, name: str, kinds: dict, where: str) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {name} must be a table")
    for key, value in table.items():
        kind = kinds.get(key)
        if kind is None:
            raise ConfigError(f"{where}: {name}.{key}: unknown key; known: {', '.join(kinds)}")
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            want = " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
            raise ConfigError(f"{where}: {name}.{key}: must be {want}, not {value!r}")
    return table


def _server(table: object, where: str) -> ServerOptions:
    values = dict(_check_table(table, "server", _SERVER_KEYS, where))
    if not 0 <= values.get("port", DEFAULT_PORT) <= 65535:
        raise ConfigError(f"{where}: server.port: must be 1..65535 (or 0 for any free port), not {values['port']}")
    _seconds(values, "grace", "server", where)
    if values.get("tray", "auto") not in TRAY_BACKENDS:
        raise ConfigError(f"{where}: server.tray: must be one of {', '.join(TRAY_BACKENDS)}, not {values['tray']!r}")
    return ServerOptions(**values)


def _not_a_folder(path: pathlib.Path) -> str | None:
    """Why an existing ``path`` cannot be watched, or None.  A missing folder is the watcher's to
    report (it may be created later; app.py creates truepix's own); a file never becomes one."""
    try:
        if not path.exists() or path.is_dir():
            return None
        return "is a file, not a folder" if path.is_file() else "exists but is not a folder"
    except OSError:  # an unreadable parent: the watcher says so
        return None


_FOLDER_KEYS = {"path": str, "recipe": str, "recursive": bool, "ignore": list, "settle": (int, float),
                "polling": bool}


def _folders(items: object, recipes: dict[str, Recipe], where: str) -> tuple[FolderSpec, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: folders: must be an array of [[folders]] tables")
    specs = []
    for i, table in enumerate(items):
        name = f"folders[{i}]"
        values = dict(_check_table(table, name, _FOLDER_KEYS, where))
        if "path" not in values or not values["path"].strip():
            raise ConfigError(f"{where}: {name}.path: missing; every [[folders]] entry needs a folder path")
        path = expand_path(values.pop("path"), where, f"{name}.path", ConfigError)
        if not path.is_absolute():
            raise ConfigError(f"{where}: {name}.path: must be absolute (or start with ~), not {str(path)!r}")
        problem = _not_a_folder(path)
        if problem:
            raise ConfigError(f"{where}: {name}.path: {path}: {problem}")
        recipe = values.get("recipe", "upscale")
        if recipe not in recipes:
            raise ConfigError(f"{where}: {name}.recipe: unknown recipe {recipe!r}; known: {', '.join(recipes)}")
        ignore = values.pop("ignore", [])
        if not all(isinstance(p, str) for p in ignore):
            raise ConfigError(f"{where}: {name}.ignore: must be a list of file-name patterns (strings)")
        _seconds(values, "settle", name, where)
        specs.append(FolderSpec(path=path, ignore=tuple(ignore), **values))
    return tuple(specs)


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
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
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
        label = name if name.isprintable() else repr(name)  # a quoted TOML key may hold a newline
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: recipes.{label}: must be a table")
        try:
            recipes[name] = from_mapping(name, {"name": name, **spec}, f"{path}: recipes.{label}",
                                         require_installed=True)
        except TruepixError as e:
            raise ConfigError(str(e)) from None
    server = _server(data.get("server", {}), str(path))
    folders = _folders(data["folders"], recipes, str(path)) if "folders" in data else None
    return Config(engine=engine, recipes=recipes, path=path, server=server, folders=folders)
