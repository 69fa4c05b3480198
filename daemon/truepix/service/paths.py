"""Where the daemon keeps its files (platformdirs; XDG variables are honoured on Linux).

- queue database:  ``<user data dir>/truepix/queue.sqlite3``
- API token:       ``<user config dir>/truepix/token`` (mode 0600)
- state file:      ``<user state dir>/truepix/daemon.json`` (pid, port of the running daemon)
- log file:        ``<user log dir>/truepix/truepix.log`` (rotating)

They hold photo paths and the job history, so on POSIX they are the user's alone: the folders
truepix creates are 0700 (its own ``truepix`` folders are tightened to 0700 when found looser),
the files 0600 (``private_dir``, ``private_file``).
"""

from __future__ import annotations

import os
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


def private_dir(folder: os.PathLike | str, *, tighten: bool = True) -> pathlib.Path:
    """``folder``, created with any missing parents as 0700 (the XDG rule for folders an app creates).

    ``tighten``: an existing ``folder`` readable or writable by others loses those bits (truepix's own
    folders); pass False for a folder the user may have chosen.  Mode bits are left alone off POSIX.
    """
    folder = pathlib.Path(folder)
    missing = []
    at = folder
    while not at.is_dir() and at != at.parent:
        missing.append(at)
        at = at.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=0o700)
        except FileExistsError:
            if not new.is_dir():
                raise
            continue
        if os.name == "posix":
            new.chmod(0o700)  # mkdir's mode passes through the umask
    if os.name == "posix" and tighten and folder not in missing:
        try:
            mode = folder.stat().st_mode & 0o777
            if mode & 0o077:
                folder.chmod(mode & 0o700)
        except OSError:  # not this user's folder: leave it as it is
            pass
    return folder


def private_file(path: os.PathLike | str, *, create: bool = False) -> None:
    """Make ``path`` 0600 on POSIX: created empty that way when absent and ``create``, tightened when
    it exists with bits for others.  Nothing happens off POSIX or for a missing file otherwise."""
    if os.name != "posix":
        return
    path = pathlib.Path(path)
    if create:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return
        except FileExistsError:
            pass
        except OSError:
            return  # the caller's own open reports it, in its words
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o600)
    except OSError:  # missing, or not this user's file: nothing to tighten here
        pass


def open_private(path: os.PathLike | str, mode: str = "w", encoding: str | None = "utf-8", errors: str | None = None):
    """``open(path, mode)`` for a text file that others must not read: created 0600 on POSIX (no
    window in which it is readable), an existing one tightened first."""
    path = pathlib.Path(path)
    if os.name != "posix":
        return open(path, mode, encoding=encoding, errors=errors)  # noqa: SIM115 -- the caller closes it
    private_file(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    flags |= getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    return os.fdopen(fd, mode, encoding=encoding, errors=errors)
