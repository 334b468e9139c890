"""webhooks: the inbox of GHL events the receiver accepted, and which profile's runs used them

Revision ID: 0005_webhooks
Revises: 0004_review
Create Date: 2026-11-30 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_webhooks'
down_revision = '0004_review'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_inbox',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('webhook_id', sa.String(128), nullable=False, unique=True,
                  comment="GHL's webhookId: a repeated one is answered and not stored again"),
        sa.Column('location_id', sa.String(64), nullable=False),
        sa.Column('event_type', sa.String(64), nullable=False),
        sa.Column('contact_id', sa.String(128), comment='the GHL contact the event concerns'),
        sa.Column('object_id', sa.String(128), comment='the contact, task, note or appointment id'),
        sa.Column('event_at', sa.DateTime(timezone=True), nullable=False, comment="the body's timestamp"),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('routed', sa.Boolean, nullable=False, comment='a profile named this location when it arrived'),
        sa.Column('payload', sa.JSON, nullable=False),
    )
    op.create_index('ix_webhook_inbox_location', 'webhook_inbox', ['location_id', 'id'])
    op.create_table(
        'webhook_done',
        sa.Column('profile', sa.String(64), primary_key=True),
        sa.Column('inbox_id', sa.Integer, primary_key=True),
        sa.Column('run_id', sa.String(250), nullable=False, comment='the successful run that used the event'),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('webhook_done')
    op.drop_index('ix_webhook_inbox_location', table_name='webhook_inbox')
    op.drop_table('webhook_inbox')
