"""The receiver's half of the inbox: check an event's body and store it once (webhookId unique)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm_sync.warehouse.ops import insert_new
from crm_sync.warehouse.tables import webhook_inbox

REQUIRED = ("type", "locationId", "webhookId", "timestamp")


class BadEvent(Exception):
    """A signed body we cannot use; the message names the rule, never the body."""


class StaleEvent(Exception):
    """The timestamp is outside the accepted window: a replay, or a clock far off."""


@dataclass(frozen=True)
class Event:
    webhook_id: str
    location_id: str
    event_type: str
    contact_id: str | None
    object_id: str | None
    event_at: datetime
    payload: dict[str, Any]


def parse(raw: bytes, tolerance: timedelta, now: datetime | None = None) -> Event:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent(f"body is not JSON: {exc.__class__.__name__} at position {getattr(exc, 'pos', 0)}") from None
    except RecursionError:
        raise BadEvent("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadEvent("body is not a JSON object")
    if missing := [key for key in REQUIRED if not isinstance(body.get(key), str) or not body[key]]:
        raise BadEvent(f"missing or empty: {', '.join(missing)}")
    event_at = _moment(body["timestamp"])
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
                 contact_id=_id(contact), object_id=_id(obj), event_at=event_at, payload=body)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadEvent("timestamp is not an ISO 8601 time UTC can hold") from None


def _id(value: Any) -> str | None:
    return str(value)[:128] if isinstance(value, str | int) and value != "" else None


def store(conn: sa.Connection, event: Event, routed: bool) -> bool:
    """Insert the event; False when its webhookId is already in the inbox (a redelivery)."""
    return insert_new(conn, webhook_inbox, {
        "webhook_id": event.webhook_id, "location_id": event.location_id, "event_type": event.event_type,
        "contact_id": event.contact_id, "object_id": event.object_id, "event_at": event.event_at,
        "received_at": datetime.now(UTC), "routed": routed, "payload": event.payload}, keys=["webhook_id"])
