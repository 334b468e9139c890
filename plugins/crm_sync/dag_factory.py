"""One DAG per sync profile: extract (each side) -> stage -> validate -> reconcile -> load -> report.

Building a DAG reads only the profile YAML; every import of pandas, httpx, Great
Expectations or the warehouse happens inside the tasks, when they run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param, task
from airflow.timetables.interval import CronDataIntervalTimetable

from crm_sync.profile import Profile

DOC = """
### {dag_id}

{description}

Each run extracts changed contacts from GHL and {app} (scheduled and backfill runs their
data interval, manual runs from the stored watermark), stages and validates them, decides
every write in reconcile, sends the outbox in load and writes a report. Trigger with
`dry_run: true` to fill the outbox and the report without sending anything.
"""


def _run(step: str, profile_name: str, context, *args):
    from importlib import import_module

    from crm_sync.pipeline.context import RunContext

    module = import_module(f"crm_sync.pipeline.{step}")
    return getattr(module, step)(RunContext.from_airflow(profile_name, context), *args)


def build_dag(profile: Profile) -> DAG:
    name = profile.name
    with DAG(
        dag_id=profile.dag_id,
        description=profile.description or None,
        doc_md=DOC.format(dag_id=profile.dag_id, description=profile.description, app=name),
        schedule=CronDataIntervalTimetable(profile.schedule, timezone="UTC"),
        start_date=datetime.combine(profile.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["crm-sync", name],
        params={"dry_run": Param(profile.dry_run, type="boolean", description="plan and report, send nothing")},
        default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
    ) as dag:

        @task
        def migrate_warehouse() -> None:
            """Bring the warehouse schema to the newest migration before anything writes."""
            from crm_sync.warehouse.db import engine

            engine()

        @task
        def extract(side: str, **context) -> dict:
            """Land one side's changed contacts in raw_record."""
            return _run("extract", name, context, side)

        @task
        def stage(**context) -> dict:
            """Normalise raw contacts into staging; quarantine what breaks a rule."""
            return _run("stage", name, context)

        @task
        def validate(**context) -> dict:
            """Great Expectations over this run's staged rows; fail over the bad-row threshold."""
            return _run("validate", name, context)

        @task
        def reconcile(**context) -> dict:
            """Match identities, merge field by field, fill the outbox."""
            return _run("reconcile", name, context)

        @task
        def load(**context) -> dict:
            """Send the outbox, each row once."""
            return _run("load", name, context)

        @task
        def report(**context) -> dict:
            """Write the run's HTML and JSON report."""
            return _run("report", name, context)

        ready = migrate_warehouse()
        extracts = [extract.override(task_id="extract_ghl")("ghl"), extract.override(task_id=f"extract_{name}")("app")]
        ready >> extracts
        staged = stage()
        extracts >> staged
        staged >> validate() >> reconcile() >> load() >> report()
    return dag
