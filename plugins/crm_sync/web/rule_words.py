"""A profile rule in plain words, for the console's rules page: its trigger, its conditions (nested
``all`` / ``any`` as an indented list) and its actions, as an operator who never read the YAML
would say them. The words are made from the validated models (crm_sync.profile_rules), so they say
what the engine does, not what the file looked like.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_sync.profile import Profile
from crm_sync.profile_rules import Action, Condition, Due, Rule

SIDES = {"ghl": "GHL", "app": "the app", "any": "either side"}
OPS = {"gt": "is more than", "gte": "is at least", "lt": "is less than", "lte": "is at most"}
MOMENT_OPS = {"gt": "is after", "gte": "is at or after", "lt": "is before", "lte": "is at or before"}
UNITS = {"m": "minute", "h": "hour", "d": "day"}


def _side(side: str) -> str:
    return SIDES.get(side, side)


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value)
    return f'"{value}"' if isinstance(value, str) else str(value)


def _field(name: str) -> str:
    """``app:segment`` -> the app's own field segment; ``contact.email`` -> the contact's email."""
    if name.startswith(("app:", "ghl:")):
        side, _, path = name.partition(":")
        if path.startswith("customField."):
            return f"GHL custom field {path.removeprefix('customField.')}"
        return f"{_side(side)}'s own field {path}"
    if name.startswith("contact."):
        return f"the contact's {name.removeprefix('contact.')}"
    return name


def _moment(bound: Any) -> str:
    """A bound of a comparison: a number, a date, or relative to the event (``-30d``)."""
    if isinstance(bound, str) and bound[:1] in "+-" and bound[1:-1].isdigit() and bound[-1] in UNITS:
        count, unit = int(bound[1:-1]), UNITS[bound[-1]]
        return f"{count} {unit}{'s' if count != 1 else ''} {'after' if bound[0] == '+' else 'before'} the event"
    return _value(bound)


def trigger(rule: Rule) -> str:
    """When the rule fires, in words."""
    when = rule.when
    side = _side(when.on_side)
    event = when.event
    if event == "new_contact":
        return f"a new contact appears in {side} (a person no record of the other side matched)"
    if event == "field_changed":
        to = f" to {_value(when.to)}" if when.to is not None else ""
        return f"a contact's {when.field_changed} changes{to} in {side}"
    if event in ("tag_added", "tag_removed"):
        return f"tag {_value(getattr(when, event))} is {'added to' if event == 'tag_added' else 'removed from'} " \
               f"a contact in {side}"
    if event == "appointment_status":
        statuses = " or ".join(_value(status) for status in when.statuses())
        return f"an appointment's status becomes {statuses} in {side}"
    return f"a task is completed in {side}"


def condition_lines(condition: Condition | None, depth: int = 0) -> list[tuple[int, str]]:
    """The conditions as (depth, words) lines; a group's children are one level deeper."""
    if condition is None:
        return []
    if condition.all is not None or condition.any is not None:
        group = "all" if condition.all is not None else "any"
        children = condition.all if condition.all is not None else condition.any
        lines = [(depth, "all of these hold:" if group == "all" else "any of these holds:")]
        for child in children or []:
            lines += condition_lines(child, depth + 1)
        return lines
    if condition.tag is not None:
        return [(depth, f"the contact {'does not have' if condition.absent else 'has'} tag {_value(condition.tag)}")]
    name = _field(condition.field or "")
    if condition.empty is not None:
        return [(depth, f"{name} is {'empty' if condition.empty else 'not empty'}")]
    if condition.equals is not None:
        return [(depth, f"{name} is {_value(condition.equals)}")]
    if condition.in_ is not None:
        return [(depth, f"{name} is one of {_value(condition.in_)}")]
    if condition.contains is not None:
        return [(depth, f"{name} contains {_value(condition.contains)}")]
    op = next(op for op in OPS if getattr(condition, op) is not None)
    bound = getattr(condition, op)
    said = MOMENT_OPS[op] if isinstance(bound, str | datetime) else OPS[op]  # a date (or relative): when
    return [(depth, f"{name} {said} {_moment(bound)}")]


def due(spec: Due, profile: Profile) -> str:
    """``{days: 1, at: "09:00"}`` -> 1 day after the event, at 09:00 (Europe/Berlin)."""
    parts = []
    if spec.days:
        parts.append(f"{spec.days} day{'s' if spec.days != 1 else ''}")
    if spec.hours:
        hours = int(spec.hours) if float(spec.hours).is_integer() else spec.hours
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    when = " and ".join(parts) + " after the event" if parts else "on the event's day"
    if spec.at is not None:
        when += f", at {spec.at.strftime('%H:%M')} ({profile.timezone})"
    return when


def action(act: Action, profile: Profile) -> str:
    """One action, in words (its templates as written: the preview shows them filled in)."""
    spec = act.spec
    where = _side(spec.side)
    if act.kind == "set":
        return f"set {where}'s field {spec.field} to {_value(spec.value)}"
    if act.kind in ("add_tag", "remove_tag"):
        return f"{'add' if act.kind == 'add_tag' else 'remove'} tag {_value(spec.tag)} " \
               f"{'to' if act.kind == 'add_tag' else 'from'} the contact in {where}"
    if act.kind == "create_task":
        extra = f", assigned to {_value(spec.assignee)}" if spec.assignee else ""
        return f"create a task in {where}: {_value(spec.title)}, due {due(spec.due, profile)}{extra}"
    return f"create a note in {where}: {_value(spec.body)}"


def described(rule: Rule, profile: Profile) -> dict[str, Any]:
    """What the rules page shows of a rule."""
    return {"name": rule.name, "description": rule.description, "entity": rule.entity, "when": trigger(rule),
            "conditions": condition_lines(rule.if_), "actions": [action(act, profile) for act in rule.then],
            "legacy": rule.legacy_task is not None}
