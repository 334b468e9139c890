"""The review queue of a profile: ambiguous matches side by side, "link these two" or "keep apart", undo.

The decisions themselves are crm_sync.review's (stored as ids with who and when; the next run
honours them); this router shows the queue, with what each side would hold after a link
(crm_sync.web.link_preview), and posts the user's choice. The queue shows records: it needs the
DAG's runs (security.READ_RUNS); a change also needs the DAG's edit permission and a same-origin
form with the user's CSRF token (security.SAME_ORIGIN_FORM), else 403 with nothing stored.

A decision review refuses raises out of the route, so the request's transaction is rolled back,
and answers 400 saying why (`refused`, the app's handler for ReviewError): a page with the way
back, or JSON for a client that asks for it. A decision taken goes back to the queue (303), whose
next GET shows what was done once, from a short-lived signed cookie: nothing stays in the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from airflow.api_fastapi.core_api.security import GetUserDep
from crm_sync import review
from crm_sync.web import services
from crm_sync.web.dependencies import Page, ProfileOfDag, Text, WarehouseConnection
from crm_sync.web.link_preview import link_previews
from crm_sync.web.pages import page
from crm_sync.web.security import EDIT_DAG, READ_RUNS, SAME_ORIGIN_FORM, csrf_token, signing_key

router = APIRouter(dependencies=READ_RUNS)
FLASH = "crm_sync_review_done"  # the cookie that carries "what was done" to the next GET, once


@router.get("/dags/{dag_id}/review", response_class=HTMLResponse)
def queue(request: Request, profile: ProfileOfDag, user: GetUserDep, conn: WarehouseConnection,
          q: Text = "", page_: Annotated[int, Query(ge=1, le=2**31 - 1, alias="page")] = 1, dpage: Page = 1
          ) -> HTMLResponse:
    """One page of the queue (``page``) and of its decisions (``dpage``), searched by ``q`` (record id,
    email, name), all in the query string: a search is a link to share."""
    shown = services.review_page(conn, profile, q, page_, dpage)
    items = shown["items"]
    undecided = [(p["ghl_id"], p["app_id"]) for item in items for p in item["pairs"] if not p["decision"]]
    done = _unseal(request.cookies.get(FLASH, ""))

    def link(**changes: int) -> str:
        wanted = {"q": q.strip(), "page": shown["items_span"]["page"], "dpage": shown["decisions_span"]["page"],
                  **changes}
        return urlencode({k: v for k, v in wanted.items() if v and v != 1})

    response = page(request, "review.html.j2", profile=profile, items=items, decisions=shown["decisions"],
                    items_span=shown["items_span"], decisions_span=shown["decisions_span"], q=q.strip(), link=link,
                    fields=list(profile.fields("contact")), previews=link_previews(conn, profile, undecided),
                    done=done, csrf=csrf_token(user))
    if FLASH in request.cookies:
        response.delete_cookie(FLASH, path=_queue_path(request, profile.dag_id))
    return response


def _queue_path(request: Request, dag_id: str) -> str:
    return request.scope.get("root_path", "").rstrip("/") + f"/dags/{dag_id}/review"


def _flash_mac(body: str) -> str:
    return hmac.new(signing_key(), b"crm-sync review flash\n" + body.encode(), hashlib.sha256).hexdigest()


def _seal(message: str) -> str:
    body = base64.urlsafe_b64encode(json.dumps(message).encode()).decode()
    return f"{body}.{_flash_mac(body)}"


def _unseal(value: str) -> str:
    body, _, mac = value.partition(".")
    if not body or not hmac.compare_digest(mac, _flash_mac(body)):
        return ""
    return str(json.loads(base64.urlsafe_b64decode(body)))


def _back(request: Request, dag_id: str, done: str) -> RedirectResponse:
    path = _queue_path(request, dag_id)
    response = RedirectResponse(path, status_code=303)
    response.set_cookie(FLASH, _seal(done), max_age=120, path=path, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


def refused(request: Request, exc: review.ReviewError) -> Response:
    """A decision review would not take: 400 saying why, nothing stored."""
    dag_id = request.path_params.get("dag_id", "")
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "text/html" not in accept:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    answer = page(request, "review_refused.html.j2", dag_id=dag_id, error=str(exc))
    answer.status_code = 400
    return answer


@router.post("/dags/{dag_id}/review/decide", dependencies=[*EDIT_DAG, *SAME_ORIGIN_FORM],
             response_class=RedirectResponse, status_code=303)
def decide(request: Request, profile: ProfileOfDag, user: GetUserDep, conn: WarehouseConnection,
           ghl_id: Annotated[str, Form()], app_id: Annotated[str, Form()],
           decision: Annotated[str, Form()]) -> RedirectResponse:
    review.decide(conn, profile, ghl_id, app_id, decision, user.get_name())
    verb = "linked" if decision == "link" else "kept apart"
    return _back(request, profile.dag_id, f"ghl:{ghl_id} and app:{app_id} {verb}; the next run applies it")


@router.post("/dags/{dag_id}/review/undo", dependencies=[*EDIT_DAG, *SAME_ORIGIN_FORM],
             response_class=RedirectResponse, status_code=303)
def undo(request: Request, profile: ProfileOfDag, user: GetUserDep, conn: WarehouseConnection,
         decision_id: Annotated[int, Form()]) -> RedirectResponse:
    review.undo(conn, profile, decision_id, user.get_name())  # a decision of this profile only
    return _back(request, profile.dag_id, f"decision {decision_id} undone; the next run applies it")
