"""The analysts' models: person, person_activity, sync_changelog and sync_snapshot, kept current by
every run (crm_sync.pipeline.people_models); outbox.before keeps what a write replaced

Revision ID: 0012_person_models
Revises: 0011_outbox_sent_run
Create Date: 2026-12-03 17:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_person_models'
down_revision = '0011_outbox_sent_run'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('before', sa.JSON, nullable=True,
                                   comment="the target's values of the payload's fields when planned"))
    op.create_table(
        'person',
        sa.Column("person_id", sa.Integer, primary_key=True, autoincrement=True,
                  comment="stable: kept when the person's two records are linked later (the older id stays)"),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("ghl_id", sa.String(128)),
        sa.Column("app_id", sa.String(128)),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(32), comment="E.164"),
        sa.Column("company_name", sa.Text),
        sa.Column("lead_source", sa.Text),
        sa.Column("tags", sa.JSON, comment="sorted tag names"),
        sa.Column("status", sa.String(16), nullable=False,
                  comment="synced, ghl_only, app_only, review, quarantined or deleted"),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_synced", sa.DateTime(timezone=True), comment="when both sides last held the merged record; NULL: never"),
        sa.Column("ghl_changed_at", sa.DateTime(timezone=True), comment="the GHL record's last change we saw"),
        sa.Column("app_changed_at", sa.DateTime(timezone=True), comment="the app record's last change we saw"),
        sa.Column("winners", sa.JSON, comment='per field, the last decision: {"side", "reason", "run_id"}'),
        sa.Column("search_name", sa.Text, comment="both sides' names, accent-folded and lower case"),
        sa.Column("search_email", sa.Text, comment="both sides' emails, lower case"),
        sa.Column("search_phone", sa.Text, comment="both sides' phones, digits only"),
        sa.Column("run_id", sa.String(250), nullable=False, comment="the run that last changed this row"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("profile", "ghl_id", name="uq_person_ghl"),
        sa.UniqueConstraint("profile", "app_id", name="uq_person_app"),
        sa.Index("ix_person_status", "profile", "status"),
        sa.Index("ix_person_updated", "profile", "updated_at"),
    )
    op.create_table(
        'person_activity',
        sa.Column("activity_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False, comment="task, note or appointment"),
        sa.Column("person_id", sa.Integer, comment="NULL: its contact is not known yet"),
        sa.Column("ghl_id", sa.String(128)),
        sa.Column("app_id", sa.String(128)),
        sa.Column("sides", sa.String(8), nullable=False, comment="ghl, app or both"),
        sa.Column("title", sa.Text, comment="a task's title, a note's first line, an appointment's title"),
        sa.Column("status", sa.String(32), comment="task: open or completed; appointment: its status; deleted"),
        sa.Column("at_utc", sa.DateTime(timezone=True), comment="a task's due time, an appointment's start, a note's last change"),
        sa.Column("at_local", sa.String(40), comment="at_utc in the profile's zone, ISO 8601 with its offset"),
        sa.Column("zone", sa.String(64), comment="the profile's zone"),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("profile", "entity", "ghl_id", name="uq_person_activity_ghl"),
        sa.UniqueConstraint("profile", "entity", "app_id", name="uq_person_activity_app"),
        sa.Index("ix_person_activity_person", "profile", "person_id", "at_utc"),
        sa.Index("ix_person_activity_when", "profile", "entity", "at_utc", "status"),
    )
    op.create_table(
        'sync_changelog',
        sa.Column("outbox_id", sa.Integer, primary_key=True, autoincrement=False, comment="one row per outbox row"),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False, comment="side written to"),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("person_id", sa.Integer),
        sa.Column("record_id", sa.String(128), comment="the written record's id on that side; NULL: a create not sent"),
        sa.Column("before", sa.JSON, comment="the fields' values on that side before"),
        sa.Column("after", sa.JSON, comment="the values written"),
        sa.Column("decisions", sa.JSON, comment="per field: which side won and by which rule"),
        sa.Column("status", sa.String(16), nullable=False, comment="planned (dry run), pending, sent, failed or dead"),
        sa.Column("run_id", sa.String(250), nullable=False, comment="the run that planned it"),
        sa.Column("sent_run_id", sa.String(250), comment="the run that sent it"),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Index("ix_sync_changelog_person", "profile", "person_id"),
        sa.Index("ix_sync_changelog_run", "profile", "run_id"),
    )
    op.create_table(
        'sync_snapshot',
        sa.Column("profile", sa.String(64), primary_key=True),
        sa.Column("entity", sa.String(32), primary_key=True),
        sa.Column("side", sa.String(8), primary_key=True),
        sa.Column("record_id", sa.String(128), primary_key=True),
        sa.Column("person_id", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False,
                  comment="synced, pending, planned, failed, quarantined, review or one_side"),
        sa.Column("detail", sa.Text, comment="the quarantine rule or the write's error"),
        sa.Column("last_op", sa.String(16), comment="the last write to or for it"),
        sa.Column("run_id", sa.String(250), nullable=False, comment="the run that last set this status"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_sync_snapshot_status", "profile", "status"),
    )
    # a person's page reads their quarantine entries and webhook events by record id
    op.create_index('ix_quarantine_record', 'quarantine', ['profile', 'source_id'])
    op.create_index('ix_webhook_inbox_contact', 'webhook_inbox', ['contact_id'])
    op.create_index('ix_outbox_link', 'outbox', ['profile', 'xref_id'])  # the models' refresh reads a link's writes


def downgrade() -> None:
    op.drop_index('ix_outbox_link', table_name='outbox')
    op.drop_index('ix_webhook_inbox_contact', table_name='webhook_inbox')
    op.drop_index('ix_quarantine_record', table_name='quarantine')
    op.drop_table('sync_snapshot')
    op.drop_table('sync_changelog')
    op.drop_table('person_activity')
    op.drop_table('person')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('before')
