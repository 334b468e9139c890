"""One DAG per sync profile: extract (each side) -> stage -> validate -> reconcile -> load -> report.

``dag_shape: steps`` (the default) makes each step its own task; ``single_task`` runs the same steps
in one task, ``sync`` (``crm_sync.pipeline.one_task``), for a fraction of Airflow's cost per run
(docs/capacity.md). Building a DAG reads only the profile YAML; every import of pandas, httpx, Great
Expectations or the warehouse happens inside the tasks, when they run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param, task
from airflow.timetables.interval import CronDataIntervalTimetable

from crm_sync.pipeline.run_failed import RunFailedNotifier
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
    """Run one step; a step that raises leaves its error in run_log before the task fails, so the
    report (read from the warehouse) names the task and says why, whatever runs next."""
    from importlib import import_module

    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.run_failed import record_failure

    module = import_module(f"crm_sync.pipeline.{step}")
    ctx = RunContext.from_airflow(profile_name, context)
    try:
        return getattr(module, step)(ctx, *args)
    except BaseException as error:  # AirflowTaskTimeout and AirflowTaskTerminated are BaseExceptions
        record_failure(ctx, context, error)
        raise


STEPS = {
    "stage": "Normalise raw contacts into staging; quarantine what breaks a rule.",
    "validate": "Great Expectations over this run's staged rows; fail over the bad-row threshold.",
    "reconcile": "Match identities, merge field by field, fill the outbox.",
    "load": "Send the outbox, each row once.",
    "report": "Write the run's HTML and JSON report.",
}


def _step_task(profile: Profile, step: str, doc: str):
    # The report runs whatever happened before it: a failed run is the one most worth reading.
    # Load writes to GHL: it takes a slot of the location's pool, shared by every profile on it.
    pool = {"pool": profile.ghl.pool_name} if step == "load" else {}
    profile_name = profile.name

    @task(task_id=step, doc_md=doc, trigger_rule="all_done" if step == "report" else "all_success", **pool)
    def run_step(**context) -> dict:
        from crm_sync.pipeline.retention import stats_without_values

        # The return value is an XCom in Airflow's database: figures, not the values of records.
        return stats_without_values(_run(step, profile_name, context))

    return run_step


def schedule(profile: Profile) -> CronDataIntervalTimetable:
    """The profile's cron only: webhooks wake its fast lane (crm_sync.fast_dag), never this DAG, so one
    event never starts two runs, and the cron stays the safety net for lost webhooks."""
    return CronDataIntervalTimetable(profile.schedule, timezone="UTC")


def _single_task(profile: Profile):
    """Every step in one task, in the location's pool (it reads and writes GHL): the migration, both
    extracts, stage, validate, reconcile, load, then the report whatever happened, one RunContext."""
    name = profile.name

    @task(task_id="sync", pool=profile.ghl.pool_name,
          execution_timeout=timedelta(minutes=profile.timeouts.run_minutes))
    def sync(**context) -> dict:
        """Extract both sides, stage, validate, reconcile, load and report, in one process."""
        from crm_sync.pipeline.context import RunContext
        from crm_sync.pipeline.one_task import BATCH_STEPS, run_steps
        from crm_sync.pipeline.retention import stats_without_values
        from crm_sync.pipeline.run_failed import record_failure
        from crm_sync.warehouse.db import engine

        engine()  # the schema at the newest migration before anything writes (the steps DAG's first task)
        steps = run_steps(RunContext.from_airflow(name, context), BATCH_STEPS, context, record_failure)
        # The return value is an XCom in Airflow's database: figures, not the values of records.
        return {step: stats_without_values(stats) for step, stats in steps.items()}

    return sync


def build_dag(profile: Profile) -> DAG:
    name = profile.name
    with DAG(
        dag_id=profile.dag_id,
        description=profile.description or None,
        doc_md=DOC.format(dag_id=profile.dag_id, description=profile.description, app=name),
        schedule=schedule(profile),
        start_date=datetime.combine(profile.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["crm-sync", name],
        params={"dry_run": Param(profile.dry_run, type="boolean", description="plan and report, send nothing")},
        default_args={"retries": 2, "retry_delay": timedelta(seconds=15),
                      "execution_timeout": timedelta(minutes=profile.timeouts.task_minutes)},
        dagrun_timeout=timedelta(minutes=profile.timeouts.run_minutes),
        on_failure_callback=RunFailedNotifier(name),
    ) as dag:
        if profile.dag_shape == "single_task":
            _single_task(profile)()
            return dag

        @task
        def migrate_warehouse() -> None:
            """Bring the warehouse schema to the newest migration before anything writes."""
            from crm_sync.warehouse.db import engine

            engine()

        @task
        def extract(side: str, **context) -> dict:
            """Land one side's changed contacts in raw_record."""
            return _run("extract", name, context, side)

        steps = [_step_task(profile, step, doc)() for step, doc in STEPS.items()]
        ready = migrate_warehouse()
        extracts = [extract.override(task_id="extract_ghl", pool=profile.ghl.pool_name)("ghl"),
                    extract.override(task_id=f"extract_{name}")("app")]
        ready >> extracts
        extracts >> steps[0]
        for upstream, downstream in zip(steps, steps[1:], strict=False):
            upstream >> downstream
    return dag
