-- The warehouse lives beside Airflow's metadata in the compose stack's PostgreSQL.
CREATE DATABASE warehouse OWNER airflow;
