"""The batch DAG's ``single_task`` shape: one task, ``sync``, in the location's pool, with the steps DAG's
dry-run switch, schedule and retries; and its sequence is the steps DAG's own steps, in order."""

from __future__ import annotations

from airflow.timetables.interval import CronDataIntervalTimetable
from crm_sync.dag_factory import STEPS, build_dag
from crm_sync.pipeline.fast_lane import STEPS as FAST_STEPS
from crm_sync.pipeline.one_task import BATCH_STEPS
from crm_sync.profile import load_profiles


def test_a_single_task_profile_runs_one_sync_task_in_its_locations_pool():
    for profile in load_profiles():
        single = profile.model_copy(update={"dag_shape": "single_task"})
        dag = build_dag(single)
        [sync] = dag.tasks
        assert sync.task_id == "sync" and sync.pool == profile.ghl.pool_name and sync.retries >= 1
        assert sync.execution_timeout.total_seconds() == profile.timeouts.run_minutes * 60
        assert isinstance(dag.timetable, CronDataIntervalTimetable) and dag.max_active_runs == 1
        assert dag.params["dry_run"] is profile.dry_run
        assert len(build_dag(profile).tasks) == 8  # the default shape is unchanged


def test_the_one_task_sequence_is_the_steps_dags_chain_and_the_fast_lane_shares_it():
    extracts = [step for step in BATCH_STEPS if step[1] == "extract"]
    assert [e[3] for e in extracts] == [("ghl",), ("app",)]
    chain = [task_id for task_id, *_ in BATCH_STEPS[2:]]
    assert chain + ["report"] == list(STEPS)  # stage .. load, then the report (run by run_steps, always)
    assert FAST_STEPS[2:] == BATCH_STEPS[2:] and {s[1] for s in FAST_STEPS[:2]} == {"extract_named"}
