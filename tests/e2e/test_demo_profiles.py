"""`make demo PROFILE=<app>` for every other built-in profile, each in its own home (``--home``), so
either test worker may run them beside the tests that share .demo/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, airflow_env, processes

pytestmark = [pytest.mark.e2e]
LAST_LINE = re.compile(r"^demo: profile=(\S+) writes=(\d+) rerun_writes=(\d+) quarantined=(\d+) report=(\S+)$")


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["gymflow", "mygadgetrepairs", "gist", "generic", "csv_import"])
def test_make_demo_runs_every_built_in_profile(profile, tmp_path):
    """`make demo PROFILE=<app>`: the backfill writes, the rerun writes nothing, and the bad rows
    the demo seeds in every app's format are quarantined, not copied."""
    home = tmp_path / "demo"
    env = airflow_env(Path("/nonexistent"))
    env.pop("AIRFLOW_HOME")
    result = subprocess.run([sys.executable, "-m", "harness.demo", "--profile", profile, "--home", str(home)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    match = LAST_LINE.match(result.stdout.strip().splitlines()[-1])
    assert match, result.stdout[-2000:]
    dag_id, writes, rerun_writes, quarantined, report = match.groups()
    assert dag_id == f"ghl_{profile}"
    assert int(writes) > 0 and int(rerun_writes) == 0
    assert int(quarantined) >= 4  # the demo's bad email, bad phone, missing id and bad GHL phone at least
    assert Path(report).is_relative_to(home)
    assert processes(f"AIRFLOW_HOME={home}", in_arguments=str(home)) == {}, "the demo left processes running"


def test_demo_refuses_to_empty_a_folder_it_did_not_make(tmp_path):
    """``--home`` names a folder the demo empties first: one holding anything but an earlier demo is refused."""
    (tmp_path / "notes.txt").write_text("mine")
    result = subprocess.run([sys.executable, "-m", "harness.demo", "--home", str(tmp_path)], cwd=ROOT,
                            env=airflow_env(Path("/nonexistent")), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is not empty and holds no earlier demo" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
