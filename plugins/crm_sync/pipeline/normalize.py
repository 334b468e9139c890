"""From a side's raw record to our canonical record, or the rule it broke, and back.

Emails are lower-cased and validated (email-validator), phones become E.164
(phonenumbers, default region from the profile), text is NFC-normalised and trimmed (note
and task bodies keep their line breaks and spacing), tags are a sorted set, timestamps are
UTC ISO 8601 (to the second, or to the day when the app keeps only a date), and a content
hash covers the mapped fields so an unchanged record is recognised without comparing field
by field. ``to_side`` is the inverse: the
canonical values a write sets, in one side's field names and formats.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import phonenumbers
from anyascii import anyascii
from email_validator import EmailNotValidError, validate_email

from crm_sync.profile import CANONICAL, GHL_READ_ONLY, FieldMap, Side
from crm_sync.records import RuleBroken, dig
from crm_sync.timezones import (day_instant, format_moment, local_day, parse_moment, span_end, timestamp, to_wall,
                                wall_end)


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise RuleBroken.of("type", f"expected text, got {type(value).__name__} {json.dumps(value)[:80]}")
    cleaned = " ".join(unicodedata.normalize("NFC", str(value)).split())
    return cleaned or None


def name_key(value: Any) -> str | None:
    """A name as people compare it: case, accents and transliterations fold away (José/Jose, Zoë/Zoe,
    Søren/Soren, Ólafur/Olafur, ß/ss, Æ/AE, Дмитрий/Dmitriy, by anyascii), and so do the spaces,
    hyphens and apostrophes between parts (Anne-Marie/Anne Marie); different names stay different.
    Only for comparing: the name itself is synced as written."""
    if value is None:
        return None
    folded = _NOT_ALNUM.sub("", anyascii(str(value)).casefold())
    return folded or str(value).casefold()  # nothing left (only signs): compare as written


_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


# Free text (a note's or task's body): line breaks and spacing are the user's content, kept as written.
FREE_TEXT = {"body"}


def free_text(value: Any) -> str | None:
    """Text kept as written: NFC and outer whitespace trimmed only."""
    if isinstance(value, dict | list):
        return text(value)  # the type error
    if value is None:
        return None
    return unicodedata.normalize("NFC", str(value)).strip() or None


def email(value: Any) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise RuleBroken.of("email_format", f"email {raw!r} is not a valid address: {exc}") from None


def phone(value: Any, region: str) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise RuleBroken.of("phone_format", f"phone {raw!r} cannot be parsed: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise RuleBroken.of("phone_format", f"phone {raw!r} is not a valid number (default region {region})")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _date_only(spec: FieldMap) -> bool:
    return spec.format not in ("iso", "unix", "unix_ms") and "%H" not in spec.format and not spec.time_field


def _wall_clock(spec: FieldMap) -> bool:
    """The app keeps this datetime as a local date and time, with no offset."""
    return spec.format not in ("iso", "unix", "unix_ms") and not _date_only(spec)


def _canonical_moment(moment: datetime | None, spec: FieldMap, zone: tzinfo = UTC) -> str | None:
    """A date-only field is the local day of the instant; anything else the instant in UTC."""
    if moment is None:
        return None
    try:
        day = local_day(moment, zone)  # also proves the app can be written this moment in its zone
    except OverflowError:
        raise RuleBroken.of("timestamp_format", f"timestamp {moment.isoformat()} is out of range in {zone}") from None
    if _date_only(spec):
        return day.isoformat()
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _app_pattern(spec: FieldMap) -> str:
    return f"{spec.format} %H:%M" if spec.time_field else spec.format


def _keep_duration(values: dict[str, Any], payload: dict[str, Any], fields: dict[str, FieldMap],
                   zone: tzinfo) -> None:
    """An app appointment's end as its start plus the duration its wall-clock times show, so a start
    moved out of a nonexistent hour does not shorten it (crm_sync.timezones)."""
    start, end = fields.get("start"), fields.get("end")
    if not (start and end and _wall_clock(start) and _wall_clock(end) and values.get("start") and values.get("end")):
        return
    try:
        walls = [parse_moment(raw_value(spec, payload, "app"), _app_pattern(spec)) for spec in (start, end)]
        if all(wall.tzinfo is None for wall in walls):
            values["end"] = _canonical_moment(span_end(timestamp(values["start"]), *walls), end)
    except (ValueError, OverflowError):  # not wall-clock text after all (a Unix number): keep the end as read
        return


def _tags(value: Any, spec: FieldMap, separator: str = ";") -> list[str] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = value.split(separator)
    if not isinstance(value, list):
        raise RuleBroken.of("type", f"expected a list of tags, got {type(value).__name__}")
    names = [item.get(spec.item_key or "name") if isinstance(item, dict) else item for item in value]
    return sorted({t for t in (text(n) for n in names) if t}) or None


def _from_values(raw: Any, spec: FieldMap) -> Any:
    """An app's own value (a status) to the canonical one the profile maps it to."""
    for canonical, app_values in (spec.values or {}).items():
        options = app_values if isinstance(app_values, list) else [app_values]
        if any(str(raw).lower() == str(option).lower() for option in options):
            return canonical
    raise RuleBroken.of("value_unmapped", f"value {raw!r} is not one of the mapped values {spec.values}")


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise RuleBroken.of("type", f"expected true or false, got {value!r}")


