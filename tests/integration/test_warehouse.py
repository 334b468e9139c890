"""The warehouse schema comes from migrations, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from crm_sync.warehouse.db import create, migrate
from crm_sync.warehouse.tables import metadata

pytestmark = [pytest.mark.integration]
LAYERS = {"raw_record", "staging_contact", "staging_record", "quarantine", "xref", "outbox", "sync_state", "run_log",
          "raw_landed"}


def test_migrations_create_every_layer_and_rerun_as_a_no_op(warehouse_url):
    engine = create(warehouse_url)
    migrate(engine)
    migrate(engine)  # a second upgrade finds the schema at head and changes nothing
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) >= LAYERS
    for table in metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.columns.keys()), table.name
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0015_rules"
    engine.dispose()
