"""The crm-sync Airflow plugin: run reports are reachable from the Airflow UI.

Kept tiny on purpose: Airflow imports plugin files in every component at start-up.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class CrmSyncPlugin(AirflowPlugin):
    name = "crm_sync"
