"""`make demo` seeds what the built-in profiles' new-contact rules act on (issue 27): for each profile with
rules, some person new to the sync meets one of them. A deliberately small reading of the conditions
these profiles use (the engine's own tests own the semantics): it only guards the demo's seeds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from crm_sync.profile import profile_by_name
from crm_sync.profile_rules import Condition

from harness.demo_apps import app_seed
from harness.demo_data import build

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _text(value: Any) -> str:
    return str(value).strip().casefold()


def _met(condition: Condition | None, read) -> bool:
    if condition is None:
        return True
    if condition.all or condition.any:
        results = [_met(child, read) for child in condition.all or condition.any or []]
        return all(results) if condition.all else any(results)
    if condition.tag is not None:
        return (_text(condition.tag) in {_text(t) for t in read("tags") or []}) != condition.absent
    value = read(condition.field)
    if condition.empty is not None:
        return (value in (None, "", [])) == condition.empty
    if condition.equals is not None:
        return value is not None and _text(value) == _text(condition.equals)
    if condition.in_ is not None:
        return value is not None and _text(value) in {_text(option) for option in condition.in_}
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    for test, holds in (("gte", lambda a, b: a >= b), ("lte", lambda a, b: a <= b)):
        bound = getattr(condition, test)
        if bound is not None:
            return numeric and isinstance(bound, (int, float)) and holds(value, bound)
    return False  # dates and the rest: not needed here


def _ghl_reader(contact: dict[str, Any]):
    canonical = {"lead_source": contact.get("source"), "tags": contact.get("tags"), "email": contact.get("email")}
    custom = {f["id"]: f["value"] for f in contact.get("customFields") or []}

    def read(name: str) -> Any:
        if name.startswith("ghl:customField."):
            return custom.get(name.removeprefix("ghl:customField."))
        return contact.get(name.removeprefix("ghl:")) if name.startswith("ghl:") else canonical.get(name)
    return read


def _app_reader(record: dict[str, Any]):
    return lambda name: record.get(name.removeprefix("app:")) if name.startswith("app:") else None


@pytest.mark.parametrize("name", ["gymdesk", "gymflow", "generic"])
def test_the_demo_gives_each_new_contact_rule_someone_to_act_on(name):
    profile = profile_by_name(name)
    data = build(NOW.date())
    ghl_emails = {_text(c.get("email") or "") for c in data.ghl_contacts}
    app_emails = {_text(m.get("email") or "") for m in data.gymdesk_members}
    only_ghl = [c for c in data.ghl_contacts if _text(c.get("email") or "") not in app_emails]
    contacts = next(iter(app_seed(profile, data, NOW).values()))
    only_app = [r for r in contacts if _text(r.get("email") or "") not in ghl_emails]
    readers = {"ghl": [_ghl_reader(c) for c in only_ghl], "app": [_app_reader(r) for r in only_app]}
    rules = [rule for rule in profile.rules if rule.when.new_contact in ("ghl", "app")]
    assert rules
    fired = {rule.name for rule in rules for read in readers[rule.when.new_contact] if _met(rule.if_, read)}
    assert fired, f"{name}: no demo person meets any of {[r.name for r in rules]}"
    if name != "gymdesk":  # GymFlow's engaged and at-risk members, the generic app's every segment but vip
        assert fired == {r.name for r in rules} - {"route_vip_leads"}, fired
