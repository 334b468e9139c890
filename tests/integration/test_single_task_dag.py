"""The batch DAG's ``single_task`` shape, run by Airflow against the simulators: it syncs the same records
as the steps shape, and a step that fails (reconcile here) is recorded under its own name while the
report is still written, as the steps DAG's ``all_done`` report does."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from crm_sync.paths import PROFILES_DIR
from harness.demo_data import LOCATION_ID
from harness.simulators import ghl, gymdesk
from harness.simulators.base import ServerThread, SimState
from tests.conftest import GHL_TOKEN, GYMDESK_KEY, Sim, connection_env, run_dag
from tests.helpers import GHL_FIELDS, GYMDESK_FIELDS, by_email

pytestmark = [pytest.mark.integration]


def single_task_profiles(directory, extra: str = ""):
    directory.mkdir()
    text = (PROFILES_DIR / "gymdesk.yaml").read_text() + "\ndag_shape: single_task\n" + extra
    (directory / "gymdesk.yaml").write_text(text)
    return directory


def synced(sim_ghl: Sim, sim_desk: Sim) -> tuple[dict, dict]:
    return by_email(sim_ghl.records("contacts"), GHL_FIELDS), by_email(sim_desk.records("members"), GYMDESK_FIELDS)


def test_single_task_syncs_the_same_records_as_the_steps_shape(airflow_home, tmp_path, ghl_sim, gymdesk_sim,
                                                                demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    grant = {"location_id": LOCATION_ID, "scopes": list(ghl.SCOPES)}
    with ExitStack() as stack:
        one_ghl = Sim(stack.enter_context(ServerThread(ghl.create_app(ghl.GHLSimulator({GHL_TOKEN: grant},
                                                                                       SimState())))).url)
        one_desk = Sim(stack.enter_context(ServerThread(gymdesk.create_app(GYMDESK_KEY, SimState()))).url)
        for sim_ghl, sim_desk in ((ghl_sim, gymdesk_sim), (one_ghl, one_desk)):
            sim_ghl.seed("contacts", ghl_seed["contacts"])
            sim_desk.seed("members", desk_seed["members"])
        steps_env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(tmp_path / "steps"),
                     "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'steps.db'}"}
        one_env = {**connection_env(one_ghl.url, one_desk.url), "CRM_SYNC_HOME": str(tmp_path / "one"),
                   "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'one.db'}",
                   "CRM_SYNC_PROFILES_DIR": str(single_task_profiles(tmp_path / "profiles"))}

        run_dag(airflow_home, "ghl_gymdesk", steps_env)
        ran = run_dag(airflow_home, "ghl_gymdesk", one_env)

        steps_result, one_result = synced(ghl_sim, gymdesk_sim), synced(one_ghl, one_desk)
        one_calls = {**one_ghl.calls(), **one_desk.calls()}
        steps_calls = {**ghl_sim.calls(), **gymdesk_sim.calls()}
    output = ran.stdout + ran.stderr
    assert "task_id=sync" in output and "task_id=reconcile" not in output  # one task ran every step
    assert one_result == steps_result  # both systems hold the same people, field for field
    for person in demo_data.expected:
        assert one_result[0].get(person["email"]) == [person] and one_result[1].get(person["email"]) == [person]
    assert one_calls == steps_calls  # the same calls: the same reads and the same writes
    with sa.create_engine(f"sqlite:///{tmp_path / 'one.db'}").connect() as conn:
        steps = {row.step for row in conn.execute(sa.text("SELECT step FROM run_log"))}
    assert steps == {"extract", "stage", "validate", "reconcile", "load", "report"}
    report = json.loads(next((tmp_path / "one" / "reports" / "ghl_gymdesk").glob("*.json")).read_text())
    assert report["failed_at"] is None and report["writes_sent"] > 0


def test_a_failed_reconcile_is_recorded_under_its_name_and_the_report_is_still_written(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim, demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", ghl_seed["contacts"])
    gymdesk_sim.seed("members", desk_seed["members"])
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    # retention off: the report then never reads review decisions, which only reconcile needs here
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
           "WAREHOUSE_URL": warehouse,
           "CRM_SYNC_PROFILES_DIR": str(single_task_profiles(tmp_path / "profiles", "retention_days: null\n"))}
    from crm_sync.warehouse.db import create, migrate  # the schema at head, then one table reconcile reads gone

    engine = create(warehouse)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE review_decision"))

    run_dag(airflow_home, "ghl_gymdesk", env, "-c", json.dumps({"dry_run": True}), succeed=False)

    report = json.loads(next((tmp_path / "home" / "reports" / "ghl_gymdesk").glob("*.json")).read_text())
    assert report["failed_at"] == "reconcile"
    assert "review_decision" in report["failed_task"]["error"]
    assert report["failed_task"]["log"].split("?")[0].endswith("/tasks/sync")  # the one task's log
    assert report["steps_done"] == ["extract_ghl", "extract_gymdesk", "stage", "validate", "report"]
    assert report["sides"]["ghl"]["extracted"] > 0  # what the run did before it failed is there
    assert not any(k.startswith(("POST", "PUT", "PATCH")) and "search" not in k
                   for k in {**ghl_sim.calls(), **gymdesk_sim.calls()})
    engine.dispose()
