"""Sync profiles: one YAML file per (GHL location, app, field mapping), validated on load.

A profile is the whole description of a sync; DAGs, hooks and reconcile read it and
nothing else. Validation happens when the file is read, so a typo fails with the file,
the key and what was expected before any run starts. A new app is a new profile file:
its API (``profile_app``) and its field mapping are data, not code. A profile that lists
``locations``, or an ``agency`` install's, is loaded as one profile per GHL location (see ``locations``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from crm_sync.locations import SEPARATOR, one_location, per_location
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile_app import AppApi, Entity, PagingLimits
from crm_sync.profile_agency import Agency
from crm_sync.profile_base import ProfileError, Strict
from crm_sync.profile_matching import Matching
from crm_sync.profile_rules import CreateTask, Due, Rule
from crm_sync.profile_rules_check import rule_problems
from crm_sync.profile_webhooks import app_asset
from crm_sync.timezones import zone

Side = Literal["ghl", "app"]
ENTITIES: tuple[Entity, ...] = ("contact", "task", "note", "appointment")
Kind = Literal["text", "email", "phone", "datetime", "bool", "tags"]

# Canonical model: per entity, each field's kind and the GHL API field that holds it.
CANONICAL: dict[str, dict[str, tuple[Kind, str]]] = {
    "contact": {"email": ("email", "email"), "phone": ("phone", "phone"), "first_name": ("text", "firstName"),
                "last_name": ("text", "lastName"), "company_name": ("text", "companyName"),
                "lead_source": ("text", "source"), "tags": ("tags", "tags")},
    "task": {"title": ("text", "title"), "body": ("text", "body"), "due_date": ("datetime", "dueDate"),
             "completed": ("bool", "completed"), "assignee": ("text", "assignedTo")},
    "note": {"body": ("text", "body"), "date": ("datetime", "dateAdded")},
    "appointment": {"title": ("text", "title"), "start": ("datetime", "startTime"), "end": ("datetime", "endTime"),
                    "status": ("text", "appointmentStatus")},
}
# Fields GHL sets itself: read from GHL, never written to it.
GHL_READ_ONLY = {("note", "date")}
# What GHL calls each entity's id and updated-at (tasks and notes carry no updated-at).
GHL_RECORD_FIELDS = {"contact": ("id", "dateUpdated"), "task": ("id", "dateAdded"), "note": ("id", "dateAdded"),
                     "appointment": ("id", "dateUpdated")}


def location_asset(location_id: str) -> str:
    """The Airflow asset a GHL location's webhooks update: every DAG syncing that location watches it."""
    return f"crm_sync_ghl_location_{location_id}"


class GhlApi(Strict):
    conn_id: str = "ghl_default"
    page_limit: int = Field(500, ge=1, le=500)
    pool: str | None = Field(None, description="Airflow pool of this GHL location; default crm_sync_<conn_id>")
    task_scan_hours: float = Field(24, gt=0, description="hours between full reads of the location's tasks; "
                                   "between them only the tasks of changed contacts are read")
    appointment_history_days: int = Field(365, ge=0, description="how far back the first sync reads appointments")
    appointment_horizon_days: int = Field(90, ge=1, description="how far ahead every run reads appointments")
    appointment_lookback_days: int = Field(7, ge=0, description="how far back every later run reads appointments")
    calendar_window_days: int = Field(120, ge=1, le=366, description="longest time range of one calendar-events call")
    daily_reserve: int = Field(2000, ge=0, description="GHL calls of the day's budget (X-RateLimit-Daily-Remaining) "
                               "a run leaves untouched: below it, the run stops reading and writing GHL and "
                               "the next run goes on where it stopped")
    location_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]+$",
        description="the connection's GHL location id, repeated here so its webhooks can trigger this DAG "
                    "(the receiver and the DAG file read no connection); unset: scheduled runs only")

    paging: dict[Literal["contact", "task"], PagingLimits] = Field(
        default_factory=dict, description="bounds of the contact search and the task search")

    @property
    def asset(self) -> str | None:
        """Name of the Airflow asset the webhook receiver updates for this location, if any."""
        return location_asset(self.location_id) if self.location_id else None

    @property
    def pool_name(self) -> str:
        """One connection is one location: every profile on it shares this pool, so one rate budget."""
        return self.pool or f"crm_sync_{self.conn_id}"


