"""Property-based fuzzing (hypothesis) of what reads outside input: profile YAML, the normalisers,
the CSV reader, the staging of API payloads and the webhook receiver's parser.

The property everywhere: no crash. Bad input ends as a ProfileError (profiles), a RuleBroken
with a rule name (normalisers, staging: stage quarantines it) or an ``_error`` row (CSV lines,
which stage quarantines as csv_format). Bounded and seeded: a fixed number of examples per
property (the file runs in about 15 s); CRM_SYNC_FUZZ_SCALE=10 multiplies them for a deeper run.
docs/fuzzing.md records the inputs tried and what they found.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
from collections import namedtuple
from typing import Any

import pytest
import yaml
from crm_sync.paths import PROFILES_DIR
from crm_sync.pipeline import normalize
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.csv_source import read_file
from crm_sync.records import RuleBroken
from crm_sync.pipeline.stage import stage_contacts, stage_one
from crm_sync.profile import ProfileError, parse_profile, profile_by_name
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

# A pandas deprecation is tomorrow's crash: the fuzz fails on it today.
pytestmark = pytest.mark.filterwarnings("error::pandas.errors.Pandas4Warning")
DEEPER = float(os.environ.get("CRM_SYNC_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(max_examples=int(examples * DEEPER), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


Raw = namedtuple("Raw", "id entity side source_id payload")

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                    st.sampled_from(["", " ", "2026-13-45", "1e309", "NaN", "+1 (555) 0100", "a@b", "ada@example.com",
                                     "2026-11-01T09:00:00Z", "\u0000", "\ufeff", "x" * 300]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)


def profile_texts() -> st.SearchStrategy[str]:
    """Real profiles with a value replaced, a key dropped or added at any depth, or plain junk."""
    documents = [yaml.safe_load(path.read_text()) for path in sorted(PROFILES_DIR.glob("*.yaml"))]

    @st.composite
    def mutated(draw: st.DrawFn) -> str:
        document = draw(st.sampled_from(documents))
        document = yaml.safe_load(yaml.safe_dump(document))  # a copy to change
        node: Any = document
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node, key=str)))
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node, key=str)))
            action = draw(st.sampled_from(["replace", "drop", "add"]))
            if action == "replace":
                node[key] = draw(json_values)
            elif action == "drop":
                del node[key]
            else:
                node[draw(st.text(max_size=10))] = draw(json_values)
        return yaml.safe_dump(document)

    oddities = ["", "- a\n- b", "a: [", "&a [*a]", "!!python/object:os.system x"]
    return st.one_of(mutated(), st.text(max_size=200), st.sampled_from(oddities))


@seed(9)
@fuzz(80)
@given(text=profile_texts())
def test_any_profile_text_loads_or_is_a_profile_error(text):
    try:
        parse_profile(text, "fuzz.yaml")
    except ProfileError as exc:
        assert str(exc).startswith("fuzz.yaml: ")


@seed(9)
@fuzz(200)
@given(value=json_values, region=st.sampled_from(["US", "GB", "DE", "ZZ"]),
       pattern=st.sampled_from(["iso", "unix", "unix_ms", "%Y-%m-%d", "%d/%m/%Y %H:%M"]))
def test_every_normaliser_returns_a_value_or_names_the_rule_broken(value, region, pattern):
    for normaliser in (normalize.text, normalize.free_text, normalize.email, lambda v: normalize.phone(v, region),
                       lambda v: normalize.timestamp(v, pattern)):
        try:
            normaliser(value)
        except RuleBroken as exc:
            assert exc.broken.rule and exc.broken.detail


CSV_PROFILE = profile_by_name("csv_import")
CSV_MAPPED = {spec.app for spec in CSV_PROFILE.fields("contact").values() if spec.app}
CSV_HEADER = "Email,First Name,Last Name,Phone,Company,Tags,Notes"
csv_bodies = st.lists(st.text(alphabet=st.sampled_from(list('ab@.,;"\n\r\t é') + ["\ufeff", "\x00"]), max_size=60),
                      max_size=8).map("\n".join) | st.just('a@b,,,,,,"' + "x" * 140_000 + '"')  # over csv's field limit


@seed(9)
@fuzz(200)
@given(body=csv_bodies, header=st.sampled_from([CSV_HEADER, CSV_HEADER.replace(",", ";"), "", '"Email,First']),
       bom=st.booleans())
def test_any_csv_file_reads_into_contacts_and_quarantined_lines(tmp_path, body, header, bom):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + f"{header}\n{body}".encode())
    rows = read_file(path, CSV_PROFILE.app.csv, CSV_MAPPED)
    lines = len(list(io.StringIO(f"{header}\n{body}", newline="")))
    for row in rows:
        assert row["_file"] == "fuzz.csv" and 0 <= row["_line"] <= lines
        if "_error" in row:
            assert row["_error"] and row["_key"] == f"fuzz.csv:{row['_line']}"
        elif row.get("_entity") == "note":
            assert row["body"] and row["_contact"]
        else:
            assert row["_key"] == row["Email"].strip().lower() and set(CSV_HEADER.split(",")) <= set(row)


notes = st.text(alphabet=st.sampled_from(list('ab ,;"\n')), max_size=20)


@seed(9)
@fuzz(100)
@given(people=st.lists(notes, min_size=2, max_size=6), data=st.data())
def test_an_unclosed_quote_never_carries_one_persons_data_into_another_persons_row(tmp_path, people, data):
    """Spreadsheet rows written properly, then one row's closing quote deleted: every other person
    imports with exactly their own note, and the broken row is quarantined, not merged."""
    broken = data.draw(st.integers(0, len(people) - 1))
    people[broken] = people[broken].replace("\n", " ") + "x"  # the broken row is one line, as in the report
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER.split(","))
    for n, note in enumerate(people):
        row = io.StringIO()
        csv.writer(row, quoting=csv.QUOTE_ALL if n == broken else csv.QUOTE_MINIMAL,
                   lineterminator="\n").writerow([f"p{n}@example.com", f"P{n}", "", "", "", "", note])
        out.write(row.getvalue()[:-2] + "\n" if n == broken else row.getvalue())  # drop its closing quote
    path = tmp_path / "people.csv"
    path.write_text(out.getvalue())
    rows = read_file(path, CSV_PROFILE.app.csv, CSV_MAPPED)
    contacts = {row["_key"]: row for row in rows if "_error" not in row and row.get("_entity") != "note"}
    assert f"p{broken}@example.com" not in contacts
    for n, note in enumerate(people):
        if n != broken:
            assert contacts[f"p{n}@example.com"]["Notes"] == note
    for row in contacts.values():
        assert not any(f"p{n}@example.com" in row["Notes"] for n in range(len(people)))


def payloads(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """API records: the profile's own field names (dotted paths nested) with any JSON values, or junk keys."""
    names = sorted({name for spec in fields.values() for name in (spec.ghl, spec.app) if name})

    def nest(flat: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for name, value in flat.items():
            normalize.set_path(payload, name, value)
        return payload

    return st.one_of(st.dictionaries(st.sampled_from(names), json_values, max_size=8).map(nest),
                     st.dictionaries(st.text(max_size=10), json_values, max_size=5))


@st.composite
def raw_records(draw: st.DrawFn, entity: str) -> tuple[Any, list[Raw]]:
    profile = draw(st.sampled_from(PROFILES_WITH[entity]))
    fields = profile.fields(entity)
    sides, ids = st.sampled_from(["ghl", "app"]), st.one_of(st.none(), st.text(max_size=12))
    count = draw(st.integers(1, 4))
    return profile, [Raw(n, entity, draw(sides), draw(ids), draw(payloads(fields))) for n in range(count)]


PROFILES_WITH = {entity: [profile_by_name(name) for name in ("gymdesk", "gist", "gymflow", "mygadgetrepairs", "generic")
                          if entity in profile_by_name(name).entities]
                 for entity in ("contact", "task", "note")}


@seed(9)
@fuzz(40)
@given(drawn=raw_records("contact"))
def test_staging_any_contact_payload_stages_it_or_quarantines_it_with_a_rule(drawn):
    profile, raws = drawn
    staged, broken = stage_contacts(RunContext(profile=profile, run_id="fuzz", run_type="manual"), raws)
    assert len(staged) + len(broken) == len(raws)
    assert all(rule.rule and rule.detail for _, rule in broken)
    assert all(isinstance(row["content_hash"], str) and not (isinstance(row.get("email"), float)
                                                             and math.isnan(row["email"])) for row in staged)


@seed(9)
@fuzz(60)
@given(drawn=st.one_of(raw_records("task"), raw_records("note")))
def test_staging_any_task_or_note_payload_stages_it_or_names_the_rule(drawn):
    profile, raws = drawn
    for raw in raws:
        try:
            row = stage_one(RunContext(profile=profile, run_id="fuzz", run_type="manual"), raw)
        except RuleBroken as exc:
            assert exc.broken.rule and exc.broken.detail
        else:
            assert row["contact_id"] and row["content_hash"]


event_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda depth: b"[" * depth, st.integers(0, 200_000)),
    st.builds(lambda body: json.dumps(body).encode(), json_values),
    st.builds(lambda body, stamp: json.dumps({"type": "NoteCreate", "locationId": "loc", "webhookId": "w1",
                                              "timestamp": stamp, **body}).encode(),
              st.dictionaries(st.sampled_from(["id", "contactId", "appointment", "type"]), json_values, max_size=3),
              st.one_of(st.text(max_size=30), st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                                              "2026-11-30T12:00:00Z", "2026-11-30"]))))


