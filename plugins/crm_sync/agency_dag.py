"""The discovery DAG of an agency profile (``<dag_id>_discover``): one task, on ``agency.discover_schedule``.

Its task brings the warehouse to the newest migration and refreshes the agency's book
(``crm_sync.pipeline.discover``); the next parse of the DAG files adds a DAG for each location
that now syncs and drops those that no longer do. Parsing reads only the profile, as for the
sync DAGs: GHL is called by the task, never at parse time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, task
from airflow.timetables.trigger import CronTriggerTimetable

from crm_sync.profile import Profile

DOC = """
### {dag_id}

Discovers the locations where agency connection `{conn_id}` has the app installed and keeps
them in the warehouse table `agency_location`: each one installed whose app connection exists
(`{rule}`) gets its own DAG `{base}_<key>` at the next parse; one without it waits for it; one
that uninstalled the app stops syncing. See docs/operations.md (agency locations).
"""


def discover_dag_id(profile: Profile) -> str:
    return f"{profile.dag_id}_discover"


def build_discover_dag(profile: Profile) -> DAG:
    """The discovery DAG of an agency profile (one with an ``agency`` section)."""
    agency = profile.agency
    if agency is None:
        raise ValueError(f"profile {profile.name} has no agency section: it discovers nothing")
    name = profile.name
    with DAG(
        dag_id=discover_dag_id(profile),
        description=f"discovers the locations of agency connection {agency.conn_id}",
        doc_md=DOC.format(dag_id=discover_dag_id(profile), conn_id=agency.conn_id, rule=agency.app_conn_id,
                          base=profile.dag_id),
        schedule=CronTriggerTimetable(agency.discover_schedule, timezone="UTC"),
        start_date=datetime.combine(profile.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["crm-sync", name, "agency-discovery"],
        default_args={"retries": 2, "retry_delay": timedelta(seconds=30),
                      "execution_timeout": timedelta(minutes=profile.timeouts.task_minutes)},
    ) as dag:

        @task(task_id="discover")
        def discover_locations() -> dict:
            """Migrate the warehouse, list the installed locations, refresh the book; counts only (XCom)."""
            from crm_sync.pipeline.discover import discover
            from crm_sync.warehouse.db import engine

            engine()
            return discover(name)

        discover_locations()
    return dag