class Timeouts(Strict):
    """How long a task, and a whole run, may take before Airflow stops it: a task stuck on a
    silent server must not hold the location's pool (and so every profile on it) forever."""

    task_minutes: float = Field(120, gt=0, description="each task's execution_timeout")
    run_minutes: float = Field(360, gt=0, description="the run's dagrun_timeout")


class Location(Strict):
    """One GHL location of a multi-location profile: its own DAG, pool, schedule and warehouse key."""

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", description="short name; the DAG id and profile get it as suffix")
    conn_id: str = Field(description="the GHL connection of this location")
    app_conn_id: str | None = Field(None, description="the app connection of this location; default the profile's")
    schedule: str | None = Field(None, description="cron; default the profile's, staggered per location")
    pool: str | None = Field(None, description="Airflow pool; default crm_sync_<conn_id>")


class FieldMap(Strict):
    """Where one canonical field lives on each side, and how to read and write it there."""

    app: str | None = Field(None, description="dotted path on the app record; null: the app does not hold it")
    ghl: str | None = Field(None, description="GHL field; defaults to the canonical model's")
    part: Literal["first", "last"] | None = Field(None, description="the app field is a full name; this part of it")
    time_field: str | None = Field(None, description="datetime split on the app: date in `app`, time here")
    format: str = Field("iso", description="datetime on the app: iso, unix, unix_ms, or a strftime pattern")
    values: dict[str, Any] | None = Field(None, description="canonical value -> app value(s), first one written")
    item_key: str | None = Field(None, description="tags: key of the name in tag objects ({id, name})")
    fallback: Any = Field(None, description="value written when both sides are empty")
    conflict: Literal["latest_wins", "ghl", "app"] | None = Field(
        None, description="this field's own conflict rule, instead of the entity's")

    @field_validator("values", mode="before")
    @classmethod
    def _yaml_keys(cls, values: Any) -> Any:  # YAML reads `true:` as a bool key
        return {str(k).lower(): v for k, v in values.items()} if isinstance(values, dict) else values


class NewContactTask(Strict):
    """A task created in GHL with each contact the app brings in (a lead's first call, a reminder).
    Kept so older profiles work: each is read as a rule (``Profile.active_rules``); new profiles say it
    in ``rules:`` (docs/rules.md)."""

    title: str
    body: str | None = None
    due_in_hours: float = Field(24, ge=0)
    only_if: str | None = Field(None, description="canonical contact field that must be non-empty")


class ExternalId(Strict):
    """Where a contact keeps the other side's id (left by an earlier integration or import): a
    record that names its counterpart is linked to it before any email or phone match."""

    app: str | None = Field(None, description="dotted path of the app field holding the GHL contact id")
    ghl_custom_field: str | None = Field(None, description="id of the GHL custom field holding the app's id")


