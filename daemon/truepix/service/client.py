"""A small client for the daemon's API (``truepix submit/status/pause/resume/retry/cancel/open``).

It finds the daemon the way the plugins do: the port from the state file the
running daemon writes (else the config's ``[server] port``), the token from
the token file in the user config folder.
"""

from __future__ import annotations

import json
import os
import pathlib
import urllib.error
import urllib.request
from typing import Any

from truepix.errors import TruepixError
from truepix.service import paths


class DaemonError(TruepixError):
    """The daemon is not running, refused the request, or answered an error."""


def running_daemon() -> dict[str, Any] | None:
    """The state file's {pid, port, ...} when that process is alive, else None."""
    try:
        state = json.loads(paths.state_path().read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return state


class Client:
    def __init__(self, port: int, token: str | None, timeout: float = 30.0) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.timeout = timeout

    @classmethod
    def discover(cls, config_port: int, timeout: float = 30.0) -> Client:
        state = running_daemon()
        port = int(state["port"]) if state else config_port
        try:
            token = paths.token_path().read_text(encoding="ascii").strip()
        except FileNotFoundError:
            token = None
        except OSError as e:
            raise DaemonError(f"{paths.token_path()}: cannot read the API token ({e.strerror or e})") from None
        return cls(port, token, timeout)

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        if self.token is None:
            raise DaemonError(f"no API token at {paths.token_path()}: the daemon has never run as this user; "
                              "start it with `truepix run`")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {e.code}"
            raise DaemonError(f"daemon refused {method} {path}: {message}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise DaemonError(f"the truepix daemon is not answering on {self.base} ({reason}); "
                              "start it with `truepix run`") from None

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self.request("POST", path, body if body is not None else {})


def open_page(client: Client, browser: bool = True) -> tuple[str, bool]:
    """The daemon's web page: a one-time sign-in URL (good for a minute, once), opened in the default
    browser when ``browser``.  Returns the URL and whether a browser took it.

    The browser is given a file of ours, ``open.html`` beside the state file (0600), that forwards it to
    the URL: a URL on the browser's command line would show the code to every user of this machine
    (``ps``) for as long as the browser runs, and one of them could sign in with it first (as Jupyter
    does for its token).  A used or expired code in that file is worth nothing."""
    url = client.post("/v1/web/code")["url"]
    if not browser:
        return url, False
    import html
    import webbrowser

    page = paths.state_path().with_name("open.html")
    paths.private_dir(page.parent)
    with paths.open_private(page, "w") as fh:
        fh.write(f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={html.escape(url)}">'
                 f'<title>truepix</title><a href="{html.escape(url)}">Open truepix</a>\n')
    try:
        return url, webbrowser.open(page.as_uri())
    except webbrowser.Error:
        return url, False


def absolute(path: str) -> str:
    """Client-side: the daemon needs absolute paths (it has no working folder of ours)."""
    return str(pathlib.Path(path).expanduser().absolute())
