"""The crm-sync Airflow plugin: its FastAPI app (the GHL webhook receiver) in the api-server at /crm-sync.

Kept tiny on purpose: Airflow imports plugin files in every component at start-up, so the app
(FastAPI routes, cryptography, the warehouse) is imported only when the api-server asks for it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class _WebApps:
    """``fastapi_apps``, built on first read (only the api-server reads it)."""

    def __get__(self, plugin, owner=None) -> list[dict]:
        from crm_sync.web.app import app

        return [{"app": app, "url_prefix": "/crm-sync", "name": "crm-sync"}]


class CrmSyncPlugin(AirflowPlugin):
    name = "crm_sync"
    fastapi_apps = _WebApps()
