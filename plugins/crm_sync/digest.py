"""A stable digest of any JSON value, however deep: the key of a record that has no usable id."""

from __future__ import annotations

import hashlib
from typing import Any


def digest(value: Any) -> str:
    """A stable SHA-256 of any JSON value, however deep (iterative: json.dumps would recurse)."""
    hasher, stack = hashlib.sha256(), [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            hasher.update(b"{%d" % len(item))
            for key in sorted(item, key=str, reverse=True):
                stack += [item[key], str(key)]
        elif isinstance(item, list):
            hasher.update(b"[%d" % len(item))
            stack += reversed(item)
        else:
            hasher.update(f"{type(item).__name__}:{item!r};".encode())
    return hasher.hexdigest()
