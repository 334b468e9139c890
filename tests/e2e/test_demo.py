"""`make demo`, as a new user runs it: a backfill through Airflow's scheduler, then a rerun that writes nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, airflow_env, processes

pytestmark = [pytest.mark.e2e]
LAST_LINE = re.compile(r"^demo: profile=(\S+) writes=(\d+) rerun_writes=(\d+) quarantined=(\d+) report=(\S+)$")


def demo_processes() -> dict[int, str]:
    """The demo's processes, whatever else runs on the machine: its simulators name the .demo folder
    in their arguments, its Airflow processes have it as AIRFLOW_HOME."""
    demo = str(ROOT / ".demo")
    return processes(f"AIRFLOW_HOME={demo}", in_arguments=demo)


def test_make_demo_backfills_three_days_then_reruns_with_zero_writes():
    env = airflow_env(Path("/nonexistent"))  # the demo sets its own Airflow home; keep the test's out of it
    env.pop("AIRFLOW_HOME")
    before = demo_processes()  # an Airflow the user runs on the demo's home is not the demo's leftover
    result = subprocess.run([sys.executable, "-m", "harness.demo"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    dag_id, writes, rerun_writes, quarantined, report = match.groups()
    assert dag_id == "ghl_gymdesk"
    assert int(writes) > 0 and int(rerun_writes) == 0
    assert int(quarantined) == 7  # 4 bad rows + 3 records of an ambiguous family email
    assert Path(report).is_file() and "broken.email@@example" in Path(report).read_text()
    assert sum(line.startswith("backfill run:") for line in lines) == 3
    windows = {}
    for path in Path(report).parent.glob("*.json"):
        summary = json.loads(path.read_text())
        windows[summary["run_id"]] = {side["window"].split(" ")[0] for side in summary["sides"].values()}
    backfills = sorted(run for run in windows if run.startswith("backfill__"))
    assert [windows[run] for run in backfills] == [{"initial"}, {"interval"}, {"interval"}]
    assert [modes for run, modes in windows.items() if run.startswith("manual__")] == [{"watermark"}]
    assert "  ghl  extracted=" in result.stdout and "api_calls=" in result.stdout
    left = {pid: cmd for pid, cmd in demo_processes().items() if pid not in before}
    assert left == {}, "the demo left processes running"
