"""contacts: the other side's id a record keeps (external id), for identity before email

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 16:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staging_contact') as batch:
        batch.add_column(sa.Column('external_id', sa.String(length=128), nullable=True,
                                   comment="the other side's id this record keeps, per the profile's external_id"))


def downgrade() -> None:
    with op.batch_alter_table('staging_contact') as batch:
        batch.drop_column('external_id')
