"""Reports tell what happened, for runs Airflow ran against the simulators: a run whose extract fails
is reported failed at extract with the task's error and a link to its log; a dry run's planned writes,
sent by the next run, are credited to that run; the console and the exported file say the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.report import build_report, render, report_file
from crm_sync.pipeline.run_list import list_runs, newest_run_ids
from crm_sync.profile import profile_by_name

from tests.conftest import connection_env, run_dag
from tests.integration.test_app_hook import person

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three `airflow dags test` runs, about four minutes


def _env(tmp_path, ghl_sim, gymdesk_sim) -> dict[str, str]:
    return {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
            "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}


def _exported(conn: sa.Connection, report: dict) -> dict:
    """The JSON file the run's report task exported."""
    return json.loads(Path(report_file(conn, report["profile"], report["run_id"])).with_suffix(".json").read_text())


def _plain(report: dict) -> dict:
    return json.loads(json.dumps(report, default=str))


def test_a_run_whose_extract_fails_is_reported_failed_at_extract_with_its_error_and_log(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim):
    from datetime import UTC, datetime

    one = person("gymdesk", 0, datetime(2026, 11, 10, tzinfo=UTC))
    gymdesk_sim.seed("members", [{**one, "id": f"p-{n}"} for n in range(101)])  # a full page, then "more"
    gymdesk_sim.admin.post("/faults", json={"endless_pages": True}).raise_for_status()

    run_dag(airflow_home, "ghl_gymdesk", _env(tmp_path, ghl_sim, gymdesk_sim), succeed=False)

    profile = profile_by_name("gymdesk")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    with engine.connect() as conn:
        (run_id,) = newest_run_ids(conn, profile.name)
        listed, report = list_runs(conn, profile)[0], build_report(conn, profile, run_id)
        exported = _exported(conn, report)
    engine.dispose()
    assert listed["failed_at"] == report["failed_at"] == "extract"  # not "stage": extract_ghl alone succeeded
    assert listed["state"] == report["state"] == "failed" and listed["failed_at"] == report["failed_at"] == "extract"
    failed = report["failed_task"]
    assert listed["failed_task"] == failed and failed["task_id"] == "extract_gymdesk"
    assert failed["error"].startswith("PagingRunaway: ")
    assert "page 2 brought no record not already seen" in failed["error"]
    assert failed["log"].startswith(f"dags/ghl_gymdesk/runs/{run_id.replace(':', '%3A').replace('+', '%2B')}"
                                    "/tasks/extract_gymdesk")
    assert "extract_ghl" in report["steps_done"]
    page = render(report)
    assert "page 2 brought no record not already seen" in page and "Bad share 0.0%" not in page
    assert exported == _plain(report)  # the file says what the console says


def test_a_dry_runs_writes_sent_by_the_next_run_are_credited_to_it_and_file_and_console_agree(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim, demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", ghl_seed["contacts"])
    gymdesk_sim.seed("members", desk_seed["members"])
    env = _env(tmp_path, ghl_sim, gymdesk_sim)

    run_dag(airflow_home, "ghl_gymdesk", env, "-c", json.dumps({"dry_run": True}))
    run_dag(airflow_home, "ghl_gymdesk", env)  # plans the same writes again and sends them

    profile = profile_by_name("gymdesk")
    engine = sa.create_engine(env["WAREHOUSE_URL"])
    with engine.connect() as conn:
        real_id, dry_id = newest_run_ids(conn, profile.name)
        dry, real = build_report(conn, profile, dry_id), build_report(conn, profile, real_id)
        listed = {r["run_id"]: r for r in list_runs(conn, profile)}
        exported = {run_id: _exported(conn, report) for run_id, report in ((dry_id, dry), (real_id, real))}
    engine.dispose()
    assert real["writes_sent"] > 0 and dry["writes_sent"] == 0  # the run that sent them, not the one that planned them
    assert dry["dry_run"] is True and real["dry_run"] is False and dry["state"] == real["state"] == "success"
    planned = dry["writes"]
    assert planned and {w["status"] for w in planned} == {"dry_run"} and dry["writes_sent"] == 0
    sent = [w for w in real["writes"] if w["status"] == "sent"]
    assert len(sent) == real["writes_sent"] >= len(planned) and all(w["sent_by"] == real_id for w in sent)
    for report in (dry, real):
        assert exported[report["run_id"]] == _plain(report), report["run_id"]
        assert listed[report["run_id"]]["sides"] == report["sides"]
    assert "No write was needed" not in render(real)
