"""Where the daemon keeps its files (platformdirs; XDG variables are honoured on Linux).

- queue database:  ``<user data dir>/truepix/queue.sqlite3``
- API token:       ``<user config dir>/truepix/token`` (mode 0600)
- state file:      ``<user state dir>/truepix/daemon.json`` (pid, port of the running daemon)
- log file:        ``<user log dir>/truepix/truepix.log`` (rotating)
"""

from __future__ import annotations

import pathlib

from platformdirs import user_config_path, user_data_path, user_log_path, user_state_path

APP = "truepix"


def data_dir() -> pathlib.Path:
    return user_data_path(APP, appauthor=False)


def queue_path() -> pathlib.Path:
    return data_dir() / "queue.sqlite3"


def token_path() -> pathlib.Path:
    return user_config_path(APP, appauthor=False) / "token"


def state_path() -> pathlib.Path:
    return user_state_path(APP, appauthor=False) / "daemon.json"


def log_path() -> pathlib.Path:
    return user_log_path(APP, appauthor=False) / "truepix.log"
