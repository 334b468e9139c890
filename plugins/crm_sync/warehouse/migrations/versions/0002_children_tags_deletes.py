"""tasks, notes and appointments in staging; tags and deletes on contacts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staging_record',
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=False),
    sa.Column('contact_id', sa.String(length=128), nullable=True, comment="the side's id of the contact it belongs to"),
    sa.Column('fields', sa.JSON(), nullable=False, comment='canonical field values'),
    sa.Column('deleted', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('raw_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.PrimaryKeyConstraint('profile', 'entity', 'side', 'source_id')
    )
    with op.batch_alter_table('staging_contact') as batch:
        batch.add_column(sa.Column('tags', sa.JSON(), nullable=True, comment='sorted tag names'))
        batch.add_column(sa.Column('deleted', sa.Boolean(), server_default=sa.false(), nullable=False,
                                   comment='deleted or archived there'))
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('contact_xref_id', sa.Integer(), nullable=True,
                                   comment="tasks, notes, appointments: their contact's link"))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('contact_xref_id')
    with op.batch_alter_table('staging_contact') as batch:
        batch.drop_column('deleted')
        batch.drop_column('tags')
    op.drop_table('staging_record')
