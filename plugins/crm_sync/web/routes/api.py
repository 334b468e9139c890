"""The console's JSON API for scripts, under /crm-sync/api: the profiles with their newest run, a
profile's runs (paged, newest first), its review queue and its decisions. A run's report is
crm_sync.web.routes.runs' (the page's twin). Lists page as Airflow's own API does: ``limit`` and
``offset`` in, the page and ``total_entries`` out.

Each route asks for what the page it mirrors asks for: the login for the profiles (each user sees
the DAGs they may read), reading the DAG for its runs' counts, and reading its runs for the review
queue and decisions, which show records (crm_sync.web.security).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from airflow.api_fastapi.core_api.security import GetUserDep
from crm_sync.console_urls import API_DAGS, API_DECISIONS, API_REVIEW, API_RUNS, run_report_url
from crm_sync.web import services
from crm_sync.web.datamodels import (
    DagCollection,
    DagSummary,
    DecisionCollection,
    ReviewDecision,
    ReviewItem,
    ReviewQueue,
    RunCollection,
    RunSummary,
)
from crm_sync.web.dependencies import ProfileOfDag, WarehouseConnection
from crm_sync.web.security import LOGGED_IN, READ_DAG, READ_RUNS

profiles = APIRouter(dependencies=LOGGED_IN, tags=["crm-sync"])
dag = APIRouter(dependencies=READ_DAG, tags=["crm-sync"])
records = APIRouter(dependencies=READ_RUNS, tags=["crm-sync"])

PAGE_MAX = 100  # the runs list's own page (crm_sync.pipeline.run_list.RUNS_SHOWN)


class Page:
    """``limit`` and ``offset`` of a list, as query parameters."""

    def __init__(self, limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                 offset: Annotated[int, Query(ge=0)] = 0) -> None:
        self.limit, self.offset = limit, offset

    def of(self, rows: list) -> list:
        return rows[self.offset:self.offset + self.limit]


Paged = Annotated[Page, Depends()]


def run_summary(run: dict[str, Any]) -> RunSummary:
    return RunSummary.model_validate({**run, "state": services.run_state(run),
                                      "report": run_report_url(run["dag_id"], run["run_id"], json=True)})


@profiles.get(API_DAGS)
def list_dags(user: GetUserDep, conn: WarehouseConnection) -> DagCollection:
    """The profiles whose DAG the user may read, each with its newest run."""
    from airflow.api_fastapi.app import get_auth_manager

    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    shown = [profile for profile in services.profiles() if profile.dag_id in readable]
    pending = services.pending_counts(conn)
    dags = []
    for profile in shown:
        newest = services.latest(conn, profile)
        dags.append(DagSummary(dag_id=profile.dag_id, profile=profile.name, app=profile.app.kind,
                               schedule=profile.schedule, dry_run=profile.dry_run,
                               review_pending=pending[profile.dag_id],
                               latest_run=run_summary(newest) if newest else None))
    return DagCollection(dags=dags, total_entries=len(dags))


@dag.get(API_RUNS)
def list_runs(profile: ProfileOfDag, conn: WarehouseConnection, page: Paged) -> RunCollection:
    """The profile's runs, newest first, each with its state and per-side counts."""
    runs, total = services.runs_page(conn, profile, page.limit, page.offset)
    return RunCollection(runs=[run_summary(run) for run in runs], total_entries=total)


@records.get(API_REVIEW)
def review_queue(profile: ProfileOfDag, conn: WarehouseConnection, page: Paged) -> ReviewQueue:
    """The ambiguous matches waiting for a decision, as the review page shows them."""
    items = services.review_queue(conn, profile)
    return ReviewQueue(items=[ReviewItem.model_validate(item) for item in page.of(items)], total_entries=len(items))


@records.get(API_DECISIONS)
def review_decisions(profile: ProfileOfDag, conn: WarehouseConnection, page: Paged) -> DecisionCollection:
    """Every decision on the profile's queue, newest first, undone ones too."""
    decisions = services.review_decisions(conn, profile)
    return DecisionCollection(decisions=[ReviewDecision.model_validate(d) for d in page.of(decisions)],
                              total_entries=len(decisions))
