"""Every task has an execution_timeout and every run a dagrun_timeout, from the profile (with
defaults): a task stuck on a silent server must not hold its GHL location's pool forever."""

from __future__ import annotations

from datetime import timedelta

from crm_sync.dag_factory import build_dag
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import parse_profile, profile_by_name


def test_every_task_and_run_is_bounded_by_default():
    dag = build_dag(profile_by_name("gymdesk"))
    assert dag.dagrun_timeout == timedelta(hours=6)
    assert {task.task_id: task.execution_timeout for task in dag.tasks} == dict.fromkeys(
        [task.task_id for task in dag.tasks], timedelta(hours=2))


def test_the_profile_sets_both_timeouts():
    text = (PROFILES_DIR / "gymdesk.yaml").read_text() + "\ntimeouts: {task_minutes: 5, run_minutes: 30}\n"
    dag = build_dag(parse_profile(text, "gymdesk.yaml"))
    assert dag.dagrun_timeout == timedelta(minutes=30)
    assert all(task.execution_timeout == timedelta(minutes=5) for task in dag.tasks)
    assert len(dag.tasks) >= 7
