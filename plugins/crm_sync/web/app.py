"""The console's FastAPI app, mounted by the crm_sync plugin at /crm-sync in Airflow's api-server.

Access is decided per router (crm_sync.web.security), not by middleware, so a router with its
own verification (the webhook receiver) can sit in the same app: including another router is
one line below.
"""

from __future__ import annotations

from fastapi import FastAPI

from crm_sync.web.routes import profiles, review, runs


def create_app() -> FastAPI:
    app = FastAPI(title="crm-sync console", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(profiles.index)
    app.include_router(profiles.dag)
    app.include_router(runs.router)
    app.include_router(review.router)
    return app


app = create_app()
