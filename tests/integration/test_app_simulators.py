"""The business-app simulators over real sockets: one parametrised contract for what every app does
(auth, create/list/update, changed-since, paging, lookup, parent checks), then what each app does its
own way (soft deletes, upserts, tags, date-granular filters, OAuth, rate limits)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from harness.simulators import __main__ as cli
from harness.simulators import generic, gist, gymdesk, gymflow, mygadgetrepairs
from harness.simulators.base import ServerThread

KEY = "app-test-key"
CLIENT_ID, CLIENT_SECRET = "generic-client", "generic-secret"
BASE = datetime(2026, 1, 1, tzinfo=UTC)
UNLIMITED = 10_000  # the contract tests below make bursts of calls; rate limits have tests of their own


# ------------------------------------------------------------------ wire formats, written independently of the engine

def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def read_iso(value: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def read_unix(value: int) -> datetime:
    assert isinstance(value, int), value
    return datetime.fromtimestamp(value, UTC)


def sql(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def read_sql(value: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", value), value
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


# ------------------------------------------------------------------ walking each paging style to its end

MAX_PAGES = 40


def walk_page_meta(client: httpx.Client, path: str, params: dict) -> list[dict]:
    rows = []
    for page in range(1, MAX_PAGES):
        body = client.get(path, params={**params, "page": page, "per_page": 7}).json()
        rows += body["data"]
        assert body["meta"]["total"] >= len(rows)
        if not body["meta"]["has_more"]:
            return rows
    raise AssertionError("has_more never became false")


def walk_cursor(client: httpx.Client, path: str, params: dict) -> list[dict]:
    rows, cursor = [], None
    for _ in range(MAX_PAGES):
        body = client.get(path, params={**params, "limit": 7, **({"cursor": cursor} if cursor else {})}).json()
        rows += body["items"]
        if (cursor := body["next_cursor"]) is None:
            return rows
    raise AssertionError("next_cursor never became null")


def walk_fixed_pages(client: httpx.Client, path: str, params: dict) -> list[dict]:
    rows = []
    for page in range(1, MAX_PAGES):
        chunk = client.get(path, params={**params, "page": page}).json()
        assert isinstance(chunk, list)
        rows += chunk
        if len(chunk) < 25:
            return rows
    raise AssertionError("no short page")


def walk_next_link(client: httpx.Client, path: str, params: dict) -> list[dict]:
    key = path.strip("/")
    body = client.get(path, params={**params, "per_page": 7}).json()
    rows = body[key]
    for _ in range(MAX_PAGES):
        if (link := body["pages"]["next"]) is None:
            return rows
        assert link.startswith("http://127.0.0.1:")  # absolute, followed as given
        body = client.get(link).json()
        rows += body[key]
    raise AssertionError("pages.next never became null")


def walk_offset(client: httpx.Client, path: str, params: dict) -> list[dict]:
    rows: list[dict] = []
    for _ in range(MAX_PAGES):
        body = client.get(path, params={**params, "offset": len(rows), "limit": 7}).json()
        rows += body["data"]
        if len(rows) >= body["total"] or not body["data"]:
            return rows
    raise AssertionError("offset never reached total")


# ------------------------------------------------------------------ each app's error body

def gymdesk_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def gymflow_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "details"} and isinstance(body["error"], str) and body["error"]
    assert body["details"] == ([body["error"]] if status == 422 else [])


def mgr_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "message"} and body["success"] is False and body["message"]


def gist_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    assert body["errors"][0]["code"] == code and body["errors"][0]["message"]


def generic_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == ("invalid_token" if code == "unauthorized" else code) and body["error_description"]


# ------------------------------------------------------------------ the apps, as a client sees them

def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def generic_login(url: str) -> dict[str, str]:
    token = httpx.post(f"{url}/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                    "client_secret": CLIENT_SECRET}).json()
    return bearer(token["access_token"])


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], Any]
    login: Callable[[str], dict[str, str]]
    refused: tuple[dict[str, str], ...]  # headers with missing or wrong credentials
    error: Callable[[httpx.Response, int, str], None]
    contacts: str
    id_field: str
    updated: str
    stamp: Callable[[datetime], Any]
    read: Callable[[Any], datetime]
    contact_row: Callable[[int, datetime], dict]  # a seeded contact (collection ``collection``)
    collection: str
    new_contact: Callable[[str], dict]  # the request body creating a contact with this email
    single: Callable[[Any], dict]  # a single-record answer -> the record
    update: Callable[[httpx.Client, Any, dict], httpx.Response]
    walk: Callable[[httpx.Client, str, dict], list[dict]]
    newest_first: bool  # the default list order
    lookup: Callable[[httpx.Client, str], list[dict]]
    since_path: str
    since_param: str
    since_value: Callable[[datetime], Any]
    since_floor: Callable[[datetime], datetime]  # the bound the app applies (date-granular apps round down)
    child_path: str
    child_body: Callable[[Any], dict]
    child_parent: Callable[[dict], Any]
    missing_parent: Any

    def __repr__(self) -> str:
        return self.name


def _list_lookup(path: str, key: str | None) -> Callable[[httpx.Client, str], list[dict]]:
    def lookup(client: httpx.Client, email: str) -> list[dict]:
        body = client.get(path, params={"email": email}).json()
        return body if key is None else body[key]
    return lookup


def _gist_lookup(client: httpx.Client, email: str) -> list[dict]:
    response = client.get("/contacts", params={"email": email})
    if response.status_code == 404:
        gist_error(response, 404, "not_found")
        return []
    return [response.json()["contact"]]


GYMDESK = Case(
    name="gymdesk", make=lambda: gymdesk.create_app(KEY), login=lambda url: {"X-API-Key": KEY},
    refused=({}, {"X-API-Key": "wrong"}, bearer(KEY)), error=gymdesk_error,
    contacts="/v1/members", id_field="id", updated="updated_at", stamp=iso, read=read_iso, collection="members",
    contact_row=lambda i, at: {"id": f"mem_{i}", "first_name": f"P{i}", "email": f"p{i}@example.com",
                               "status": "active", "created_at": iso(at), "updated_at": iso(at)},
    new_contact=lambda email: {"data": {"email": email, "first_name": "New"}}, single=lambda body: body["data"],
    update=lambda c, rid, fields: c.patch(f"/v1/members/{rid}", json={"data": fields}),
    walk=walk_page_meta, newest_first=False, lookup=_list_lookup("/v1/members", "data"),
    since_path="/v1/members", since_param="updated_since", since_value=iso, since_floor=lambda at: at,
    child_path="/v1/tasks", child_body=lambda pid: {"data": {"member_id": pid, "title": "Call"}},
    child_parent=lambda task: task["member_id"], missing_parent="mem_404")

GYMFLOW = Case(
    name="gymflow", make=lambda: gymflow.create_app(KEY, rate_limit_per_s=UNLIMITED), login=lambda url: bearer(KEY),
    refused=({}, bearer("wrong"), {"Authorization": KEY}), error=gymflow_error,
    contacts="/api/v2/contacts", id_field="id", updated="modified_at", stamp=iso, read=read_iso,
    collection="contacts",
    contact_row=lambda i, at: {"id": f"00000000-0000-4000-8000-{i:012d}", "email": f"p{i}@example.com",
                               "first_name": f"P{i}", "tags": [], "deleted": False, "deleted_at": None,
                               "created_at": iso(at), "modified_at": iso(at)},
    new_contact=lambda email: {"email": email, "first_name": "New", "tags": ["trial"]}, single=lambda body: body,
    update=lambda c, rid, fields: c.put(f"/api/v2/contacts/{rid}", json=fields),
    walk=walk_cursor, newest_first=False, lookup=_list_lookup("/api/v2/contacts", "items"),
    since_path="/api/v2/contacts", since_param="modified_since", since_value=iso, since_floor=lambda at: at,
    child_path="/api/v2/tasks", child_body=lambda pid: {"contact_id": pid, "title": "Call"},
    child_parent=lambda task: task["contact_id"], missing_parent="00000000-0000-4000-8000-000000000404")

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def dmy(moment: datetime) -> str:
    return f"{moment.day:02d}-{MONTHS[moment.month - 1]}-{moment.year}"


def mgr_customer(i: int, at: datetime) -> dict:
    return {"id": i + 1, "ref": f"CUS-{i + 1}",
            "name_parts": {"first_name": f"P{i}", "middle_name": None, "last_name": "Doe"},
            "email": f"p{i}@example.com", "mobile": None, "phone": None, "company": None,
            "fulladdress": {"address": None, "city": None, "post_code": None, "country": None},
            "created_date": sql(at), "last_updated": sql(at)}


MGR = Case(
    name="mygadgetrepairs", make=lambda: mygadgetrepairs.create_app(KEY, rate_limit_per_s=UNLIMITED),
    login=lambda url: {"Authorization": KEY}, refused=({}, {"Authorization": "wrong"}, bearer(KEY)), error=mgr_error,
    contacts="/v1/customers", id_field="id", updated="last_updated", stamp=sql, read=read_sql,
    collection="customers", contact_row=mgr_customer,
    new_contact=lambda email: {"email": email, "name_parts": {"first_name": "New"}}, single=lambda body: body,
    update=lambda c, rid, fields: c.put(f"/v1/customers/{rid}", json=fields),
    walk=walk_fixed_pages, newest_first=True, lookup=_list_lookup("/v1/customers", None),
    since_path="/v1/customers/updated", since_param="updatedDateFrom", since_value=dmy,
    since_floor=lambda at: at.replace(hour=0, minute=0, second=0, microsecond=0),
    child_path="/v1/projectTask", child_body=lambda pid: {"customer": {"internal_id": pid}, "title": "Call"},
    child_parent=lambda task: task["customer"]["internal_id"], missing_parent=404)


def gist_contact(i: int, at: datetime) -> dict:
    return {"id": i + 1, "type": "lead", "name": f"P{i} Doe", "email": f"p{i}@example.com", "user_id": None,
            "phone": None, "last_seen_at": None, "tags": [], "custom_properties": {},
            "created_at": unix(at), "updated_at": unix(at)}


GIST = Case(
    name="gist", make=lambda: gist.create_app(KEY), login=lambda url: bearer(KEY),
    refused=({}, bearer("wrong"), {"Authorization": KEY}), error=gist_error,
    contacts="/contacts", id_field="id", updated="updated_at", stamp=unix, read=read_unix, collection="contacts",
    contact_row=gist_contact,
    new_contact=lambda email: {"contact": {"email": email, "name": "New Person"}}, single=lambda body: body["contact"],
    update=lambda c, rid, fields: c.post("/contacts", json={"contact": {"id": rid, **fields}}),
    walk=walk_next_link, newest_first=True, lookup=_gist_lookup,
    since_path="/tasks", since_param="updated_since", since_value=unix, since_floor=lambda at: at,
    child_path="/tasks", child_body=lambda pid: {"task": {"contact_id": pid, "title": "Call"}},
    child_parent=lambda task: task["contact_id"], missing_parent=404)

GENERIC = Case(
    name="generic", make=lambda: generic.create_app(CLIENT_ID, CLIENT_SECRET), login=generic_login,
    refused=({}, bearer("wrong"), {"Authorization": "Basic Z2VuZXJpYy1jbGllbnQ6Z2VuZXJpYy1zZWNyZXQ="}),
    error=generic_error, contacts="/api/contacts", id_field="contactId", updated="lastUpdated", stamp=iso,
    read=read_iso, collection="contacts",
    contact_row=lambda i, at: {"contactId": f"c-{i + 1}", "email": f"p{i}@example.com", "name": f"P{i} Doe",
                               "phone": None, "lastUpdated": iso(at)},
    new_contact=lambda email: {"email": email, "name": "New Person"}, single=lambda body: body,
    update=lambda c, rid, fields: c.put(f"/api/contacts/{rid}", json=fields),
    walk=walk_offset, newest_first=False, lookup=_list_lookup("/api/contacts", "data"),
    since_path="/api/contacts", since_param="updatedSince", since_value=iso, since_floor=lambda at: at,
    child_path="/api/tasks", child_body=lambda pid: {"contactId": pid, "title": "Call"},
    child_parent=lambda task: task["contactId"], missing_parent="c-404")

CASES = [GYMDESK, GYMFLOW, MGR, GIST, GENERIC]


@dataclass
class Running:
    case: Case
    url: str
    api: httpx.Client
    admin: httpx.Client

    def seed(self, collection: str, rows: list[dict]) -> None:
        self.admin.post("/seed", json={collection: rows}).raise_for_status()

    def records(self, collection: str) -> list[dict]:
        return self.admin.get(f"/records/{collection}").json()

    def seed_contacts(self, count: int, step: timedelta = timedelta(minutes=1)) -> list[dict]:
        rows = [self.case.contact_row(i, BASE + i * step) for i in range(count)]
        self.seed(self.case.collection, rows)
        return rows



def running(case: Case, app: Any = None) -> Iterator[Running]:
    with ServerThread(app or case.make()) as server:
        api = httpx.Client(base_url=server.url, headers=case.login(server.url), timeout=10)
        admin = httpx.Client(base_url=server.url + "/_sim", timeout=10)
        with api, admin:
            yield Running(case, server.url, api, admin)


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def sim(request) -> Iterator[Running]:
    yield from running(request.param)


def ids(case: Case, rows: list[dict]) -> list[Any]:
    return [row[case.id_field] for row in rows]


# ------------------------------------------------------------------ the shared contract

def test_calls_without_or_with_wrong_credentials_are_refused_in_the_apps_error_shape(sim):
    for headers in sim.case.refused:
        response = httpx.get(sim.url + sim.case.contacts, headers=headers)
        sim.case.error(response, 401, "unauthorized")
    assert sim.api.get(sim.case.contacts).status_code == 200


def test_create_list_update_list_shows_the_change_and_a_bumped_updated_at(sim):
    case = sim.case
    created = sim.api.post(case.contacts, json=case.new_contact("new.person@example.com"))
    assert created.status_code == 201, created.text
    record = case.single(created.json())
    record_id = record[case.id_field]
    stamped = case.read(record[case.updated])
    assert abs(stamped - datetime.now(UTC)) < timedelta(seconds=5)  # the server's clock, in UTC
    listed = {row[case.id_field]: row for row in case.walk(sim.api, case.contacts, {})}
    assert listed[record_id]["email"] == "new.person@example.com"

    old = BASE - timedelta(days=30)  # pretend it was last written a month ago (seeding keeps values verbatim)
    sim.seed(case.collection, [{**record, case.updated: case.stamp(old)}])
    assert case.read(next(r for r in sim.records(case.collection) if r[case.id_field] == record_id)[case.updated]) == old

    updated = case.update(sim.api, record_id, {"phone": "+1 555 0101"})
    assert updated.status_code == 200, updated.text
    after = case.single(updated.json())
    assert after["phone"] == "+1 555 0101" and after["email"] == "new.person@example.com"
    assert case.read(after[case.updated]) > old
    listed = {row[case.id_field]: row for row in case.walk(sim.api, case.contacts, {})}
    assert listed[record_id]["phone"] == "+1 555 0101"
    assert listed[record_id][case.updated] == after[case.updated]


def _since_rows(sim: Running, count: int) -> list[tuple[Any, datetime]]:
    """Seed records an hour apart on the resource the changed-since filter serves; (id, updated-at) each."""
    case, step = sim.case, timedelta(hours=1)
    if case.since_path == case.contacts or case.since_path.startswith(case.contacts + "/"):
        rows = sim.seed_contacts(count, step)
    else:  # Gist: contacts have no such filter; its tasks do
        sim.seed_contacts(1)
        rows = [{"id": 100 + i, "contact_id": 1, "title": f"T{i}", "status": "open", "due_at": None,
                 "created_at": unix(BASE + i * step), "updated_at": unix(BASE + i * step)} for i in range(count)]
        sim.seed("tasks", rows)
    return [(row[case.id_field], BASE + i * step) for i, row in enumerate(rows)]


def test_the_changed_since_filter_returns_only_records_changed_at_or_after_it(sim):
    case = sim.case
    seeded = _since_rows(sim, 60)
    bound = seeded[40][1]  # 2026-01-02 16:00 UTC
    got = case.walk(sim.api, case.since_path, {case.since_param: case.since_value(bound)})
    expected = [rid for rid, at in seeded if at >= case.since_floor(bound)]
    assert sorted(ids(case, got), key=str) == sorted(expected, key=str)
    assert 0 < len(expected) < 60 and len(got) == len(set(ids(case, got)))
    if case.since_floor(bound) == bound:
        assert len(expected) == 20  # inclusive: the record stamped exactly at the bound is in


def test_paging_walks_every_record_exactly_once_in_the_apps_order(sim):
    case = sim.case
    rows = sim.seed_contacts(60)
    expected = ids(case, rows)[::-1] if case.newest_first else ids(case, rows)
    assert ids(case, case.walk(sim.api, case.contacts, {})) == expected


def test_lookup_by_email_is_exact_and_case_insensitive(sim):
    case = sim.case
    rows = sim.seed_contacts(3)
    sim.seed(case.collection, [{**rows[1], "email": "Pat.One@Example.com"}])
    found = case.lookup(sim.api, "pat.one@example.COM")
    assert ids(case, found) == [rows[1][case.id_field]] and found[0]["email"] == "Pat.One@Example.com"
    assert case.lookup(sim.api, "pat.one@example") == []


def test_a_child_must_point_at_an_existing_contact(sim):
    case = sim.case
    parent_id = sim.seed_contacts(1)[0][case.id_field]
    refused = sim.api.post(case.child_path, json=case.child_body(case.missing_parent))
    case.error(refused, 422, "validation_error")
    assert sim.records("tasks") == []
    created = sim.api.post(case.child_path, json=case.child_body(parent_id))
    assert created.status_code == 201, created.text
    [task] = sim.records("tasks")
    assert case.child_parent(task) == parent_id and task["title"] == "Call"


def test_an_unknown_record_is_a_404_in_the_apps_shape(sim):
    case = sim.case
    case.error(sim.api.get(f"{case.contacts}/{case.missing_parent}"), 404, "not_found")


def test_a_bad_page_size_is_a_400_in_the_apps_shape(sim):
    case = sim.case
    param = {"gymdesk": "per_page", "gymflow": "limit", "gist": "per_page", "generic": "limit",
             "mygadgetrepairs": "page"}[case.name]
    case.error(sim.api.get(case.contacts, params={param: 0}), 400, "bad_request")


# ------------------------------------------------------------------ Gymdesk

@pytest.fixture
def desk() -> Iterator[Running]:
    yield from running(GYMDESK)


def test_gymdesk_archives_a_deleted_member_and_keeps_listing_it(desk):
    member = desk.seed_contacts(1)[0]
    response = desk.api.delete(f"/v1/members/{member['id']}")
    assert response.status_code == 200 and response.json()["data"]["status"] == "archived"
    [listed] = desk.api.get("/v1/members", params={"updated_since": iso(BASE + timedelta(days=1))}).json()["data"]
    assert listed["id"] == member["id"] and listed["status"] == "archived"
    assert read_iso(listed["updated_at"]) > BASE


def test_gymdesk_tasks_and_notes_are_removed_and_bookings_cancelled(desk):
    member_id = desk.seed_contacts(1)[0]["id"]
    task = desk.api.post("/v1/tasks", json={"data": {"member_id": member_id, "title": "Call",
                                                     "due_at": "2026-02-01T09:00:00Z"}}).json()["data"]
    note = desk.api.post("/v1/notes", json={"data": {"member_id": member_id, "content": "Likes yoga"}}).json()["data"]
    booking = desk.api.post("/v1/bookings", json={"data": {
        "member_id": member_id, "title": "Intro", "starts_at": "2026-02-01T09:00:00Z",
        "ends_at": "2026-02-01T10:00:00Z"}}).json()["data"]
    assert (task["id"][:4], task["status"], note["id"][:5], booking["id"][:3]) == ("tsk_", "open", "note_", "bk_")
    assert note["noted_at"] == note["created_at"]  # when the note was written, unless said otherwise
    assert desk.api.delete(f"/v1/tasks/{task['id']}").status_code == 204
    assert desk.api.delete(f"/v1/notes/{note['id']}").status_code == 204
    gymdesk_error(desk.api.get(f"/v1/tasks/{task['id']}"), 404, "not_found")
    cancelled = desk.api.delete(f"/v1/bookings/{booking['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "cancelled"
    assert [b["status"] for b in desk.records("bookings")] == ["cancelled"]
    assert desk.records("tasks") == [] and desk.records("notes") == []


def test_gymdesk_refuses_invalid_writes_with_422_validation_error(desk):
    member_id = desk.seed_contacts(1)[0]["id"]
    for path, body, message in [
        ("/v1/members", {"data": {"email": "x@y.z", "company": "X" * 101}}, "company must be at most 100 characters"),
        ("/v1/members", {"data": {"email": "no-at-sign"}}, "email 'no-at-sign' is not a valid address"),
        ("/v1/members", {"email": "flat@body.com"}, 'the body must be {"data": {...}}'),
        ("/v1/tasks", {"data": {"member_id": member_id}}, "title is required"),
        ("/v1/tasks", {"data": {"member_id": member_id, "title": "t", "status": "later"}},
         "status must be one of open, done"),
        ("/v1/bookings", {"data": {"member_id": member_id, "starts_at": "2026-02-01T10:00:00Z",
                                   "ends_at": "2026-02-01T09:00:00Z"}}, "ends_at must not be before starts_at"),
        ("/v1/notes", {"data": {"member_id": member_id, "content": "x", "noted_at": "yesterday"}},
         "noted_at must be an ISO 8601 timestamp"),
    ]:
        response = desk.api.post(path, json=body)
        gymdesk_error(response, 422, "validation_error")
        assert response.json()["error"]["message"] == message
    assert len(desk.records("members")) == 1 and desk.records("tasks") == []


def test_gymdesk_updated_before_bounds_the_window_and_calls_are_counted_by_route(desk):
    desk.seed_contacts(10)
    window = {"updated_since": iso(BASE + timedelta(minutes=3)), "updated_before": iso(BASE + timedelta(minutes=6))}
    got = desk.api.get("/v1/members", params=window).json()
    assert [m["id"] for m in got["data"]] == ["mem_3", "mem_4", "mem_5"] and got["meta"]["total"] == 3
    last = desk.api.get("/v1/members", params={"page": 2, "per_page": 5}).json()
    assert [m["id"] for m in last["data"]] == [f"mem_{n}" for n in range(5, 10)]
    assert last["meta"] == {"page": 2, "per_page": 5, "total": 10, "has_more": False}
    desk.api.patch("/v1/members/mem_3", json={"data": {"phone": "1"}}).raise_for_status()
    calls = desk.admin.get("/calls").json()
    assert calls["GET /v1/members"] == 2 and calls["PATCH /v1/members/{member_id}"] == 1


# ------------------------------------------------------------------ GymFlow

@pytest.fixture
def flow() -> Iterator[Running]:
    yield from running(GYMFLOW)


def test_gymflow_soft_deletes_contacts_so_a_sync_sees_them_in_the_next_pages(flow):
    contact = flow.seed_contacts(2)[1]
    response = flow.api.delete(f"/api/v2/contacts/{contact['id']}")
    assert response.status_code == 200
    deleted = response.json()
    assert deleted["deleted"] is True and read_iso(deleted["deleted_at"]) == read_iso(deleted["modified_at"])
    body = flow.api.get("/api/v2/contacts", params={"modified_since": iso(BASE + timedelta(days=1))}).json()
    assert [(c["id"], c["deleted"]) for c in body["items"]] == [(contact["id"], True)] and body["next_cursor"] is None
    assert len(flow.api.get("/api/v2/contacts").json()["items"]) == 2  # still listed
    again = flow.api.delete(f"/api/v2/contacts/{contact['id']}").json()
    assert again["deleted_at"] == deleted["deleted_at"]  # deleting twice changes nothing


def test_gymflow_new_contacts_get_uuid_ids_and_children_are_removed_for_good(flow):
    contact = flow.api.post("/api/v2/contacts", json={"email": "a@example.com", "tags": ["vip"]}).json()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", contact["id"])
    assert (contact["tags"], contact["deleted"], contact["deleted_at"]) == (["vip"], False, None)
    note = flow.api.post("/api/v2/notes", json={"contact_id": contact["id"], "text": "hello"}).json()
    assert flow.api.delete(f"/api/v2/notes/{note['id']}").status_code == 204
    gymflow_error(flow.api.get(f"/api/v2/notes/{note['id']}"), 404, "not_found")
    refused = flow.api.put(f"/api/v2/contacts/{contact['id']}", json={"tags": "vip"})
    gymflow_error(refused, 422, "validation_error")
    assert refused.json()["error"] == "tags must be a list of strings"
    gymflow_error(flow.api.get("/api/v2/contacts", params={"cursor": "not-a-cursor"}), 400, "bad_request")


def test_gymflow_a_cursor_survives_writes_between_pages(flow):
    flow.seed_contacts(10)
    first = flow.api.get("/api/v2/contacts", params={"limit": 4}).json()
    flow.api.put(f"/api/v2/contacts/{first['items'][0]['id']}", json={"phone": "1"}).raise_for_status()
    rest = walk_cursor(flow.api, "/api/v2/contacts", {"cursor": first["next_cursor"]})
    seen = [c["id"] for c in first["items"] + rest]
    assert sorted(set(seen)) == sorted(c["id"] for c in flow.records("contacts"))
    assert seen.count(first["items"][0]["id"]) == 2  # met again at the end, after its change


def test_gymflow_answers_429_over_20_requests_per_second_per_key():
    with ServerThread(gymflow.create_app(KEY)) as server:
        with httpx.Client(base_url=server.url, headers=bearer(KEY)) as client:
            statuses = [client.get("/api/v2/contacts").status_code for _ in range(25)]
            limited = client.get("/api/v2/contacts")
        assert statuses[:20] == [200] * 20 and 429 in statuses[20:]
        if limited.status_code == 429:
            assert limited.headers["Retry-After"] == "1"
            gymflow_error(limited, 429, "rate_limited")
        time.sleep(1.05)
        assert httpx.get(server.url + "/api/v2/contacts", headers=bearer(KEY)).status_code == 200


# ------------------------------------------------------------------ MyGadgetRepairs

@pytest.fixture
def mgr() -> Iterator[Running]:
    yield from running(MGR)


def test_mgr_customers_have_the_published_shape_and_nested_parts_merge_on_update(mgr):
    created = mgr.api.post("/v1/customers", json={"email": "a@example.com",
                                                  "name_parts": {"first_name": "Ann", "last_name": "Lee"}})
    assert created.status_code == 201
    customer = created.json()
    assert set(customer) == {"id", "ref", "name_parts", "email", "mobile", "phone", "company", "fulladdress",
                             "created_date", "last_updated"}
    assert isinstance(customer["id"], int) and customer["ref"] == f"CUS-{customer['id']}"
    read_sql(customer["created_date"])
    updated = mgr.api.put(f"/v1/customers/{customer['id']}", json={"name_parts": {"middle_name": "B"},
                                                                   "fulladdress": {"city": "Leeds"}}).json()
    assert updated["name_parts"] == {"first_name": "Ann", "middle_name": "B", "last_name": "Lee"}
    assert updated["fulladdress"] == {"address": None, "city": "Leeds", "post_code": None, "country": None}
    refused = mgr.api.put(f"/v1/customers/{customer['id']}", json={"name_parts": {"nick": "A"}})
    mgr_error(refused, 422, "validation_error")
    assert refused.json()["message"] == "name_parts has unknown fields: nick"


def test_mgr_pages_hold_25_and_a_page_past_the_end_is_empty(mgr):
    mgr.seed_contacts(50)
    pages = [mgr.api.get("/v1/customers", params={"page": n, "sort": "oldest"}).json() for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [25, 25, 0]
    assert [c["id"] for c in pages[0] + pages[1]] == list(range(1, 51))


def test_mgr_created_date_filters_are_whole_days_in_dd_mmm_yyyy(mgr):
    mgr.seed_contacts(6, step=timedelta(hours=12))  # Jan 1 00:00, 12:00, Jan 2 00:00, ..., Jan 3 12:00
    got = mgr.api.get("/v1/customers", params={"createdDateFrom": "02-Jan-2026", "createdDateTo": "02-jan-2026"})
    assert [c["id"] for c in got.json()] == [4, 3]  # both of Jan 2, newest first
    mgr_error(mgr.api.get("/v1/customers", params={"createdDateFrom": "2026-01-02"}), 400, "bad_request")


def test_mgr_children_carry_their_customer_and_keep_their_own_formats(mgr):
    customer_id = mgr.seed_contacts(1)[0]["id"]
    appointment = mgr.api.post("/v1/appointment", json={
        "customer": {"internal_id": str(customer_id)}, "title": "Screen repair", "date": "05-Nov-2026",
        "time": "14:30", "duration_minutes": 45}).json()
    assert appointment["customer"] == {"internal_id": customer_id} and appointment["status"] == "Booked"
    comment = mgr.api.post("/v1/ticketComment", json={"customer": {"internal_id": customer_id}, "comment": "ok"})
    assert comment.status_code == 201 and isinstance(comment.json()["id"], int)
    for path, body, message in [
        ("/v1/appointment", {"time": "2:30pm"}, "time must be HH:MM"),
        ("/v1/appointment", {"date": "2026-11-05"}, "date must be dd-mmm-yyyy"),
        ("/v1/appointment", {"status": "Done"}, "status must be one of Booked, Cancelled, Completed"),
    ]:
        refused = mgr.api.put(f"{path}/{appointment['id']}", json=body)
        mgr_error(refused, 422, "validation_error")
        assert refused.json()["message"] == message
    task = mgr.api.post("/v1/projectTask", json={"customer": {"internal_id": customer_id}, "title": "Order part",
                                                 "dueDate": "2026-11-07"}).json()
    assert task["status"] == "Pending"
    mgr.seed("tasks", [{**task, "last_updated": "2026-01-01 00:00:00"}])
    done = mgr.api.put(f"/v1/projectTask/{task['id']}", json={"status": "Completed"}).json()
    updated_from = dmy(read_sql(done["last_updated"]))
    assert [t["id"] for t in mgr.api.get("/v1/projectTask/updated",
                                         params={"updatedDateFrom": updated_from}).json()] == [task["id"]]
    assert mgr.api.get("/v1/projectTask/updated", params={"updatedDateFrom": "01-Jan-2099"}).json() == []


def test_mgr_answers_429_over_10_requests_per_second():
    with ServerThread(mygadgetrepairs.create_app(KEY)) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": KEY}) as client:
            responses = [client.get("/v1/customers") for _ in range(12)]
        assert [r.status_code for r in responses[:10]] == [200] * 10
        limited = next(r for r in responses[10:] if r.status_code == 429)
        mgr_error(limited, 429, "rate_limited")
        assert limited.headers["Retry-After"] == "1"


# ------------------------------------------------------------------ Gist

@pytest.fixture
def gist_sim() -> Iterator[Running]:
    yield from running(GIST)


def test_gist_post_contacts_updates_the_match_by_id_then_user_id_then_email(gist_sim):
    created = gist_sim.api.post("/contacts", json={"email": "a@example.com", "name": "Ann Lee"})  # flat body
    assert created.status_code == 201
    contact = created.json()["contact"]
    assert (contact["id"], contact["type"], contact["tags"], contact["custom_properties"]) == (1, "lead", [], {})
    by_email = gist_sim.api.post("/contacts", json={"contact": {"email": "A@example.com", "user_id": "u-1"}})
    assert by_email.status_code == 200 and by_email.json()["contact"]["id"] == 1
    by_user = gist_sim.api.post("/contacts", json={"contact": {"user_id": "u-1", "phone": "1",
                                                               "custom_properties": {"plan": "gold"}}})
    assert by_user.status_code == 200 and by_user.json()["contact"]["phone"] == "1"
    assert gist_sim.api.get("/contacts", params={"user_id": "u-1"}).json()["contact"]["custom_properties"] == {
        "plan": "gold"}
    gist_error(gist_sim.api.post("/contacts", json={"contact": {"id": 99, "email": "b@example.com"}}),
               404, "not_found")
    refused = gist_sim.api.post("/contacts", json={"contact": {"name": "Nobody"}})
    gist_error(refused, 422, "validation_error")
    assert refused.json()["errors"][0]["message"] == "a contact needs an email or a user_id"
    assert len(gist_sim.records("contacts")) == 1


def test_gist_contacts_sort_by_updated_at_desc_for_incremental_reads_and_delete_for_good(gist_sim):
    gist_sim.seed_contacts(5)
    body = gist_sim.api.get("/contacts", params={"order_by": "updated_at", "order": "desc", "per_page": 2}).json()
    assert [c["id"] for c in body["contacts"]] == [5, 4]
    assert body["pages"]["page"] == 1 and body["pages"]["total_pages"] == 3
    assert "page=2" in body["pages"]["next"] and "order_by=updated_at" in body["pages"]["next"]
    ignored = gist_sim.api.get("/contacts", params={"updated_since": unix(BASE + timedelta(minutes=3))}).json()
    assert len(ignored["contacts"]) == 5  # no such filter for contacts: a client stops at its watermark
    gist_error(gist_sim.api.get("/contacts", params={"per_page": 51}), 400, "bad_request")
    assert gist_sim.api.delete("/contacts/3").status_code == 204
    gist_error(gist_sim.api.get("/contacts/3"), 404, "not_found")
    assert sorted(c["id"] for c in gist_sim.records("contacts")) == [1, 2, 4, 5]


def test_gist_tags_are_added_and_removed_through_post_tags(gist_sim):
    gist_sim.seed_contacts(2)
    tagged = gist_sim.api.post("/tags", json={"tag": {"name": "vip"}, "contacts": [{"id": 1}, {"email": "p1@example.com"}]})
    assert tagged.status_code == 200 and tagged.json() == {"tag": {"id": 1, "name": "vip"}}
    contacts = {c["id"]: c for c in gist_sim.records("contacts")}
    assert contacts[1]["tags"] == contacts[2]["tags"] == [{"id": 1, "name": "vip"}]
    assert contacts[1]["updated_at"] > unix(BASE + timedelta(days=1))
    gist_sim.api.post("/tags", json={"tag": {"name": "vip"}, "contacts": [{"id": 2, "untag": True}]}).raise_for_status()
    assert {c["id"]: c["tags"] for c in gist_sim.records("contacts")}[2] == []
    gist_error(gist_sim.api.post("/tags", json={"tag": {"name": "x"}, "contacts": [{"id": 9}]}), 404, "not_found")
    gist_error(gist_sim.api.post("/tags", json={"contacts": [{"id": 1}]}), 422, "validation_error")


def test_gist_tasks_and_notes_are_wrapped_and_updated_with_put(gist_sim):
    gist_sim.seed_contacts(1)
    task = gist_sim.api.post("/tasks", json={"task": {"contact_id": 1, "title": "Call", "due_at": 1790000000}})
    assert task.status_code == 201 and task.json()["task"]["due_at"] == 1790000000
    done = gist_sim.api.put(f"/tasks/{task.json()['task']['id']}", json={"task": {"status": "completed"}})
    assert done.json()["task"]["status"] == "completed" and done.json()["task"]["title"] == "Call"
    refused = gist_sim.api.put(f"/tasks/{task.json()['task']['id']}", json={"task": {"due_at": "tomorrow"}})
    gist_error(refused, 422, "validation_error")
    note = gist_sim.api.post("/notes", json={"note": {"contact_id": 1, "body": "Called"}}).json()["note"]
    assert gist_sim.api.get("/notes").json()["notes"] == [note]


# ------------------------------------------------------------------ generic (APPNAME): OAuth

def token(url: str, **form: str) -> httpx.Response:
    return httpx.post(f"{url}/oauth/token", data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form})


def test_generic_client_credentials_and_refresh_rotation():
    with ServerThread(generic.create_app(CLIENT_ID, CLIENT_SECRET)) as server:
        url = server.url
        first = token(url, grant_type="client_credentials").json()
        assert first["token_type"] == "Bearer" and first["expires_in"] == 3600
        assert httpx.get(f"{url}/api/contacts", headers=bearer(first["access_token"])).status_code == 200
        wrong = httpx.post(f"{url}/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                       "client_secret": "nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"

        second = token(url, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert second.status_code == 200
        assert second.json()["refresh_token"] != first["refresh_token"]
        reused = token(url, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"  # rotated: used once
        third = token(url, grant_type="refresh_token", refresh_token=second.json()["refresh_token"])
        assert third.status_code == 200
        assert token(url, grant_type="password").json()["error"] == "unsupported_grant_type"

        httpx.post(f"{url}/_sim/faults", json={"expire_tokens": True}).raise_for_status()
        expired = httpx.get(f"{url}/api/contacts", headers=bearer(third.json()["access_token"]))
        generic_error(expired, 401, "unauthorized")
        assert expired.json()["error"] == "invalid_token"
        fresh = token(url, grant_type="refresh_token", refresh_token=third.json()["refresh_token"]).json()
        assert httpx.get(f"{url}/api/contacts", headers=bearer(fresh["access_token"])).status_code == 200


def test_generic_access_tokens_expire_after_their_ttl():
    with ServerThread(generic.create_app(CLIENT_ID, CLIENT_SECRET, access_token_ttl_s=0.3)) as server:
        access = token(server.url, grant_type="client_credentials").json()["access_token"]
        assert httpx.get(f"{server.url}/api/contacts", headers=bearer(access)).status_code == 200
        time.sleep(0.4)
        generic_error(httpx.get(f"{server.url}/api/contacts", headers=bearer(access)), 401, "unauthorized")


def test_generic_records_use_their_own_id_fields_and_notes_remember_when_they_were_written():
    for run in running(GENERIC):
        contact = run.api.post("/api/contacts", json={"email": "a@example.com", "name": "Ann Lee"}).json()
        assert contact["contactId"] == "c-1" and "id" not in contact
        note = run.api.post("/api/notes", json={"contactId": "c-1", "content": "Hi"}).json()
        assert note["noteId"] == "n-1" and note["timestamp"] == note["lastUpdated"]
        task = run.api.post("/api/tasks", json={"contactId": "c-1", "title": "Call"}).json()
        assert (task["taskId"], task["status"], task["dueDate"]) == ("t-1", "open", None)
        refused = run.api.post("/api/tasks", json={"contactId": "c-1"})
        generic_error(refused, 422, "validation_error")
        assert refused.json()["error_description"] == "title is required"
        assert run.api.delete("/api/contacts/c-1").status_code == 204
        assert run.api.get("/api/contacts").json() == {"data": [], "total": 0}


# ------------------------------------------------------------------ python -m harness.simulators <app>

@pytest.mark.parametrize("app, seed, path, headers", [
    ("gymdesk", {"members": [{"id": "mem_1", "updated_at": iso(BASE)}]}, "/v1/members", {"X-API-Key": "k"}),
    ("gymflow", {"contacts": [{"id": "u1", "modified_at": iso(BASE)}]}, "/api/v2/contacts", bearer("k")),
    ("mygadgetrepairs", {"customers": [{"id": 1, "created_date": sql(BASE), "last_updated": sql(BASE)}]},
     "/v1/customers", {"Authorization": "k"}),
    ("gist", {"contacts": [{"id": 1, "created_at": unix(BASE), "updated_at": unix(BASE)}]}, "/contacts", bearer("k")),
    ("generic", {"contacts": [{"contactId": "c-9", "lastUpdated": iso(BASE)}]}, "/api/contacts", None),
])
def test_each_app_runs_from_the_command_line_module_seeded(tmp_path, app, seed, path, headers):
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed))
    args = cli.parse_args([app, "--seed", str(seed_file), "--api-key", "k", "--client-id", "i", "--client-secret", "s"])
    with ServerThread(cli.build_app(args)) as server:
        if headers is None:
            access = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials",
                                                                    "client_id": "i", "client_secret": "s"})
            headers = bearer(access.json()["access_token"])
        body = httpx.get(server.url + path, headers=headers).json()
    [record] = body if isinstance(body, list) else next(v for v in body.values() if isinstance(v, list))
    assert record == next(iter(seed.values()))[0]


# ------------------------------------------------------------------ the raw fields profile rules set or read

RAW_FIELDS = {  # per app: written on create, then on update, then a value of the wrong type (docs/rules.md)
    "gymdesk": ({"segment": "trial"}, {"segment": "referral"}, {"segment": 7}),
    "gymflow": ({"visits_last_30d": 9, "last_visit_at": "2026-11-30T10:00:00.000Z"}, {"visits_last_30d": 0},
                {"visits_last_30d": "many"}),
    "generic": ({"source": "Website form", "tags": ["vip"], "segment": "web_leads"}, {"segment": "customers"},
                {"tags": "vip"}),
}


@pytest.mark.parametrize("case", [GYMDESK, GYMFLOW, GENERIC], ids=["gymdesk", "gymflow", "generic"])
def test_the_app_fields_rules_set_or_read_are_kept_on_create_and_update(case):
    """Gymdesk's member segment, GymFlow's engagement, the generic app's source, tags and segment: no
    mapping syncs the segments or the engagement, rules write or read them raw (app:<path>)."""
    first, then, wrong = RAW_FIELDS[case.name]
    with contextmanager(running)(case) as sim:  # stopped even when an assertion fails
        body = case.new_contact("raw.fields@example.com")
        (body["data"] if case.name == "gymdesk" else body).update(first)
        created = sim.api.post(case.contacts, json=body)
        assert created.status_code == 201, created.text
        record = case.single(created.json())
        assert {k: record.get(k) for k in first} == first
        updated = case.update(sim.api, record[case.id_field], then)
        assert updated.status_code == 200, updated.text
        assert {k: case.single(updated.json()).get(k) for k in {**first, **then}} == {**first, **then}
        stored = next(r for r in sim.records(case.collection) if r[case.id_field] == record[case.id_field])
        assert {k: stored.get(k) for k in {**first, **then}} == {**first, **then}
        refused = case.update(sim.api, record[case.id_field], wrong)
        assert refused.status_code == 422, refused.text
