"""The receivers' half of the inbox: check an event's body, store it once (webhook id unique) within
its sender's caps, or only count it when no profile names its location.

One inbox for every sender: GHL's events (source ``ghl``) and each app's own (``app:<profile>``,
parsed by crm_sync.webhooks.app_events). Caps are per sender: a GHL location, or one app profile."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crm_sync.warehouse.ops import insert_new
from crm_sync.warehouse.tables import webhook_inbox, webhook_unrouted

REQUIRED = ("type", "locationId", "webhookId", "timestamp")


class BadEvent(Exception):
    """A signed body we cannot use; the message names the rule, never the body."""


class StaleEvent(Exception):
    """The timestamp is outside the accepted window: a replay, or a clock far off."""


class OverCap(Exception):
    """Storing the event would take its location past a cap; ``retry_after`` in seconds."""

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Caps:
    events_per_minute: int  # 0: no cap
    stored_bytes: int  # 0: no cap
    full_retry_after: int  # what a full location's 429 asks: when the next prune may have made room


@dataclass(frozen=True)
class Event:
    webhook_id: str
    location_id: str
    event_type: str
    contact_id: str | None
    object_id: str | None
    event_at: datetime
    payload: dict[str, Any]
    size: int = 0  # bytes of the body as received
    app_id: str | None = None
    source: str = "ghl"  # or app:<profile>
    entity: str | None = None  # an app event's entity; None for GHL's

    @property
    def sender(self) -> str:
        """Whose caps the event counts against: a GHL location, or one app profile's webhooks."""
        return f"ghl:{self.location_id}" if self.source == "ghl" else self.source


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; BadEvent naming the rule (never the body) otherwise."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent(f"body is not JSON: {exc.__class__.__name__} at position {getattr(exc, 'pos', 0)}") from None
    except RecursionError:
        raise BadEvent("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadEvent("body is not a JSON object")
    return body


def parse(raw: bytes, tolerance: timedelta, now: datetime | None = None) -> Event:
    body = json_object(raw)
    if missing := [key for key in REQUIRED if not isinstance(body.get(key), str) or not body[key]]:
        raise BadEvent(f"missing or empty: {', '.join(missing)}")
    event_at = moment(body["timestamp"])
    if abs((now or datetime.now(UTC)) - event_at) > tolerance:
        raise StaleEvent(f"timestamp is more than {int(tolerance.total_seconds())} s from now")
    appointment = body.get("appointment") if isinstance(body.get("appointment"), dict) else None
    kind = body["type"]
    if appointment is not None:
        contact, obj = appointment.get("contactId"), appointment.get("id")
    elif kind.startswith("Contact"):
        contact = obj = body.get("id")
    else:
        contact, obj = body.get("contactId"), body.get("id")
    return Event(webhook_id=body["webhookId"][:128], location_id=body["locationId"][:64], event_type=kind[:64],
                 contact_id=id_text(contact), object_id=id_text(obj), event_at=event_at, payload=body, size=len(raw),
                 app_id=body["appId"] if isinstance(body.get("appId"), str) else None)


def moment(value: str) -> datetime:
    """An ISO 8601 time in UTC (one without an offset is read as UTC); BadEvent otherwise."""
    try:
        when = datetime.fromisoformat(value)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadEvent("timestamp is not an ISO 8601 time UTC can hold") from None


def id_text(value: Any) -> str | None:
    """An id as text (at most 128 characters); None for anything that is not a usable id."""
    return str(value)[:128] if isinstance(value, str | int) and value != "" else None


def seen(conn: sa.Connection, event: Event) -> bool:
    """Is the event's webhookId in the inbox already (a redelivery)?"""
    return conn.scalar(sa.select(webhook_inbox.c.id).where(webhook_inbox.c.webhook_id == event.webhook_id)) is not None


def within_caps(conn: sa.Connection, event: Event, caps: Caps, now: datetime) -> None:
    """OverCap when the event's sender (a GHL location, or an app profile) took ``events_per_minute``
    events in the last minute, or its stored payloads and this one would pass ``stored_bytes``.
    Counted in the warehouse, so it holds across api-server workers: on PostgreSQL the sender's
    transaction lock makes concurrent requests count one after another (held until the insert
    commits); on SQLite racing requests may pass it together."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                     {"key": f"crm_sync webhook cap {event.sender}"})
    inbox = webhook_inbox.c
    location = ((inbox.location_id == event.location_id) & (inbox.source == "ghl") if event.source == "ghl"
                else inbox.source == event.source)
    who = "the location" if event.source == "ghl" else f"the app's webhooks ({event.source})"
    if caps.events_per_minute:
        window = now - timedelta(minutes=1)
        recent, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(webhook_inbox.c.received_at))
                                      .where(location, webhook_inbox.c.received_at > window)).one()
        if recent >= caps.events_per_minute:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            wait = math.ceil((oldest + timedelta(minutes=1) - now).total_seconds())
            raise OverCap(f"{who} took {caps.events_per_minute} events in the last minute "
                          "(webhook_max_events_per_minute)", max(1, wait))
    if caps.stored_bytes:
        stored = conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(webhook_inbox.c.payload_bytes), 0))
                             .where(location))
        if int(stored) + event.size > caps.stored_bytes:
            raise OverCap(f"{who}: its stored events would pass {caps.stored_bytes} bytes "
                          "(webhook_max_stored_bytes)", caps.full_retry_after)


def store(conn: sa.Connection, event: Event, now: datetime | None = None) -> bool:
    """Insert a routed event; False when its webhook id is already in the inbox."""
    return insert_new(conn, webhook_inbox, {
        "webhook_id": event.webhook_id, "location_id": event.location_id, "event_type": event.event_type,
        "contact_id": event.contact_id, "object_id": event.object_id, "event_at": event.event_at,
        "received_at": now or datetime.now(UTC), "routed": True, "payload": event.payload,
        "payload_bytes": event.size, "source": event.source, "entity": event.entity}, keys=["webhook_id"])


def keep(conn: sa.Connection, event: Event, caps: Caps, now: datetime) -> str:
    """Store a verified, routed event once: "stored" or "duplicate" (its webhook id is in the inbox
    already: a redelivery costs no cap); OverCap past its sender's caps."""
    if seen(conn, event):
        return "duplicate"
    within_caps(conn, event, caps, now)
    return "stored" if store(conn, event, now) else "duplicate"


def count_unrouted(conn: sa.Connection, event: Event, now: datetime | None = None) -> None:
    """Count an event no profile routes by its location and type; its payload is not kept anywhere."""
    now = now or datetime.now(UTC)
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(webhook_unrouted)
    conn.execute(insert.values(location_id=event.location_id, event_type=event.event_type, count=1,
                               first_seen=now, last_seen=now)
                 .on_conflict_do_update(index_elements=["location_id", "event_type"],
                                        set_={"count": webhook_unrouted.c.count + 1, "last_seen": now}))
