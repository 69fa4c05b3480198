"""docs/protocol.md matches the daemon: every curl example runs against a live daemon, in order, and its
answer has the shape (keys, nesting, error status, job state) the page shows."""

import json
import re
import shutil
import subprocess

import pytest

from conftest import REPO, wait_until
from daemon_proc import DaemonProc

DOC = REPO / "docs" / "protocol.md"


def examples() -> list[tuple[str, object]]:
    """(shell command, expected JSON) for each ```sh block starting with curl and the ```json block after it."""
    blocks = re.findall(r"```(sh|json)\n(.*?)```", DOC.read_text(), re.S)
    pairs = []
    for (kind, text), (next_kind, answer) in zip(blocks, blocks[1:], strict=False):
        if kind == "sh" and text.lstrip().startswith("curl"):
            assert next_kind == "json", f"no answer shown after: {text}"
            pairs.append((text.strip(), json.loads(answer)))
    return pairs


def same_shape(got, want, where="$"):
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: expected an object, got {got!r}"
        assert set(got) == set(want), f"{where}: keys {sorted(got)} != documented {sorted(want)}"
        for key, value in want.items():
            if key in ("state", "status", "paused") and not isinstance(value, dict | list):
                assert got[key] == value, f"{where}.{key}: {got[key]!r} != documented {value!r}"
            elif value is not None and got[key] is not None:
                same_shape(got[key], value, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{where}: expected an array, got {got!r}"
        if want and got:
            same_shape(got[0], want[0], f"{where}[0]")
    else:
        assert type(got) is type(want) or {type(got), type(want)} <= {int, float}, f"{where}: {got!r} vs {want!r}"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_every_documented_example_against_a_live_daemon(tmp_path):
    pairs = examples()
    assert len(pairs) >= 12
    photo = tmp_path / "IMG_0042.jpg"
    shutil.copy(REPO / "samples" / "colorchart.jpg", photo)
    hot = tmp_path / "hot"
    hot.mkdir()
    d = DaemonProc(tmp_path / "d", config=f'[[folders]]\npath = "{hot}"\n').start()
    env = {**d.env, "PORT": str(d.port), "TOKEN": d.token, "PHOTO": str(photo), "OUT": str(tmp_path / "out")}
    try:
        for command, want in pairs:
            if "/v1/jobs/$JOB" in command and " -X POST" not in command and "cancel" not in command:
                # "Follow a job": poll as the page says, until it is done.
                wait_until(lambda c=command: json.loads(_run(c, env))["state"] == "done", timeout=60)
            got = json.loads(_run(command, env))
            same_shape(got, want)
            if "-d" in command and "/v1/jobs" in command and "jobs" in got and "JOB" not in env:
                env["JOB"] = str(got["jobs"][0]["id"])
        assert d.alive()
    finally:
        d.stop()
    assert (tmp_path / "IMG_0042-truepix-x2.tif").exists() and (tmp_path / "out" / "IMG_0042-web.jpg").exists()


def _run(command: str, env: dict) -> str:
    r = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{command}\n{r.stderr}"
    return r.stdout
