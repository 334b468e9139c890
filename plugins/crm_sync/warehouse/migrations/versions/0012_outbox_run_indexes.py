"""outbox indexes by run: a report page reads one run's writes (planned by it, or sent by it), not
every write of the profile

Revision ID: 0012_outbox_run_indexes
Revises: 0011_outbox_sent_run
Create Date: 2026-12-03 15:00:00
"""
from alembic import op

revision = '0012_outbox_run_indexes'
down_revision = '0011_outbox_sent_run'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_run', 'outbox', ['profile', 'run_id'])
    op.create_index('ix_outbox_sent_run', 'outbox', ['profile', 'sent_run_id'])


def downgrade() -> None:
    op.drop_index('ix_outbox_sent_run', table_name='outbox')
    op.drop_index('ix_outbox_run', table_name='outbox')
