"""The console's index (every profile) and a profile's runs, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from airflow.api_fastapi.core_api.security import GetUserDep
from crm_sync.web import services
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
    rows = [(profile, services.latest(conn, profile)) for profile in services.profiles() if profile.dag_id in readable]
    return page(request, "index.html.j2", rows=rows, pending=services.pending_counts(conn))


@dag.get("/dags/{dag_id}", response_class=HTMLResponse)
def list_runs(request: Request, profile: ProfileOfDag, conn: WarehouseConnection) -> HTMLResponse:
    return page(request, "runs.html.j2", profile=profile, runs=services.runs(conn, profile))
