"""A profile's insights: overdue tasks, leads without a completed first call, appointments this week,
people in one system only, people waiting for review (crm_sync.pipeline.insights), one list at a
time (``?list=``) beside every list's count; each list filtered and paged in the query string (a
view is a link to share) and exported whole as CSV, times in the profile's zone.

The lists show people's records: they need the DAG's runs, as the review queue does
(security.READ_RUNS)."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from crm_sync.pipeline import insights
from crm_sync.web.dependencies import Page, ProfileOfDag, Text, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.security import READ_RUNS

router = APIRouter(dependencies=READ_RUNS)


def insight_query(q: Text = "", status: Text = "", side: Text = "", page: Page = 1,
                  per_page: int = insights.PER_PAGE) -> insights.InsightQuery:
    """The query string of a list (out of range pages and sizes are brought in range)."""
    return insights.InsightQuery(q, status, side, page, per_page)


InsightQuery = Annotated[insights.InsightQuery, Depends(insight_query)]


def _known(name: str) -> str:
    if name not in insights.LISTS:
        raise HTTPException(404, f"the insights page has no list {name!r}; its lists are {', '.join(insights.LISTS)}")
    return name


@router.get("/dags/{dag_id}/insights", response_class=HTMLResponse)
def insights_page(request: Request, profile: ProfileOfDag, conn: WarehouseConnection, query: InsightQuery,
                  list_: Annotated[str, Query(alias="list")] = "overdue") -> HTMLResponse:
    name = _known(list_)
    shown = insights.listed(conn, profile, name, query)
    choices = dict(insights.FILTERS[name])
    if name == "this_week":
        choices["status"] = tuple(insights.statuses_this_week(conn, profile))
    counted = {} if shown["query"].filtered else {name: shown["span"]["total"]}  # the shown list: counted already
    return page(request, "insights.html.j2", profile=profile, lists=insights.LISTS,
                counts=insights.counts(conn, profile, known=counted), shown=shown, columns=insights.COLUMNS[name],
                choices=choices, first_call=profile.first_call, hours=profile.insights.first_call_hours)


@router.get("/dags/{dag_id}/insights/{name}.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "every row the filters match"}})
def insights_csv(profile: ProfileOfDag, conn: WarehouseConnection, name: str, query: InsightQuery) -> Response:
    """Every row of one list the filters match (the page is ignored), times in the profile's zone,
    named in the header."""
    rows = insights.every_row(conn, profile, _known(name), query)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(insights.csv_lines(rows, name, profile.zone))
    filename = f"{profile.dag_id}-{name}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
