"""Provider info: makes Airflow list our connection types, with their form fields, in the UI.

Registered through the ``apache_airflow_provider`` entry point in pyproject.toml.
"""

from __future__ import annotations

TEXT = {"type": ["string", "null"]}
SECRET = {"type": ["string", "null"], "format": "password"}


def get_provider_info() -> dict:
    return {
        "package-name": "crm-sync",
        "name": "crm-sync",
        "description": "GoHighLevel and business-app connections for the crm-sync DAGs.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "ghl",
                "hook-class-name": "crm_sync.hooks.ghl.GHLHook",
                "hook-name": "GoHighLevel",
                "conn-fields": {
                    "location_id": {"label": "Location ID", "schema": TEXT},
                    "client_id": {"label": "OAuth client ID (empty when using a Private Integration Token)",
                                  "schema": TEXT},
                    "client_secret": {"label": "OAuth client secret", "schema": SECRET},
                    "refresh_token": {"label": "OAuth refresh token from the install", "schema": SECRET},
                    "company_id": {"label": "Agency company ID (an agency install: leave Location ID empty; "
                                   "the refresh token is the agency's, user_type Company)", "schema": TEXT},
                    "app_id": {"label": "Agency: the app's ID (default: the client ID's part before '-')",
                               "schema": TEXT},
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "API base URL", "password": "Private Integration Token"},
                    "placeholders": {"host": "https://services.leadconnectorhq.com", "password": "pit-..."},
                },
            },
            {
                "connection-type": "crm_sync_app",
                "hook-class-name": "crm_sync.hooks.app.AppHook",
                "hook-name": "crm-sync business app",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "API base URL", "password": "API key or token"},
                    "placeholders": {"host": "https://api.example.com"},
                },
            },
        ],
    }
