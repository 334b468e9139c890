"""The crm_sync plugin's FastAPI app, mounted at /crm-sync in Airflow's api-server: the console
and the webhook receivers (GHL's, and the apps' own), laid out as Airflow's own api_fastapi: one router per resource in
`routes/`, the JSON answers' models in `datamodels.py`, what routes are given in `dependencies.py`.

Access is decided per router (crm_sync.web.security), not by middleware: the console's routers
need the Airflow login, the webhook receivers verify the sender's signature instead.

A browser gets the console's errors as pages (``error.html.j2``), and a logged-out one the Airflow
login, which brings it back; scripts (the JSON API, the receiver, any client not asking for HTML)
get JSON. A page opened on its own in a browser tab is shown inside the Airflow UI instead, where
its navigation entry shows it: the console has one address a person sees.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_sync.console_urls import OPENAPI, ui_url
from crm_sync.review import ReviewError
from crm_sync.web.routes import api, insights, people, profiles, receiver, receiver_app, review, rules, runs
from crm_sync.web.security import LOGGED_IN

log = logging.getLogger(__name__)

# The console's schema on its own, to logged-in users; the api-server's /openapi.json lists its JSON
# routes too (crm_sync.web.openapi).
described = APIRouter(dependencies=LOGGED_IN)

FOR_SCRIPTS = ("/api/", "/webhooks/")  # JSON whatever the client accepts
LOG_IN_AGAIN = {401: None, 403: "Invalid JWT token"}  # no user, an expired token, or one this server did not sign
TITLES = {400: "Bad request", 401: "Log in first", 403: "Not allowed", 404: "Not found",
          405: "Not allowed here", 422: "Bad request", 500: "Something went wrong"}


@described.get(OPENAPI, include_in_schema=False)
def openapi(request: Request) -> dict[str, Any]:
    return request.app.openapi()


def _route_path(scope: Scope) -> str:
    """The path inside the console (``/dags/x``), wherever it is mounted."""
    return scope["path"].removeprefix(scope.get("root_path", "").rstrip("/")) or "/"


def _here(scope: Scope) -> str:
    """The path and query asked for, as sent (a run id's quoted ``:`` and ``+`` stay quoted)."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return (path + (b"?" + query if query else b"")).decode("latin-1")


def _wants_html(request: Request) -> bool:
    """A browser's request for a console page; not a script's (API paths, no text/html, or JSON first)."""
    if _route_path(request.scope).startswith(FOR_SCRIPTS):
        return False
    accept = request.headers.get("accept", "").lower()
    html, json = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def _login(request: Request) -> RedirectResponse:
    """The auth manager's login, which brings the user back here: to this page, or after a form's
    post (which cannot be replayed) to the console's front page."""
    from airflow.api_fastapi.app import get_auth_manager

    here = _here(request.scope) if request.method == "GET" else request.scope.get("root_path", "").rstrip("/") + "/"
    return RedirectResponse(get_auth_manager().get_url_login(next_url=here), status_code=303)


def _error_page(request: Request, status: int, detail: str) -> Response:
    from crm_sync.web.pages import page
    from crm_sync.web.services import profiles

    dag_id = request.path_params.get("dag_id")
    profile = next((p for p in profiles() if p.dag_id == dag_id), None) if dag_id else None
    answer = page(request, "error.html.j2", status=status, title=TITLES.get(status, "Error"), detail=detail,
                  dag=profile.dag_id if profile else None)
    answer.status_code = status
    return answer


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if not _wants_html(request):
        return await http_exception_handler(request, exc)
    if exc.status_code in LOG_IN_AGAIN and LOG_IN_AGAIN[exc.status_code] in (None, exc.detail):
        return _login(request)
    if exc.status_code == 404 and exc.detail == "Not Found":  # no route: say which address
        return _error_page(request, 404, f"The console has no page at {request.url.path}.")
    return _error_page(request, exc.status_code, str(exc.detail))


async def bad_request(request: Request, exc: RequestValidationError) -> Response:
    if not _wants_html(request):
        return await request_validation_exception_handler(request, exc)
    said = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return _error_page(request, 422, said)


async def server_error(request: Request, exc: Exception) -> Response:
    """Nothing of the exception is shown (it may hold anything); the api-server logs it."""
    if not _wants_html(request):
        return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
    try:
        return _error_page(request, 500, "The console could not answer; the api-server's log says why.")
    except Exception:  # the page itself could not be drawn
        log.exception("the console's error page failed")
        return Response("Internal Server Error", status_code=500, media_type="text/plain")


class InsideTheUI:
    """A page opened in a tab of its own (a link in an alert, a typed URL) moves into the Airflow UI,
    which shows it in its frame under the console's navigation entry. Frames, scripts and the API are
    answered here. Browsers say what a request is for in Sec-Fetch-Dest and Sec-Fetch-Mode."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not _route_path(scope).startswith(FOR_SCRIPTS):
            headers = Headers(scope=scope)
            if headers.get("sec-fetch-dest") == "document" and headers.get("sec-fetch-mode") == "navigate":
                from airflow.api_fastapi.app import API_ROOT_PATH

                moved = RedirectResponse(ui_url(_here(scope), API_ROOT_PATH), status_code=307)
                await moved(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app() -> FastAPI:
    app = FastAPI(title="crm-sync", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(profiles.index)
    app.include_router(profiles.dag)
    app.include_router(runs.router)
    app.include_router(review.router)
    app.include_router(insights.router)
    app.include_router(rules.rules)
    app.include_router(rules.previews)
    app.include_router(api.profiles)
    app.include_router(api.dag)
    app.include_router(api.records)
    app.include_router(people.pages)
    app.include_router(people.api)
    app.include_router(receiver.router)
    app.include_router(receiver_app.router)
    app.include_router(described)
    app.add_exception_handler(ReviewError, review.refused)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(Exception, server_error)
    app.add_middleware(InsideTheUI)
    return app


app = create_app()
receiver.check_settings()
receiver.prune_while_quiet()
