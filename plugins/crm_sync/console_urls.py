"""Where the console lives in the Airflow UI, spelled once: the plugin mounts it and links to it,
its routes serve these paths, and the report task, validate and alerts point to a run's report.

A ground-floor module (nothing of crm_sync imported), so every layer may link to a report."""

from __future__ import annotations

from urllib.parse import quote

CONSOLE = "crm-sync"  # where crm_sync_plugin mounts the console in the api-server
UI_PAGE = "crm-sync"  # its page in the Airflow UI (the nav entry's url_route): /plugin/crm-sync
RUN_REPORT = "/dags/{dag_id}/runs/{run_id}"  # a run's report page, inside the console
RUN_REPORT_JSON = "/api" + RUN_REPORT  # the same report as JSON
OPENAPI = "/api/openapi.json"  # the console's JSON API, described (behind the login)
API_DAGS = "/api/dags"  # the profiles, each with its newest run
API_RUNS = "/api/dags/{dag_id}/runs"  # a profile's runs, paged, newest first
API_REVIEW = "/api/dags/{dag_id}/review"  # its review queue
API_DECISIONS = "/api/dags/{dag_id}/review/decisions"  # the decisions taken on it


def run_report_url(dag_id: str, run_id: str, base: str = "/", *, json: bool = False, quote_run_id: bool = True) -> str:
    """A run's report under ``base``: the api-server's URL, "/" for a path from its root, or "" for a
    link relative to the UI's base URL (the plugin's tabs). The run id is quoted whole (its ``+`` and
    ``:`` too), unless it is a placeholder the UI fills in."""
    base = base.rstrip("/") + "/" if base else ""
    run = quote(run_id, safe="") if quote_run_id else run_id
    route = RUN_REPORT_JSON if json else RUN_REPORT
    return f"{base}{CONSOLE}{route.format(dag_id=dag_id, run_id=run)}"


def ui_url(console_path: str, ui_root: str = "/") -> str:
    """Where the Airflow UI shows a console page inside its own frame: the UI mirrors the frame's
    path (the api-server's, ``/crm-sync/...``) after its plugin page, ``/plugin/crm-sync``."""
    return f"{ui_root.rstrip('/')}/plugin/{UI_PAGE}{console_path}"