def _name_part(full: Any, part: str) -> str | None:
    words = (text(full) or "").split(" ")
    if not words[0]:
        return None
    if part == "first":
        return " ".join(words[:-1]) or words[0]
    return words[-1] if len(words) > 1 else None


def raw_value(spec: FieldMap, payload: dict[str, Any], side: Side) -> Any:
    """One field as the side holds it, before normalising: read at its path, a name part taken,
    a date joined to its time, an app's own value mapped to the canonical one."""
    raw = dig(payload, spec.ghl if side == "ghl" else spec.app)
    if side == "app":
        if spec.part:
            raw = _name_part(raw, spec.part)
        if spec.time_field and raw not in (None, ""):
            raw = f"{raw} {dig(payload, spec.time_field) or '00:00'}"
        if spec.values is not None and raw not in (None, ""):
            raw = _from_values(raw, spec)
    return raw


def field_value(entity: str, name: str, spec: FieldMap, payload: dict[str, Any], side: Side, region: str,
                zone: tzinfo = UTC) -> Any:
    """One canonical field's value read from one side's record; ``zone``: the profile's, for app
    values that carry no offset."""
    kind = CANONICAL[entity][name][0]
    raw = raw_value(spec, payload, side)
    if kind == "email":
        return email(raw)
    if kind == "phone":
        return phone(raw, region)
    if kind == "datetime":
        if side == "ghl":
            return _canonical_moment(timestamp(raw), spec, zone)
        return _canonical_moment(timestamp(raw, _app_pattern(spec), zone), spec, zone)
    if kind == "bool":
        return _bool(raw)
    if kind == "tags":
        return _tags(raw, spec)
    return free_text(raw) if name in FREE_TEXT else text(raw)


def canonical_record(entity: str, payload: dict[str, Any], side: Side, fields: dict[str, FieldMap],
                     region: str, zone: tzinfo = UTC) -> dict[str, Any]:
    """Map one side's payload to canonical fields; raises RuleBroken naming the field and the rule."""
    values: dict[str, Any] = {name: None for name in CANONICAL[entity]}
    for name, spec in fields.items():
        try:
            values[name] = field_value(entity, name, spec, payload, side, region, zone)
        except RuleBroken as exc:
            raise RuleBroken.of(exc.broken.rule, f"{field_key(entity, name, spec, side)}: {exc.broken.detail}") from None
    if entity == "appointment" and side == "app":
        _keep_duration(values, payload, fields, zone)
    return values


def field_key(entity: str, name: str, spec: FieldMap, side: Side) -> str:
    """Where a broken value came from, as the profile names it."""
    return f"entities.{entity}.fields.{name}" + ("" if side == "ghl" else f" (app field '{spec.app}')")


