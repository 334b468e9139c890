# The Airflow image with crm-sync's pinned requirements; used by docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt requirements.lock /opt/crm-sync/
RUN pip install --no-cache-dir -r /opt/crm-sync/requirements.txt -c /opt/crm-sync/requirements.lock
