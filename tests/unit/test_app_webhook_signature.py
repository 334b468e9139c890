"""An app's webhook is the app's only when its HMAC-SHA256 matches as the profile's ``app.webhooks``
describes it (hex or base64, a prefix, a timestamp within the tolerance), and its body becomes the
inbox row the fast lane reads; a body we cannot use is refused naming the rule, never its content."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from crm_sync.profile_webhooks import AppWebhooks, WebhookSignature
from crm_sync.webhooks import app_events
from crm_sync.webhooks.app_secrets import AppSecrets, SecretMissing
from crm_sync.webhooks.app_signature import sign, verify
from crm_sync.webhooks.inbox import BadEvent, StaleEvent
from crm_sync.webhooks.signature import SignatureError

SECRET = "whsec-test-1"
RAW = json.dumps({"id": "evt_1", "type": "member.updated", "data": {"id": "mem_7", "email": "x@example.org"}}).encode()
NOW = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)


def headers(rule: WebhookSignature, raw: bytes = RAW, secret: str = SECRET, stamp: str | None = None) -> dict[str, str]:
    text = raw if rule.signed_text == "body" else (stamp or "").encode() + b"." + raw
    found = {rule.header.lower(): rule.prefix + sign(text, secret, rule.encoding)}
    return found | ({rule.timestamp_header.lower(): stamp} if rule.timestamp_header and stamp is not None else {})


@pytest.mark.parametrize("rule", [
    WebhookSignature(header="X-Sig", encoding="hex"),
    WebhookSignature(header="X-Sig", encoding="base64"),
    WebhookSignature(header="X-Sig", encoding="hex", prefix="sha256="),
], ids=["hex", "base64", "prefix"])
def test_the_apps_signature_over_the_raw_body_is_accepted_and_anything_else_refused(rule):
    assert verify(RAW, headers(rule), rule, SECRET) is None
    altered = RAW.replace(b"mem_7", b"mem_8")
    with pytest.raises(SignatureError, match="X-Sig does not match the body"):
        verify(altered, headers(rule), rule, SECRET)
    with pytest.raises(SignatureError, match="X-Sig does not match the body"):
        verify(RAW, headers(rule, secret="another-secret"), rule, SECRET)
    with pytest.raises(SignatureError, match="no X-Sig header"):
        verify(RAW, {}, rule, SECRET)


def test_a_signature_in_the_wrong_encoding_or_without_its_prefix_is_refused():
    hex_rule = WebhookSignature(header="X-Sig", encoding="hex")
    with pytest.raises(SignatureError, match="X-Sig is not hex"):
        verify(RAW, {"x-sig": "not hex at all"}, hex_rule, SECRET)
    b64_rule = WebhookSignature(header="X-Sig", encoding="base64")
    with pytest.raises(SignatureError, match="X-Sig is not base64"):
        verify(RAW, {"x-sig": "%%%"}, b64_rule, SECRET)
    prefixed = WebhookSignature(header="X-Sig", prefix="sha256=")
    with pytest.raises(SignatureError, match="does not start with 'sha256='"):
        verify(RAW, {"x-sig": sign(RAW, SECRET)}, prefixed, SECRET)


@pytest.mark.parametrize("stamp", [str(int(NOW.timestamp())), str(int(NOW.timestamp() * 1000)),
                                   "2026-12-03T20:00:00Z"], ids=["unix", "unix-ms", "iso"])
def test_a_signed_timestamp_within_the_tolerance_is_the_events_time(stamp):
    rule = WebhookSignature(header="X-Sig", timestamp_header="X-Ts", tolerance_s=300, signed_text="timestamp.body")
    assert verify(RAW, headers(rule, stamp=stamp), rule, SECRET, now=NOW + timedelta(seconds=299)) == NOW
    with pytest.raises(StaleEvent, match="X-Ts is more than 300 s from now"):  # a replay, later
        verify(RAW, headers(rule, stamp=stamp), rule, SECRET, now=NOW + timedelta(seconds=301))
    with pytest.raises(StaleEvent):  # a clock far ahead
        verify(RAW, headers(rule, stamp=stamp), rule, SECRET, now=NOW - timedelta(seconds=301))


def test_the_timestamp_is_part_of_what_is_signed_so_a_replay_cannot_refresh_it():
    rule = WebhookSignature(header="X-Sig", timestamp_header="X-Ts", signed_text="timestamp.body")
    old = headers(rule, stamp=str(int(NOW.timestamp())))
    refreshed = {**old, "x-ts": str(int(NOW.timestamp()) + 600)}
    with pytest.raises(SignatureError, match="does not match"):
        verify(RAW, refreshed, rule, SECRET, now=NOW + timedelta(seconds=600))
    with pytest.raises(SignatureError, match="no X-Ts header"):
        verify(RAW, {"x-sig": old["x-sig"]}, rule, SECRET, now=NOW)
    unreadable = headers(rule, stamp="yesterday")
    with pytest.raises(SignatureError, match="X-Ts is not unix seconds or an ISO 8601 time"):
        verify(RAW, unreadable, rule, SECRET, now=NOW)


def test_a_timestamp_the_signature_does_not_cover_is_refused_when_the_profile_is_read():
    """An old signed body resent with a fresh timestamp would pass any tolerance: such a block is an error."""
    with pytest.raises(ValueError, match="a timestamp_header the signature does not cover proves nothing"):
        WebhookSignature(header="X-Sig", timestamp_header="X-Ts", tolerance_s=60)


# ------------------------------------------------------------------ the inbox row

GYMDESK = AppWebhooks(event={"id": "id", "type": "type", "record_id": "data.id", "contact_id": "data.member_id",
                             "types": {"member": "contact", "task": "task", "booking": "appointment",
                                       "note.created": "note"}})


def test_an_event_becomes_the_inbox_row_the_fast_lane_reads():
    contact = app_events.parse(RAW, "gymdesk", "loc-1", GYMDESK, NOW)
    assert (contact.source, contact.webhook_id, contact.location_id, contact.event_type, contact.entity,
            contact.object_id, contact.contact_id, contact.event_at, contact.size) == \
        ("app:gymdesk", "app:gymdesk:evt_1", "loc-1", "member.updated", "contact", "mem_7", "mem_7", NOW, len(RAW))
    assert contact.payload == json.loads(RAW)
    task = json.dumps({"id": 42, "type": "task.deleted", "data": {"id": "tsk_1", "member_id": "mem_7"}}).encode()
    row = app_events.parse(task, "gymdesk", None, GYMDESK)
    assert (row.webhook_id, row.location_id, row.entity, row.object_id, row.contact_id) == \
        ("app:gymdesk:42", "-", "task", "tsk_1", "mem_7")
    assert abs(row.event_at - datetime.now(UTC)) < timedelta(seconds=5)  # no timestamp header: now
    note = json.dumps({"id": "e", "type": "note.created", "data": {"id": "n1"}}).encode()  # a whole type in types
    assert app_events.parse(note, "gymdesk", None, GYMDESK).entity == "note"


def test_without_an_event_id_the_body_digest_deduplicates():
    shape = AppWebhooks(event={"id": None, "type": "event", "types": {"customer": "contact"}})
    raw = json.dumps({"event": "customer.updated", "data": {"id": 12}}).encode()
    row = app_events.parse(raw, "mygadgetrepairs", None, shape)
    assert row.webhook_id == f"app:mygadgetrepairs:sha256:{hashlib.sha256(raw).hexdigest()}"
    assert (row.object_id, row.contact_id) == ("12", "12")
    long = json.dumps({"id": "e" * 300, "type": "member.created", "data": {"id": "m"}}).encode()
    assert len(app_events.parse(long, "gymdesk", None, GYMDESK).webhook_id) <= 128


def test_the_entity_can_be_named_by_the_body_in_the_apps_words_or_ours():
    shape = AppWebhooks(event={"type": "event", "entity": "kind", "types": {"customer": "contact"},
                               "record_id": "object.id", "contact_id": "object.contact_id"})
    ours = json.dumps({"id": "1", "event": "x", "kind": "task", "object": {"id": "t", "contact_id": "c"}}).encode()
    assert (app_events.parse(ours, "p", None, shape).entity, app_events.parse(ours, "p", None, shape).contact_id) \
        == ("task", "c")
    theirs = json.dumps({"id": "2", "event": "x", "kind": "customer", "object": {"id": "c"}}).encode()
    assert app_events.parse(theirs, "p", None, shape).entity == "contact"
    invoice = json.dumps({"id": "3", "event": "x", "kind": "invoice", "object": {"id": "i"}}).encode()
    with pytest.raises(app_events.Unmapped, match="entity 'invoice' is none of contact, task, note, appointment"):
        app_events.parse(invoice, "p", None, shape)


@pytest.mark.parametrize(("body", "rule"), [
    (b'{"id": "evt", "type": "member.updated", "data": {"id": "private@example.org"', "body is not JSON"),
    (b'["private@example.org"]', "body is not a JSON object"),
    (b'{"id": "e", "data": {"id": "private@example.org"}}', r"no event type at 'type' \(app.webhooks.event.type\)"),
    (b'{"id": "e", "type": "member.updated", "data": {"email": "private@example.org"}}',
     r"no record id at 'data.id' \(app.webhooks.event.record_id\)"),
    (b'{"type": "member.updated", "data": {"id": "private@example.org"}}', r"no event id at 'id'"),
])
def test_an_unusable_body_is_refused_naming_the_rule_never_the_body(body, rule):
    with pytest.raises(BadEvent, match=rule) as refused:
        app_events.parse(body, "gymdesk", None, GYMDESK)
    assert "private@example.org" not in str(refused.value)


def test_an_event_type_the_profile_does_not_map_is_unmapped_not_an_error():
    raw = json.dumps({"id": "e", "type": "invoice.paid", "data": {"id": "inv"}}).encode()
    with pytest.raises(app_events.Unmapped, match="'invoice.paid' is not in app.webhooks.event.types"):
        app_events.parse(raw, "gymdesk", None, GYMDESK)


# ------------------------------------------------------------------ the secret

def test_the_secret_is_read_from_the_apps_airflow_connection_and_a_missing_one_is_named(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GYMDESK_WH_TEST", json.dumps(
        {"conn_type": "crm_sync_app", "host": "http://127.0.0.1:1", "extra": {"webhook_secret": SECRET}}))
    monkeypatch.setenv("AIRFLOW_CONN_GYMDESK_WH_FORM", json.dumps(
        {"conn_type": "crm_sync_app", "extra": {"extra__crm_sync_app__webhook_secret": SECRET}}))
    monkeypatch.setenv("AIRFLOW_CONN_GYMDESK_WH_NONE", json.dumps({"conn_type": "crm_sync_app", "password": "k"}))
    secrets = AppSecrets()
    assert secrets.secret("gymdesk_wh_test", "webhook_secret") == SECRET
    assert secrets.secret("gymdesk_wh_form", "webhook_secret") == SECRET  # saved by the connection form
    with pytest.raises(SecretMissing) as missing:
        secrets.secret("gymdesk_wh_none", "webhook_secret")
    assert str(missing.value) == "the app's connection gymdesk_wh_none has no extra webhook_secret (the webhook secret)"


def test_the_secret_is_kept_briefly_and_a_fixed_connection_is_seen_soon():
    reads: list[str] = []
    extras = {"app_default": {}}

    def lookup(conn_id: str):
        reads.append(conn_id)
        return extras.get(conn_id)

    secrets = AppSecrets(lookup, ttl_s=60, miss_ttl_s=0)
    with pytest.raises(SecretMissing, match="app_default has no extra webhook_secret"):
        secrets.secret("app_default", "webhook_secret")
    extras["app_default"] = {"webhook_secret": SECRET}
    assert [secrets.secret("app_default", "webhook_secret") for _ in range(3)] == [SECRET] * 3
    assert reads == ["app_default", "app_default"]  # a miss is not kept; a hit is, for ttl_s
    with pytest.raises(SecretMissing, match="connection nope is not defined"):
        secrets.secret("nope", "webhook_secret")
