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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from anyascii import anyascii
from email_validator import EmailNotValidError, validate_email

from crm_sync.profile import CANONICAL, GHL_READ_ONLY, FieldMap, Side


@dataclass(frozen=True)
class Broken:
    """A value that breaks a rule: the rule's name and a sentence a user can act on."""

    rule: str
    detail: str


class RuleBroken(Exception):
    def __init__(self, broken: Broken):
        super().__init__(broken.detail)
        self.broken = broken


def _broken(rule: str, detail: str) -> RuleBroken:
    return RuleBroken(Broken(rule, detail))


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise _broken("type", f"expected text, got {type(value).__name__} {json.dumps(value)[:80]}")
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
        raise _broken("email_format", f"email {raw!r} is not a valid address: {exc}") from None


def phone(value: Any, region: str) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise _broken("phone_format", f"phone {raw!r} cannot be parsed: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise _broken("phone_format", f"phone {raw!r} is not a valid number (default region {region})")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def timestamp(value: Any, pattern: str = "iso") -> datetime | None:
    """A moment in UTC from ISO 8601, Unix seconds or milliseconds, or an strftime pattern."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise _broken("timestamp_format", f"timestamp {value!r} is a boolean")
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        if pattern not in ("iso", "unix", "unix_ms"):
            moment = datetime.strptime(str(value), pattern)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        expected = "an ISO 8601 timestamp" if pattern in ("iso", "unix", "unix_ms") else f"in the form {pattern}"
        raise _broken("timestamp_format", f"timestamp {value!r} is not {expected}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def moment_or_none(value: Any) -> datetime | None:
    """A timestamp for bookkeeping (windows, echo checks): unreadable is None, stage quarantines it."""
    try:
        return timestamp(value)
    except RuleBroken:
        return None


def format_moment(moment: datetime, pattern: str) -> str | int:
    """A moment as an app wants it in a query or a body."""
    moment = moment.astimezone(UTC)
    if pattern == "unix":
        return int(moment.timestamp())
    if pattern == "unix_ms":
        return int(moment.timestamp() * 1000)
    if pattern == "iso":
        return moment.isoformat().replace("+00:00", "Z")
    return moment.strftime(pattern)


def _date_only(spec: FieldMap) -> bool:
    return spec.format not in ("iso", "unix", "unix_ms") and "%H" not in spec.format and not spec.time_field


def _canonical_moment(moment: datetime | None, spec: FieldMap) -> str | None:
    if moment is None:
        return None
    if _date_only(spec):
        return moment.strftime("%Y-%m-%d")
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tags(value: Any, spec: FieldMap, separator: str = ";") -> list[str] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = value.split(separator)
    if not isinstance(value, list):
        raise _broken("type", f"expected a list of tags, got {type(value).__name__}")
    names = [item.get(spec.item_key or "name") if isinstance(item, dict) else item for item in value]
    return sorted({t for t in (text(n) for n in names) if t}) or None


def _from_values(raw: Any, spec: FieldMap) -> Any:
    """An app's own value (a status) to the canonical one the profile maps it to."""
    for canonical, app_values in (spec.values or {}).items():
        options = app_values if isinstance(app_values, list) else [app_values]
        if any(str(raw).lower() == str(option).lower() for option in options):
            return canonical
    raise _broken("value_unmapped", f"value {raw!r} is not one of the mapped values {spec.values}")


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise _broken("type", f"expected true or false, got {value!r}")


def _read(payload: dict[str, Any], path: str | None) -> Any:
    if path is None:
        return None
    for part in path.split("."):
        payload = payload.get(part) if isinstance(payload, dict) else None
    return payload


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
    raw = _read(payload, spec.ghl if side == "ghl" else spec.app)
    if side == "app":
        if spec.part:
            raw = _name_part(raw, spec.part)
        if spec.time_field and raw not in (None, ""):
            raw = f"{raw} {_read(payload, spec.time_field) or '00:00'}"
        if spec.values is not None and raw not in (None, ""):
            raw = _from_values(raw, spec)
    return raw


def field_value(entity: str, name: str, spec: FieldMap, payload: dict[str, Any], side: Side, region: str) -> Any:
    """One canonical field's value read from one side's record."""
    kind = CANONICAL[entity][name][0]
    raw = raw_value(spec, payload, side)
    if kind == "email":
        return email(raw)
    if kind == "phone":
        return phone(raw, region)
    if kind == "datetime":
        pattern = "iso" if side == "ghl" else spec.format
        if side == "app" and spec.time_field:
            pattern = f"{spec.format} %H:%M"
        return _canonical_moment(timestamp(raw, pattern), spec)
    if kind == "bool":
        return _bool(raw)
    if kind == "tags":
        return _tags(raw, spec)
    return free_text(raw) if name in FREE_TEXT else text(raw)


def canonical_record(entity: str, payload: dict[str, Any], side: Side, fields: dict[str, FieldMap],
                     region: str) -> dict[str, Any]:
    """Map one side's payload to canonical fields; raises RuleBroken naming the field and the rule."""
    values: dict[str, Any] = {name: None for name in CANONICAL[entity]}
    for name, spec in fields.items():
        try:
            values[name] = field_value(entity, name, spec, payload, side, region)
        except RuleBroken as exc:
            raise _broken(exc.broken.rule, f"{field_key(entity, name, spec, side)}: {exc.broken.detail}") from None
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


def _app_value(value: Any, spec: FieldMap, kind: str) -> Any:
    if value is None:
        return None
    if spec.values is not None:
        options = spec.values.get(str(value).lower(), value)
        return options[0] if isinstance(options, list) else options
    if kind == "datetime":
        return format_moment(timestamp(value), spec.format)
    if kind == "tags" and spec.item_key:
        return [{spec.item_key: tag} for tag in value]
    return value


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        body = body.setdefault(part, {})
    body[last] = value


def to_side(entity: str, values: dict[str, Any], side: Side, fields: dict[str, FieldMap],
            full: dict[str, Any] | None = None) -> dict[str, Any]:
    """Canonical values to one side's field names and formats, for a write. ``full`` is the
    whole merged record: a name part written alone must not blank the other part."""
    body: dict[str, Any] = {}
    names: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        spec = fields.get(name)
        if spec is None:
            continue
        kind = CANONICAL[entity][name][0]
        if side == "ghl":
            if spec.ghl and (entity, name) not in GHL_READ_ONLY:
                body[spec.ghl] = value
            continue
        if spec.app is None:
            continue
        if spec.part:  # first and last name share one app field
            names.setdefault(spec.app, {})
            continue
        if spec.time_field and value is not None:
            moment = timestamp(value)
            set_path(body, spec.app, format_moment(moment, spec.format))
            set_path(body, spec.time_field, moment.strftime("%H:%M"))
            continue
        set_path(body, spec.app, _app_value(value, spec, kind))
    source = {**(full or {}), **values}
    for path in names:
        parts = {spec.part: source.get(name) for name, spec in fields.items() if spec.app == path and spec.part}
        set_path(body, path, " ".join(p for p in (parts.get("first"), parts.get("last")) if p) or None)
    return body
