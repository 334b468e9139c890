"""The review queue of a profile: ambiguous matches side by side, "link these two" or "keep apart", undo.

The decisions themselves are crm_sync.review's (stored as ids with who and when; the next run
honours them); this router only shows the queue and posts the user's choice. Forms post with the
UI's session cookie, which Airflow sets SameSite=lax, so another site cannot post in the user's name.
A decision review refuses raises out of the route, so the request's transaction is rolled back, and
comes back to the queue as its error (`refused`, the app's handler for ReviewError).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from airflow.api_fastapi.core_api.security import GetUserDep
from crm_sync import review
from crm_sync.web.dependencies import ProfileOfDag, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.security import EDIT_DAG, READ_DAG

router = APIRouter(dependencies=READ_DAG)


@router.get("/dags/{dag_id}/review", response_class=HTMLResponse)
def queue(request: Request, profile: ProfileOfDag, conn: WarehouseConnection, error: str = "",
          done: str = "") -> HTMLResponse:
    items, decisions = review.pending(conn, profile), review.decisions(conn, profile)
    fields = list(profile.fields("contact"))
    return page(request, "review.html.j2", profile=profile, items=items, decisions=decisions, fields=fields,
                error=error, done=done)


def _back(request: Request, dag_id: str, **message: str) -> RedirectResponse:
    query = "&".join(f"{key}={quote(value)}" for key, value in message.items())
    base = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{base}/dags/{dag_id}/review" + (f"?{query}" if query else ""), status_code=303)


def refused(request: Request, exc: review.ReviewError) -> RedirectResponse:
    """A decision review would not take: back to the queue, which says why."""
    return _back(request, request.path_params["dag_id"], error=str(exc))


@router.post("/dags/{dag_id}/review/decide", dependencies=[*EDIT_DAG], response_class=RedirectResponse,
             status_code=303)
def decide(request: Request, profile: ProfileOfDag, user: GetUserDep, conn: WarehouseConnection,
           ghl_id: Annotated[str, Form()], app_id: Annotated[str, Form()],
           decision: Annotated[str, Form()]) -> RedirectResponse:
    review.decide(conn, profile, ghl_id, app_id, decision, user.get_name())
    verb = "linked" if decision == "link" else "kept apart"
    return _back(request, profile.dag_id, done=f"ghl:{ghl_id} and app:{app_id} {verb}; the next run applies it")


@router.post("/dags/{dag_id}/review/undo", dependencies=[*EDIT_DAG], response_class=RedirectResponse,
             status_code=303)
def undo(request: Request, profile: ProfileOfDag, user: GetUserDep, conn: WarehouseConnection,
         decision_id: Annotated[int, Form()]) -> RedirectResponse:
    review.undo(conn, profile, decision_id, user.get_name())
    return _back(request, profile.dag_id, done=f"decision {decision_id} undone; the next run applies it")
