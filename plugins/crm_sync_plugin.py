"""The crm-sync Airflow plugin: the operator's console in the Airflow UI and the GHL webhook receiver.

Kept light on purpose (Airflow imports plugin files in every component at start-up): it only
registers the FastAPI app (crm_sync.web: the console and POST /crm-sync/webhooks/ghl), a
"crm-sync" entry in the navigation, and a "crm-sync report" tab on every DAG run and task
instance, which opens that run's report (a DAG that is not crm-sync's gets a 404 there).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from crm_sync.web import console

PREFIX = "crm-sync"  # external_views hrefs are relative to the UI's base URL


class CrmSyncPlugin(AirflowPlugin):
    name = "crm_sync"
    fastapi_apps = [{"app": console, "url_prefix": f"/{PREFIX}", "name": "crm-sync console"}]
    external_views = [
        {"name": "crm-sync", "href": f"{PREFIX}/", "destination": "nav", "url_route": "crm-sync",
         "nav_top_level": True},
        {"name": "crm-sync report", "href": f"{PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "crm-sync-run"},
        {"name": "crm-sync report", "href": f"{PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}", "destination": "task_instance",
         "url_route": "crm-sync-task"},
    ]
