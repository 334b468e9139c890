"""bench/agency.py at a tiny size: discovery, every discovered location's DAG through the CeleryExecutor in
both shapes, and the one JSON line docs/capacity.md is built from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # two Celery stacks, one after the other
ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = 2


def test_the_agency_bench_discovers_syncs_every_location_in_both_shapes_and_mints_once_per_location():
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "agency.py"), "--locations", str(LOCATIONS),
                           "--people", "2", "--parse-interval", "5", "--timeout", "400"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    [line] = done.stdout.strip().splitlines()  # ONE JSON line
    result = json.loads(line)
    assert result["locations"] == result["discovered"] == LOCATIONS and result["mode"] == "agency"
    assert result["runs_failed"] == 0 and result["runs_ok"] == 2 * LOCATIONS and result["rate_limited_429"] == 0
    assert 0 < result["location_tokens_minted"] <= 2 * LOCATIONS  # one stack per shape: one mint each at most
    steps, single = result["shapes"]["steps"], result["shapes"]["single_task"]
    assert steps["task_runs"] == 8 * LOCATIONS and single["task_runs"] == LOCATIONS
    for shape in (steps, single):
        assert shape["dags"] == LOCATIONS and shape["most_mints_of_a_location"] == 1  # none for the uninstalled
        assert shape["ghl_calls_per_run"] > 0 and shape["app_calls_per_run"] > 0
        assert shape["warehouse_rows_per_run"] > 0 and shape["cpu_s"]["celery-workers"] > 0
    # the same work in both shapes: the same calls and rows per run
    assert steps["app_calls_per_run"] == single["app_calls_per_run"]
    assert steps["warehouse_rows_per_run"] == single["warehouse_rows_per_run"]
