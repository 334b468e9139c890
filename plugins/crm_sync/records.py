"""What every layer knows about one API record: reading a field at a dotted path, its key, its id's
type, and the rule it broke.

Hooks, paging, extract, shape, stage, validate, reconcile and load all handle records as received
(JSON objects, or whatever a broken API sends instead); these are the helpers they share. This
module sits on the ground floor: it imports nothing from crm_sync but the digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from crm_sync.digest import digest

MAX_DEPTH = 32  # levels of objects and arrays in one record; real CRM records use a handful
NO_ID_PREFIX = "sha256:"  # a well-formed record without an id
MALFORMED_PREFIX = "malformed:"  # a record the shape rules refuse (pipeline.shape)


@dataclass(frozen=True)
class Broken:
    """A value that breaks a rule: the rule's name and a sentence a user can act on."""

    rule: str
    detail: str


class RuleBroken(Exception):
    def __init__(self, broken: Broken):
        super().__init__(broken.detail)
        self.broken = broken

    @classmethod
    def of(cls, rule: str, detail: str) -> RuleBroken:
        """The exception for a value breaking ``rule``, said in ``detail``."""
        return cls(Broken(rule, detail))


def dig(record: Any, path: str | None) -> Any:
    """The value at a dotted path (``contact.id``) of a record; None where the path leads nowhere."""
    if path is None:
        return None
    for part in path.split("."):
        record = record.get(part) if isinstance(record, dict) else None
    return record


def typed_id(value: str) -> Any:
    """An id as the app gave it: apps with integer ids want them back as integers."""
    return int(value) if value.isdigit() else value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def record_key(record: Any, record_id: Any = None, *, malformed: bool = False) -> str:
    """The key a record is landed, deduplicated and paged by: its id when it has one, else its content's
    digest under one of two prefixes, because the two cases are handled apart:

    - ``malformed:`` a record the shape rules refuse (not an object, nested too deep, an unusable id):
      identical copies are each landed and quarantined (extract numbers them ``:2``, ``:3``...);
    - ``sha256:`` a well-formed record without an id: one record, quarantined once (``id_missing``).

    The keys are stored (``raw_record``, ``raw_landed``): the next extract skips a record whose key and
    payload are unchanged, and validate tells a newly bad record from one quarantined before by its key.
    So these spellings, and the hash behind each, must stay as they are.
    """
    if not malformed and record_id not in (None, ""):
        return str(record_id)
    if malformed or not isinstance(record, dict) or too_deep(record):  # json.dumps would recurse
        return MALFORMED_PREFIX + digest(record)[:40]
    return NO_ID_PREFIX + hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:40]
