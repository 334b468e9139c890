"""The console's JSON API and webhook receiver in the api-server's own OpenAPI (``/openapi.json``, and so
Airflow's ``/docs``), beside Airflow's REST API.

FastAPI describes only the routes of an app itself, not of an app mounted in it, and Airflow mounts
plugin apps. So the plugin adds a root middleware: on the api-server's first request it wraps the
root app's ``openapi()`` to add the console's script routes (``/api/...``, ``/webhooks/...``) under the
console's prefix, tagged ``crm-sync``; the console's pages are for browsers and stay out. Model names
Airflow already uses for something else are prefixed ``CrmSync``.

Imported by the plugin file in every Airflow component: nothing heavy is imported until a request.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from crm_sync.console_urls import CONSOLE

DESCRIBED = ("/api/", "/webhooks/")  # what scripts and GHL call; pages are for browsers
TAG = "crm-sync"
log = logging.getLogger(__name__)


def console_schema() -> dict[str, Any]:
    from crm_sync.web.app import create_app

    return create_app().openapi()


def merged(airflow: dict[str, Any], console: dict[str, Any], prefix: str = f"/{CONSOLE}") -> dict[str, Any]:
    """Airflow's schema with the console's described paths added under ``prefix`` (in place)."""
    theirs = airflow.setdefault("components", {}).setdefault("schemas", {})
    ours = console.get("components", {}).get("schemas", {})
    renamed = {name: f"CrmSync{name}" for name, model in ours.items() if name in theirs and theirs[name] != model}
    text = json.dumps({"paths": {path: item for path, item in console["paths"].items() if path.startswith(DESCRIBED)},
                       "schemas": ours})
    for old, new in renamed.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    added = json.loads(text)
    for name, model in added["schemas"].items():
        theirs.setdefault(renamed.get(name, name), model)
    for path, item in added["paths"].items():
        for operation in item.values():
            operation["tags"] = [TAG]
        airflow["paths"][prefix + path] = item
    if not any(tag.get("name") == TAG for tag in airflow.setdefault("tags", [])):
        airflow["tags"].append({"name": TAG, "description": "crm-sync's console API and GHL webhook receiver"})
    return airflow


def describe_console(root: Any) -> None:
    """Wrap ``root.openapi`` (FastAPI's documented way to change an app's schema) once."""
    if getattr(root.openapi, "describes_crm_sync", False):
        return
    airflows = root.openapi

    def openapi() -> dict[str, Any]:
        schema = airflows()  # FastAPI caches it in root.openapi_schema: merge once, into the cache
        if not any(path.startswith(f"/{CONSOLE}/") for path in schema["paths"]):
            try:
                merged(schema, console_schema())
            except Exception:  # Airflow's own schema and /docs must not fail for ours
                log.exception("the console's routes could not be added to the api-server's OpenAPI")
        return schema

    openapi.describes_crm_sync = True  # type: ignore[attr-defined]
    root.openapi = openapi


class ConsoleInOpenAPI:
    """Root middleware: Starlette puts the root app in every request's scope; wrap its schema there."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.done = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not self.done and scope.get("type") == "http" and hasattr(scope.get("app"), "openapi"):
            describe_console(scope["app"])
            self.done = True
        await self.app(scope, receive, send)
