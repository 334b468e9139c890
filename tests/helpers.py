"""Test-side reading of simulator records, independent of the pipeline's own normaliser."""

from __future__ import annotations

from typing import Any

import phonenumbers

GHL_FIELDS = {"email": "email", "phone": "phone", "first_name": "firstName", "last_name": "lastName",
              "company_name": "companyName", "lead_source": "source"}
GYMDESK_FIELDS = {"email": "email", "phone": "phone", "first_name": "first_name", "last_name": "last_name",
                  "company_name": "company", "lead_source": "lead_source"}


def plain(record: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """A simulator record as canonical values: emails lower-case, phones E.164, text trimmed."""
    out = {}
    for name, source in fields.items():
        value = record.get(source)
        if isinstance(value, str):
            value = " ".join(value.split()) or None
        if value and name == "email":
            value = value.lower()
        if value and name == "phone":
            value = phonenumbers.format_number(phonenumbers.parse(value, "US"), phonenumbers.PhoneNumberFormat.E164)
        out[name] = value
    return out


def by_email(records: list[dict[str, Any]], fields: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        email = (record.get("email") or "").lower()
        grouped.setdefault(email, []).append(plain(record, fields))
    return grouped
