"""raw_landed: the payload hash last landed per record, so an unchanged record is not landed again

Revision ID: 0007_raw_landed
Revises: 0006_oauth_token
Create Date: 2026-11-30 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_raw_landed'
down_revision = '0006_oauth_token'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'raw_landed',
        sa.Column('profile', sa.String(length=64), primary_key=True),
        sa.Column('side', sa.String(length=8), primary_key=True),
        sa.Column('entity', sa.String(length=32), primary_key=True),
        sa.Column('record_key', sa.String(length=128), primary_key=True),
        sa.Column('payload_hash', sa.String(length=64), nullable=False,
                  comment='SHA-256 of the payload as received, once staged'),
        sa.Column('run_id', sa.String(length=250), nullable=False, comment='run that staged it'),
    )


def downgrade() -> None:
    op.drop_table('raw_landed')
