"""One run's report: the page, and the same content as JSON (its model: ..datamodels.RunReport).

A report shows records (writes' before/after values and payloads, quarantined rows with their raw
payloads): it needs the DAG's runs and its task logs, as Airflow's own dagRun and log routes do.

Both list one page of the run's writes and quarantined rows, as the query string asks
(crm_sync.pipeline.report_pages.ReportQuery: entity, side, status, rule, q, page, qpage, per_page):
the warehouse filters and pages them, so a 100,000-write run opens at once, and a filtered view
is a link to share. The report task's exported file lists every row."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from crm_sync.console_urls import RUN_REPORT, RUN_REPORT_JSON
from crm_sync.web import services
from crm_sync.web.datamodels import RunReport
from crm_sync.web.dependencies import Page, ProfileOfDag, Text, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.security import READ_TASK_LOGS

router = APIRouter(dependencies=READ_TASK_LOGS)


def report_query(entity: Text = "", side: Text = "", status: Text = "", rule: Text = "", q: Text = "",
                 page: Page = 1, qpage: Page = 1, per_page: int = 50):
    """The query string of a report page (out of range pages and sizes are brought in range)."""
    from crm_sync.pipeline.report_pages import ReportQuery

    return ReportQuery(entity, side, status, rule, q, page, qpage, per_page)


Query = Annotated[object, Depends(report_query)]


@router.get(RUN_REPORT, response_class=HTMLResponse)
def report_page(request: Request, profile: ProfileOfDag, run_id: str, conn: WarehouseConnection,
                query: Query) -> HTMLResponse:
    from crm_sync.pipeline.people_pages import report_people
    from crm_sync.pipeline.report_pages import STATUSES

    report = services.report(conn, profile, run_id, query)
    return page(request, "run.html.j2", r=report, query=query, statuses=list(STATUSES),
                people=report_people(conn, profile.name, report))  # each row's person, one query per list


@router.get(RUN_REPORT_JSON)
def report_json(profile: ProfileOfDag, run_id: str, conn: WarehouseConnection, query: Query) -> RunReport:
    return RunReport.model_validate(services.report(conn, profile, run_id, query))
