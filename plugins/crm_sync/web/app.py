"""The FastAPI app the plugin mounts in the Airflow api-server at /crm-sync."""

from __future__ import annotations

from fastapi import FastAPI

from crm_sync.web import webhooks

app = FastAPI(title="crm-sync", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(webhooks.router)
