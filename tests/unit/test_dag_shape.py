"""The shape of every profile's DAG, built in this process: schedule, one run at a time, retries, the
dry-run switch, the step order and the location's pool. Parsing the DAG folder in Airflow's own way is
tests/integration/test_dag_integrity.py."""

from __future__ import annotations

from airflow.timetables.interval import CronDataIntervalTimetable
from crm_sync.dag_factory import build_dag
from crm_sync.profile import load_profiles


def test_dags_extract_data_intervals_one_run_at_a_time_with_retries():
    for profile in load_profiles():
        dag = build_dag(profile)
        assert isinstance(dag.timetable, CronDataIntervalTimetable)  # backfills get real windows
        assert dag.max_active_runs == 1
        assert "crm-sync" in dag.tags and dag.doc_md
        assert all(task.retries >= 1 for task in dag.tasks)
        extracts = {"extract_ghl", f"extract_{profile.name}"}
        assert {t.task_id for t in dag.get_task("stage").upstream_list} == extracts  # stage waits for both sides
        for extract in extracts:
            assert dag.get_task(extract).upstream_task_ids == {"migrate_warehouse"}
        chain = ["stage", "validate", "reconcile", "load", "report"]
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            assert downstream in dag.get_task(upstream).downstream_task_ids


def test_a_run_sends_unless_the_profile_or_the_trigger_asks_for_a_dry_run():
    for profile in load_profiles():
        assert build_dag(profile).params["dry_run"] is profile.dry_run
        assert build_dag(profile.model_copy(update={"dry_run": True})).params["dry_run"] is True
        assert build_dag(profile.model_copy(update={"dry_run": False})).params["dry_run"] is False


def test_every_ghl_call_of_one_location_takes_a_slot_of_that_locations_pool():
    for profile in load_profiles():
        dag = build_dag(profile)
        assert profile.ghl.pool_name == f"crm_sync_{profile.ghl.conn_id}"
        assert {t.task_id for t in dag.tasks if t.pool == profile.ghl.pool_name} == {"extract_ghl", "load"}
