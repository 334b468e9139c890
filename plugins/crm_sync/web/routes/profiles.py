"""The console's index (every profile, its newest run and a picture of its last runs; the GHL
locations' calls today) and a profile's runs, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from airflow.api_fastapi.core_api.security import GetUserDep
from crm_sync.web import charts, services
from crm_sync.web.dependencies import ProfileOfDag, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.security import LOGGED_IN, READ_DAG

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


@dag.get("/dags/{dag_id}", response_class=HTMLResponse)
def list_runs(request: Request, profile: ProfileOfDag, conn: WarehouseConnection) -> HTMLResponse:
    return page(request, "runs.html.j2", profile=profile, runs=services.runs(conn, profile))
