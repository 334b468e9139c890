"""scrubbed_at: when retention took the personal data out of an outbox row, a run_log row or a
review decision (crm_sync.pipeline.retention); the ids, keys and statuses stay

Revision ID: 0010_retention
Revises: 0009_webhook_unrouted
Create Date: 2026-12-03 14:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010_retention'
down_revision = '0009_webhook_unrouted'
branch_labels = None
depends_on = None

TABLES = ('outbox', 'run_log', 'review_decision')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('scrubbed_at', sa.DateTime(timezone=True), nullable=True,
                                       comment='when retention removed its personal data; NULL: not yet'))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('scrubbed_at')
