"""A task stuck on a silent server is stopped by its execution_timeout (the profile's
``timeouts.task_minutes``), run by Airflow: the run fails instead of holding the GHL location's
pool forever, and the report still says where it stopped."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, connection_env, run_dag

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # one DAG run, about two minutes


def test_a_task_waiting_on_a_server_that_never_answers_is_timed_out(airflow_home, tmp_path, ghl_sim, gymdesk_sim):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (ROOT / "include" / "profiles" / "gymdesk.yaml").read_text()
    (profiles / "gymdesk.yaml").write_text(text + "\ntimeouts: {task_minutes: 0.2, run_minutes: 30}\n")
    ghl_sim.admin.post("/faults", json={"timeouts": {"count": 50, "hold_s": 110}}).raise_for_status()
    home = tmp_path / "home"
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(home),
           "CRM_SYNC_PROFILES_DIR": str(profiles), "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}

    result = run_dag(airflow_home, "ghl_gymdesk", env, succeed=False)

    output = result.stdout + result.stderr
    assert "AirflowTaskTimeout" in output
    report = json.loads(next((home / "reports" / "ghl_gymdesk").glob("*.json")).read_text())
    assert report["failed_at"] == "extract" and report["sides"]["ghl"]["extracted"] == 0  # extract_ghl never finished
    assert report["failed_task"]["task_id"] == "extract_ghl" and "AirflowTaskTimeout" in report["failed_task"]["error"]
