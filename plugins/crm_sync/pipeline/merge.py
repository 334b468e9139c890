"""Field-by-field three-way merge of one person's two versions against the last synced base.

For each mapped field: equal values need nothing; a field only one side changed since the
base takes that side's value (so a write never undoes an edit we have not seen yet); a
field empty on one side takes the other's (keep non-empty); a field both sides changed
goes to the profile's rule, ``latest_wins`` by each side's updated-at, or a source of
truth; tags merge as sets (a tag added or removed on either side since the base is added or
removed); an empty result takes the field's fallback. A field the app does not hold (``app: null``,
e.g. tags GHL keeps alone) is GHL's value: the app's lack of it is no removal. Every decision names
its reason.

``keep_conflicts`` (the first merge of a pair a person linked in the review queue): two different
values that ``latest_wins`` would settle by the records' clocks are both kept, each on its side
(no write; the link's base holds no value for the field, so the next change of either record settles
it as for any pair). The queue proposes pairs whose names differ; the clocks of two records never
synced say nothing about which name is right: linking contact "Family Account" with member "Parent
Family", both imported at one moment, once took the member's name from both systems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_sync.profile import CANONICAL, FieldMap


@dataclass
class Merged:
    values: dict[str, Any]
    decisions: list[dict[str, str]] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)  # fields each side keeps as it holds them (no agreed value)

    def patch_for(self, current: dict[str, Any]) -> dict[str, Any]:
        """Only the fields a side must change to hold the merged record."""
        return {name: value for name, value in self.values.items()
                if name not in self.kept and current.get(name) != value}


def _later(ghl_at: datetime | None, app_at: datetime | None) -> str:
    if ghl_at is None or app_at is None:
        return "ghl" if app_at is None and ghl_at is not None else "app"
    return "ghl" if ghl_at >= app_at else "app"


def merge_sets(g: list | None, a: list | None, base: list | None) -> list | None:
    """Three-way set merge: what either side added since the base is in, what either removed is out."""
    mine, theirs = set(g or []), set(a or [])
    if base is None:
        merged = mine | theirs
    else:
        old = set(base)
        merged = (old | (mine - old) | (theirs - old)) - (old - mine) - (old - theirs)
    return sorted(merged) or None


def merge(ghl: dict[str, Any], app: dict[str, Any], base: dict[str, Any] | None, fields: dict[str, FieldMap],
          rule: str, entity: str = "contact", keep_conflicts: bool = False) -> Merged:
    result = Merged(values={})
    for name, spec in fields.items():
        g, a = ghl.get(name), app.get(name)
        if spec.app is None:  # the app does not hold it (``app: null``): GHL's value is the only one
            a = g
        field_rule = spec.conflict or rule
        if g == a:
            value, winner, why = g, None, None
        elif CANONICAL[entity][name][0] == "tags":
            value, winner = merge_sets(g, a, (base or {}).get(name) if base else None), "both"
            why = "tags merged as sets: additions and removals from either side"
        elif base is not None and g == base.get(name):
            value, winner, why = a, "app", "only the app changed it since the last sync"
        elif base is not None and a == base.get(name):
            value, winner, why = g, "ghl", "only GHL changed it since the last sync"
        elif g is None or a is None:
            winner = "app" if g is None else "ghl"
            value, why = (a if g is None else g), "keep non-empty"
        elif field_rule == "latest_wins" and keep_conflicts:
            value, winner, why = None, "neither", "linked by review: each side keeps its own (the next change settles it)"
            result.kept.add(name)
        elif field_rule == "latest_wins":
            winner = _later(ghl.get("updated_at"), app.get("updated_at"))
            value, why = (g if winner == "ghl" else a), "latest_wins: updated more recently"
        else:
            winner, value = field_rule, (g if field_rule == "ghl" else a)
            why = f"source_of_truth: {field_rule}" + (" (this field's own rule)" if spec.conflict else "")
        if value is None and spec.fallback is not None and name not in result.kept:
            value, winner, why = spec.fallback, "fallback", "both sides empty: profile fallback"
        result.values[name] = value
        if winner:
            result.decisions.append({"field": name, "winner": winner, "reason": why,
                                     "ghl": _show(g), "app": _show(a), "value": _show(value)})
    return result


def _show(value: Any) -> str:
    return "" if value is None else str(value)
