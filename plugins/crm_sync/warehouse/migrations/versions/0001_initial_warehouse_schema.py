"""initial warehouse schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:15:34.120178
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False, comment='side written to'),
    sa.Column('op', sa.String(length=16), nullable=False),
    sa.Column('xref_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.String(length=128), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False, comment='canonical fields to set'),
    sa.Column('merged', sa.JSON(), nullable=False, comment='the merged record this write brings about'),
    sa.Column('source_hash', sa.String(length=64), nullable=True, comment="hash of the other side's version this write came from"),
    sa.Column('decisions', sa.JSON(), nullable=False, comment='per field: which side won and why'),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=True),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('raw_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('profile', 'run_id', 'raw_id', 'rule', name='uq_quarantine_per_run')
    )
    op.create_table('raw_record',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=128), nullable=False, comment='source id, or payload hash when it has none'),
    sa.Column('source_id', sa.String(length=128), nullable=True),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('extracted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('profile', 'run_id', 'side', 'entity', 'record_key', name='uq_raw_record_per_run')
    )
    op.create_table('run_log',
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False, comment="ghl, app, or '-' for steps of both"),
    sa.Column('run_type', sa.String(length=32), nullable=True),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('profile', 'run_id', 'step', 'side')
    )
    op.create_table('staging_contact',
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('first_name', sa.Text(), nullable=True),
    sa.Column('last_name', sa.Text(), nullable=True),
    sa.Column('company_name', sa.Text(), nullable=True),
    sa.Column('lead_source', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('raw_id', sa.Integer(), nullable=True, comment='raw_record row this version came from; null when written by load'),
    sa.Column('run_id', sa.String(length=250), nullable=False, comment='run that last changed this row'),
    sa.PrimaryKeyConstraint('profile', 'side', 'source_id')
    )
    op.create_table('sync_state',
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('profile', 'side', 'entity')
    )
    op.create_table('xref',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('ghl_id', sa.String(length=128), nullable=True),
    sa.Column('app_id', sa.String(length=128), nullable=True),
    sa.Column('ghl_hash', sa.String(length=64), nullable=True, comment='hash of what GHL held after our last sync'),
    sa.Column('app_hash', sa.String(length=64), nullable=True, comment='hash of what the app held after our last sync'),
    sa.Column('base', sa.JSON(), nullable=True, comment='merged canonical record at the last sync: the base of 3-way merges'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('profile', 'entity', 'app_id', name='uq_xref_app'),
    sa.UniqueConstraint('profile', 'entity', 'ghl_id', name='uq_xref_ghl')
    )


def downgrade() -> None:
    op.drop_table('xref')
    op.drop_table('sync_state')
    op.drop_table('staging_contact')
    op.drop_table('run_log')
    op.drop_table('raw_record')
    op.drop_table('quarantine')
    op.drop_table('outbox')