def canonical_contact(payload: dict[str, Any], side: Side, fields: dict[str, FieldMap], region: str) -> dict[str, Any]:
    return canonical_record("contact", payload, side, fields, region)


def content_hash(record: dict[str, Any], entity: str = "contact") -> str:
    """Hash of the canonical fields only, so bookkeeping fields never look like a change."""
    canonical = {name: record.get(name) for name in CANONICAL[entity]}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def _app_value(value: Any, spec: FieldMap, kind: str, zone: tzinfo = UTC) -> Any:
    if value is None:
        return None
    if spec.values is not None:
        options = spec.values.get(str(value).lower(), value)
        return options[0] if isinstance(options, list) else options
    if kind == "datetime":  # a canonical local day is midnight in the zone, so the same day on the app
        return format_moment(timestamp(value, zone=zone), spec.format, zone)
    if kind == "tags" and spec.item_key:
        return [{spec.item_key: tag} for tag in value]
    return value


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        body = body.setdefault(part, {})
    body[last] = value


def _ghl_value(value: Any, kind: str, zone: tzinfo) -> Any:
    """A canonical local day becomes an instant on GHL: noon of that day in the profile's zone."""
    if kind == "datetime" and isinstance(value, str) and len(value) == 10:
        try:
            return format_moment(day_instant(date.fromisoformat(value), zone), "iso")
        except (ValueError, OverflowError):
            return value
    return value


def _wall(entity: str, name: str, value: Any, source: dict[str, Any], fields: dict[str, FieldMap],
          zone: tzinfo) -> datetime:
    """The local date and time an app gets; an appointment's end is its local start plus its duration."""
    moment = timestamp(value)
    start = fields.get("start")
    if entity == "appointment" and name == "end" and start and _wall_clock(start) and source.get("start"):
        return wall_end(timestamp(source["start"]), moment, zone)
    return to_wall(moment, zone)


def to_side(entity: str, values: dict[str, Any], side: Side, fields: dict[str, FieldMap],
            full: dict[str, Any] | None = None, zone: tzinfo = UTC) -> dict[str, Any]:
    """Canonical values to one side's field names and formats, for a write. ``full`` is the
    whole merged record: a name part written alone must not blank the other part. ``zone``: the
    profile's, for app values that carry no offset."""
    body: dict[str, Any] = {}
    names: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        spec = fields.get(name)
        if spec is None:
            continue
        kind = CANONICAL[entity][name][0]
        if side == "ghl":
            if spec.ghl and (entity, name) not in GHL_READ_ONLY:
                body[spec.ghl] = _ghl_value(value, kind, zone)
            continue
        if spec.app is None:
            continue
        if spec.part:  # first and last name share one app field
            names.setdefault(spec.app, {})
            continue
        if kind == "datetime" and _wall_clock(spec) and value is not None:
            wall = _wall(entity, name, value, {**(full or {}), **values}, fields, zone)
            set_path(body, spec.app, wall.strftime(spec.format))
            if spec.time_field:
                set_path(body, spec.time_field, wall.strftime("%H:%M"))
            continue
        set_path(body, spec.app, _app_value(value, spec, kind, zone))
    source = {**(full or {}), **values}
    for path in names:
        parts = {spec.part: source.get(name) for name, spec in fields.items() if spec.app == path and spec.part}
        set_path(body, path, " ".join(p for p in (parts.get("first"), parts.get("last")) if p) or None)
    return body


def write_sets(body: dict[str, Any], sets: dict[str, Any] | None, side: Side) -> dict[str, Any]:
    """A profile rule's ``set`` actions (payload ``@set``: a side's own field -> value) in a write's
    body: an app dotted path as it is; on GHL ``customField.<id>`` as GHL's ``customFields`` input
    (``{id, field_value}``), any other name as a top-level field."""
    for name, value in (sets or {}).items():
        if side == "ghl" and name.startswith("customField."):
            body.setdefault("customFields", []).append({"id": name.removeprefix("customField."), "field_value": value})
        else:
            set_path(body, name, value)
    return body
