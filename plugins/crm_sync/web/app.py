"""The crm_sync plugin's FastAPI app, mounted at /crm-sync in Airflow's api-server: the console
and the GHL webhook receiver.

Access is decided per router (crm_sync.web.security), not by middleware: the console's routers
need the Airflow login, the webhook receiver verifies GHL's signature instead.
"""

from __future__ import annotations

from fastapi import FastAPI

from crm_sync.web import webhooks
from crm_sync.web.routes import profiles, review, runs


def create_app() -> FastAPI:
    app = FastAPI(title="crm-sync", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(profiles.index)
    app.include_router(profiles.dag)
    app.include_router(runs.router)
    app.include_router(review.router)
    app.include_router(webhooks.router)
    return app


app = create_app()
