"""The GHL simulator's routes of a contact's tasks, notes, tags and appointments, and the calendars."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from harness.simulators.base import now_iso
from harness.simulators.ghl_account import (
    CALENDARS_READ,
    CALENDARS_VERSION,
    EVENTS_READ,
    NOTE_FIELDS,
    READ,
    TASK_FIELDS,
    TASKS_SEARCH,
    WRITE,
    Call,
    GHLSimulator,
    Register,
    assign,
    bad_request,
    date_ms,
    new_id,
    require,
    text,
    unprocessable,
)


def task_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    def apply(task: dict[str, Any], body: dict[str, Any], location_id: str) -> dict[str, Any]:
        """Write task fields; completing an open task is the TaskComplete event."""
        was_completed = bool(task.get("completed"))
        assign(task, body, TASK_FIELDS)
        if task.get("completed") and not was_completed:
            sim.emit_task("TaskComplete", location_id, task)
        return {"task": dict(task)}

    @operation("GET", "/contacts/{contact_id}/tasks", READ)
    def list_tasks(contact_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"tasks": sim.children(sim.tasks, sim.contact(call, contact_id)["id"])}

    @operation("POST", "/contacts/{contact_id}/tasks", WRITE, status=201)
    def create_task(contact_id: str, call: Call = authorized):
        require(call.body, "title", "dueDate", "completed")
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            task = {"id": new_id(), "contactId": contact["id"], "dateAdded": now_iso()}
            assign(task, call.body, TASK_FIELDS)
            sim.tasks[task["id"]] = task
            sim.emit_task("TaskCreate", call.location_id, task)
            return {"task": dict(task)}

    @operation("GET", "/contacts/{contact_id}/tasks/{task_id}", READ)
    def get_task(contact_id: str, task_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"task": sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")}

    @operation("PUT", "/contacts/{contact_id}/tasks/{task_id}", WRITE)
    def update_task(contact_id: str, task_id: str, call: Call = authorized):
        with sim.state.lock:
            task = sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")
            return apply(task, call.body, call.location_id)

    @operation("PUT", "/contacts/{contact_id}/tasks/{task_id}/completed", WRITE)
    def complete_task(contact_id: str, task_id: str, call: Call = authorized):
        if not isinstance(call.body.get("completed"), bool):
            raise unprocessable(["completed must be a boolean value"])
        with sim.state.lock:
            task = sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")
            return apply(task, {"completed": call.body["completed"]}, call.location_id)

    @operation("DELETE", "/contacts/{contact_id}/tasks/{task_id}", WRITE)
    def delete_task(contact_id: str, task_id: str, call: Call = authorized):
        with sim.state.lock:
            task = sim.tasks.pop(sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")["id"])
            sim.emit_task("TaskDelete", call.location_id, task)
        return {"succeded": True}

    @operation("POST", "/locations/{location_id}/tasks/search", TASKS_SEARCH)
    def search_tasks(location_id: str, call: Call = authorized):
        if location_id != call.location_id:
            raise bad_request("locationId does not match the token's location")
        limit, skip = call.body.get("limit", 25), call.body.get("skip", 0)
        if not isinstance(limit, int) or not isinstance(skip, int) or limit < 1 or skip < 0:
            raise unprocessable(["limit must be a positive integer and skip a non-negative one"])
        with sim.state.lock:
            tasks = [t for t in sim.tasks.values() if task_matches(t, call)]
        tasks.sort(key=lambda t: (str(t.get("dateAdded") or ""), t["id"]))  # oldest first, stable pages
        skip = 0 if sim.ignore_paging else skip
        return {"tasks": tasks[skip:skip + limit]}

    def task_matches(task: dict[str, Any], call: Call) -> bool:
        body, contact = call.body, sim.contacts.get(task.get("contactId", ""))
        query = text(body.get("query"))
        return (contact is not None and contact.get("locationId") == call.location_id
                and ("contactId" not in body or task["contactId"] in body["contactId"])
                and ("completed" not in body or bool(task.get("completed")) == body["completed"])
                and ("assignedTo" not in body or task.get("assignedTo") in body["assignedTo"])
                and (not query or query in text(task.get("title")) or query in text(task.get("body"))))


def note_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    @operation("GET", "/contacts/{contact_id}/notes", READ)
    def list_notes(contact_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"notes": sim.children(sim.notes, sim.contact(call, contact_id)["id"])}

    @operation("POST", "/contacts/{contact_id}/notes", WRITE, status=201)
    def create_note(contact_id: str, call: Call = authorized):
        require(call.body, "body")
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            note = {"id": new_id(), "contactId": contact["id"], "dateAdded": now_iso()}
            assign(note, call.body, NOTE_FIELDS)
            sim.notes[note["id"]] = note
            sim.emit_note("NoteCreate", call.location_id, note)
            return {"note": dict(note)}

    @operation("GET", "/contacts/{contact_id}/notes/{note_id}", READ)
    def get_note(contact_id: str, note_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"note": sim.child(sim.notes, sim.contact(call, contact_id), note_id, "Note")}

    @operation("PUT", "/contacts/{contact_id}/notes/{note_id}", WRITE)
    def update_note(contact_id: str, note_id: str, call: Call = authorized):
        with sim.state.lock:
            note = sim.child(sim.notes, sim.contact(call, contact_id), note_id, "Note")
            assign(note, call.body, NOTE_FIELDS)
            sim.emit_note("NoteUpdate", call.location_id, note)
            return {"note": dict(note)}

    @operation("DELETE", "/contacts/{contact_id}/notes/{note_id}", WRITE)
    def delete_note(contact_id: str, note_id: str, call: Call = authorized):
        with sim.state.lock:
            note = sim.notes.pop(sim.child(sim.notes, sim.contact(call, contact_id), note_id, "Note")["id"])
            sim.emit_note("NoteDelete", call.location_id, note)
        return {"succeded": True}


def tag_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    def retag(contact_id: str, call: Call, change: Callable[[list[str], list[str]], list[str]]) -> dict[str, Any]:
        """Add or remove tags; a real change stamps dateUpdated and is a ContactTagUpdate."""
        tags = call.body.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise unprocessable(["tags must be an array of strings"])
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            before = list(contact.get("tags") or [])
            after = change(before, tags)
            if after != before:
                contact["tags"], contact["dateUpdated"] = after, now_iso()
                sim.emit_contact("ContactTagUpdate", contact)
            return {"tags": after}

    @operation("POST", "/contacts/{contact_id}/tags", WRITE, status=201)
    def add_tags(contact_id: str, call: Call = authorized):
        return retag(contact_id, call, lambda old, new: old + [t for t in dict.fromkeys(new) if t not in old])

    @operation("DELETE", "/contacts/{contact_id}/tags", WRITE)
    def remove_tags(contact_id: str, call: Call = authorized):
        return retag(contact_id, call, lambda old, gone: [t for t in old if t not in gone])


def _ms_param(request: Request, name: str) -> int:
    value = request.query_params.get(name, "")
    if not value.isdigit():
        raise bad_request(f"{name} must be epoch milliseconds")
    return int(value)


def appointment_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    def by_start(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(events, key=lambda e: (date_ms(e, "startTime"), e["id"]))

    @operation("GET", "/contacts/{contact_id}/appointments", READ)
    def contact_appointments(contact_id: str, call: Call = authorized):
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            return {"events": by_start(sim.appointments.by("contactId", contact["id"]))}

    @operation("GET", "/calendars/", CALENDARS_READ, version=CALENDARS_VERSION)
    def list_calendars(request: Request, call: Call = authorized):
        """The location's calendars: those seeded, plus one for each calendar id its appointments
        name (a booking always belongs to a calendar in GHL)."""
        if request.query_params.get("locationId") != call.location_id:
            raise bad_request("locationId does not match the token's location")
        group = request.query_params.get("groupId")
        with sim.state.lock:
            calendars = {c["id"]: dict(c) for c in sim.calendars.values() if c.get("locationId") == call.location_id}
            for event in sim.appointments.values():
                named = event.get("calendarId")
                if event.get("locationId") == call.location_id and named and named not in calendars:
                    calendars[named] = {"id": named, "locationId": call.location_id, "name": named,
                                        "groupId": event.get("groupId"), "isActive": True}
        listed = [c for c in calendars.values() if group in (None, c.get("groupId"))]
        listed.sort(key=lambda c: c["id"])
        return {"calendars": [{k: v for k, v in c.items() if v is not None} for c in listed]}

    @operation("GET", "/calendars/events", EVENTS_READ, version=CALENDARS_VERSION)
    def calendar_events(request: Request, call: Call = authorized):
        if request.query_params.get("locationId") != call.location_id:
            raise bad_request("locationId does not match the token's location")
        start, end = _ms_param(request, "startTime"), _ms_param(request, "endTime")
        selectors = {k: request.query_params[k] for k in ("calendarId", "userId", "groupId")
                     if request.query_params.get(k)}
        if not selectors:
            raise bad_request("Either of calendarId, userId or groupId is required")
        with sim.state.lock:
            events = [a for a in sim.appointments.values() if a.get("locationId") == call.location_id
                      and start <= date_ms(a, "startTime") <= end and selected(a, selectors)]
        return {"events": by_start(events)}

    def selected(event: dict[str, Any], selectors: dict[str, str]) -> bool:
        user = selectors.get("userId")
        return (selectors.get("calendarId") in (None, event.get("calendarId"))
                and selectors.get("groupId") in (None, event.get("groupId"))
                and (user is None or user == event.get("assignedUserId") or user in (event.get("users") or [])))
