"""What the console's people API answers (crm_sync.web.routes.people), as pydantic models the app's
OpenAPI documents: a page of a profile's persons, and one person with both records, the timeline of
both sides and the sync history. The fields are crm_sync.pipeline.people_pages' dicts, key for key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, JsonValue

Side = Literal["ghl", "app"]


class PersonSummary(BaseModel):
    """A person as the search lists it: the merged name, email and phone, its ids on each side."""

    person_id: int
    ghl_id: str | None  # None: GHL has no record of this person (yet)
    app_id: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None  # E.164
    status: str  # synced, ghl_only, app_only, review, quarantined or deleted
    last_synced: datetime | None
    updated_at: datetime  # the last change the warehouse saw: the list's order, newest first
    url: str  # the person, as JSON: a path under the api-server


class PersonCollection(BaseModel):
    """A page of a profile's persons matching ``q`` (everyone for an empty ``q``), newest changed first."""

    people: list[PersonSummary]
    total_entries: int  # those matching ``q``
    page: int
    pages: int
    per_page: int


class PersonRecord(BaseModel):
    """One side's record of the person, as the warehouse staged it."""

    side: Side
    id: str
    deleted: bool  # deleted or archived on that side
    changed_at: datetime | None  # the record's own last change there
    run_id: str  # the run that last staged it
    fields: dict[str, JsonValue]  # the profile's canonical contact fields


class Winner(BaseModel):
    """The last decision on a field: which side's value won, by which merge rule, in which run."""

    side: str  # ghl or app; both (tags merged as sets), neither (a link by review kept each), fallback (the profile's)
    reason: str | None = None
    run_id: str | None = None


class FieldSides(BaseModel):
    """One contact field: each side's value, the merged one, and who won it last (None: never contested)."""

    field: str
    ghl: JsonValue
    app: JsonValue
    merged: JsonValue
    winner: Winner | None


class Activity(BaseModel):
    """A task, note or appointment of the person, on one side or both (a synced pair is one activity)."""

    activity_id: int
    entity: Literal["task", "note", "appointment"]
    side: Literal["ghl", "app", "both"]
    ghl_id: str | None
    app_id: str | None
    title: str | None
    status: str | None  # task: open or completed; appointment: its status; deleted
    at_utc: datetime | None  # a task's due time, an appointment's start, a note's date
    at_local: str | None  # at_utc in the profile's zone, ISO 8601 with its offset
    zone: str


class FieldChange(BaseModel):
    field: str
    before: str
    after: str


class HistoryEntry(BaseModel):
    """One event of the person's sync: a write (``what``: its op), a quarantine entry (the rule), a
    review decision (link or apart) or a GHL webhook event (its type), with its run."""

    kind: Literal["write", "quarantine", "review", "webhook"]
    at: datetime | None  # sent (else planned), quarantined, decided, or the event's time
    run_id: str | None  # planned the write, quarantined the record, applied the decision, took the event in
    sent_run_id: str | None  # a write: the run that sent it
    entity: str | None
    side: Side | None  # a write: the side written to
    record_id: str | None
    what: str
    status: str | None  # a write's (pending, sent, failed ...); a decision's (active, undone)
    detail: str | None  # a quarantine rule's detail, a write's error or its winners, who decided
    changes: list[FieldChange]  # a write: each field before -> after


class PersonDetail(BaseModel):
    """A person: the merged record, both sides' records, the timeline of both sides (newest first, in
    the profile's zone) and the sync history (newest first)."""

    person_id: int
    profile: str
    ghl_id: str | None
    app_id: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    company_name: str | None
    lead_source: str | None
    tags: list[str] | None
    status: str
    first_seen: datetime
    last_synced: datetime | None
    ghl_changed_at: datetime | None
    app_changed_at: datetime | None
    run_id: str  # the run that last changed the person
    updated_at: datetime
    zone: str  # the profile's: activities' at_local
    records: dict[Side, PersonRecord | None]
    fields: list[FieldSides]
    activities: list[Activity]
    history: list[HistoryEntry]
