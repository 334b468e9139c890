"""The crm-sync Airflow plugin: the operator's console in the Airflow UI and the GHL webhook receiver.

Kept light on purpose (Airflow imports plugin files in every component at start-up): it only
registers the FastAPI app (crm_sync.web: the console and POST /crm-sync/webhooks/ghl), described in
the api-server's /openapi.json by a root middleware (crm_sync.web.openapi), a
"crm-sync" entry in the navigation, and a "crm-sync report" tab on every DAG run and task
instance, which opens that run's report (a DAG that is not crm-sync's gets a 404 there).

The navigation entry shows the console in the UI's frame at /plugin/crm-sync/, the UI's one
address for it (a console page opened in a tab of its own moves there: crm_sync.web.app).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from crm_sync.console_urls import CONSOLE, UI_PAGE, run_report_url
from crm_sync.web import console
from crm_sync.web.openapi import ConsoleInOpenAPI

# external_views hrefs are relative to the UI's base URL; the UI fills in the placeholders
RUN_TAB = run_report_url("{DAG_ID}", "{RUN_ID}", base="", quote_run_id=False)


class CrmSyncPlugin(AirflowPlugin):
    name = "crm_sync"
    fastapi_apps = [{"app": console, "url_prefix": f"/{CONSOLE}", "name": "crm-sync console"}]
    fastapi_root_middlewares = [{"middleware": ConsoleInOpenAPI, "name": "crm-sync API in the api-server's OpenAPI"}]
    external_views = [
        {"name": "crm-sync", "href": f"{CONSOLE}/", "destination": "nav", "url_route": UI_PAGE,
         "nav_top_level": True},
        {"name": "crm-sync report", "href": RUN_TAB, "destination": "dag_run", "url_route": "crm-sync-run"},
        {"name": "crm-sync report", "href": RUN_TAB, "destination": "task_instance", "url_route": "crm-sync-task"},
    ]
