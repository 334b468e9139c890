"""Warehouse tables (SQLAlchemy Core). The schema itself is created by the migrations.

raw_record -> staging_contact (people) / staging_record (tasks, notes, appointments)
-> (quarantine) -> xref / outbox -> sync_state, run_log; raw_landed keeps the payload hash last
staged per record, so extract lands only what changed.
SQLite has no schemas, so the layers are table-name prefixes, the same on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


class UTCDateTime(sa.types.TypeDecorator):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()
TS = UTCDateTime()

raw_record = sa.Table(
    "raw_record", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("record_key", sa.String(128), nullable=False, comment="source id, or payload hash when it has none"),
    sa.Column("source_id", sa.String(128)),
    sa.Column("source_updated_at", TS),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("extracted_at", TS, nullable=False),
    sa.UniqueConstraint("profile", "run_id", "side", "entity", "record_key", name="uq_raw_record_per_run"),
)

staging_contact = sa.Table(
    "staging_contact", metadata,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),
    sa.Column("source_id", sa.String(128), primary_key=True),
    sa.Column("email", sa.String(320)),
    sa.Column("phone", sa.String(32)),
    sa.Column("first_name", sa.Text),
    sa.Column("last_name", sa.Text),
    sa.Column("company_name", sa.Text),
    sa.Column("lead_source", sa.Text),
    sa.Column("tags", sa.JSON, comment="sorted tag names"),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false(), comment="deleted or archived there"),
    sa.Column("updated_at", TS),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("raw_id", sa.Integer, comment="raw_record row this version came from; null when written by load"),
    sa.Column("run_id", sa.String(250), nullable=False, comment="run that last changed this row"),
    sa.Column("external_id", sa.String(128), comment="the other side's id this record keeps, per the profile's external_id"),
)

staging_record = sa.Table(
    "staging_record", metadata,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),
    sa.Column("source_id", sa.String(128), primary_key=True),
    sa.Column("contact_id", sa.String(128), comment="the side's id of the contact it belongs to"),
    sa.Column("fields", sa.JSON, nullable=False, comment="canonical field values"),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", TS),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("raw_id", sa.Integer),
    sa.Column("run_id", sa.String(250), nullable=False),
)

quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(128)),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("raw_id", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("profile", "run_id", "raw_id", "rule", name="uq_quarantine_per_run"),
    sa.Index("ix_quarantine_record", "profile", "source_id"),
)

xref = sa.Table(
    "xref", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("ghl_id", sa.String(128)),
    sa.Column("app_id", sa.String(128)),
    sa.Column("ghl_hash", sa.String(64), comment="hash of what GHL held after our last sync"),
    sa.Column("app_hash", sa.String(64), comment="hash of what the app held after our last sync"),
    sa.Column("base", sa.JSON, comment="merged canonical record at the last sync: the base of 3-way merges"),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("profile", "entity", "ghl_id", name="uq_xref_ghl"),
    sa.UniqueConstraint("profile", "entity", "app_id", name="uq_xref_app"),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("side", sa.String(8), nullable=False, comment="side written to"),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("xref_id", sa.Integer, nullable=False),
    sa.Column("contact_xref_id", sa.Integer, comment="tasks, notes, appointments: their contact's link"),
    sa.Column("target_id", sa.String(128)),
    sa.Column("payload", sa.JSON, nullable=False, comment="canonical fields to set"),
    sa.Column("merged", sa.JSON, nullable=False, comment="the merged record this write brings about"),
    sa.Column("source_hash", sa.String(64), comment="hash of the other side's version this write came from"),
    sa.Column("decisions", sa.JSON, nullable=False, comment="per field: which side won and why"),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("sent_at", TS),
    sa.Column("scrubbed_at", TS, comment="when retention removed its personal data (migration 0010)"),
    sa.Column("sent_run_id", sa.String(250), comment="the run whose load sent it, or last tried to; NULL: never tried"),
    sa.Column("before", sa.JSON(none_as_null=True),
              comment="the target's values of the payload's fields when planned (migration 0012)"),
    sa.Column("rule", sa.Text, comment="the rule(s), comma-separated, whose action is in it (0015)"),
    sa.Index("ix_outbox_link", "profile", "xref_id"),
)

rule_fire = sa.Table(  # each time a profile rule fired (migration 0015): once per rule, record and event;
    # a dry run's firings each under the dry run
    "rule_fire", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False,
              comment="the run that fired it (a real firing: the first run that planned it)"),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("event", sa.String(250), nullable=False, comment="what set it off, e.g. tag_added vip on ghl"),
    sa.Column("entity", sa.String(16), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("source_id", sa.String(128), nullable=False),
    sa.Column("xref_id", sa.Integer),
    sa.Column("contact_xref_id", sa.Integer),
    sa.Column("fire_key", sa.String(64), nullable=False, unique=True),
    sa.Column("writes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("fired_at", TS, nullable=False),
    sa.Index("ix_rule_fire_run", "profile", "run_id"),
)

raw_landed = sa.Table(
    "raw_landed", metadata,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("record_key", sa.String(128), primary_key=True),
    sa.Column("payload_hash", sa.String(64), nullable=False, comment="SHA-256 of the payload as received, once staged"),
    sa.Column("run_id", sa.String(250), nullable=False, comment="run that staged it"),
)

sync_state = sa.Table(
    "sync_state", metadata,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("watermark", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

run_log = sa.Table(
    "run_log", metadata,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("step", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True, comment="ghl, app, or '-' for steps of both"),
    sa.Column("run_type", sa.String(32)),
    sa.Column("window_start", TS),
    sa.Column("window_end", TS),
    sa.Column("stats", sa.JSON, nullable=False),
    sa.Column("finished_at", TS, nullable=False),
    sa.Column("handoff", sa.JSON, comment="crm_sync.pipeline.handoff, versioned; NULL: logged before 0008"),
    sa.Column("scrubbed_at", TS, comment="when retention removed its personal data (migration 0010)"),
    sa.Column("dry_run", sa.Boolean, comment="the run's own dry_run (its conf, else the profile's); NULL: before 0011"),
    sa.Column("error", sa.Text, comment="the step's task failed: its exception, as the task log shows it"),
    sa.Column("dag_id", sa.String(250), comment="the DAG of the run (the profile's, or its fast lane); NULL: before 0013"),
)

review_candidate = sa.Table(
    "review_candidate", metadata,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("ghl_id", sa.String(128), primary_key=True),
    sa.Column("app_id", sa.String(128), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False, comment='how they matched: "by email, another first name"'),
    sa.Column("run_id", sa.String(250), nullable=False, comment="the reconcile that found it open"),
)

review_decision = sa.Table(
    "review_decision", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("ghl_id", sa.String(128), nullable=False),
    sa.Column("app_id", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False, comment="link or apart"),
    sa.Column("decided_by", sa.String(256), nullable=False),
    sa.Column("decided_at", TS, nullable=False),
    sa.Column("undone_by", sa.String(256)),
    sa.Column("undone_at", TS),
    sa.Column("xref_id", sa.Integer, comment="the link reconcile made for it"),
    sa.Column("applied_run_id", sa.String(250), comment="the run that first honoured it"),
    sa.Column("scrubbed_at", TS, comment="when retention removed its personal data (migration 0010)"),
    sa.Index("ix_review_decision_pair", "profile", "ghl_id", "app_id"),
)

webhook_inbox = sa.Table(
    "webhook_inbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("webhook_id", sa.String(128), nullable=False, unique=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("contact_id", sa.String(128)),
    sa.Column("object_id", sa.String(128)),
    sa.Column("event_at", TS, nullable=False),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("routed", sa.Boolean, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("payload_bytes", sa.Integer, nullable=False, server_default="0",
              comment="size of the body as received: the per-location cap on stored bytes"),
    sa.Column("source", sa.String(80), nullable=False, server_default="ghl",
              comment="who sent it: ghl, or app:<profile> for an app's own webhook"),
    sa.Column("entity", sa.String(16), comment="an app event's entity (contact, task, note, appointment); NULL for GHL's"),
    sa.Index("ix_webhook_inbox_location", "location_id", "id"),
    sa.Index("ix_webhook_inbox_location_received", "location_id", "received_at"),
    sa.Index("ix_webhook_inbox_received", "received_at"),
    sa.Index("ix_webhook_inbox_contact", "contact_id"),
    sa.Index("ix_webhook_inbox_source", "source", "id"),
)

webhook_unrouted = sa.Table(
    "webhook_unrouted", metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("event_type", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False,
              comment="signed events of a location no profile names: counted, not kept"),
    sa.Column("first_seen", TS, nullable=False),
    sa.Column("last_seen", TS, nullable=False),
)

webhook_done = sa.Table(
    "webhook_done", metadata,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("inbox_id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("done_at", TS, nullable=False),
)

oauth_token = sa.Table(
    "oauth_token", metadata,
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("refresh_token", sa.Text, comment="Fernet-encrypted"),
    sa.Column("access_token", sa.Text, comment="Fernet-encrypted"),
    sa.Column("expires_at", sa.Float, comment="epoch seconds"),
    sa.Column("updated_at", TS, nullable=False),
)

agency_location = sa.Table(
    "agency_location", metadata,
    sa.Column("profile", sa.String(64), primary_key=True, comment="the agency profile that discovered it"),
    sa.Column("location_id", sa.String(64), primary_key=True, comment="GHL's location id (_id)"),
    sa.Column("key", sa.String(64), nullable=False, comment="lowercase suffix of its profile name and DAG id"),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("address", sa.Text),
    sa.Column("installed", sa.Boolean, nullable=False),
    sa.Column("installed_at", TS),
    sa.Column("first_seen_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("uninstalled_at", TS, comment="NULL while installed"),
    sa.Column("app_conn_id", sa.String(250)),
    sa.Column("app_conn_ready", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("checked_at", TS, nullable=False),
    sa.UniqueConstraint("profile", "key", name="uq_agency_location_key"),
)

# The analysts' models (migration 0012), kept current by every run (crm_sync.pipeline.people_models):
# one row per person and per activity across both sides, and a row-level log of every write.

person = sa.Table(
    "person", metadata,
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
    sa.Column("tags", sa.JSON(none_as_null=True), comment="sorted tag names"),
    sa.Column("status", sa.String(16), nullable=False,
              comment="synced, ghl_only, app_only, review, quarantined or deleted"),
    sa.Column("first_seen", TS, nullable=False),
    sa.Column("last_synced", TS, comment="when both sides last held the merged record; NULL: never"),
    sa.Column("ghl_changed_at", TS, comment="the GHL record's last change we saw"),
    sa.Column("app_changed_at", TS, comment="the app record's last change we saw"),
    sa.Column("winners", sa.JSON(none_as_null=True), comment='per field, the last decision: {"side", "reason", "run_id"}'),
    sa.Column("search_name", sa.Text, comment="both sides' names, accent-folded and lower case"),
    sa.Column("search_email", sa.Text, comment="both sides' emails, lower case"),
    sa.Column("search_phone", sa.Text, comment="both sides' phones, digits only"),
    sa.Column("run_id", sa.String(250), nullable=False, comment="the run that last changed this row"),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("profile", "ghl_id", name="uq_person_ghl"),
    sa.UniqueConstraint("profile", "app_id", name="uq_person_app"),
    sa.Index("ix_person_status", "profile", "status"),
    sa.Index("ix_person_updated", "profile", "updated_at"),
)

person_activity = sa.Table(
    "person_activity", metadata,
    sa.Column("activity_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False, comment="task, note or appointment"),
    sa.Column("person_id", sa.Integer, comment="NULL: its contact is not known yet"),
    sa.Column("ghl_id", sa.String(128)),
    sa.Column("app_id", sa.String(128)),
    sa.Column("sides", sa.String(8), nullable=False, comment="ghl, app or both"),
    sa.Column("title", sa.Text, comment="a task's title, a note's first line, an appointment's title"),
    sa.Column("status", sa.String(32), comment="task: open or completed; appointment: its status; deleted"),
    sa.Column("at_utc", TS, comment="a task's due time, an appointment's start, a note's last change"),
    sa.Column("at_local", sa.String(40), comment="at_utc in the profile's zone, ISO 8601 with its offset"),
    sa.Column("zone", sa.String(64), comment="the profile's zone"),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("profile", "entity", "ghl_id", name="uq_person_activity_ghl"),
    sa.UniqueConstraint("profile", "entity", "app_id", name="uq_person_activity_app"),
    sa.Index("ix_person_activity_person", "profile", "person_id", "at_utc"),
    # the insights lists: open tasks by due time, appointments by start, completed first calls by title
    sa.Index("ix_person_activity_lists", "profile", "entity", "status", "at_utc", "person_id", "title"),
)

sync_changelog = sa.Table(
    "sync_changelog", metadata,
    sa.Column("outbox_id", sa.Integer, primary_key=True, autoincrement=False, comment="one row per outbox row"),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("side", sa.String(8), nullable=False, comment="side written to"),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("person_id", sa.Integer),
    sa.Column("record_id", sa.String(128), comment="the written record's id on that side; NULL: a create not sent"),
    sa.Column("before", sa.JSON(none_as_null=True), comment="the fields' values on that side before"),
    sa.Column("after", sa.JSON(none_as_null=True), comment="the values written"),
    sa.Column("decisions", sa.JSON(none_as_null=True), comment="per field: which side won and by which rule"),
    sa.Column("status", sa.String(16), nullable=False, comment="planned (dry run), pending, sent, failed or dead"),
    sa.Column("run_id", sa.String(250), nullable=False, comment="the run that planned it"),
    sa.Column("sent_run_id", sa.String(250), comment="the run that sent it"),
    sa.Column("planned_at", TS, nullable=False),
    sa.Column("sent_at", TS),
    sa.Column("error", sa.Text),
    sa.Index("ix_sync_changelog_person", "profile", "person_id"),
    sa.Index("ix_sync_changelog_run", "profile", "run_id"),
)

sync_snapshot = sa.Table(
    "sync_snapshot", metadata,
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
    sa.Column("updated_at", TS, nullable=False),
    sa.Index("ix_sync_snapshot_status", "profile", "status"),
)
