#!/bin/bash
# The warehouse lives beside Airflow's metadata in the compose stack's PostgreSQL, in its own
# database owned by its own role (password WAREHOUSE_DB_PASSWORD): the sync tasks' connection
# cannot read or change Airflow's metadata, where the connections and their secrets live.
# Run once by the postgres image, on an empty data volume.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set=password="$WAREHOUSE_DB_PASSWORD" <<'SQL'
CREATE ROLE warehouse LOGIN PASSWORD :'password';
CREATE DATABASE warehouse OWNER warehouse;
REVOKE ALL ON DATABASE warehouse FROM PUBLIC;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
SQL
