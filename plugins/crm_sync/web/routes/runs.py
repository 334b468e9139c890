"""One run's report: the page, and the same content as JSON (its model: ..datamodels.RunReport).

A report shows records (writes' before/after values and payloads, quarantined rows with their raw
payloads): it needs the DAG's runs and its task logs, as Airflow's own dagRun and log routes do."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from crm_sync.console_urls import RUN_REPORT, RUN_REPORT_JSON
from crm_sync.web import services
from crm_sync.web.datamodels import RunReport
from crm_sync.web.dependencies import ProfileOfDag, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.security import READ_TASK_LOGS

router = APIRouter(dependencies=READ_TASK_LOGS)


@router.get(RUN_REPORT, response_class=HTMLResponse)
def report_page(request: Request, profile: ProfileOfDag, run_id: str, conn: WarehouseConnection) -> HTMLResponse:
    return page(request, "run.html.j2", r=services.report(conn, profile, run_id))


@router.get(RUN_REPORT_JSON)
def report_json(profile: ProfileOfDag, run_id: str, conn: WarehouseConnection) -> RunReport:
    return RunReport.model_validate(services.report(conn, profile, run_id))
