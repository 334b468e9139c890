"""What the console's JSON routes answer, as pydantic models (Airflow's `core_api/datamodels` way):
FastAPI checks each answer against its model and the app's OpenAPI documents it.

The fields follow `crm_sync.pipeline.report.build_report` key for key and in its order, so the JSON
is the dict the report task exports; `JsonValue` marks what is a record's own data, kept as stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue


class SideSummary(BaseModel):
    """One side of a run (GHL or the app): records read, and what happened to them."""

    window: str
    extracted: int
    quarantined: int
    created: int
    updated: int
    unchanged: int
    failed: int
    planned: int
    api_calls: int
    changed: int  # extracted = unchanged + changed + quarantined
    deleted: int


class BudgetStop(BaseModel):
    """What waits for the next run because GHL's daily budget ran down to the reserve."""

    message: str
    notes_owed: int
    tasks_owed: int
    appointments_from: str | None
    writes_waiting: int


class DeadLetter(BaseModel):
    """A write that failed in an unexpected way on every attempt (an outbox row, no longer sent)."""

    id: int
    entity: str
    side: str
    op: str
    error: str


class EntityCounts(BaseModel):
    extracted_ghl: int
    extracted_app: int
    sent_to_ghl: int
    sent_to_app: int
    quarantined: int


class QuarantinedRow(BaseModel):
    entity: str
    side: str
    source_id: str | None
    rule: str
    detail: str
    raw_id: int
    payload: JsonValue  # the raw record as received


class FieldChange(BaseModel):
    field: str
    before: str
    after: str


class Write(BaseModel):
    outbox_id: int  # its outbox row (`crm_sync.cli outbox retry --id N`), and its person's writes in sync_changelog
    entity: str
    side: str
    op: str
    changes: list[FieldChange]
    target_id: str | None
    status: str
    last_error: str | None
    payload: JsonValue
    decisions: JsonValue  # per field: which side won and why
    planned_by: str  # the run that planned it
    sent_by: str | None  # the run whose load sent it (or failed it), when this run is the one
    rules: list[str]  # the profile rules whose actions it carries (outbox.rule); empty: the field mapping's own


class RuleFired(BaseModel):
    """A profile rule that fired in the run (rule_fire): how often, and the writes its actions made."""

    rule: str
    fired: int  # records it fired on
    writes: int  # outbox rows its actions planned, or joined (a contact's write the mapping planned too)
    dry_run: bool  # a dry run's firings: shown, nothing sent


class ListSpan(BaseModel):
    """Which rows of a report's list are shown: ``first``-``last`` of ``total`` (those matching the
    filters; ``all``: the run's, whatever the filters), page ``page`` of ``pages``."""

    total: int
    page: int
    pages: int
    per_page: int
    first: int
    last: int
    all: int


class Listed(BaseModel):
    """The filters and search a report's lists were asked for, and each list's page."""

    query: dict[str, str | None]
    writes: ListSpan
    quarantine: ListSpan


class FailedTask(BaseModel):
    """A task of the run that failed: its error, and its log in the Airflow UI (a path under its base URL)."""

    task_id: str
    step: str
    error: str
    try_number: int | None
    log: str


class TriggerEvents(BaseModel):
    """The webhook inbox events one side's extract used (none: ``count`` 0)."""

    count: int
    oldest_received_at: str | None  # when the oldest reached the inbox (ISO)
    age_at_start_s: float | None  # how old it was when the run started; null: logged before issue 25


class RunTrigger(BaseModel):
    """What started a run (crm_sync.pipeline.run_trigger): its schedule, a person, a backfill, or
    webhook events; and the events it carried, whatever started it."""

    kind: Literal["schedule", "manual", "backfill", "webhook", "other"]  # other: see run_type
    run_type: str | None  # Airflow's: scheduled, manual, backfill, asset_triggered
    dag_id: str  # the DAG that ran it: the profile's, or its fast lane's (<dag_id>_fast)
    fast_lane: bool
    schedule: str | None  # the profile's cron, for a scheduled run
    interval_s: float | None  # a scheduled or backfill run's data interval, in seconds
    events: dict[Literal["ghl", "app"], TriggerEvents]
    event_count: int
    oldest_age_s: float | None  # the oldest event's age when the run started, of both sides
    label: str  # the line the console and the exported report show


