"""Alerts from DAG runs by Airflow, to a local receiver: writes GHL refuses for good send one alert;
a data-quality breach sends one (and the failed run's own callback stays quiet about it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.conftest import connection_env, run_dag
from tests.contract.ghl_sim import webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # two `airflow dags test` runs


def test_refused_writes_and_a_quality_breach_each_send_one_alert_with_counts_and_the_report_link(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim, demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", ghl_seed["contacts"])
    gymdesk_sim.seed("members", desk_seed["members"])
    ghl_sim.admin.post("/faults", json={"writes": {"statuses": [422, 422]}}).raise_for_status()
    with webhook_receiver() as receiver:
        env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
               "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
               "AIRFLOW__API__BASE_URL": "http://airflow.example.com:8080",
               "AIRFLOW_CONN_CRM_SYNC_ALERTS": json.dumps({"conn_type": "http", "host": receiver.url})}
        run_dag(airflow_home, "ghl_gymdesk", env)  # succeeds: two rows failed for good, the rest were sent
        alerts = [json.loads(body) for _, body in receiver.received]
        assert [a["kind"] for a in alerts] == ["rows_failed"]  # one alert; the run itself did not fail
        assert alerts[0]["profile"] == "gymdesk" and alerts[0]["dag_id"] == "ghl_gymdesk"
        assert alerts[0]["counts"]["failed"] == 2 and alerts[0]["counts"]["sent"] > 0
        assert alerts[0]["run_id"].startswith("manual__")
        assert alerts[0]["link"].startswith("http://airflow.example.com:8080/crm-sync/dags/ghl_gymdesk/runs/manual__")

        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        bad = [{"id": f"mem_bad{n}", "email": f"not-an-email-{n}", "first_name": f"Bad{n}", "last_name": "Row",
                "phone": None, "status": "active", "created_at": now, "updated_at": now} for n in range(25)]
        gymdesk_sim.seed("members", bad)
        failed = run_dag(airflow_home, "ghl_gymdesk", env, succeed=False)  # validate stops it: nothing written
        alerts = [json.loads(body) for _, body in receiver.received]

    assert [a["kind"] for a in alerts] == ["rows_failed", "quality_breach"]
    output = failed.stdout + failed.stderr  # the DAG's on_failure_callback ran, and knew it was alerted already
    assert "failed on its data-quality threshold, which was alerted already" in output
    assert "Callback failed" not in output
    assert alerts[1]["counts"]["newly_bad"] == 25 and alerts[1]["run_id"] != alerts[0]["run_id"]
    sent = b"".join(body for _, body in receiver.received).decode()
    people = [m["email"] for m in desk_seed["members"] + bad if isinstance(m.get("email"), str)]
    assert not any(email in sent for email in people)  # names and counts only, no personal data
