"""A GHL contact's custom fields, as the contacts spec (shared/ref/ghl/apps/contacts.json) shapes them.

Written in create, upsert and update bodies as ``customFields: [{id, field_value}]`` (the spec's
``TextField``, ``NumericField``... schemas, each requiring ``id``; their ``key`` is not resolved here),
kept and answered as ``[{id, value}]`` (``CustomFieldSchema``). The simulator also takes ``{id, value}``
in a write, the shape it answers, as clients echo what they read. A write changes only the fields it
names (the others stay), and an empty value (null, "" or []) clears one. ASSUMPTION: the simulator keeps
no registry of a location's custom fields, so any id is accepted.
"""

from __future__ import annotations

from typing import Any

EMPTY: tuple[Any, ...] = (None, "", [])


def custom_field_problems(given: Any) -> list[str]:
    """Why a body's ``customFields`` cannot be written (GHL answers 422), or nothing."""
    if given is None:
        return []
    if not isinstance(given, list):
        return ["customFields must be an array"]
    problems = []
    for n, item in enumerate(given):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"customFields.{n} must be an object with an id")
    return problems


def merged_custom_fields(stored: list[dict[str, Any]] | None, given: list[dict[str, Any]] | None
                         ) -> list[dict[str, Any]] | None:
    """The contact's ``[{id, value}]`` after a write of ``given``; None: no custom field left."""
    if given is None:
        return stored or None
    fields = {item["id"]: item["value"] for item in stored or []}
    for item in given:
        field_id = item["id"]
        value = item["field_value"] if "field_value" in item else item.get("value")
        if value in EMPTY:
            fields.pop(field_id, None)
        else:
            fields[field_id] = value
    return [{"id": field_id, "value": value} for field_id, value in fields.items()] or None
