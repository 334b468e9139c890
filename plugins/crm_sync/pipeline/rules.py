"""What a profile rule sees and decides (issue 27): whether its trigger happened to a record, whether
the record meets its conditions, and the text and due time of what it creates. Pure functions on a
``Subject``; ``crm_sync.pipeline.reconcile.rule_plan`` turns their answers into outbox rows.

A trigger compares a record with its last synced state (the link's ``base``): a record seen for the
first time fires only ``new_contact``, so a first sync of an existing book fires no change rule, and
our own writes, recorded as synced when load sends them, never look like a change (echo-safe).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crm_sync.profile_rules import TEMPLATE_FIELD, Condition, Due, Rule, relative_moment
from crm_sync.records import RuleBroken, dig
from crm_sync.timezones import timestamp, to_instant

EMPTY = (None, "", [], {})


@dataclass
class Subject:
    """One record a rule may fire on: its canonical ``values`` on ``side``, the last synced ones
    (``base``; None: never synced), its contact's values (``contact``: the same for a contact), the
    raw payloads last extracted per side (``raw``), and the links the actions act through."""

    entity: str
    side: str
    source_id: str
    values: dict[str, Any]
    base: dict[str, Any] | None
    event_time: datetime
    contact_link: int | None
    link: int | None = None
    new: bool = False  # a person first seen here whose create on the other side is planned
    contact: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def _fold(value: Any) -> Any:
    return value.strip().casefold() if isinstance(value, str) else value


def _tags(values: dict[str, Any] | None) -> set[str]:
    return {_fold(tag) for tag in (values or {}).get("tags") or [] if isinstance(tag, str)}


def trigger(rule: Rule, subject: Subject) -> str | None:
    """What set the rule off on this record, in words (``tag_added vip on ghl``); None: nothing did."""
    when = rule.when
    if when.entity != subject.entity or when.on_side not in ("any", subject.side):
        return None
    event = when.event
    if event == "new_contact":
        return f"new_contact on {subject.side}" if subject.new else None
    base, now = subject.base, subject.values
    if base is None:  # first seen: only new_contact fires
        return None
    if event == "field_changed":
        name = when.field_changed or ""
        if _fold(now.get(name)) == _fold(base.get(name)) or (when.to is not None and
                                                             _fold(now.get(name)) != _fold(when.to)):
            return None
        return f"field_changed {name} on {subject.side}"
    if event in ("tag_added", "tag_removed"):
        tag = _fold(getattr(when, event))
        held, was = tag in _tags(now), tag in _tags(base)
        return f"{event} {getattr(when, event)} on {subject.side}" if (held and not was if event == "tag_added"
                                                                        else was and not held) else None
    if event == "appointment_status":
        wanted = {_fold(status) for status in when.statuses()}
        status = _fold(now.get("status"))
        return f"appointment_status {now.get('status')} on {subject.side}" \
            if status in wanted and status != _fold(base.get("status")) else None
    if event == "task_completed":
        return f"task_completed on {subject.side}" if now.get("completed") is True \
            and base.get("completed") is not True else None
    return None


def fire_key(profile: str, rule: Rule, event: str, subject: Subject) -> str:
    """The same in every run for the same rule, record and event: the record's last synced state is
    part of it, so it stays until our writes are sent and a later change is a new event."""
    material = [profile, rule.name, event, subject.entity, subject.side, subject.source_id,
                None if subject.new else subject.base]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def read(name: str, subject: Subject) -> Any:
    """A field's value: canonical, ``contact.<field>``, ``app:<path>`` or ``ghl:<field>`` (a GHL custom
    field as ``ghl:customField.<id>``), from the payload last extracted (none for our own writes)."""
    if name.startswith(("app:", "ghl:")):
        side, _, path = name.partition(":")
        raw = subject.raw.get(side) or {}
        if path.startswith("customField."):
            wanted = path.removeprefix("customField.")
            return next((item.get("value", item.get("field_value")) for item in raw.get("customFields") or []
                         if isinstance(item, dict) and wanted in (item.get("id"), item.get("key"))), None)
        return dig(raw, path)
    if name.startswith("contact."):
        return subject.contact.get(name.removeprefix("contact."))
    return subject.values.get(name)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip()) if isinstance(value, str) else None
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return timestamp(value) if isinstance(value, str) else None
    except RuleBroken:
        return None


def _compare(value: Any, op: str, bound: Any, event_time: datetime) -> bool:
    """Numbers with numbers, moments with moments (ISO, or relative to the event); else not met."""
    if isinstance(bound, str):
        limit = relative_moment(bound, event_time) or _moment(bound)
        left: Any = _moment(value)
    elif isinstance(bound, datetime):
        limit, left = _moment(bound), _moment(value)
    else:
        limit, left = _number(bound), _number(value)
    if left is None or limit is None:
        return False
    return {"gt": left > limit, "gte": left >= limit, "lt": left < limit, "lte": left <= limit}[op]


def met(condition: Condition | None, subject: Subject) -> bool:
    """Whether the record meets the condition; a value of the wrong type simply does not."""
    if condition is None:
        return True
    if condition.all is not None:
        return all(met(child, subject) for child in condition.all)
    if condition.any is not None:
        return any(met(child, subject) for child in condition.any)
    try:
        return _leaf(condition, subject)
    except TypeError:  # a raw value of an odd shape (an object, a list of objects): not met, never an error
        return False


def _leaf(condition: Condition, subject: Subject) -> bool:
    if condition.tag is not None:
        return (_fold(condition.tag) in _tags({"tags": read("tags", subject)})) != condition.absent
    value = read(condition.field or "", subject)
    if condition.empty is not None:
        return (value in EMPTY) == condition.empty
    if condition.equals is not None:
        if isinstance(value, list):
            return isinstance(condition.equals, list) and {_fold(v) for v in value} == \
                {_fold(v) for v in condition.equals}
        return _fold(value) == _fold(condition.equals) or (_number(value) is not None and
                                                             _number(value) == _number(condition.equals))
    if condition.in_ is not None:
        return _fold(value) in {_fold(option) for option in condition.in_} if not isinstance(value, list) else False
    if condition.contains is not None:
        wanted = _fold(condition.contains)
        if isinstance(value, list):
            return wanted in {_fold(item) for item in value}
        return isinstance(value, str) and wanted in _fold(value)
    op = next(name for name in ("gt", "gte", "lt", "lte") if getattr(condition, name) is not None)
    return _compare(value, op, getattr(condition, op), subject.event_time)


def render(template: str | None, subject: Subject, rule: Rule, lines: bool = False) -> str | None:
    """A template with the record's fields filled in (``{first_name}``, ``{contact.email}``,
    ``{app:segment}``, ``{rule}``, ``{event_time}``); a field with no value becomes empty text. Spaces
    are collapsed to one line, except with ``lines`` (a task's or note's body keeps its line breaks)."""
    if template is None:
        return None

    def value(found: Any) -> str:
        name = found.group(1)
        if name == "rule":
            return rule.name
        if name == "event_time":
            return subject.event_time.strftime("%Y-%m-%d %H:%M UTC")
        held = read(name, subject)
        return "" if held in EMPTY else ", ".join(map(str, held)) if isinstance(held, list) else str(held)

    text = TEMPLATE_FIELD.sub(value, template)
    return text.strip() if lines else " ".join(text.split())


def due_at(due: Due, event_time: datetime, zone: ZoneInfo) -> datetime:
    """``days`` and ``hours`` after the event, then at ``at`` on that day in the profile's zone."""
    moment = event_time + timedelta(days=due.days, hours=due.hours)
    if due.at is not None:
        local = moment.astimezone(zone)
        moment = to_instant(datetime.combine(local.date(), due.at), zone)
    return moment.astimezone(UTC).replace(microsecond=0)
