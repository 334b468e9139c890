"""A profile's ``rules:`` (issue 27): when something happens to a record, if it meets conditions, act.

Rules are data, read and checked with the profile, and run inside reconcile on the run's changes:
each action becomes an ordinary outbox row (exactly once, echo-safe, attributed to its rule in the
report). This module only describes and checks them; ``crm_sync.pipeline.rules`` evaluates them.

    rules:
      - name: web_leads_to_trial
        when: {new_contact: ghl}                      # exactly one trigger key, plus an optional side
        if: {all: [{field: lead_source, in: [Website, Facebook]}, {tag: member, absent: true}]}
        then:
          - set: {side: app, field: segment, value: trial}
          - create_task: {side: ghl, title: "Call {first_name}", due: {days: 1, at: "09:00"}}

A record is named by its canonical fields (``email``, ``lead_source``, ``tags``, an appointment's
``status`` ...), by ``contact.<field>`` (a task's or appointment's contact), or raw, by a side's own
field: ``app:<dotted path>`` or ``ghl:<field>``, with ``ghl:customField.<id>`` for a GHL custom field.
Actions act on the contact (the trigger's record, or a child's contact); tasks and notes are created
under it. A rule's own writes never trigger rules; one whose writes would trigger a rule again (a
loop) or undo the field mapping (a fight) is refused when the profile is read.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from crm_sync.profile_base import Strict

SideOrAny = Literal["ghl", "app", "any"]
Side = Literal["ghl", "app"]
TEMPLATE_FIELD = re.compile(r"\{([A-Za-z0-9_.:-]+)\}")
RELATIVE = re.compile(r"^(?P<sign>[+-])(?P<n>\d+)(?P<unit>[mhd])$")  # "-30d", "+2h": from the event's time
RAW = re.compile(r"^(app:[A-Za-z0-9_][A-Za-z0-9_.-]*|ghl:(customField\.[A-Za-z0-9_-]+|[A-Za-z][A-Za-z0-9_]*))$")
EVENTS = ("new_contact", "field_changed", "tag_added", "tag_removed", "appointment_status", "task_completed")
# The entity each trigger fires on.
TRIGGER_ENTITY = {"new_contact": "contact", "field_changed": "contact", "tag_added": "contact",
                  "tag_removed": "contact", "appointment_status": "appointment", "task_completed": "task"}


def is_raw(name: str) -> bool:
    """``app:<path>`` or ``ghl:<field>``: a side's own field, not the canonical model's."""
    return bool(RAW.match(name))


class When(Strict):
    """The trigger: exactly one event key, and the side it must happen on (``any``: either).

    - ``new_contact``: a person first seen on that side whom no record of the other side matched (a
      new person to the sync, created there when the direction writes there); value ``ghl``, ``app``
      or ``any``; once per person, ever.
    - ``field_changed``: a canonical contact field whose value on the side differs from the last
      synced one; ``to`` narrows it to a new value.
    - ``tag_added`` / ``tag_removed``: that tag (case aside) appeared on / left the contact's tags.
    - ``appointment_status``: an appointment's canonical status became this value (or one of these).
    - ``task_completed``: a task became completed (value ``true``).
    Changes are against the record's last synced state: a record seen for the first time fires only
    ``new_contact``, so a first sync of an existing book fires no change rule.
    """

    new_contact: SideOrAny | None = None
    field_changed: str | None = Field(None, min_length=1, description="canonical contact field")
    to: Any = Field(None, description="field_changed: only to this value")
    tag_added: str | None = Field(None, min_length=1)
    tag_removed: str | None = Field(None, min_length=1)
    appointment_status: str | list[str] | None = None
    task_completed: Literal[True] | None = None
    side: SideOrAny = Field("any", description="the side the event must happen on")

    @model_validator(mode="after")
    def _one_event(self) -> When:
        given = [name for name in EVENTS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one trigger of {list(EVENTS)} (got {given or 'none'})")
        if self.to is not None and self.field_changed is None:
            raise ValueError("'to' goes with field_changed")
        if self.new_contact is not None and self.side != "any":
            raise ValueError("new_contact names its side itself (new_contact: ghl|app|any); drop 'side'")
        return self

    @property
    def event(self) -> str:
        return next(name for name in EVENTS if getattr(self, name) is not None)

    @property
    def entity(self) -> str:
        return TRIGGER_ENTITY[self.event]

    @property
    def on_side(self) -> SideOrAny:
        return self.new_contact if self.new_contact is not None else self.side

    def statuses(self) -> list[str]:
        value = self.appointment_status
        return [] if value is None else [value] if isinstance(value, str) else list(value)


Comparable = float | int | str | datetime


class Condition(Strict):
    """One test on the record, or ``all`` / ``any`` of nested ones. A leaf names ``field`` (or
    ``tag``) and one test: ``equals``, ``in``, ``contains`` (text: case aside; tags: a member),
    ``empty`` (true/false), ``gt`` / ``gte`` / ``lt`` / ``lte`` (numbers, or dates: ISO, or relative
    to the event as ``-30d`` / ``+2h``), or for a tag ``absent: true`` (default: present).
    Text is compared case and surrounding spaces aside."""

    all: list[Condition] | None = None
    any: list[Condition] | None = None
    field: str | None = None
    tag: str | None = Field(None, min_length=1)
    absent: bool = False
    equals: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    contains: str | None = None
    empty: bool | None = None
    gt: Comparable | None = None
    gte: Comparable | None = None
    lt: Comparable | None = None
    lte: Comparable | None = None

    model_config = {**Strict.model_config, "populate_by_name": True}

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        groups = [g for g in ("all", "any") if getattr(self, g) is not None]
        tests = self.tests()
        if groups:
            if len(groups) > 1 or self.field or self.tag or tests or self.absent:
                raise ValueError("a group is 'all' or 'any' alone")
            if not getattr(self, groups[0]):
                raise ValueError(f"'{groups[0]}' needs at least one condition")
        elif self.tag is not None:
            if self.field is not None or tests:
                raise ValueError("a tag test is {tag: <name>} or {tag: <name>, absent: true}")
        elif self.field is None:
            raise ValueError("a condition needs 'field', 'tag', 'all' or 'any'")
        elif len(tests) != 1:
            raise ValueError(f"field '{self.field}': give exactly one test of equals, in, contains, empty, "
                             f"gt, gte, lt, lte (got {tests or 'none'})")
        elif self.absent:
            raise ValueError("'absent' goes with 'tag'")
        for name in ("gt", "gte", "lt", "lte"):
            value = getattr(self, name)
            if isinstance(value, str) and not RELATIVE.match(value):
                try:
                    datetime.fromisoformat(value)
                except ValueError:
                    raise ValueError(f"{name}: {value!r} is neither a number, an ISO date nor relative like "
                                     "-30d, +2h") from None
        return self

    def tests(self) -> list[str]:
        return [name for name in ("equals", "in_", "contains", "empty", "gt", "gte", "lt", "lte")
                if getattr(self, name) is not None]

    def fields(self) -> list[str]:
        """Every field this condition (and those nested in it) reads; ``tags`` for a tag test."""
        if self.all or self.any:
            return [name for child in (self.all or self.any or []) for name in child.fields()]
        return ["tags"] if self.tag is not None else [self.field or ""]


class Due(Strict):
    """A due time relative to the event: ``days`` and ``hours`` after it, then, with ``at``, that
    wall-clock time of the day in the profile's zone (``{days: 1, at: "09:00"}``: the next morning)."""

    days: int = Field(0, ge=0)
    hours: float = Field(0, ge=0)
    at: time | None = None


