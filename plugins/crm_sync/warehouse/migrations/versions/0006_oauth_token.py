"""oauth_token: the newest refresh token and the shared access token of each OAuth connection, encrypted

Revision ID: 0006_oauth_token
Revises: 0005_webhooks
Create Date: 2026-11-30 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_oauth_token'
down_revision = '0005_webhooks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'oauth_token',
        sa.Column('key', sa.String(length=250), primary_key=True, comment='the token store key of the connection'),
        sa.Column('refresh_token', sa.Text(), comment="Fernet-encrypted with Airflow's [core] fernet_key"),
        sa.Column('access_token', sa.Text(), comment="Fernet-encrypted with Airflow's [core] fernet_key"),
        sa.Column('expires_at', sa.Float(), comment='epoch seconds when the access token expires'),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('oauth_token')
