"""The Lightroom Classic plug-in (plugin_lua/truepix.lrplugin): its busted specs under lua5.1 with SDK stand-ins,
and end to end against a real ``truepix run`` with real HTTP (LuaSocket) and a real 16-bit TIFF; luacheck is clean
on all of plugin_lua."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import tifffile

from conftest import REPO, need_tools, photo_like
from daemon_proc import DaemonProc
from lua_specs import run_spec


def test_luacheck_is_clean():
    need_tools("luacheck")
    run = subprocess.run(["luacheck", "--no-color", "plugin_lua", "tests/darktable_real"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 warnings / 0 errors" in run.stdout


def test_specs_with_sdk_standins():
    run_spec("spec/lightroom_spec.lua", "lua5.1").assert_all_passed(at_least=34)


@pytest.mark.slow
def test_end_to_end_with_a_real_daemon(tmp_path):
    need_tools("busted", "lua5.1")
    run = subprocess.run(["lua5.1", "-e", "require('socket.http')"], capture_output=True, text=True)
    if run.returncode != 0:
        need_tools("lua-socket for lua5.1 (require 'socket.http' failed)")
    daemon = DaemonProc(tmp_path / "daemon", config="folders = []\n[engine]\ntile = 256\n").start()
    try:
        originals = tmp_path / "Pictures" / "shoot"
        originals.mkdir(parents=True)
        rendered = tmp_path / "render.tif"
        pixels = np.round(photo_like(48, 64, seed=3) * 65535).astype(np.uint16)
        tifffile.imwrite(rendered, pixels, photometric="rgb")
        result = tmp_path / "result.txt"
        env = {"TRUEPIX_E2E_PORT": str(daemon.port),
               "TRUEPIX_E2E_TOKEN_FILE": str(daemon.root / "config" / "truepix" / "token"),
               "TRUEPIX_E2E_TIFF": str(rendered), "TRUEPIX_E2E_ORIGINAL_DIR": str(originals),
               "TRUEPIX_E2E_RESULT": str(result)}
        run_spec("spec/lightroom_e2e_spec.lua", "lua5.1", env).assert_all_passed(at_least=5)
        enhanced = result.read_text()
        assert enhanced == str(originals / "IMG_2041-truepix-x2.tif")
        out = tifffile.imread(enhanced)
        assert out.shape == (96, 128, 3) and out.dtype == np.uint16
        # as a post-process action: the rendered 16-bit TIFF was replaced by the enhanced one, still 16-bit
        filtered = tifffile.imread(str(result) + ".filter.tif")
        assert filtered.shape == (96, 128, 3) and filtered.dtype == np.uint16
        # the original the plug-in was given is untouched, and the daemon saw exactly the jobs the spec made
        assert (tifffile.imread(originals / "IMG_2041.tif") == pixels).all()
        code, listing = daemon.request("GET", "/v1/jobs")
        states = sorted(j["state"] for j in listing["jobs"])
        assert code == 200 and states == ["done", "done", "failed"], listing
    finally:
        assert daemon.stop() == 0, daemon.output()
