"""The start-at-login files in packaging/: they parse, and they run `truepix run`."""

import configparser
import plistlib
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

PACKAGING = REPO / "packaging"
UNIT = PACKAGING / "systemd" / "truepix.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_runs_truepix_and_stops_gently():
    unit = _unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["ExecStart"].split() == ["%h/.local/bin/truepix", "run"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 30  # the daemon waits up to 30 s for the running job
    assert unit["Unit"]["After"] == "graphical-session.target"
    assert unit["Install"]["WantedBy"] == "default.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path):
    # verify also wants ExecStart's program to exist: point it at one that does, keep everything else.
    exe = shutil.which("true") or sys.executable
    copy = tmp_path / "truepix.service"
    copy.write_text(UNIT.read_text().replace("%h/.local/bin/truepix run", f"{exe} run"))
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    if proc.returncode and "Failed to initialize manager" in proc.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {proc.stderr.strip()}")
    complaints = [ln for ln in proc.stderr.splitlines() if "truepix.service" in ln]
    assert proc.returncode == 0 and not complaints, proc.stderr


def test_launchd_plist():
    plist = plistlib.loads((PACKAGING / "launchd" / "org.truepix.daemon.plist").read_bytes())
    assert plist["Label"] == "org.truepix.daemon"
    args = plist["ProgramArguments"]
    assert args[0].endswith("/truepix") and args[1:] == ["run"]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ExitTimeOut"] > 30
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert "/Library/Logs/truepix/" in plist[key]


def test_windows_scripts_start_truepix_run():
    cmd = (PACKAGING / "windows" / "truepix-startup.cmd").read_text()
    ps1 = (PACKAGING / "windows" / "install-startup.ps1").read_text()
    assert 'start "truepix" /min "%TRUEPIX_EXE%" run' in cmd
    assert "-m truepix.cli run" in cmd and "-m truepix.cli run" in ps1
    assert "GetFolderPath('Startup')" in ps1 and "$shortcut.Arguments = 'run'" in ps1
    for text in (cmd, ps1):
        assert "truepix" in text and " run" in text


def test_readme_covers_each():
    readme = (PACKAGING / "README.md").read_text()
    for needle in ("systemctl --user enable --now truepix", "launchctl bootstrap gui/", "install-startup.ps1"):
        assert needle in readme
