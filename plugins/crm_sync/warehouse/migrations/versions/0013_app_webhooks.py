"""webhook_inbox.source and .entity: the apps' own webhooks share GHL's inbox (issue 25);
run_log.dag_id: a profile's runs come from two DAGs, the batch one and the fast lane

Revision ID: 0013_app_webhooks
Revises: 0012_person_models
Create Date: 2026-12-03 20:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_app_webhooks'
down_revision = '0012_person_models'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_inbox') as batch:
        batch.add_column(sa.Column('source', sa.String(80), nullable=False, server_default='ghl',
                                   comment="who sent it: ghl, or app:<profile> for an app's own webhook"))
        batch.add_column(sa.Column('entity', sa.String(16), nullable=True,
                                   comment="an app event's entity (contact, task, note, appointment); NULL for GHL's"))
    op.create_index('ix_webhook_inbox_source', 'webhook_inbox', ['source', 'id'])
    with op.batch_alter_table('run_log') as batch:
        batch.add_column(sa.Column('dag_id', sa.String(250), nullable=True,
                                   comment="the DAG of the run (the profile's, or its fast lane); NULL: before 0013"))


def downgrade() -> None:
    with op.batch_alter_table('run_log') as batch:
        batch.drop_column('dag_id')
    op.drop_index('ix_webhook_inbox_source', 'webhook_inbox')
    with op.batch_alter_table('webhook_inbox') as batch:
        batch.drop_column('entity')
        batch.drop_column('source')
