"""outbox.sent_run_id: the run whose load sent a write (a dry run plans it, a later run sends it);
run_log.dry_run and run_log.error: each step's run says whether it is a dry run, and a failed task
leaves its error where the console reads

Revision ID: 0011_outbox_sent_run
Revises: 0010_retention
Create Date: 2026-12-03 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_outbox_sent_run'
down_revision = '0010_retention'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('sent_run_id', sa.String(250), nullable=True,
                                   comment='the run whose load sent it, or last tried to; NULL: never tried'))
    # Before this column a write was always credited to the run that planned it: keep that for old rows.
    op.execute("UPDATE outbox SET sent_run_id = run_id WHERE status IN ('sent', 'failed', 'sending')")
    with op.batch_alter_table('run_log') as batch:
        batch.add_column(sa.Column('dry_run', sa.Boolean(), nullable=True,
                                   comment="the run's own dry_run (its conf, else the profile's); NULL: before 0011"))
        batch.add_column(sa.Column('error', sa.Text(), nullable=True,
                                   comment="the step's task failed: its exception, as the task log shows it"))


def downgrade() -> None:
    with op.batch_alter_table('run_log') as batch:
        batch.drop_column('error')
        batch.drop_column('dry_run')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('sent_run_id')
