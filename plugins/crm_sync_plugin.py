"""The crm-sync Airflow plugin: its FastAPI app (the GHL webhook receiver) in the api-server.

Kept tiny on purpose: Airflow imports plugin files in every component at start-up; the app's
modules load only where the api-server mounts them.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _fastapi_apps() -> list[dict]:
    from crm_sync.web.app import app

    return [{"app": app, "url_prefix": "/crm-sync", "name": "crm-sync"}]


class CrmSyncPlugin(AirflowPlugin):
    name = "crm_sync"
    fastapi_apps = _fastapi_apps()
