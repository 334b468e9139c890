"""The fast lane killed mid-write (its task SIGKILLed while a write to the other side is held), with the
batch run started beside it: the retry and the next runs finish, every edit reaches the other side once,
and every webhook event is marked done."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, airflow_env, processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_killing_the_fast_lane_mid_write_beside_a_batch_run_loses_nothing_and_duplicates_nothing(tmp_path):
    env = airflow_env(Path("/nonexistent"))  # the lane sets its own Airflow home
    env.pop("AIRFLOW_HOME")
    result = subprocess.run([sys.executable, "-m", "harness.fast_chaos", "--trials", "2", "--seed", "7",
                             "--home", str(tmp_path / "chaos")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert lines[-1] == "2 trials, 0 duplicates, 0 lost"
    trials = [line for line in lines if line.startswith("trial ")]
    assert len(trials) == 2 and all("met=yes killed=yes" in line and "pending=0" in line for line in trials), lines
    assert {"kill_before", "kill_after"} == {w for line in trials for w in ("kill_before", "kill_after") if w in line}
    assert not processes(f"CRM_SYNC_HOME={tmp_path / 'chaos'}/"), "the trials left processes running"
