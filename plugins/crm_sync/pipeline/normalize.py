"""From a side's raw record to our canonical contact, or the rule it broke.

Emails are lower-cased and validated (email-validator), phones become E.164
(phonenumbers, default region from the profile), text is NFC-normalised and trimmed,
timestamps are UTC, and a content hash covers the mapped fields so an unchanged
record is recognised without comparing field by field.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm_sync.profile import CONTACT_FIELDS, FieldMap, Side


@dataclass(frozen=True)
class Broken:
    """A value that breaks a rule: the rule's name and a sentence a user can act on."""

    rule: str
    detail: str


class RuleBroken(Exception):
    def __init__(self, broken: Broken):
        super().__init__(broken.detail)
        self.broken = broken


def text(value: Any) -> str | None:
    if value is None:
        return None
    cleaned = " ".join(unicodedata.normalize("NFC", str(value)).split())
    return cleaned or None


def email(value: Any) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise RuleBroken(Broken("email_format", f"email {raw!r} is not a valid address: {exc}")) from None


def phone(value: Any, region: str) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise RuleBroken(Broken("phone_format", f"phone {raw!r} cannot be parsed: {exc}")) from None
    if not phonenumbers.is_valid_number(parsed):
        raise RuleBroken(Broken("phone_format", f"phone {raw!r} is not a valid number (default region {region})"))
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def timestamp(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RuleBroken(Broken("timestamp_format", f"updated-at {value!r} is not an ISO 8601 timestamp")) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def content_hash(record: dict[str, Any]) -> str:
    """Hash of the canonical fields only, so bookkeeping fields never look like a change."""
    canonical = {name: record.get(name) for name in CONTACT_FIELDS}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def canonical_contact(payload: dict[str, Any], side: Side, fields: dict[str, FieldMap], region: str) -> dict[str, Any]:
    """Map one side's payload to canonical fields; raises RuleBroken naming the first broken rule."""
    values: dict[str, Any] = {name: None for name in CONTACT_FIELDS}
    for name, mapping in fields.items():
        raw = payload.get(getattr(mapping, side))
        if name == "email":
            values[name] = email(raw)
        elif name == "phone":
            values[name] = phone(raw, region)
        else:
            values[name] = text(raw)
    return values


def side_fields(values: dict[str, Any], side: Side, fields: dict[str, FieldMap]) -> dict[str, Any]:
    """Canonical values back to one side's field names, for a write."""
    return {getattr(fields[name], side): value for name, value in values.items() if name in fields}
