"""Behaviour of the GHL simulator over real sockets: search, records, scopes, OAuth, faults, webhooks."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from harness.simulators import ghl, ghl_keys, spec
from tests.contract.ghl_sim import LOCATION, RunningSim, running_sim, webhook_receiver


@pytest.fixture
def sim():
    with running_sim() as running:
        yield running


def seed_contacts(sim: RunningSim, count: int) -> None:
    rows = [{"id": f"c{i:03d}", "locationId": LOCATION, "email": f"p{i}@example.com", "tags": [],
             "dateAdded": "2026-01-01T00:00:00.000Z", "dateUpdated": f"2026-01-02T00:00:{i:02d}.000Z"}
            for i in range(count)]
    with sim.admin as admin:
        admin.post("/seed", json={"contacts": rows}).raise_for_status()


def search(sim: RunningSim, **body) -> httpx.Response:
    with sim.api() as api:
        return api.post("/contacts/search", json={"locationId": LOCATION, **body})


# ------------------------------------------------------------------ search

def test_search_filters_a_date_updated_range_given_as_iso_strings_or_epoch_ms(sim):
    seed_contacts(sim, 6)
    since_ms = int(datetime(2026, 1, 2, 0, 0, 2, tzinfo=UTC).timestamp() * 1000)
    by_iso = search(sim, filters=[{"field": "dateUpdated", "operator": "range",
                                   "value": {"gte": "2026-01-02T00:00:02Z", "lt": "2026-01-02T00:00:04Z"}}])
    by_ms = search(sim, filters=[{"field": "dateUpdated", "operator": "range",
                                  "value": {"gt": since_ms, "lte": since_ms + 2000}}])
    assert [c["id"] for c in by_iso.json()["contacts"]] == ["c002", "c003"]
    assert [c["id"] for c in by_ms.json()["contacts"]] == ["c003", "c004"]


def test_search_after_pages_through_every_contact_once_with_date_ms_and_id_cursors(sim):
    seed_contacts(sim, 5)
    seen, body = [], {"pageLimit": 2}
    for _ in range(5):
        page = search(sim, **body).json()
        seen += [c["id"] for c in page["contacts"]]
        if len(page["contacts"]) < 2:
            break
        body["searchAfter"] = page["contacts"][-1]["searchAfter"]
    assert seen == [f"c{i:03d}" for i in range(5)] and page["total"] == 5  # all matches, not the page
    first = search(sim, pageLimit=1).json()["contacts"][0]
    assert first["searchAfter"] == [int(datetime(2026, 1, 2, tzinfo=UTC).timestamp() * 1000), "c000"]


def test_search_sorts_descending_and_refuses_a_third_sort_entry_or_a_page_over_500(sim):
    seed_contacts(sim, 3)
    descending = search(sim, sort=[{"field": "dateUpdated", "direction": "desc"}]).json()["contacts"]
    assert [c["id"] for c in descending] == ["c002", "c001", "c000"]
    three = search(sim, sort=[{"field": "dateUpdated"}] * 3)
    too_big = search(sim, pageLimit=501)
    assert (three.status_code, too_big.status_code) == (422, 422)
    assert three.json()["error"] == "Unprocessable Entity" and isinstance(three.json()["message"], list)


def test_search_filter_groups_combine_with_or(sim):
    seed_contacts(sim, 3)
    either = {"group": "OR", "filters": [{"field": "email", "operator": "eq", "value": "p0@example.com"},
                                         {"field": "email", "operator": "eq", "value": "p2@example.com"}]}
    assert [c["id"] for c in search(sim, filters=[either]).json()["contacts"]] == ["c000", "c002"]


# ------------------------------------------------------------------ records and dateUpdated

def test_tag_changes_stamp_date_updated_but_task_and_note_writes_do_not(sim):
    contact = sim.contact()
    with sim.api() as api:
        time.sleep(0.01)
        tags = api.post(f"/contacts/{contact['id']}/tags", json={"tags": ["vip", "vip", "trial"]})
        tagged = api.get(f"/contacts/{contact['id']}").json()["contact"]
        api.post(f"/contacts/{contact['id']}/notes", json={"body": "hello"}).raise_for_status()
        api.post(f"/contacts/{contact['id']}/tasks", json={"title": "t", "dueDate": "2026-12-01T00:00:00Z",
                                                           "completed": False}).raise_for_status()
        after = api.get(f"/contacts/{contact['id']}").json()["contact"]
        removed = api.request("DELETE", f"/contacts/{contact['id']}/tags", json={"tags": ["vip"]})
    assert tags.status_code == 201 and tags.json() == {"tags": ["vip", "trial"]}
    assert tagged["dateUpdated"] > contact["dateUpdated"] and after["dateUpdated"] == tagged["dateUpdated"]
    assert removed.json() == {"tags": ["trial"]}


def test_tasks_are_searchable_location_wide_by_contact_completion_and_query_with_skip_and_limit(sim):
    first, second = sim.contact(), sim.contact()
    with sim.api() as api:
        for contact, title in ((first, "Call Ada"), (first, "Email Ada"), (second, "Call Bob")):
            api.post(f"/contacts/{contact['id']}/tasks", json={"title": title, "dueDate": "2026-12-01T00:00:00Z",
                                                               "completed": False}).raise_for_status()
        task = api.get(f"/contacts/{first['id']}/tasks").json()["tasks"][0]
        done = api.put(f"/contacts/{first['id']}/tasks/{task['id']}/completed", json={"completed": True})
        found = api.post(f"/locations/{LOCATION}/tasks/search",
                         json={"contactId": [first["id"]], "completed": False}).json()["tasks"]
        calls = api.post(f"/locations/{LOCATION}/tasks/search", json={"query": "call", "skip": 1, "limit": 5})
    assert done.json()["task"]["completed"] is True and task["dateAdded"]
    assert [t["title"] for t in found] == ["Email Ada"]
    assert [t["title"] for t in calls.json()["tasks"]] == ["Call Bob"]


def test_appointments_seeded_once_are_seen_per_contact_and_by_calendar_window(sim):
    contact = sim.contact()
    event = {"id": "appt1", "locationId": LOCATION, "contactId": contact["id"], "calendarId": "cal1",
             "assignedUserId": "usr1", "startTime": "2026-12-01T10:00:00.000Z", "endTime": "2026-12-01T11:00:00.000Z"}
    with sim.admin as admin:
        admin.post("/seed", json={"appointments": [event]}).raise_for_status()
    start = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    window = {"locationId": LOCATION, "startTime": start, "endTime": start + 86_400_000}
    with sim.api() as api, sim.api(version=ghl.CALENDARS_VERSION) as calendars:
        per_contact = api.get(f"/contacts/{contact['id']}/appointments").json()["events"]
        by_user = calendars.get("/calendars/events", params={**window, "userId": "usr1"}).json()["events"]
        other_day = calendars.get("/calendars/events", params={**window, "startTime": start - 86_400_000,
                                                               "endTime": start - 1, "calendarId": "cal1"})
        contacts_version = api.get("/calendars/events", params={**window, "calendarId": "cal1"})
    assert [e["id"] for e in per_contact] == [e["id"] for e in by_user] == ["appt1"]
    assert other_day.json() == {"events": []}
    assert contacts_version.status_code == 400  # calendars.json requires Version 2021-04-15 here


# ------------------------------------------------------------------ scopes

@pytest.mark.parametrize(("token", "method", "path", "status"), [
    ("pit-write-only", "GET", "/contacts/{cid}", 401),  # contacts.write does not imply contacts.readonly
    ("pit-read-only", "PUT", "/contacts/{cid}", 401),
    ("pit-read-only", "GET", "/contacts/{cid}", 200),
    ("pit-read-only", "POST", f"/locations/{LOCATION}/tasks/search", 401),  # needs locations/tasks.readonly
])
def test_each_operation_needs_exactly_its_spec_scope(sim, token, method, path, status):
    cid = sim.contact()["id"]
    with sim.api(token=token) as api:
        response = api.request(method, path.format(cid=cid), json={} if method != "GET" else None)
    assert response.status_code == status
    if status == 401:
        assert response.json() == {"statusCode": 401, "error": "Unauthorized",
                                   "message": "The token is not authorized for this scope."}


# ------------------------------------------------------------------ OAuth

def oauth_client(sim: RunningSim, scopes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    with sim.admin as admin:
        client = admin.post("/oauth/clients", json={"client_id": "app1", "client_secret": "s3cret"}).json()
        install = admin.post("/oauth/installs", json={"client_id": "app1", "location_id": LOCATION,
                                                      "scopes": scopes}).json()
    return client, install


def token(sim: RunningSim, **form: str) -> httpx.Response:
    return httpx.post(sim.url + "/oauth/token", data={"user_type": "Location", **form}, timeout=10)


def test_an_authorization_code_buys_a_location_token_once():
    with running_sim() as sim:
        client, install = oauth_client(sim, [ghl.READ])
        form = {**client, "grant_type": "authorization_code", "code": install["code"]}
        first, again = token(sim, **form), token(sim, **form)
        spec.validate_response("POST", "/oauth/token", 200, first.json())
        with sim.api(token=first.json()["access_token"]) as api:
            assert api.post("/contacts/search", json={"locationId": LOCATION}).status_code == 200
    assert first.json()["userType"] == "Location" and first.json()["locationId"] == LOCATION
    assert first.json()["expires_in"] == 86_400 and again.status_code == 400


def test_a_refresh_token_rotates_and_the_old_one_stops_working_at_once():
    with running_sim() as sim:
        client, install = oauth_client(sim, [ghl.READ])
        refreshed = token(sim, **client, grant_type="refresh_token", refresh_token=install["refresh_token"])
        replayed = token(sim, **client, grant_type="refresh_token", refresh_token=install["refresh_token"])
        rotated = token(sim, **client, grant_type="refresh_token", refresh_token=refreshed.json()["refresh_token"])
        wrong_secret = token(sim, client_id="app1", client_secret="nope", grant_type="refresh_token",
                             refresh_token=rotated.json()["refresh_token"])
    assert refreshed.status_code == 200 and rotated.status_code == 200
    assert replayed.status_code == 400 and wrong_secret.status_code == 401
    assert refreshed.json()["refresh_token"] != install["refresh_token"]


def test_access_tokens_expire_after_their_ttl_and_on_the_expire_tokens_fault():
    with running_sim(access_token_ttl_s=1) as sim:
        client, install = oauth_client(sim, [ghl.READ])
        issued = token(sim, **client, grant_type="authorization_code", code=install["code"]).json()
        with sim.api(token=issued["access_token"]) as api:
            fresh = api.post("/contacts/search", json={"locationId": LOCATION})
            time.sleep(1.1)
            stale = api.post("/contacts/search", json={"locationId": LOCATION})
        renewed = token(sim, **client, grant_type="refresh_token", refresh_token=issued["refresh_token"]).json()
        with sim.admin as admin:
            admin.post("/faults", json={"expire_tokens": True}).raise_for_status()
        with sim.api(token=renewed["access_token"]) as api, sim.api() as static:
            expired = api.post("/contacts/search", json={"locationId": LOCATION})
            pit = static.post("/contacts/search", json={"locationId": LOCATION})
    assert fresh.status_code == 200 and pit.status_code == 200  # static tokens never expire
    assert stale.status_code == expired.status_code == 401
    assert stale.json() == {"statusCode": 401, "message": "Invalid JWT", "error": "Unauthorized"}


# ------------------------------------------------------------------ faults

def fault(sim: RunningSim, **body) -> None:
    with sim.admin as admin:
        admin.post("/faults", json=body).raise_for_status()


def test_a_429_storm_answers_retry_after_for_n_requests_then_service_resumes(sim):
    fault(sim, storm_429={"count": 2, "retry_after_s": 7})
    statuses = [search(sim) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "7"


def test_server_errors_are_queued_with_the_chosen_status(sim):
    fault(sim, server_errors={"count": 1, "status": 503})
    assert [search(sim).status_code for _ in range(2)] == [503, 200]


def test_a_timeout_fault_holds_the_answer_past_the_client_timeout(sim):
    fault(sim, timeouts={"count": 1, "hold_s": 2})
    with sim.api(timeout=0.5) as api, pytest.raises(httpx.ReadTimeout):
        api.post("/contacts/search", json={"locationId": LOCATION})
    assert search(sim).status_code == 200


# A reset reaches the client as ECONNRESET (ReadError) or, when the kernel delivers the close
# before the read fails, as a connection closed without a response: both are "no response".
@pytest.mark.parametrize(("kind", "raised"), [("drops", httpx.RemoteProtocolError),
                                              ("resets", (httpx.ReadError, httpx.RemoteProtocolError))])
def test_a_dropped_connection_gets_no_response_at_all(sim, kind, raised):
    fault(sim, **{kind: 1})
    with sim.api() as api, pytest.raises(raised):
        api.post("/contacts/search", json={"locationId": LOCATION})
    assert search(sim).status_code == 200


def create(sim: RunningSim, email: str, timeout: float = 10) -> httpx.Response:
    with sim.api(timeout=timeout) as api:
        return api.post("/contacts/", json={"locationId": LOCATION, "firstName": "Ada", "email": email})


def held_emails(sim: RunningSim) -> list[str]:
    with sim.admin as admin:
        return sorted(c["email"] for c in admin.get("/records/contacts").json())


def test_write_faults_pass_reads_and_the_first_writes_then_meet_the_chosen_write(sim):
    fault(sim, writes={"skip": 1, "server_errors": {"count": 1, "status": 502}})
    assert search(sim).status_code == 200  # a search is a POST that only reads
    statuses = [create(sim, f"w{n}@example.com").status_code for n in range(3)]
    assert statuses == [201, 502, 201]
    assert held_emails(sim) == ["w0@example.com", "w2@example.com"]  # the refused write did nothing


def test_a_lost_write_is_applied_but_its_answer_never_arrives(sim):
    fault(sim, writes={"lost": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        create(sim, "lost@example.com")
    assert held_emails(sim) == ["lost@example.com"]


def test_a_late_write_is_applied_but_answered_after_the_client_gave_up(sim):
    fault(sim, writes={"late": {"count": 1, "hold_s": 2}})
    with pytest.raises(httpx.ReadTimeout):
        create(sim, "late@example.com", timeout=0.5)
    assert held_emails(sim) == ["late@example.com"]


def test_a_write_held_before_it_is_applied_is_dropped_when_its_client_is_gone(sim):
    """A load killed while its write waits at the server: the write must not land later, behind the
    retry's back (make chaos's kill_before)."""
    fault(sim, writes={"timeouts": {"count": 1, "hold_s": 1.5}})
    with pytest.raises(httpx.ReadTimeout):
        create(sim, "gone@example.com", timeout=0.3)  # the client closes its connection on the timeout
    time.sleep(2)
    assert held_emails(sim) == []


def test_fault_bodies_with_unbounded_counts_or_unknown_faults_are_refused(sim):
    with sim.admin as admin:
        assert admin.post("/faults", json={"drops": 10**9}).status_code == 400
        assert admin.post("/faults", json={"timeouts": {"count": 1, "hold_s": 3600}}).status_code == 400
        assert admin.post("/faults", json={"storm": {"count": 1}}).status_code == 400  # a typo is not ignored
        assert admin.post("/faults", json={"writes": {"skip": 1, "storm": 1}}).status_code == 400
        assert admin.post("/faults", json={"writes": {"skip": -1, "drops": 1}}).status_code == 400


# ------------------------------------------------------------------ strict mode and the spec helpers

def test_strict_mode_refuses_bodies_the_spec_refuses_with_unprocessable_dto():
    with running_sim(strict=True) as strict, running_sim() as lenient:
        cid, lenient_cid = strict.contact()["id"], lenient.contact()["id"]
        with strict.api() as api, lenient.api() as lenient_api:
            refused = api.put(f"/contacts/{cid}", json={"firstname": "typo"})
            accepted = lenient_api.put(f"/contacts/{lenient_cid}", json={"firstname": "typo"})
    assert refused.status_code == 422 and accepted.status_code == 200
    assert refused.json() == {"statusCode": 422, "error": "Unprocessable Entity",
                              "message": ["property firstname should not exist"]}


def test_validate_request_names_what_is_wrong_with_a_body():
    spec.validate_request("POST", "/contacts/upsert", {"locationId": LOCATION, "email": None})
    with pytest.raises(spec.SpecViolation, match=r"'completed' is a required property"):
        spec.validate_request("POST", "/contacts/abc/tasks", {"title": "t", "dueDate": "2026-01-01"})


# ------------------------------------------------------------------ webhooks

def wait_for(sim: RunningSim, count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    with sim.admin as admin:
        while time.monotonic() < deadline:
            if len(delivered := admin.get("/webhooks/deliveries").json()) >= count:
                return delivered
            time.sleep(0.05)
    pytest.fail(f"{count} webhook deliveries expected, {len(delivered)} made")


def test_webhooks_are_signed_posted_in_order_and_retried_a_bounded_number_of_times(sim):
    with webhook_receiver(fail_first=1) as receiver:
        with sim.admin as admin:
            admin.post("/webhooks", json={"url": receiver.url}).raise_for_status()
        contact = sim.contact()
        with sim.api() as api:
            api.post(f"/contacts/{contact['id']}/notes", json={"body": "hi"}).raise_for_status()
        delivered = wait_for(sim, 2)
    assert [d["type"] for d in delivered] == ["ContactCreate", "NoteCreate"]
    assert delivered[0]["attempts"] == 2 and all(d["delivered"] for d in delivered)
    headers, raw = receiver.received[-1]
    ghl_keys.public_key().verify(base64.b64decode(headers["x-ghl-signature"]), raw)
    assert json.loads(raw)["contactId"] == contact["id"]


def test_a_webhook_target_that_keeps_failing_is_given_up_after_three_attempts(sim):
    with webhook_receiver(fail_first=100) as receiver:
        with sim.admin as admin:
            admin.post("/webhooks", json={"url": receiver.url}).raise_for_status()
        sim.contact()
        delivered = wait_for(sim, 1)
    assert delivered[0]["attempts"] == 3 and not delivered[0]["delivered"] and delivered[0]["status"] == 500


def test_webhook_targets_must_be_on_this_machine(sim):
    with sim.admin as admin:
        assert admin.post("/webhooks", json={"url": "https://example.com/hook"}).status_code == 400


# ------------------------------------------------------------------ hostile requests

@pytest.fixture(scope="module")
def strict_sim():
    with running_sim(strict=True) as running:
        yield running


def test_a_field_written_as_null_is_cleared_and_never_answered_as_null(strict_sim):
    contact = strict_sim.contact(address1="1 Main St", city="Leeds", state="WY", dateOfBirth="1990-01-01")
    with strict_sim.api() as api:
        cleared = {"address1": None, "city": None, "state": None, "email": None, "dateOfBirth": None}
        answer = api.put(f"/contacts/{contact['id']}", json=cleared)
        stored = api.get(f"/contacts/{contact['id']}").json()["contact"]
    assert answer.status_code == 200, answer.text
    for body in (answer.json()["contact"], stored):
        assert not set(cleared) & set(body) and "emailLowerCase" not in body and body["firstName"] == "Ada"
    spec.validate_response("GET", f"/contacts/{contact['id']}", 200, {"contact": stored})


def test_a_deeply_nested_json_body_is_a_400_not_a_500(strict_sim):
    contact = strict_sim.contact()
    with strict_sim.api() as api:
        for method, path in [("PUT", f"/contacts/{contact['id']}"), ("POST", "/contacts/upsert"),
                             ("POST", "/contacts/search"), ("POST", f"/contacts/{contact['id']}/tasks")]:
            for depth in (5000, 40):
                answer = api.request(method, path, content='{"customFields": ' + "[" * depth + "]" * depth + "}",
                                     headers={"content-type": "application/json"})
                assert answer.status_code == 400, (method, path, depth, answer.text)
                assert "nests deeper than" in answer.json()["message"]


def test_a_body_on_get_or_delete_of_tasks_and_notes_is_ignored_as_ghl_does(strict_sim):
    contact = strict_sim.contact()
    with strict_sim.api() as api:
        def fresh_child(kind: str, body: dict) -> str:
            return api.post(f"/contacts/{contact['id']}/{kind}s", json=body).json()[kind]["id"]

        for body in ('{"title": 1}', "[1, 2]", "not json"):
            task = fresh_child("task", {"title": "Call", "dueDate": "2026-12-01T10:00:00Z", "completed": False})
            note = fresh_child("note", {"body": "Met"})
            for method, path in [("GET", "tasks"), ("GET", f"tasks/{task}"), ("DELETE", f"tasks/{task}"),
                                 ("GET", "notes"), ("GET", f"notes/{note}"), ("DELETE", f"notes/{note}")]:
                path = f"/contacts/{contact['id']}/{path}"
                answer = api.request(method, path, content=body, headers={"content-type": "application/json"})
                assert answer.status_code == 200, (method, path, body, answer.text)
                spec.validate_response(method, path, 200, answer.json())


def test_a_search_after_of_the_wrong_types_is_a_422_in_words_not_python_text(sim):
    seed_contacts(sim, 3)
    for cursor in ([{"a": 1}, [1]], ["2026-01-01", "c001"], [1, 2], [True, "c001"]):
        answer = search(sim, pageLimit=2, searchAfter=cursor)
        assert answer.status_code == 422, answer.text
        message = answer.json()["message"][0]
        assert message.startswith("searchAfter[") and "as in the hits' searchAfter" in message, message


# ------------------------------------------------------------------ custom fields

def test_custom_fields_are_written_by_id_as_field_value_or_value_and_answered_as_id_value(strict_sim):
    """The spec's shapes: written [{id, field_value}], answered [{id, value}]; a write changes
    only the fields it names and an empty value clears one (what ``ghl:customField.<id>`` rules read)."""
    contact = strict_sim.contact(customFields=[{"id": "lifecycle_stage", "field_value": "lead"},
                                              {"id": "plan", "field_value": "gold"}])
    assert contact["customFields"] == [{"id": "lifecycle_stage", "value": "lead"}, {"id": "plan", "value": "gold"}]
    with strict_sim.api() as api:
        answer = api.put(f"/contacts/{contact['id']}", json={"customFields": [
            {"id": "lifecycle_stage", "value": "customer"}, {"id": "plan", "field_value": ""},
            {"id": "referrer", "field_value": "Ben"}]})
        assert answer.status_code == 200, answer.text
        stored = api.get(f"/contacts/{contact['id']}").json()["contact"]
        upserted = api.post("/contacts/upsert", json={"locationId": LOCATION, "email": contact["email"],
                                                      "customFields": [{"id": "plan", "field_value": "silver"}]})
        found = api.post("/contacts/search", json={"locationId": LOCATION, "pageLimit": 100}).json()["contacts"]
        refused = api.put(f"/contacts/{contact['id']}", json={"customFields": [{"key": "plan", "field_value": "x"}]})
        refused_shape = api.put(f"/contacts/{contact['id']}", json={"customFields": {"id": "plan"}})
    expected = [{"id": "lifecycle_stage", "value": "customer"}, {"id": "referrer", "value": "Ben"}]
    assert answer.json()["contact"]["customFields"] == stored["customFields"] == expected
    spec.validate_response("GET", f"/contacts/{contact['id']}", 200, {"contact": stored})
    assert upserted.status_code == 200 and upserted.json()["new"] is False, upserted.text
    assert upserted.json()["contact"]["customFields"] == expected + [{"id": "plan", "value": "silver"}]
    assert next(c for c in found if c["id"] == contact["id"])["customFields"] == expected + [
        {"id": "plan", "value": "silver"}]
    assert refused.status_code == 422 and refused_shape.status_code == 422, (refused.text, refused_shape.text)
    with strict_sim.api() as api:
        assert api.get(f"/contacts/{contact['id']}").json()["contact"]["customFields"] == expected + [
            {"id": "plan", "value": "silver"}]  # a refused write changes nothing


def test_custom_fields_without_an_id_are_refused_even_when_the_spec_is_not_enforced(sim):
    contact = sim.contact(customFields=[{"id": "plan", "value": "gold"}])
    with sim.api() as api:
        for bad in ([{"key": "plan", "field_value": "x"}], {"id": "plan"}, ["plan"]):
            answer = api.put(f"/contacts/{contact['id']}", json={"customFields": bad})
            assert answer.status_code == 422 and "customFields" in answer.text, (bad, answer.text)
        stored = api.get(f"/contacts/{contact['id']}").json()["contact"]
    assert stored["customFields"] == [{"id": "plan", "value": "gold"}]