@fuzz(150)
@given(raw=event_bodies)
def test_any_webhook_body_is_an_event_or_a_named_refusal(raw):
    from datetime import timedelta

    from crm_sync.webhooks.inbox import BadEvent, StaleEvent, parse

    try:
        event = parse(raw, timedelta(days=365 * 20))
    except (BadEvent, StaleEvent) as refusal:
        assert str(refusal)  # names the rule, and never echoes the body:
        assert len(raw) < 8 or raw.decode(errors="replace")[:40] not in str(refusal)
    else:
        assert event.webhook_id and event.location_id and event.event_at.tzinfo is not None


def api_records(fields: dict[str, Any]) -> st.SearchStrategy[Any]:
    """What a list answer may hold where a record belongs: a record, any JSON value, a record with an
    id too long for the warehouse or of the wrong type, or one nested far too deep."""
    deep = st.integers(33, 400).map(lambda depth: {"id": "deep", "x": functools.reduce(
        lambda inner, _: {"a": inner}, range(depth), 1)})
    odd_ids = st.builds(lambda record, id_: {**record, "id": id_}, payloads(fields),
                        st.one_of(st.text(min_size=129, max_size=300), st.lists(st.integers(), max_size=2),
                                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.floats()))
    return st.one_of(payloads(fields), json_values, odd_ids, deep)


