"""`make chaos`, in small: SIGKILLed load tasks, dropped connections and 5xx answers mid-load, then
Airflow's retries and a later run; both sides must end up holding each expected record exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, airflow_env, processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_chaos_trials_find_no_duplicate_and_no_lost_record(tmp_path):
    env = airflow_env(Path("/nonexistent"))  # each lane sets its own Airflow home
    env.pop("AIRFLOW_HOME")
    # Seed 1: a kill before and a kill after a write, a dropped connection, then the lost answers to
    # two app task creates that were duplicated before load looked app children up on a resend.
    result = subprocess.run([sys.executable, "-m", "harness.chaos", "--trials", "4", "--seed", "1",
                             "--home", str(tmp_path / "chaos"), "--timeout", "840"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert lines[-1] == "4 trials, 0 duplicates, 0 lost"
    trials = [line for line in lines if line.startswith("trial ")]
    assert len(trials) == 4 and all("met=yes" in line for line in trials), lines
    assert {re.search(r"(kill_before|kill_after|drop|lost)", line).group(1) for line in trials} == \
        {"kill_before", "kill_after", "drop", "lost"}
    # every Airflow process a lane starts has its lane's CRM_SYNC_HOME
    assert not processes(f"CRM_SYNC_HOME={tmp_path / 'chaos'}/"), "the trials left processes running"

