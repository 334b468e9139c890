"""Demo seeds for every app profile: the demo people, and some tasks, notes and appointments.

The people (good, bad and ambiguous) are the Gymdesk members of harness/demo_data.py,
rewritten into each app's own field names and formats through its profile's mapping;
invalid values are kept as they are, so every app's demo meets the same bad rows. GHL gets
the children that flow from GHL (notes, appointments, a task) and the app gets tasks. The
app's own fields the profile's rules read (GymFlow's engagement) are added, so in `make demo`
at least one rule of each profile with rules fires: Gymdesk's and the generic app's route the
people only in GHL by source or lifecycle stage, GymFlow's tag the people only in GymFlow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from harness.demo_data import LOCATION_ID, DemoData

# Where each simulator keeps each entity (its /_sim/records/<collection>).
COLLECTIONS = {
    "gymdesk": {"contact": "members", "task": "tasks", "note": "notes", "appointment": "bookings"},
    "gymflow": {"contact": "contacts", "task": "tasks", "note": "notes"},
    "mygadgetrepairs": {"contact": "customers", "task": "tasks", "note": "notes", "appointment": "appointments"},
    "gist": {"contact": "contacts", "task": "tasks", "note": "notes"},
    "generic": {"contact": "contacts", "task": "tasks", "note": "notes"},
}
INTEGER_IDS = {"mygadgetrepairs", "gist"}
UPDATED_FORMAT = {"gist": "unix", "mygadgetrepairs": "%Y-%m-%d %H:%M:%S"}
DEFAULTS = {"gymdesk": {"status": "active"}, "gymflow": {"deleted": False, "tags": []},
            "gist": {"type": "user", "tags": [], "custom_properties": {}}}
DESK_FIELDS = {"email": "email", "phone": "phone", "first_name": "first_name", "last_name": "last_name",
               "company_name": "company", "lead_source": "lead_source"}
CHILDREN_EVERY = 5  # every fifth person synced on both sides gets children


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _app_id(app: str, number: int, prefix: str) -> Any:
    return number if app in INTEGER_IDS else f"{prefix}_{number}"


def _contact_id(app: str, member: dict[str, Any]) -> Any:
    """A demo member's id on this app (Gymdesk keeps its own; others number the same person alike)."""
    if app == "gymdesk" or member["id"] is None:
        return member["id"]
    return _app_id(app, int(member["id"].split("_")[-1]), "c")


def _stamp(profile, iso: str) -> Any:
    from crm_sync.timezones import format_moment, timestamp

    return format_moment(timestamp(iso), UPDATED_FORMAT.get(profile.name, "iso"), profile.zone)


def _record(profile, entity: str, values: dict[str, Any], record_id: Any, updated_iso: str,
            contact_id: Any = None) -> dict[str, Any]:
    from crm_sync.pipeline.normalize import set_path, to_side

    api = profile.app.entities[entity]
    defaults = DEFAULTS.get(profile.name, {}) if entity == "contact" else {}
    record = {**defaults, **to_side(entity, values, "app", profile.fields(entity), full=values, zone=profile.zone)}
    set_path(record, api.id_field, record_id)  # a bad row may have none: the sync must quarantine it
    set_path(record, api.updated_at_field, _stamp(profile, updated_iso))
    if contact_id is not None:
        set_path(record, api.contact_field, contact_id)
    return record


def app_seed(profile, data: DemoData, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The app simulator's seed for this profile: {collection: records}."""
    if profile.name == "gymdesk":
        seed = {"members": list(data.gymdesk_members)}
    else:
        seed = {COLLECTIONS[profile.name]["contact"]: [
            {**_record(profile, "contact", {name: member.get(field) for name, field in DESK_FIELDS.items()
                                            if name in profile.entities["contact"].fields},
                       _contact_id(profile.name, member), member["updated_at"]),
             **_own_fields(profile.name, n, now)}
            for n, member in enumerate(data.gymdesk_members)]}
    if "task" in profile.synced():
        tasks = []
        for n, member in enumerate(_shared_members(data)):
            due = (now + timedelta(days=2 + n % 3)).replace(hour=17, minute=0, second=0, microsecond=0)
            values = {"title": f"Intro session {n + 1}", "due_date": _iso(due), "completed": n % 2 == 1}
            tasks.append(_record(profile, "task", values, _app_id(profile.name, 7000 + n, "tsk"),
                                 member["updated_at"], _contact_id(profile.name, member)))
        seed[COLLECTIONS[profile.name]["task"]] = tasks
    return seed


def _own_fields(app: str, n: int, now: datetime) -> dict[str, Any]:
    """An app's own fields, which no mapping syncs and the profile's rules read (docs/rules.md): GymFlow's
    engagement, a third of the members each coming often, now and then, or hardly."""
    if app != "gymflow":
        return {}
    return {"visits_last_30d": (12, 4, 0)[n % 3], "last_visit_at": _iso(now - timedelta(days=(1, 9, 45)[n % 3]))}


def _shared_members(data: DemoData) -> list[dict[str, Any]]:
    ghl_emails = {(c.get("email") or "").lower() for c in data.ghl_contacts}
    shared = [m for m in data.gymdesk_members if m["id"] and (m.get("email") or "") in ghl_emails
              and "family" not in m["email"]]
    return shared[::CHILDREN_EVERY]


def ghl_children(profile, data: DemoData, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Notes, appointments and a task on some GHL contacts, for the entities the profile syncs."""
    synced = profile.synced()
    people = [c for c in data.ghl_contacts if "family" not in (c.get("email") or "") and "bad" not in c["id"].lower()]
    people = people[::CHILDREN_EVERY]
    children: dict[str, list[dict[str, Any]]] = {}
    stamp = _iso(now - timedelta(days=1))
    if "note" in synced:
        children["notes"] = [{"id": f"ghlNote{n:013d}", "contactId": c["id"], "body": f"Asked about membership plan {n}",
                              "dateAdded": stamp} for n, c in enumerate(people)]
    if "task" in synced:
        children["tasks"] = [{"id": f"ghlTask{n:013d}", "contactId": c["id"], "title": "Send welcome pack",
                              "body": None, "dueDate": _iso(now + timedelta(days=3)), "completed": False,
                              "dateAdded": stamp} for n, c in enumerate(people[:3])]
    if "appointment" in synced:
        children["appointments"] = [
            {"id": f"ghlAppt{n:013d}", "locationId": LOCATION_ID, "contactId": c["id"], "calendarId": "demo-calendar",
             "title": "Trial class", "appointmentStatus": "confirmed",
             "startTime": _iso((now + timedelta(days=n % 5 + 1)).replace(hour=18, minute=0, second=0, microsecond=0)),
             "endTime": _iso((now + timedelta(days=n % 5 + 1)).replace(hour=19, minute=0, second=0, microsecond=0)),
             "dateAdded": stamp, "dateUpdated": stamp} for n, c in enumerate(people)]
    return children