@seed(9)
@fuzz(80)
@given(data=st.data(), entity=st.sampled_from(["contact", "task", "note"]), side=st.sampled_from(["ghl", "app"]))
def test_any_api_record_lands_and_then_stages_or_is_quarantined_with_a_rule(data, entity, side):
    """Extract lands whatever a list holds (a malformed one as a stand-in naming its shape rule), and
    stage either stages it or quarantines it: nothing crashes, nothing is dropped."""
    from datetime import UTC, datetime

    from crm_sync.pipeline.extract import raw_row

    profile = data.draw(st.sampled_from(PROFILES_WITH[entity]))
    ctx = RunContext(profile=profile, run_id="fuzz", run_type="manual")
    record = data.draw(api_records(profile.fields(entity)))
    landed = raw_row(ctx, side, entity, record, datetime.now(UTC))
    assert landed["record_key"] and len(landed["record_key"]) <= 128
    raw = Raw(1, entity, side, landed["source_id"], landed["payload"])
    if entity == "contact":
        staged, broken = stage_contacts(ctx, [raw])
        assert len(staged) + len(broken) == 1
        assert all(rule.rule and rule.detail for _, rule in broken)
        return
    try:
        stage_one(ctx, raw)
    except RuleBroken as exc:
        assert exc.broken.rule and exc.broken.detail
