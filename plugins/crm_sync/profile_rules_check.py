"""The checks of a profile's ``rules:`` that span sections (issue 27): fields a rule reads must be
mapped, actions must write where the mapping writes, must not undo the mapping (a fight), and no
rule's write may set off a rule again (a loop). Each problem names the rule and its key."""

from __future__ import annotations

from typing import Any

from crm_sync.profile_rules import Action, Rule, is_raw


def rule_problems(profile: Any, canonical: dict[str, dict[str, Any]]) -> list[str]:
    """What the rules' models cannot see alone: unknown or unmapped fields, sides the mapping does not
    write, actions that undo the field mapping (a fight) and rules that would trigger rules (a loop).
    ``profile`` is a ``crm_sync.profile.Profile`` (not imported: it imports this module)."""
    problems: list[str] = []
    rules = profile.active_rules
    seen: set[str] = set()
    for rule in rules:
        # The rule's place in the file: active_rules puts new_contact_tasks first and skips disabled rules.
        index = next((n for n, given in enumerate(profile.rules) if given is rule), None)
        where = f"key 'rules.{index}' (rule '{rule.name}')" if rule.legacy_task is None else \
            f"key 'entities.contact.new_contact_tasks.{rule.legacy_task}' (rule '{rule.name}')"
        if rule.name in seen:
            problems.append(f"{where}: the name is used twice; rule names must be unique")
        seen.add(rule.name)
        problems += [f"{where}: {problem}" for problem in _rule_problems(profile, canonical, rule)]
    problems += _loops(profile, rules)
    return problems


def _synced(profile: Any, entity: str) -> bool:
    return entity in profile.entities and profile.entities[entity].direction != "off"


def _field_problem(profile: Any, canonical: dict[str, dict[str, Any]], entity: str, name: str) -> str | None:
    """Why a rule cannot read ``name`` on a record of ``entity`` (None: it can)."""
    if is_raw(name) or name in ("rule", "event_time"):
        return None
    if name.startswith("contact."):
        entity, name = "contact", name.removeprefix("contact.")
    if name not in canonical[entity]:
        return (f"'{name}' is not a field of a {entity}: use one of {list(canonical[entity])}, "
                f"contact.<field> on a task or appointment, or a side's own field as app:<path> or ghl:<field>")
    if not _synced(profile, entity) or name not in profile.entities[entity].fields:
        return f"'{name}' is not mapped (entities.{entity}.fields.{name}), so it is always empty"
    return None


def _rule_problems(profile: Any, canonical: dict[str, dict[str, Any]], rule: Rule) -> list[str]:
    problems = []
    when, entity = rule.when, rule.entity
    if not _synced(profile, entity):
        problems.append(f"when.{when.event}: entities.{entity} is not synced, so this never fires")
    elif when.field_changed is not None:
        if problem := _field_problem(profile, canonical, "contact", when.field_changed):
            problems.append(f"when.field_changed: {problem}")
    elif when.event in ("tag_added", "tag_removed") and (problem := _field_problem(profile, canonical,
                                                                                   "contact", "tags")):
        problems.append(f"when.{when.event}: {problem}")
    elif when.event == "task_completed" and (problem := _field_problem(profile, canonical, "task", "completed")):
        problems.append(f"when.task_completed: {problem}")
    elif when.event == "appointment_status" and (problem := _field_problem(profile, canonical, "appointment",
                                                                            "status")):
        problems.append(f"when.appointment_status: {problem}")
    for name in rule.fields_read():
        if (problem := _field_problem(profile, canonical, entity, name)) is not None:
            problems.append(f"reads {problem}")
    for number, action in enumerate(rule.then):
        problems += [f"then.{number}.{action.kind}: {p}" for p in _action_problems(profile, canonical, action)]
    return problems


def _mapped_app_paths(profile: Any) -> dict[str, str]:
    """App paths the contact mapping (and the app's own bookkeeping) reads or writes -> what uses them."""
    mapping = profile.entities["contact"]
    used = {spec.app: f"entities.contact.fields.{name}" for name, spec in mapping.fields.items() if spec.app}
    used |= {spec.time_field: f"entities.contact.fields.{name}.time_field"
             for name, spec in mapping.fields.items() if spec.time_field}
    if mapping.external_id is not None and mapping.external_id.app:
        used[mapping.external_id.app] = "entities.contact.external_id.app"
    if profile.app.kind == "rest" and "contact" in profile.app.entities:
        api = profile.app.entities["contact"]
        used |= {api.id_field: "app.entities.contact.id_field",
                 api.updated_at_field: "app.entities.contact.updated_at_field"}
        if api.deleted is not None:
            used[api.deleted.field] = "app.entities.contact.deleted"
    return used


