"""A short soak (tests/soak.py): a real daemon killed with SIGKILL at random moments, three rounds.

Not in the default suite (25-45 s of two cores): set ``TRUEPIX_SOAK=1`` to run it
(CI does).  The full soak, whose figures docs/reliability.md gives, is
``python tests/soak.py --rounds 30 --seed 1``.
"""

import os

import pytest

from soak import Soak, summary

pytestmark = pytest.mark.skipif(os.environ.get("TRUEPIX_SOAK") != "1",
                                reason="the soak runs with TRUEPIX_SOAK=1 (python tests/soak.py for the full one)")


def test_soak_three_rounds_of_kill_9_lose_duplicate_and_leave_nothing(tmp_path):
    soak = Soak(tmp_path, rounds=3, seed=1, log=lambda s: None)
    result = soak.run()
    report = summary(result) + f"\ndaemon log: {soak.d.log_file}"
    assert result["ok"], report
    counts = result["counts"]
    assert counts["lost"] == counts["duplicated"] == counts["partial"] == counts["temp"] == 0, report
    assert counts["changed"] == counts["stray"] == 0, report
    assert result["kills"] >= 3 and result["photos"] >= 3, report
    assert result["health_at_end"]["status"] == "ok", report
