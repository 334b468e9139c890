"""One run's report: the page, and the same content as JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from crm_sync.web import services
from crm_sync.web.pages import page
from crm_sync.web.security import READ_DAG

router = APIRouter(dependencies=READ_DAG)


@router.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
def report_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
    report = services.report(services.profile_of(dag_id), run_id)
    return page(request, "run.html.j2", r=report)


@router.get("/api/dags/{dag_id}/runs/{run_id}")
def report_json(dag_id: str, run_id: str) -> dict[str, Any]:
    return services.report(services.profile_of(dag_id), run_id)
