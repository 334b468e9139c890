# The Airflow image with crm-sync's pinned requirements; used by docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11
# Airflow's own non-root user (docker-compose.yaml runs the containers as it, or as AIRFLOW_UID in group 0).
USER airflow
COPY requirements.txt requirements.lock /opt/crm-sync/
# pip and setuptools first, at the lock's versions (the base image's may have known advisories), then crm-sync's.
RUN pip install --no-cache-dir -c /opt/crm-sync/requirements.lock pip setuptools \
 && pip install --no-cache-dir -r /opt/crm-sync/requirements.txt -c /opt/crm-sync/requirements.lock
# The data volume's mount point (warehouse files, reports), made here so that a new named volume is
# writable by this user and group 0; the project's own folders are mounted read-only.
RUN mkdir -p -m 0775 /opt/airflow/crm_sync_data
