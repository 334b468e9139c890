"""The crm_sync plugin's FastAPI app, mounted at /crm-sync in Airflow's api-server: the console
and the GHL webhook receiver, laid out as Airflow's own api_fastapi: one router per resource in
`routes/`, the JSON answers' models in `datamodels.py`, what routes are given in `dependencies.py`.

Access is decided per router (crm_sync.web.security), not by middleware: the console's routers
need the Airflow login, the webhook receiver verifies GHL's signature instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from crm_sync.console_urls import OPENAPI
from crm_sync.review import ReviewError
from crm_sync.web.routes import profiles, receiver, review, runs
from crm_sync.web.security import LOGGED_IN

# The api-server's own /openapi.json does not take in a mounted plugin app: the console serves its
# schema itself, to logged-in users only (it names every route and model).
described = APIRouter(dependencies=LOGGED_IN)


@described.get(OPENAPI, include_in_schema=False)
def openapi(request: Request) -> dict[str, Any]:
    return request.app.openapi()


def create_app() -> FastAPI:
    app = FastAPI(title="crm-sync", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(profiles.index)
    app.include_router(profiles.dag)
    app.include_router(runs.router)
    app.include_router(review.router)
    app.include_router(receiver.router)
    app.include_router(described)
    app.add_exception_handler(ReviewError, review.refused)
    return app


app = create_app()
