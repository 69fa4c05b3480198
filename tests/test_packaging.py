"""packaging/: the start-at-login files parse and run `truepix run`; plugins.py builds the Lightroom zip and installs
the darktable script."""

import configparser
import os
import plistlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, need_tools

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
    for needle in ("systemctl --user enable --now truepix", "launchctl bootstrap gui/", "install-startup.ps1",
                   "plugins.py lightroom", "plugins.py darktable"):
        assert needle in readme


def _plugins_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PACKAGING / "plugins.py"), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_lightroom_zip_holds_the_plugin_folder(tmp_path):
    run = _plugins_script("lightroom", "--out", str(tmp_path / "dist"))
    assert run.returncode == 0, run.stderr
    archive = tmp_path / "dist" / "truepix.lrplugin.zip"
    assert f"built {archive}" in run.stdout and "Plug-in Manager > Add" in run.stdout
    with zipfile.ZipFile(archive) as z:
        names = sorted(z.namelist())
        assert z.testzip() is None
        z.extractall(tmp_path / "unzipped")
    expected = sorted(f"truepix.lrplugin/{p.name}" for p in (REPO / "plugin_lua" / "truepix.lrplugin").glob("*.lua"))
    assert names == expected and "truepix.lrplugin/Info.lua" in names
    # Info.lua names files that are in the zip, and they are byte-identical to the source
    folder = tmp_path / "unzipped" / "truepix.lrplugin"
    info = (folder / "Info.lua").read_text()
    for name in re.findall(r"'(\w+\.lua)'", info):
        assert (folder / name).read_bytes() == (REPO / "plugin_lua" / "truepix.lrplugin" / name).read_bytes()
    assert not [p for p in (tmp_path / "dist").iterdir() if p.name != "truepix.lrplugin.zip"]  # no temp file left


def test_darktable_install_into_a_config_folder(tmp_path):
    config = tmp_path / "darktable"
    config.mkdir()
    (config / "luarc").write_text('require "tools/script_manager"\n')
    for _ in range(2):  # a second install updates the files and does not repeat the luarc line
        run = _plugins_script("darktable", "--config-dir", str(config))
        assert run.returncode == 0, run.stderr
    contrib = config / "lua" / "contrib"
    assert (contrib / "truepix.lua").read_bytes() == (REPO / "plugin_lua" / "darktable" / "truepix.lua").read_bytes()
    assert (contrib / "truepix_json.lua").read_bytes() == (
        REPO / "plugin_lua" / "truepix.lrplugin" / "json.lua").read_bytes()
    luarc = (config / "luarc").read_text().splitlines()
    assert luarc == ['require "tools/script_manager"', 'require "contrib/truepix"']
    assert "already loads it" in run.stdout
    run = _plugins_script("darktable", "--config-dir", str(tmp_path / "fresh"), "--no-luarc")
    assert run.returncode == 0 and not (tmp_path / "fresh" / "luarc").exists()


def test_darktable_default_config_folder_follows_xdg(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    run = _plugins_script("darktable", env=env)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "xdg" / "darktable" / "lua" / "contrib" / "truepix.lua").is_file()


def test_installed_darktable_script_loads_its_json_helper(tmp_path):
    """Installed alone (no repository beside it), the script finds truepix_json.lua next to itself and registers."""
    need_tools("lua5.4")
    config = tmp_path / "darktable"
    assert _plugins_script("darktable", "--config-dir", str(config), "--no-luarc").returncode == 0
    standin = REPO / "plugin_lua" / "spec" / "support" / "darktable_standin.lua"
    script = config / "lua" / "contrib" / "truepix.lua"
    lua = (f"local standin = dofile({str(standin)!r}); standin.install{{}}; "
           f"local data = dofile({str(script)!r}); "
           "assert(standin.storages.truepix, 'no storage'); "
           "print(data.internals.json.encode({ok = true}))")
    run = subprocess.run(["lua5.4", "-e", lua], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith('{"ok":true}')
