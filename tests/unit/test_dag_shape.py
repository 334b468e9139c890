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


def _woken(profile, location: bool = True, app: bool = False):
    """The profile as a deployment wakes it: its GHL location's webhooks and/or the app's own push."""
    from crm_sync.profile_webhooks import AppWebhooks

    ghl = profile.ghl.model_copy(update={"location_id": "loc1" if location else None})
    return profile.model_copy(update={"ghl": ghl, "app": profile.app.model_copy(
        update={"webhooks": AppWebhooks(event={"types": {"member": "contact"}}) if app else None})})


def test_a_profile_woken_by_webhooks_gets_a_one_task_fast_lane_in_its_locations_pool_on_either_asset():
    from airflow.sdk import Asset, AssetAny
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable
    from crm_sync.fast_dag import build_fast_dag

    for profile in load_profiles():
        if profile.app.kind != "rest":
            continue
        for location, app in ((True, False), (False, True), (True, True)):
            woken = _woken(profile, location, app)
            fast = build_fast_dag(woken)
            assert fast.dag_id == woken.fast_dag_id == f"{woken.dag_id}_fast"
            assert isinstance(fast.timetable, AssetTriggeredTimetable)
            condition = fast.timetable.asset_condition
            # either asset alone wakes it: one asset, or an OR of the two
            woke = [condition] if isinstance(condition, Asset) else list(condition.objects)
            assert isinstance(condition, Asset | AssetAny)
            assert {a.name for a in woke} == {a for a in (woken.ghl.asset, woken.app_asset) if a}
            assert fast.max_active_runs == 1 and "crm-sync" in fast.tags and fast.doc_md
            [sync] = fast.tasks
            assert sync.task_id == "sync" and sync.pool == woken.ghl.pool_name and sync.retries >= 1
            assert fast.params["dry_run"] is woken.dry_run
            # one event never wakes two DAGs: the batch DAG keeps only its cron
            assert isinstance(build_dag(woken).timetable, CronDataIntervalTimetable)


def test_a_profile_no_webhook_wakes_has_no_fast_lane():
    import pytest
    from crm_sync.fast_dag import build_fast_dag

    for profile in load_profiles():
        quiet = _woken(profile, location=False, app=False)
        assert quiet.fast_dag_id is None
        with pytest.raises(ValueError, match="no fast lane"):
            build_fast_dag(quiet)
