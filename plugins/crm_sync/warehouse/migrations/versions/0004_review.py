"""review queue: the open ambiguous pairs reconcile found, and the decisions people made on them

Ids only: a decision says who decided what about which two records, never their personal fields.

Revision ID: 0004_review
Revises: 0003
Create Date: 2026-11-30 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_review'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'review_candidate',
        sa.Column('profile', sa.String(length=64), primary_key=True),
        sa.Column('ghl_id', sa.String(length=128), primary_key=True),
        sa.Column('app_id', sa.String(length=128), primary_key=True),
        sa.Column('reason', sa.Text(), nullable=False, comment='how they matched: "by email, another first name"'),
        sa.Column('run_id', sa.String(length=250), nullable=False, comment='the reconcile that found it open'),
    )
    op.create_table(
        'review_decision',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('profile', sa.String(length=64), nullable=False),
        sa.Column('ghl_id', sa.String(length=128), nullable=False),
        sa.Column('app_id', sa.String(length=128), nullable=False),
        sa.Column('decision', sa.String(length=8), nullable=False, comment='link or apart'),
        sa.Column('decided_by', sa.String(length=256), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('undone_by', sa.String(length=256), nullable=True),
        sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('xref_id', sa.Integer(), nullable=True, comment='the link reconcile made for it'),
        sa.Column('applied_run_id', sa.String(length=250), nullable=True, comment='the run that first honoured it'),
    )
    op.create_index('ix_review_decision_pair', 'review_decision', ['profile', 'ghl_id', 'app_id'])


def downgrade() -> None:
    op.drop_index('ix_review_decision_pair', table_name='review_decision')
    op.drop_table('review_decision')
    op.drop_table('review_candidate')
