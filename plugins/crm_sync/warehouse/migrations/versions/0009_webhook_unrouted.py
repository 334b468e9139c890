"""webhook_unrouted: events of locations no profile names are counted, not kept; inbox payload sizes

The receiver no longer stores the payload of an event no profile routes: it counts it per location
and event type. Inbox rows stored unrouted before hold personal data of no profile: they are
counted into webhook_unrouted and deleted. payload_bytes feeds the per-location cap on stored
bytes; the indexes serve the per-minute cap and the receiver's retention.

Revision ID: 0009_webhook_unrouted
Revises: 0008_run_log_handoff
Create Date: 2026-12-03 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_webhook_unrouted'
down_revision = '0008_run_log_handoff'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_unrouted',
        sa.Column('location_id', sa.String(64), primary_key=True),
        sa.Column('event_type', sa.String(64), primary_key=True),
        sa.Column('count', sa.Integer, nullable=False,
                  comment='signed events of a location no profile names: counted, not kept'),
        sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table('webhook_inbox') as batch:
        batch.add_column(sa.Column('payload_bytes', sa.Integer, nullable=False, server_default='0',
                                   comment='size of the body as received: the per-location cap on stored bytes'))
    op.execute(
        "INSERT INTO webhook_unrouted (location_id, event_type, count, first_seen, last_seen) "
        "SELECT location_id, event_type, COUNT(*), MIN(received_at), MAX(received_at) FROM webhook_inbox "
        "WHERE NOT routed GROUP BY location_id, event_type")
    unrouted = "SELECT id FROM webhook_inbox WHERE NOT routed"
    op.execute(f"DELETE FROM webhook_done WHERE inbox_id IN ({unrouted})")
    op.execute("DELETE FROM webhook_inbox WHERE NOT routed")
    size = ("octet_length(payload::text)" if op.get_bind().dialect.name == "postgresql"
            else "length(CAST(payload AS BLOB))")
    op.execute(f"UPDATE webhook_inbox SET payload_bytes = {size}")
    op.create_index('ix_webhook_inbox_location_received', 'webhook_inbox', ['location_id', 'received_at'])
    op.create_index('ix_webhook_inbox_received', 'webhook_inbox', ['received_at'])


def downgrade() -> None:
    op.drop_index('ix_webhook_inbox_received', table_name='webhook_inbox')
    op.drop_index('ix_webhook_inbox_location_received', table_name='webhook_inbox')
    with op.batch_alter_table('webhook_inbox') as batch:
        batch.drop_column('payload_bytes')
    op.drop_table('webhook_unrouted')
