"""The darktable script (plugin_lua/darktable/truepix.lua): its busted specs under lua5.4 with a stand-in darktable
and a fake curl, then end to end with real curl against a real ``truepix run`` and a real 16-bit TIFF."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from conftest import need_tools, photo_like
from daemon_proc import DaemonProc
from lua_specs import run_spec


def test_specs_with_a_standin_darktable():
    run_spec("spec/darktable_spec.lua", "lua5.4", None, "curl").assert_all_passed(at_least=18)


def test_end_to_end_spec_is_pending_without_a_daemon():
    run = run_spec("spec/darktable_e2e_spec.lua", "lua5.4", None, "curl")
    assert run.exit == 0 and len(run.pending) == 1 and not run.passed and not run.failed, run.output
    assert "TRUEPIX_E2E_PORT" in run.output


@pytest.mark.slow
def test_end_to_end_with_a_real_daemon(tmp_path):
    need_tools("busted", "lua5.4", "curl")
    daemon = DaemonProc(tmp_path / "daemon", config="folders = []\n[engine]\ntile = 256\n").start()
    try:
        originals = tmp_path / "Pictures" / "2024 shoot"  # a space on the way, as in real life
        originals.mkdir(parents=True)
        rendered = tmp_path / "render" / "DSC_0815.tif"  # what darktable would render for DSC_0815.NEF
        rendered.parent.mkdir()
        pixels = np.round(photo_like(48, 64, seed=5) * 65535).astype(np.uint16)
        tifffile.imwrite(rendered, pixels, photometric="rgb")
        env = {"TRUEPIX_E2E_PORT": str(daemon.port),
               "TRUEPIX_E2E_TOKEN_FILE": str(daemon.root / "config" / "truepix" / "token"),
               "TRUEPIX_E2E_TIFF": str(rendered), "TRUEPIX_E2E_ORIGINAL_DIR": str(originals)}
        run_spec("spec/darktable_e2e_spec.lua", "lua5.4", env, "curl").assert_all_passed(at_least=3)

        enhanced = originals / "DSC_0815-truepix-x2.tif"
        out = tifffile.imread(enhanced)
        assert out.shape == (2 * 48, 2 * 64, 3) and out.dtype == np.uint16
        assert sorted(p.name for p in originals.iterdir()) == ["DSC_0815-truepix-x2.tif"]
        # the daemon saw one job, for the file the script handed it, with the original's folder as output
        code, listing = daemon.request("GET", "/v1/jobs")
        assert code == 200 and [j["state"] for j in listing["jobs"]] == ["done"], listing
        assert listing["jobs"][0]["outputs"] == [str(enhanced)]
    finally:
        assert daemon.stop() == 0, daemon.output()