class EntityMapping(Strict):
    direction: Literal["both", "ghl_to_app", "app_to_ghl", "off"] = "both"
    conflict: Literal["latest_wins", "ghl", "app"] = Field(
        "latest_wins", description="who wins a field both sides changed: latest updated-at, or a source of truth")
    fields: dict[str, FieldMap | str]
    on_delete: Literal["archive", "delete", "ignore"] = Field(
        "archive", description="a record deleted on one side: archive (soft) on the other, delete it, or ignore")
    archive_tag: str = Field("archived", description="contacts: the GHL tag that marks an archived contact")
    new_contact_tasks: list[NewContactTask] = Field(default_factory=list)
    external_id: ExternalId | None = Field(None, description="contacts: the other side's id kept on a record")

    @field_validator("direction", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:  # YAML 1.1 reads a bare `off` as false
        return "off" if value is False else value

    @field_validator("fields", mode="after")
    @classmethod
    def _shorthand(cls, fields: dict[str, FieldMap | str]) -> dict[str, FieldMap | str]:
        return {name: FieldMap(app=spec) if isinstance(spec, str) else spec for name, spec in fields.items()}

    def writes_to(self, side: Side) -> bool:
        return self.direction == "both" or self.direction == ("app_to_ghl" if side == "ghl" else "ghl_to_app")

    def reads_from(self, side: Side) -> bool:
        return self.direction != "off"


class Insights(Strict):
    """The console's insights page: when a new lead's first call is late."""

    first_call_hours: float = Field(24, gt=0, description="hours after a person is first seen by which their "
                                    "first-call task should be completed")
    first_call_task: str | None = Field(None, min_length=1, description="title of the first-call task; default: "
                                        "the first of entities.contact.new_contact_tasks")


class Profile(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    dag_id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    description: str = ""
    schedule: str = "0 0 * * *"
    start_date: date
    default_region: str = Field("US", pattern=r"^[A-Z]{2}$")
    timezone: str = Field("UTC", description="IANA zone of the app's values that carry none (dates, wall-clock times)")
    overlap_minutes: int = Field(5, ge=0)
    dry_run: bool = False
    quality_threshold: float = Field(0.05, ge=0, le=1, description="share of bad rows that fails the run")
    timeouts: Timeouts = Timeouts()
    retention_days: int | None = Field(90, ge=1, description="personal data older than this is deleted (raw records, "
                                       "quarantine rows, report files, webhook events) or scrubbed, ids kept (outbox "
                                       "values, run_log samples, review decision users); null: kept forever")
    ghl: GhlApi = GhlApi()
    app: AppApi
    entities: dict[Entity, EntityMapping]
    locations: list[Location] = Field([], description="several GHL locations: one DAG per location (locations.py)")
    agency: Agency | None = Field(None, description="an agency install: one DAG per discovered location "
                                  "(profile_agency.py); excludes locations and ghl.location_id")
    dag_shape: Literal["steps", "single_task"] = Field(
        "steps", description="steps: one Airflow task per step (retried alone, each seen in the grid); "
        "single_task: every step in one task, a fraction of Airflow's cost per task run (docs/capacity.md)")
    insights: Insights = Insights()
    matching: Matching = Matching()
    rules: list[Rule] = Field([], description="when something happens to a record, if it meets conditions, act "
                              "(profile_rules.py, docs/rules.md)")

    @field_validator("timezone")
    @classmethod
    def _iana(cls, name: str) -> str:
        zone(name)
        return name

    @property
    def zone(self) -> ZoneInfo:
        """The profile's zone, applied to every app date and time without an offset."""
        return zone(self.timezone)

    def side_zone(self, side: Side) -> ZoneInfo:
        """Where a side's values without an offset are read: GHL's are UTC, the app's the profile's zone."""
        return zone("UTC") if side == "ghl" else self.zone

    @property
    def active_rules(self) -> list[Rule]:
        """The rules that run: each ``entities.contact.new_contact_tasks`` entry as a rule (a new person
        from the app gets the task in GHL, and in the app when tasks sync there), then ``rules:``'s
        enabled ones."""
        contact = self.entities.get("contact")
        tasks = self.entities.get("task")
        sides = ["ghl", "app"] if tasks is not None and tasks.direction != "off" and tasks.writes_to("app") else ["ghl"]
        legacy = [Rule(name=f"new_contact_task_{index + 1}", description="from entities.contact.new_contact_tasks",
                       when={"new_contact": "app"}, legacy_task=index,
                       if_={"field": task.only_if, "empty": False} if task.only_if else None,
                       then=[{"create_task": CreateTask(side=side, title=task.title, body=task.body,
                                                        due=Due(hours=task.due_in_hours))} for side in sides])
                  for index, task in enumerate(contact.new_contact_tasks if contact else [])]
        return legacy + [rule for rule in self.rules if rule.enabled]

    @property
    def first_call(self) -> NewContactTask | None:
        """The first-call task the insights page looks for: ``insights.first_call_task``, else the
        first task a new-contact rule creates (``new_contact_tasks`` included). None: any task of the
        person counts as its first call."""
        made = [(action.create_task.title, rule) for rule in self.active_rules if rule.when.event == "new_contact"
                for action in rule.then if action.create_task is not None]
        title = self.insights.first_call_task or next((title for title, _ in made), None)
        rule = next((rule for made_title, rule in made if made_title == title), None)
        condition = rule.if_ if rule else None  # "only those with a lead source": {field: x, empty: false}
        only_if = condition.field if condition and condition.empty is False and condition.field \
            and ":" not in condition.field else None
        return None if title is None else NewContactTask(title=title, only_if=only_if)

    @property
    def app_asset(self) -> str | None:
        """The Airflow asset the app's webhooks update (``app.webhooks`` set), else None."""
        return app_asset(self.name) if self.app.webhooks else None

    @property
    def fast_dag_id(self) -> str | None:
        """The fast lane's DAG (issue 25): one task that syncs what the webhooks name, within seconds.
        Only a profile woken by webhooks (a GHL location id, or the app's own push) has one."""
        return f"{self.dag_id}_fast" if self.ghl.asset or self.app_asset else None

    def synced(self) -> list[str]:
        """Entities this profile syncs, contacts first (children link through them)."""
        return [e for e in ENTITIES if e in self.entities and self.entities[e].direction != "off"]

    def fields(self, entity: str) -> dict[str, FieldMap]:
        """The entity's field mapping with GHL field names filled in from the canonical model."""
        return {name: spec.model_copy(update={"ghl": spec.ghl or CANONICAL[entity][name][1]})
                for name, spec in self.entities[entity].fields.items()}

    def contact_field(self, entity: str) -> str:
        """The field of an app's task, note or appointment that holds its contact's id."""
        return "_contact" if self.app.kind == "csv" else self.app.entities[entity].contact_field

    def record_fields(self, side: Side, entity: str = "contact") -> tuple[str, str]:
        """The names of a record's id and updated-at fields on one side."""
        if side == "ghl":
            return GHL_RECORD_FIELDS[entity]
        if self.app.kind == "csv":
            return "_key", "_imported_at"
        api = self.app.entities[entity]
        return api.id_field, api.updated_at_field


def _describe(err: dict, data: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "<top level>"
    return f"key '{key}'{_rule_named(err['loc'], data)}: {err['msg']}" + (
        f" (got {err['input']!r})" if err["type"] != "missing" else "")


def _rule_named(loc: tuple, data: dict[str, Any]) -> str:
    """`` (rule '<name>')`` for an error inside ``rules.<n>`` whose rule has a name: a profile with
    many rules is read by name, not by position (the cross-section checks name it alike)."""
    rules = data.get("rules")
    if len(loc) < 2 or loc[0] != "rules" or not isinstance(loc[1], int) or not isinstance(rules, list) \
            or loc[1] >= len(rules) or not isinstance(rules[loc[1]], dict):
        return ""
    name = rules[loc[1]].get("name")
    return f" (rule '{name}')" if isinstance(name, str) and name else ""


def _problems(profile: Profile) -> list[str]:
    """Rules across sections that pydantic cannot see field by field."""
    problems = []
    if profile.agency is not None and profile.locations:
        problems.append("key 'agency': an agency profile discovers its locations; remove 'locations'")
    if profile.agency is not None and profile.ghl.location_id:
        problems.append("key 'agency': each discovered location gets its own ghl.location_id; remove "
                        "'ghl.location_id'")
    for entity, mapping in profile.entities.items():
        unknown = set(mapping.fields) - set(CANONICAL[entity])
        if unknown:
            problems.append(f"key 'entities.{entity}.fields': unknown canonical field(s) {sorted(unknown)}; "
                            f"expected some of {list(CANONICAL[entity])}")
        if mapping.direction == "off":
            continue
        if entity != "contact" and "contact" not in profile.synced():
            problems.append(f"key 'entities.{entity}': {entity}s link through contacts; sync contacts too")
        if profile.app.kind == "rest":
            api = profile.app.entities.get(entity)
            if api is None:
                problems.append(f"key 'app.entities.{entity}': missing; entities.{entity} is synced "
                                f"({mapping.direction}) so the app's {entity} API must be described")
            elif entity != "contact" and not api.contact_field:
                problems.append(f"key 'app.entities.{entity}.contact_field': missing; a {entity} must name its contact")
            elif mapping.writes_to("app") and (api.create is None or api.update is None):
                problems.append(f"key 'app.entities.{entity}': direction {mapping.direction} writes to the app, "
                                "so create and update operations are needed")
            elif mapping.writes_to("app") and mapping.on_delete == "delete" and entity != "contact" \
                    and api.delete is None:
                problems.append(f"key 'app.entities.{entity}.delete': missing; entities.{entity}.on_delete is "
                                "delete and the direction writes to the app")
        elif entity not in ("contact", "note") or mapping.direction != "app_to_ghl":
            problems.append(f"key 'entities.{entity}': a csv source only feeds contacts and their notes to GHL "
                            "(direction app_to_ghl)")
        if entity != "contact" and mapping.external_id is not None:
            problems.append(f"key 'entities.{entity}.external_id': only contacts are matched by external id")
        if entity == "appointment" and mapping.writes_to("ghl"):
            problems.append("key 'entities.appointment.direction': writing appointments to GHL is not supported; "
                            "use ghl_to_app or off")
    if not problems:
        problems += rule_problems(profile, CANONICAL)
    return problems


def parse_profile(text: str, source: str) -> Profile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping at the top level")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{source}: " + "; ".join(_describe(e, data) for e in exc.errors())) from None
    if problems := _problems(profile):
        raise ProfileError(f"{source}: " + "; ".join(problems))
    return profile


def load_profile(path: Path) -> Profile:
    return parse_profile(path.read_text(encoding="utf-8"), str(path))


def load_profiles(directory: Path = PROFILES_DIR) -> list[Profile]:
    return [one for path in sorted(directory.glob("*.yaml")) for one in per_location(load_profile(path))]


def usable_profiles(directory: Path = PROFILES_DIR) -> tuple[list[Profile], list[str]]:
    """The valid profiles, and the error of each invalid one: one typo must not stop every other sync."""
    good, errors = [], []
    for path in sorted(directory.glob("*.yaml")):
        try:
            good.extend(per_location(load_profile(path)))
        except ProfileError as exc:
            errors.append(str(exc))
    return good, errors


def profile_by_name(name: str, directory: Path = PROFILES_DIR) -> Profile:
    """A profile, or one location of a multi-location or agency profile (``<profile>__<location key>``)."""
    if (directory / f"{name}.yaml").exists() or SEPARATOR not in name:
        return load_profile(directory / f"{name}.yaml")
    base, _, key = name.rpartition(SEPARATOR)
    return one_location(load_profile(directory / f"{base}.yaml"), key)


def agency_profiles(directory: Path = PROFILES_DIR) -> list[Profile]:
    """The valid agency profiles themselves, unexpanded: each has a discovery DAG and a pool."""
    found = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            profile = load_profile(path)
        except ProfileError:
            continue  # reported by usable_profiles (crm_sync_profile_errors.py)
        if profile.agency is not None:
            found.append(profile)
    return found