class RunReport(BaseModel):
    """One run's report: the page's content, as the report task also exports it."""

    profile: str
    run_id: str
    timezone: str
    run_type: str | None
    sides: dict[Literal["ghl", "app"], SideSummary]
    writes_sent: int
    quarantined: int
    quarantined_by_rule: dict[str, int]
    rules_fired: list[RuleFired]  # the profile's rules that fired in the run, most fired first
    validate_: dict[str, Any] = Field(alias="validate")  # validate's results, the profile's threshold
    failed_at: str | None
    budget_stop: BudgetStop | None
    dead_letter: list[DeadLetter]
    entities: dict[str, EntityCounts]
    quarantine: list[QuarantinedRow]
    writes: list[Write]
    listed: Listed  # the console's page of writes and quarantined rows; the exported file lists them all
    state: Literal["running", "failed", "success"]
    failed_task: FailedTask | None
    retrying: list[FailedTask]  # failed a try, Airflow retries them
    steps_done: list[str]  # task ids, in DAG order
    airflow_run: str  # the DAG run in the Airflow UI's grid, a path under its base URL
    task_ids: list[str]
    dag_id: str  # the profile's DAG, which names its console pages; the run's own DAG: trigger.dag_id
    interval_start: str | None
    interval_end: str | None
    dry_run: bool
    generated_at: str | None
    finished: bool
    title: str
    trigger: RunTrigger


# --- the JSON API for scripts (crm_sync.web.routes.api): lists, paged as Airflow's own API pages them

class RunSummary(BaseModel):
    """One run as the runs list shows it: its counts, not its writes or rows (the report has those)."""

    run_id: str
    run_type: str | None
    title: str
    state: Literal["running", "failed", "success"]  # success: every step done; failed: see failed_at
    dry_run: bool
    interval_start: str | None
    interval_end: str | None
    generated_at: str | None  # when its report was written: the run's end
    failed_at: str | None  # the first step that did not succeed
    writes_sent: int
    quarantined: int
    sides: dict[Literal["ghl", "app"], SideSummary]
    trigger: RunTrigger
    report: str  # the report's JSON, a path under the api-server


class RunCollection(BaseModel):
    """A page of a profile's runs, newest first; ``total_entries`` counts them all."""

    runs: list[RunSummary]
    total_entries: int


class DagSummary(BaseModel):
    """A profile: its DAG, app and schedule, its review queue's length and its newest run."""

    dag_id: str
    profile: str
    app: str
    schedule: str | None
    dry_run: bool
    review_pending: int
    latest_run: RunSummary | None


class DagCollection(BaseModel):
    dags: list[DagSummary]
    total_entries: int


class ReviewRecord(BaseModel):
    """A record of an ambiguous match, with the profile's contact fields as staged."""

    side: Literal["ghl", "app"]
    id: str
    staged: bool
    fields: dict[str, JsonValue]


class PairDecision(BaseModel):
    id: int
    decision: Literal["link", "apart"]
    decided_by: str
    decided_at: datetime


class ReviewPair(BaseModel):
    ghl_id: str
    app_id: str
    reason: str
    decision: PairDecision | None  # decided, not yet applied by a run


class ReviewItem(BaseModel):
    """Records tied by candidate pairs; listed while one of its pairs is undecided."""

    id: str
    records: list[ReviewRecord]
    pairs: list[ReviewPair]


class ReviewQueue(BaseModel):
    items: list[ReviewItem]
    total_entries: int


class ReviewDecision(BaseModel):
    """A decision on a pair: who took it and when, and whether it was undone."""

    id: int
    ghl_id: str
    app_id: str
    decision: Literal["link", "apart"]
    decided_by: str
    decided_at: datetime
    undone_by: str | None
    undone_at: datetime | None
    active: bool
    applied_run_id: str | None  # the run that first honoured it


class DecisionCollection(BaseModel):
    """A page of a profile's decisions, newest first."""

    decisions: list[ReviewDecision]
    total_entries: int


class WebhookAnswer(BaseModel):
    """The receiver's answer to a webhook it took (stored, a repeat, kept unrouted, or an app's event of
    a type its profile maps to no entity: ignored)."""

    status: Literal["stored", "duplicate", "unrouted", "ignored"]
    profiles: list[str] | None = None  # the profiles woken, when stored


class Refusal(BaseModel):
    """Why a request was refused."""

    detail: str
