"""Run a busted spec file of plugin_lua/ and read its TAP report (busted's JSON handler writes nothing once a test
fails, so TAP it is: it names each failure with its message)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from conftest import REPO, need_tools

PLUGIN_LUA = REPO / "plugin_lua"
_RESULT = re.compile(r"^(not ok|ok) \d+ - (# SKIP )?(.*)$")


@dataclass
class SpecRun:
    exit: int
    passed: list[str]
    failed: list[str]
    pending: list[str]
    output: str

    def assert_all_passed(self, at_least: int) -> None:
        assert self.exit == 0 and not self.failed and not self.pending, self.output
        assert len(self.passed) >= at_least, f"{len(self.passed)} passed, expected >= {at_least}:\n{self.output}"


def run_spec(spec: str, lua: str, env: dict | None = None, *tools: str) -> SpecRun:
    """``busted --lua=LUA SPEC`` in plugin_lua/, with ``env`` over ours minus any TRUEPIX_E2E_* variable."""
    need_tools("busted", lua, *tools)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRUEPIX_E2E_")}
    run = subprocess.run(["busted", f"--lua={lua}", "--output=TAP", spec], cwd=PLUGIN_LUA,
                         env={**base, **(env or {})}, capture_output=True, text=True, timeout=300)
    passed, failed, pending = [], [], []
    for line in run.stdout.splitlines():
        m = _RESULT.match(line)
        if m:
            (pending if m.group(2) else passed if m.group(1) == "ok" else failed).append(m.group(3))
    output = run.stdout + run.stderr
    if not (passed or failed or pending):
        raise AssertionError(f"busted ran no test (exit {run.returncode}):\n{output}")
    return SpecRun(run.returncode, passed, failed, pending, output)
