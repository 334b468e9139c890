"""docker-compose.yaml's PostgreSQL init script, run on the real server: the warehouse is a role of its own."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL, ROOT
from tests.unit.test_docker_compose import compose


def test_the_warehouse_is_its_own_database_role_that_cannot_open_airflow_metadata(tmp_path):
    """Runs the postgres image's init script on the real server, with throwaway names."""
    services = compose()["services"]
    warehouse = sa.engine.make_url(services["airflow-worker"]["environment"]["AIRFLOW_CONN_WAREHOUSE_DEFAULT"])
    metadata = sa.engine.make_url(services["airflow-worker"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert warehouse.username == "warehouse" != metadata.username and warehouse.database == "warehouse"
    assert services["postgres"]["environment"]["WAREHOUSE_DB_PASSWORD"].startswith("${WAREHOUSE_DB_PASSWORD:?")
    mounts = services["postgres"]["volumes"]
    script = (ROOT / next(m.split(":")[0] for m in mounts if "docker-entrypoint-initdb.d" in m)).read_text()
    suffix = uuid.uuid4().hex[:10]
    role, meta = f"wh_{suffix}", f"meta_{suffix}"
    (tmp_path / "init.sh").write_text(script.replace("warehouse", role).replace("airflow", meta))
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{meta}"'))
    try:
        url = sa.engine.make_url(PG_ADMIN_URL)
        env = {**os.environ, "PGHOST": url.host, "PGPORT": str(url.port), "POSTGRES_USER": url.username,
               "POSTGRES_DB": meta, "WAREHOUSE_DB_PASSWORD": "it's s3cret"}
        subprocess.run(["bash", str(tmp_path / "init.sh")], env=env, check=True, capture_output=True, timeout=60)
        as_role = url.set(username=role)
        with sa.create_engine(as_role.set(database=role)).connect() as conn:
            assert conn.scalar(sa.text("select current_user")) == role
        with pytest.raises(sa.exc.OperationalError, match="permission denied"):
            sa.create_engine(as_role.set(database=meta)).connect()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{meta}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
