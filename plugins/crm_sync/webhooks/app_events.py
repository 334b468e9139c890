"""An app's own webhook as an inbox row: the facts the profile's ``app.webhooks.event`` points at.

Only a body whose signature was verified gets here (crm_sync.webhooks.app_signature). The row is
the contract the fast lane reads (``source == "app:<profile>"``):

- ``webhook_id``: ``app:<profile>:<event id>``, or ``app:<profile>:sha256:<hex digest of the raw
  body>`` when the app sends no id (an id too long for 128 characters is replaced by its digest);
- ``location_id``: the profile's ``ghl.location_id``, or ``-``;
- ``event_type``: the app's type (at most 64 characters); ``entity``: contact, task, note or
  appointment; ``object_id``: the record's id on the app; ``contact_id``: a contact's own id, a
  child's contact id when the shape names it (else None); ``event_at``: the timestamp header's time
  or now; ``payload``: the body.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, get_args

from crm_sync.profile_webhooks import AppWebhooks, Entity
from crm_sync.records import dig
from crm_sync.webhooks.inbox import BadEvent, Event, id_text, json_object

ENTITIES: tuple[str, ...] = get_args(Entity)
MAX_WEBHOOK_ID = 128
NO_LOCATION = "-"


class Unmapped(Exception):
    """A verified event of a type the profile maps to no entity (an app pushing more than we sync)."""


def source(profile_name: str) -> str:
    return f"app:{profile_name}"


def parse(raw: bytes, profile_name: str, location_id: str | None, hooks: AppWebhooks,
          sent_at: datetime | None = None) -> Event:
    """The inbox row of one verified body; BadEvent naming the rule (never the body), or Unmapped."""
    body = json_object(raw)
    shape = hooks.event
    kind = dig(body, shape.type)
    if not isinstance(kind, str) or not kind:
        raise BadEvent(f"no event type at {shape.type!r} (app.webhooks.event.type)")
    entity = _entity(body, kind, hooks)
    record_id = id_text(dig(body, shape.record_id))
    if record_id is None:
        raise BadEvent(f"no record id at {shape.record_id!r} (app.webhooks.event.record_id)")
    if shape.id is None:
        key = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    elif (event_id := _whole_id(dig(body, shape.id))) is None:
        raise BadEvent(f"no event id at {shape.id!r} (app.webhooks.event.id; null when the app sends none)")
    else:
        key = event_id
    webhook_id = f"{source(profile_name)}:{key}"
    if len(webhook_id) > MAX_WEBHOOK_ID:
        webhook_id = f"{source(profile_name)}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"[:MAX_WEBHOOK_ID]
    contact_id = record_id if entity == "contact" else (
        id_text(dig(body, shape.contact_id)) if shape.contact_id else None)
    return Event(webhook_id=webhook_id, location_id=(location_id or NO_LOCATION)[:64], event_type=kind[:64],
                 contact_id=contact_id, object_id=record_id, event_at=sent_at or datetime.now(UTC), payload=body,
                 size=len(raw), source=source(profile_name), entity=entity)


def _whole_id(value: Any) -> str | None:
    """The event id untruncated (a long one is digested, not cut: two ids must not become one)."""
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None


def _entity(body: dict[str, Any], kind: str, hooks: AppWebhooks) -> str:
    """Our entity: the app's name at ``event.entity`` (mapped by ``types`` or one of ours), else the
    event type in ``types``, whole or the part before its first dot."""
    shape = hooks.event
    if shape.entity is not None:
        named = dig(body, shape.entity)
        if not isinstance(named, str) or not named:
            raise BadEvent(f"no entity at {shape.entity!r} (app.webhooks.event.entity)")
        entity = shape.types.get(named, named)
        if entity not in ENTITIES:
            raise Unmapped(f"entity {named[:40]!r} is none of {', '.join(ENTITIES)} (app.webhooks.event.types)")
        return entity
    entity = shape.types.get(kind) or shape.types.get(kind.split(".", 1)[0])
    if entity is None:
        raise Unmapped(f"event type {kind[:64]!r} is not in app.webhooks.event.types")
    return entity