def _action_problems(profile: Any, canonical: dict[str, dict[str, Any]], action: Action) -> list[str]:
    spec, kind = action.spec, action.kind
    if kind in ("create_task", "create_note"):
        entity = "task" if kind == "create_task" else "note"
        if not _synced(profile, entity) or not profile.entities[entity].writes_to(spec.side):
            return [f"entities.{entity} does not write to {spec.side}, so a {entity} cannot be created there"]
        if kind == "create_task" and "title" not in profile.entities["task"].fields:
            return ["entities.task.fields has no title"]
        return []
    if not _synced(profile, "contact") or not profile.entities["contact"].writes_to(spec.side):
        return [f"entities.contact does not write to {spec.side}"]
    contact = profile.entities["contact"]
    if kind in ("add_tag", "remove_tag"):
        tags = contact.fields.get("tags")
        if tags is None or (spec.side == "app" and not tags.app):
            return [f"the contact's tags are not mapped on {spec.side} (entities.contact.fields.tags)"]
        if spec.tag.casefold() == contact.archive_tag.casefold() and spec.side == "ghl":
            return [f"'{spec.tag}' is the archive tag (entities.contact.archive_tag): on_delete owns it"]
        return []
    if spec.side == "app":
        path = spec.field
        for used, by in _mapped_app_paths(profile).items():
            if path == used or path.startswith(used + ".") or used.startswith(path + "."):
                return [f"app field '{path}' is synced by {by}: the mapping would undo the rule (a fight); "
                        "set a field the mapping does not sync"]
        return []
    ghl_mapped = {spec_.ghl or canonical["contact"][name][1]: name for name, spec_ in contact.fields.items()}
    if spec.field in ghl_mapped or spec.field in ("id", "dateUpdated", "dateAdded", "tags", "customFields"):
        by = ghl_mapped.get(spec.field)
        return [f"GHL field '{spec.field}' is " + (f"synced by entities.contact.fields.{by}: the mapping would "
                                                  "undo the rule (a fight)" if by else "GHL's own")
                + "; set customField.<id> or a field the mapping does not sync"]
    custom = contact.external_id.ghl_custom_field if contact.external_id else None
    if custom and spec.field == f"customField.{custom}":
        return [f"GHL custom field '{custom}' holds the app's id (entities.contact.external_id)"]
    return []


def _events(profile: Any, action: Action) -> list[tuple[str, str, str]]:
    """(event, tag, side) a contact action brings about: a tag added or removed on its side, and on
    the other side too when the mapping carries tags there."""
    if action.kind not in ("add_tag", "remove_tag"):
        return []  # a set writes a field no trigger watches; tasks are created open, notes trigger nothing
    spec = action.spec
    event = "tag_added" if action.kind == "add_tag" else "tag_removed"
    contact = profile.entities["contact"]
    tags = contact.fields.get("tags")
    other = "app" if spec.side == "ghl" else "ghl"
    sides = [spec.side] + ([other] if tags is not None and tags.app and contact.writes_to(other) else [])
    return [(event, spec.tag.casefold(), side) for side in sides]


def _loops(profile: Any, rules: list[Rule]) -> list[str]:
    """Rules whose writes would set off rules again, round to the first one (itself included), and
    one rule adding and removing one tag: refused, named."""
    problems = []
    fires: dict[str, set[str]] = {}
    for rule in rules:
        made = {event for action in rule.then for event in _events(profile, action)}
        fires[rule.name] = {other.name for other in rules for event, tag, side in made
                            if other.when.event == event and (getattr(other.when, event) or "").casefold() == tag
                            and other.when.side in ("any", side)}
        added = {(a.spec.side, a.spec.tag.casefold()) for a in rule.then if a.kind == "add_tag"}
        removed = {(a.spec.side, a.spec.tag.casefold()) for a in rule.then if a.kind == "remove_tag"}
        if both := sorted(added & removed):
            problems.append(f"rule '{rule.name}': adds and removes the tag {both[0][1]!r} on {both[0][0]} (a fight)")
    reported: set[frozenset[str]] = set()
    for start in fires:
        path = _cycle(fires, start)
        if path and frozenset(path) not in reported:
            reported.add(frozenset(path))
            problems.append(f"rules {' -> '.join(path + [path[0]])} would loop: each one's write triggers the next; "
                            "change a trigger or an action")
    return problems


def _cycle(fires: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of rules from ``start`` back to it, if any (depth first; profiles hold a handful)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        name, path = stack.pop()
        for nxt in sorted(fires.get(name, ())):
            if nxt == start:
                return path
            if nxt not in path:
                stack.append((nxt, path + [nxt]))
    return None
