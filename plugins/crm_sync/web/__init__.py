"""The operator's console: crm-sync's pages inside the Airflow UI (a FastAPI app the plugin mounts at /crm-sync)."""
