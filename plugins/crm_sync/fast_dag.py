"""The fast lane's DAG of a profile woken by webhooks (``Profile.fast_dag_id``): one task, on the assets.

The GHL location's asset and the app's asset each wake it (either one), one run at a time; its
only task takes a slot of the location's pool (it reads and writes GHL) and runs
``crm_sync.pipeline.fast_lane``. Parsing reads only the profile, as for the batch DAG.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Asset, Param, task

from crm_sync.pipeline.run_failed import RunFailedNotifier
from crm_sync.profile import Profile

DOC = """
### {dag_id}

The fast lane of `{batch}`: woken by a webhook event (GHL's location, or {app}'s own push), one task
reads only the records the pending events name, by id, and takes them through the same stage,
validate, reconcile, load and report as `{batch}`, under the same lock and outbox. It moves no
watermark: `{batch}`, on its cron, still finds whatever a lost webhook missed.
"""
FAST_TIMEOUT = timedelta(minutes=10)


def ghl_asset(profile: Profile) -> Asset | None:
    """The GHL location's asset its webhooks update, if the profile names a location."""
    if not profile.ghl.asset:
        return None
    return Asset(name=profile.ghl.asset, uri=f"crm-sync://ghl-location/{profile.ghl.location_id}")


def assets(profile: Profile) -> list[Asset]:
    """What wakes the fast lane: the GHL location's asset and the app's asset (the same URIs the
    receiver's events name), whichever the profile has."""
    found = [asset] if (asset := ghl_asset(profile)) else []
    if profile.app_asset:
        found.append(Asset(name=profile.app_asset, uri=f"crm-sync://app/{profile.name}"))
    return found


def _schedule(profile: Profile):
    found = assets(profile)
    return found[0] if len(found) == 1 else found[0] | found[1]


def build_fast_dag(profile: Profile) -> DAG:
    """The fast lane's DAG; only for a profile with a ``fast_dag_id``."""
    if not profile.fast_dag_id:
        raise ValueError(f"profile {profile.name} has no fast lane: it needs ghl.location_id or app.webhooks")
    name = profile.name
    with DAG(
        dag_id=profile.fast_dag_id,
        description=f"fast lane of {profile.dag_id}: what the webhooks name, within seconds",
        doc_md=DOC.format(dag_id=profile.fast_dag_id, batch=profile.dag_id, app=name),
        schedule=_schedule(profile),
        start_date=datetime.combine(profile.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["crm-sync", name, "fast-lane"],
        params={"dry_run": Param(profile.dry_run, type="boolean", description="plan and report, send nothing")},
        default_args={"retries": 2, "retry_delay": timedelta(seconds=5), "execution_timeout": FAST_TIMEOUT},
        dagrun_timeout=FAST_TIMEOUT * 3,
        on_failure_callback=RunFailedNotifier(name),
    ) as dag:

        @task(task_id="sync", pool=profile.ghl.pool_name)
        def sync(**context) -> dict:
            """Extract the named records of both sides, stage, validate, reconcile, load, report."""
            from crm_sync.pipeline.context import RunContext
            from crm_sync.pipeline.fast_lane import fast_lane
            from crm_sync.pipeline.retention import stats_without_values
            from crm_sync.pipeline.run_failed import record_failure

            ctx = RunContext.from_airflow(name, context)
            # The return value is an XCom in Airflow's database: figures, not the values of records.
            steps = fast_lane(ctx, context, record_failure)
            return {step: stats_without_values(stats) for step, stats in steps.items()}

        sync()
    return dag