class SetField(Strict):
    """Set a side's own field (not one the field mapping syncs): ``field`` is an app dotted path, or
    on GHL ``customField.<id>`` or a GHL contact field the profile does not map. ``value`` may be a
    template."""

    side: Side
    field: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    value: Any


class TagChange(Strict):
    """Add or remove one tag on a side's contact; the app needs its tags mapped (``fields.tags``)."""

    side: Side
    tag: str = Field(min_length=1)


class CreateTask(Strict):
    """A task under the contact; title and body are templates (``{first_name}``, ``{contact.email}``,
    ``{rule}``); due relative to the event."""

    side: Side
    title: str = Field(min_length=1)
    body: str | None = None
    due: Due = Due(days=1)
    assignee: str | None = None


class CreateNote(Strict):
    """A note under the contact; its body is a template."""

    side: Side
    body: str = Field(min_length=1)


class Action(Strict):
    """Exactly one of ``set``, ``add_tag``, ``remove_tag``, ``create_task``, ``create_note``."""

    set: SetField | None = None
    add_tag: TagChange | None = None
    remove_tag: TagChange | None = None
    create_task: CreateTask | None = None
    create_note: CreateNote | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Action:
        given = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one action of {list(ACTIONS)} (got {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)

    @property
    def spec(self) -> SetField | TagChange | CreateTask | CreateNote:
        return getattr(self, self.kind)

    def templates(self) -> list[str]:
        spec = self.spec
        texts = [getattr(spec, name, None) for name in ("value", "title", "body", "assignee")]
        return [text for text in texts if isinstance(text, str)]


ACTIONS = ("set", "add_tag", "remove_tag", "create_task", "create_note")


class Rule(Strict):
    """One rule: ``name`` (unique, kept in the outbox and the report), ``when``, optional ``if``,
    ``then`` (one or more actions). ``legacy_task``: set only on the rules made from an old profile's
    ``new_contact_tasks`` (their index), so their writes keep the keys they had (never sent twice)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    description: str = ""
    when: When
    if_: Condition | None = Field(None, alias="if")
    then: list[Action] = Field(min_length=1)
    enabled: bool = True
    legacy_task: int | None = Field(None, ge=0, description="internal: made from new_contact_tasks[n]")

    model_config = {**Strict.model_config, "populate_by_name": True}

    @field_validator("then", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @property
    def entity(self) -> str:
        return self.when.entity

    def fields_read(self) -> list[str]:
        """Every field the rule's conditions and templates read."""
        read = self.if_.fields() if self.if_ else []
        for action in self.then:
            read += TEMPLATE_FIELD.findall(" ".join(action.templates()))
        return read


def relative_moment(text: str, event: datetime) -> datetime | None:
    """``-30d`` / ``+2h`` / ``+15m`` from the event's time; None when ``text`` is not relative."""
    from datetime import timedelta

    found = RELATIVE.match(text)
    if not found:
        return None
    step = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}[found["unit"]]
    return event + (1 if found["sign"] == "+" else -1) * int(found["n"]) * step

