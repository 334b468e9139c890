"""The console's index (every profile) and a profile's runs, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from crm_sync.web import services
from crm_sync.web.pages import page
from crm_sync.web.security import LOGGED_IN, READ_DAG

index = APIRouter(dependencies=LOGGED_IN)
dag = APIRouter(dependencies=READ_DAG)


@index.get("/", response_class=HTMLResponse)
def list_profiles(request: Request) -> HTMLResponse:
    rows = [(profile, services.latest(profile)) for profile in services.profiles()]
    return page(request, "index.html.j2", rows=rows, pending=services.pending_counts())


@dag.get("/dags/{dag_id}", response_class=HTMLResponse)
def list_runs(request: Request, dag_id: str) -> HTMLResponse:
    profile = services.profile_of(dag_id)
    return page(request, "runs.html.j2", profile=profile, runs=services.runs(profile))
