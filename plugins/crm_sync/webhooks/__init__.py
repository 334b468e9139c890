"""GHL webhooks: verify, store in the warehouse inbox, and wake the location's DAGs.

The receiver (``crm_sync.web.routes.receiver``) is served by the Airflow api-server; the runs read the
inbox through ``crm_sync.pipeline.webhook_events``.
"""
