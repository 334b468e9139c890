"""The console's index (every profile, its newest run and a picture of its last runs; the GHL
locations' calls today) and a profile's runs, newest first, a page at a time (``offset``), filtered
by ``state`` and ``dry_run``: all in the query string, so a filtered view is a link to share."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from airflow.api_fastapi.core_api.security import GetUserDep
from crm_sync.web import charts, services
from crm_sync.web.dependencies import ProfileOfDag, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.security import LOGGED_IN, READ_DAG, ReadsTaskLogs

index = APIRouter(dependencies=LOGGED_IN)
dag = APIRouter(dependencies=READ_DAG)


@index.get("/", response_class=HTMLResponse)
def list_profiles(request: Request, user: GetUserDep, conn: WarehouseConnection) -> HTMLResponse:
    """The profiles whose DAG the user may read, as Airflow's own DAG list scopes them."""
    from airflow.api_fastapi.app import get_auth_manager

    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    shown = [profile for profile in services.profiles() if profile.dag_id in readable]
    last = {profile.dag_id: services.runs(conn, profile, limit=charts.RUNS_CHARTED) for profile in shown}
    rows = [(profile, (last[profile.dag_id] or [None])[0]) for profile in shown]
    pictures = {profile.dag_id: charts.runs_charts(last[profile.dag_id], profile.zone) for profile in shown}
    budgets = [charts.budget_gauge(where) for where in services.ghl_calls_today(conn, shown)]
    return page(request, "index.html.j2", rows=rows, pending=services.pending_counts(conn), pictures=pictures,
                budgets=budgets)


RUNS_PER_PAGE = 100  # crm_sync.pipeline.run_list.RUNS_SHOWN
STATES = ("running", "failed", "success")
DRY_RUN = {"yes": True, "no": False}


@dag.get("/dags/{dag_id}", response_class=HTMLResponse)
def list_runs(request: Request, profile: ProfileOfDag, show_errors: ReadsTaskLogs, conn: WarehouseConnection,
              offset: Annotated[int, Query(ge=0)] = 0, state: str = "", dry_run: str = "") -> HTMLResponse:
    """A page of the profile's runs, newest first; an unknown state or dry_run filter is no filter.
    A failed task's error shows only to a user who may read its log (the page needs the DAG alone)."""
    state = state if state in STATES else ""
    dry_run = dry_run if dry_run in DRY_RUN else ""
    runs, total = services.runs_page(conn, profile, RUNS_PER_PAGE, offset, state or None, DRY_RUN.get(dry_run))

    def link(at: int) -> str:
        return urlencode({k: v for k, v in (("state", state), ("dry_run", dry_run), ("offset", at)) if v})

    shown = {"first": offset + 1 if runs else 0, "last": offset + len(runs), "total": total,
             "newer": link(max(0, offset - RUNS_PER_PAGE)) if offset else None,
             "older": link(offset + RUNS_PER_PAGE) if offset + RUNS_PER_PAGE < total else None}
    return page(request, "runs.html.j2", profile=profile, runs=runs, shown=shown, state=state, dry_run=dry_run,
                states=STATES, show_errors=show_errors)
