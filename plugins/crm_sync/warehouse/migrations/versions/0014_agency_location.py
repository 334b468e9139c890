"""agency_location: the sub-accounts (GHL locations) an agency install reaches, discovered by each
agency profile's discovery run (issue 26); the DAG factory makes one DAG per syncing row

Revision ID: 0014_agency_location
Revises: 0013_app_webhooks
Create Date: 2026-12-03 23:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0014_agency_location'
down_revision = '0013_app_webhooks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agency_location',
        sa.Column('profile', sa.String(64), primary_key=True, comment="the agency profile that discovered it"),
        sa.Column('location_id', sa.String(64), primary_key=True, comment="GHL's location id (_id)"),
        sa.Column('key', sa.String(64), nullable=False,
                  comment="the lowercase suffix of its profile name and DAG id; kept once given"),
        sa.Column('name', sa.Text, nullable=False, server_default=''),
        sa.Column('address', sa.Text),
        sa.Column('installed', sa.Boolean, nullable=False, comment="listed by the last discovery as installed"),
        sa.Column('installed_at', sa.DateTime(timezone=True), comment="GHL's installedAt"),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('uninstalled_at', sa.DateTime(timezone=True),
                  comment="when a discovery first found it no longer installed; NULL while installed"),
        sa.Column('app_conn_id', sa.String(250), comment="its app connection, by the profile's rule or mapping"),
        sa.Column('app_conn_ready', sa.Boolean, nullable=False, server_default=sa.false(),
                  comment="that connection existed at the last discovery; false: waiting for it"),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False, comment="the last discovery run"),
        sa.UniqueConstraint('profile', 'key', name='uq_agency_location_key'),
    )


def downgrade() -> None:
    op.drop_table('agency_location')
