"""A real ``truepix run`` in a child process, with its own HOME and XDG folders, for the service tests."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request


class DaemonProc:
    """``truepix run --no-tray --port 0`` with every user folder under ``root``."""

    def __init__(self, root: pathlib.Path, config: str | None = None, extra_env: dict | None = None) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(self.home), "XDG_CONFIG_HOME": str(root / "config"),
                    "XDG_DATA_HOME": str(root / "data"), "XDG_STATE_HOME": str(root / "state"),
                    "XDG_CACHE_HOME": str(root / "cache"), "TRUEPIX_CONFIG": str(root / "config.toml"),
                    "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.env.pop("DISPLAY", None)
        self.env.pop("WAYLAND_DISPLAY", None)
        if config is not None:
            (root / "config.toml").write_text(config)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log = root / "daemon-output.log"

    @property
    def state_file(self) -> pathlib.Path:
        return self.root / "state" / "truepix" / "daemon.json"

    @property
    def token(self) -> str:
        return (self.root / "config" / "truepix" / "token").read_text().strip()

    @property
    def log_file(self) -> pathlib.Path:
        return self.root / "state" / "truepix" / "log" / "truepix.log"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``truepix ARGS`` as this daemon's user (same HOME/XDG)."""
        return subprocess.run([sys.executable, "-m", "truepix.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, *args: str, wait: bool = True) -> DaemonProc:
        self.state_file.unlink(missing_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 -- the child writes to it for its whole life
        self.proc = subprocess.Popen([sys.executable, "-m", "truepix.cli", "run", "--no-tray", "--port", "0", *args],
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        if wait:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
                try:
                    state = json.loads(self.state_file.read_text())
                    if state["pid"] == self.proc.pid:
                        self.port = state["port"]
                        return self
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.05)
            raise AssertionError(f"daemon did not start:\n{self.output()}")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def request(self, method: str, path: str, body=None, *, token: str | None = "default", raw: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if token == "default":
            token = self.token
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def wait_jobs(self, ids, timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = [self.request("GET", f"/v1/jobs/{i}")[1] for i in ids]
            if all(j["state"] in ("done", "failed", "cancelled") for j in jobs):
                return jobs
            time.sleep(0.1)
        raise AssertionError(f"jobs {ids} not finished in {timeout} s:\n{self.output()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
