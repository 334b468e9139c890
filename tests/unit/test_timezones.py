"""Local time (issue 17): the profile's zone on every app value without an offset, one DST rule on
both 2026 US transition days, date-only fields on the shop's day, day filters that miss nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from crm_sync.pipeline.normalize import canonical_record, to_side
from crm_sync.profile import FieldMap, ProfileError, parse_profile, profile_by_name
from crm_sync.records import RuleBroken
from crm_sync.timezones import show

from tests.conftest import ROOT

NY = ZoneInfo("America/New_York")
SPRING, FALL = "2026-03-08", "2026-11-01"  # 02:00 EST -> 03:00 EDT; 02:00 EDT -> 01:00 EST
MGR = profile_by_name("mygadgetrepairs")
APPOINTMENT = {"title": FieldMap(app="title"),
               "start": FieldMap(app="date", time_field="time", format="%Y-%m-%d"),
               "end": FieldMap(app="end_date", time_field="end_time", format="%Y-%m-%d")}


def _from_app(entity: str, record: dict, fields: dict) -> dict:
    return canonical_record(entity, record, "app", fields, "US", NY)


def _to_app(entity: str, values: dict, fields: dict) -> dict:
    return to_side(entity, values, "app", fields, full=values, zone=NY)


def _booking(day: str, start: str, end: str) -> dict:
    return {"title": "Fix", "date": day, "time": start, "end_date": day, "end_time": end}


def test_the_timezone_key_takes_an_iana_name_is_checked_when_read_and_defaults_to_utc():
    text = (ROOT / "include" / "profiles" / "mygadgetrepairs.yaml").read_text()
    assert parse_profile(text, "mgr.yaml").timezone == "UTC"
    assert parse_profile(text + "\ntimezone: America/New_York\n", "mgr.yaml").zone == NY
    with pytest.raises(ProfileError) as bad:
        parse_profile(text + "\ntimezone: Eastern\n", "mgr.yaml")
    assert "mgr.yaml: key 'timezone'" in str(bad.value) and "IANA time zone" in str(bad.value)


def test_a_wall_clock_time_is_read_in_the_zone_and_written_back_the_same():
    app = {"date": "01-Dec-2026", "time": "09:00", "title": "Drop-off", "status": "Booked"}
    values = _from_app("appointment", app, MGR.fields("appointment"))
    assert values["start"] == "2026-12-01T14:00:00Z"
    assert _to_app("appointment", values, MGR.fields("appointment")) == app


def test_spring_forward_a_nonexistent_time_moves_forward_and_the_booking_keeps_its_hour():
    values = _from_app("appointment", _booking(SPRING, "02:30", "03:30"), APPOINTMENT)
    assert (values["start"], values["end"]) == ("2026-03-08T07:30:00Z", "2026-03-08T08:30:00Z")  # 03:30-04:30 EDT
    assert _to_app("appointment", values, APPOINTMENT) == _booking(SPRING, "03:30", "04:30")


def test_fall_back_a_repeated_time_is_its_first_occurrence():
    values = _from_app("appointment", _booking(FALL, "01:30", "02:30"), APPOINTMENT)
    assert values["start"] == "2026-11-01T05:30:00Z"  # 01:30 EDT, not 01:30 EST (06:30Z)
    assert values["end"] == "2026-11-01T06:30:00Z"  # one hour later, as booked


@pytest.mark.parametrize(("start", "end", "wall"), [
    ("2026-03-08T06:30:00Z", "2026-03-08T08:00:00Z", ("01:30", "03:00")),  # 01:30 EST to 04:00 EDT
    ("2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", ("01:00", "03:00")),  # 01:00 EDT to 02:00 EST
])
def test_an_appointment_across_a_transition_keeps_its_duration(start, end, wall):
    day = start[:10]
    app = _to_app("appointment", {"title": "Fix", "start": start, "end": end}, APPOINTMENT)
    assert app == _booking(day, *wall)  # the local start plus the real duration
    back = _from_app("appointment", app, APPOINTMENT)
    assert (back["start"], back["end"]) == (start, end)


@pytest.mark.parametrize("day", [SPRING, FALL, "2026-12-01"])
def test_a_due_date_is_the_shops_day_both_ways(day):
    fields = MGR.fields("task")
    late_evening = datetime.fromisoformat(f"{day}T22:00:00").replace(tzinfo=NY).astimezone(UTC)
    ghl_task = {"title": "Call back", "dueDate": late_evening.isoformat().replace("+00:00", "Z"), "completed": False}
    values = canonical_record("task", ghl_task, "ghl", fields, "US", NY)
    assert values["due_date"] == day  # UTC says the next day; the shop's day is this one
    assert _to_app("task", values, fields)["dueDate"] == day
    # An app due date reaches GHL as noon of that day in the shop, and reads back as the same day.
    to_ghl = to_side("task", {"due_date": day}, "ghl", fields, zone=NY)["dueDate"]
    assert datetime.fromisoformat(to_ghl).astimezone(NY).strftime("%Y-%m-%d %H:%M") == f"{day} 12:00"
    assert canonical_record("task", {"dueDate": to_ghl}, "ghl", fields, "US", NY)["due_date"] == day


def test_values_with_an_offset_keep_it_whatever_the_zone():
    fields = {"start": FieldMap(app="starts_at"), "title": FieldMap(app="title")}  # ISO on the app
    values = _from_app("appointment", {"starts_at": "2026-12-01T09:00:00-05:00", "title": "x"}, fields)
    assert values["start"] == "2026-12-01T14:00:00Z"
    assert _to_app("appointment", values, fields)["starts_at"] == "2026-12-01T14:00:00Z"


def test_ten_syncs_in_a_row_do_not_drift_on_either_transition_day():
    fields = MGR.fields("appointment")
    for day in (SPRING, FALL):
        moment = datetime.fromisoformat(f"{day}T00:00:00").replace(tzinfo=NY).astimezone(UTC)
        for _ in range(26 * 4):  # every quarter hour of the local day and a little more
            start = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            values, seen = {"title": "Fix", "start": start, "status": "confirmed"}, []
            for _sync in range(10):
                app = _to_app("appointment", values, fields)
                values = _from_app("appointment", app, fields)
                seen.append(values["start"])
            repeated = moment.astimezone(NY).fold == 1  # 01:xx EST on the fall day: the app cannot tell
            assert seen == [seen[0]] * 10 and (seen[0] == start) != repeated, (start, seen)
            moment += timedelta(minutes=15)


def test_a_report_shows_a_moment_in_the_profiles_zone_and_names_it():
    assert show("2026-12-01T14:00:00Z", NY) == "2026-12-01 09:00 EST America/New_York"
    assert show(datetime(2026, 7, 1, 14, tzinfo=UTC), NY) == "2026-07-01 10:00 EDT America/New_York"
    assert show("2026-12-01T14:00:00+00:00", ZoneInfo("UTC")) == "2026-12-01 14:00 UTC"
    assert show(None, NY) == ""


def test_a_moment_the_zone_cannot_hold_breaks_the_timestamp_rule_naming_the_key():
    fields = MGR.fields("task")
    with pytest.raises(RuleBroken) as broken:
        canonical_record("task", {"dueDate": "9999-12-31T23:00:00Z"}, "ghl", fields, "US", ZoneInfo("Asia/Tokyo"))
    assert broken.value.broken.rule == "timestamp_format"
    assert "entities.task.fields.due_date" in broken.value.broken.detail and "out of range" in broken.value.broken.detail
