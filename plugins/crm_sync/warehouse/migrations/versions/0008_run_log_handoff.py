"""run_log.handoff: what a step hands the later steps of its run and the next run, typed and versioned

Revision ID: 0008_run_log_handoff
Revises: 0007_raw_landed
Create Date: 2026-12-03 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_run_log_handoff'
down_revision = '0007_raw_landed'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('run_log') as batch:
        batch.add_column(sa.Column('handoff', sa.JSON(), nullable=True,
                                   comment='crm_sync.pipeline.handoff, versioned; NULL: logged before 0008'))


def downgrade() -> None:
    with op.batch_alter_table('run_log') as batch:
        batch.drop_column('handoff')
