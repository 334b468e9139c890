"""The console's index (the profiles, grouped by GHL location, searched and paged: each one's newest
run and a picture of its last runs; the locations' GHL calls today; crm_sync.web.profile_index) and a
profile's runs, newest first, a page at a time (``offset``), filtered by ``state`` and ``dry_run``:
all in the query string, so a filtered view is a link to share."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from airflow.api_fastapi.core_api.security import GetUserDep
from crm_sync.web import profile_index, services
from crm_sync.web.dependencies import ProfileOfDag, Text, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.security import LOGGED_IN, READ_DAG, ReadsTaskLogs

index = APIRouter(dependencies=LOGGED_IN)
dag = APIRouter(dependencies=READ_DAG)


@index.get("/", response_class=HTMLResponse)
def list_profiles(request: Request, user: GetUserDep, conn: WarehouseConnection, q: Text = "", show: str = "",
                  location: Text = "", page_: Annotated[int, Query(ge=-(2**31), le=2**31 - 1, alias="page")] = 1,
                  per_page: Annotated[int, Query(ge=1, le=200)] = profile_index.PER_PAGE) -> HTMLResponse:
    """The profiles whose DAG the user may read, as Airflow's own DAG list scopes them, and the agency
    locations that do not sync: searched by ``q``, filtered by ``show`` (syncing, waiting, uninstalled;
    another value is no filter) and ``location``, grouped by GHL location, ``per_page`` rows a page
    (``page``). All in the query string, so a view is a link to share; only the page's profiles are read."""
    from airflow.api_fastapi.app import get_auth_manager

    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    every, books = profile_index.profiles_and_books(conn)
    shown = [profile for profile in every if profile.dag_id in readable]
    names, waiting = profile_index.agency_rows(books, readable)
    show = show if show in profile_index.SHOW else ""
    q, location = q.strip(), location.strip()
    rows = profile_index.select_rows(shown, waiting, names, q, show, location)
    view = profile_index.index_page(conn, rows, every, names, page_, per_page)

    def link(**changes: str | int) -> str:
        wanted = {"q": q, "show": show, "location": location, "page": view["span"]["page"], **changes,
                  "per_page": per_page}
        defaults = {"page": 1, "per_page": profile_index.PER_PAGE}
        return urlencode({k: v for k, v in wanted.items() if v and v != defaults.get(k)})

    return page(request, "index.html.j2", q=q, show=show, location=location, shows=profile_index.SHOW, link=link,
                per_page_default=profile_index.PER_PAGE, **view)


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
