"""outbox.rule: the profile rule(s) whose action made a write; rule_fire: each time a rule fired,
once per rule, record and event (issue 27), for the console's counts per run and the report

Revision ID: 0015_rules
Revises: 0014_agency_location
Create Date: 2026-12-04 06:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0015_rules'
down_revision = '0014_agency_location'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('rule', sa.Text, nullable=True,
                                   comment="the rule(s), comma-separated, whose action is in this write; NULL: none"))
    op.create_table(
        'rule_fire',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('profile', sa.String(64), nullable=False),
        sa.Column('run_id', sa.String(250), nullable=False, comment="the run that fired it (a real firing: the first run that planned it)"),
        sa.Column('rule', sa.String(64), nullable=False),
        sa.Column('event', sa.String(250), nullable=False, comment="what set it off, e.g. tag_added vip on ghl"),
        sa.Column('entity', sa.String(16), nullable=False, comment="the trigger record's entity"),
        sa.Column('side', sa.String(8), nullable=False, comment="the side the event happened on"),
        sa.Column('source_id', sa.String(128), nullable=False, comment="the trigger record's id on that side"),
        sa.Column('xref_id', sa.Integer, comment="the trigger record's link"),
        sa.Column('contact_xref_id', sa.Integer, comment="the contact's link the actions act on"),
        sa.Column('fire_key', sa.String(64), nullable=False, unique=True,
                  comment="the same in every run for the same rule, record and event: it fires once; "
                          "a dry run's firing is keyed with the dry run too"),
        sa.Column('writes', sa.Integer, nullable=False, server_default='0', comment="outbox rows it planned"),
        sa.Column('dry_run', sa.Boolean, nullable=False, server_default=sa.false(),
                  comment="a dry run's firing: what it would have done"),
        sa.Column('fired_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_rule_fire_run', 'rule_fire', ['profile', 'run_id'])


def downgrade() -> None:
    op.drop_index('ix_rule_fire_run', 'rule_fire')
    op.drop_table('rule_fire')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('rule')
