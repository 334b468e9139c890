"""Shape rules: an API record the warehouse cannot hold is quarantined, not a crash.

A list may carry anything: a string or array where an object belongs, an id that is an object
or longer than the warehouse's id columns, nesting deep enough to break JSON encoding. Extract
checks each record's shape before it lands; a malformed one is stored as a small stand-in
(the rule, the detail and, where it is safe to keep, the record itself) that stage sends to
quarantine with that rule. The other records of the run go on.
"""

from __future__ import annotations

from typing import Any

from crm_sync.records import MAX_DEPTH, Broken, dig, too_deep

ID_MAX_CHARS = 128  # the warehouse's id columns (raw_record.source_id, staging, xref)
MALFORMED = "_malformed"


def _id_problem(value: Any, key: str, rule: str) -> Broken | None:
    if value is None or isinstance(value, str | int) and not isinstance(value, bool):
        text = "" if value is None else str(value)
        if len(text) > ID_MAX_CHARS:
            return Broken(f"{rule}_too_long", f"'{key}' has {len(text)} characters, more than the warehouse's "
                                              f"{ID_MAX_CHARS}: {text[:40]}...")
        return None
    return Broken(f"{rule}_type", f"'{key}' is a {type(value).__name__}, not a string or integer")


def shape_problem(payload: Any, id_field: str, contact_field: str | None = None) -> Broken | None:
    """The first shape rule the record breaks, or None."""
    if not isinstance(payload, dict):
        return Broken("not_an_object", f"the record is a JSON {type(payload).__name__}, not an object")
    if too_deep(payload):
        return Broken("too_deep", f"the record nests objects or arrays more than {MAX_DEPTH} levels deep")
    problem = _id_problem(dig(payload, id_field), id_field, "id")
    if problem is None and contact_field:
        problem = _id_problem(dig(payload, contact_field), contact_field, "contact_id")
    return problem


def stand_in(broken: Broken, payload: Any) -> dict[str, Any]:
    """What raw_record keeps of a malformed record: the rule, and the record unless it is too deep to store."""
    kept = {MALFORMED: broken.rule, "_detail": broken.detail}
    if broken.rule != "too_deep":
        kept["_record"] = payload
    elif isinstance(payload, dict):
        kept["_keys"] = sorted(map(str, payload))[:50]
    return kept
