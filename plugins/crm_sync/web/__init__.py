"""The crm_sync plugin's FastAPI app, served by the Airflow api-server under /crm-sync."""
