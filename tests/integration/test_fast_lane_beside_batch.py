"""The fast lane and a batch run of one profile at the same time, in threads of one process (no Airflow
pool keeps them apart): every edit is written to the other side exactly once, whoever plans and
sends it, on SQLite and on PostgreSQL (the profile's lock is an flock there, an advisory lock here)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from harness.demo_data import LOCATION_ID
from tests.conftest import GHL_TOKEN, GYMDESK_KEY, connection_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BATCH = (("extract", ("ghl",)), ("extract", ("app",)), ("stage", ()), ("validate", ()), ("reconcile", ()),
         ("load", ()))


@pytest.fixture
def steps_env(warehouse_url, monkeypatch, tmp_path, ghl_sim, gymdesk_sim):
    from crm_sync.warehouse import db

    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    for name, value in connection_env(ghl_sim.url, gymdesk_sim.url).items():
        monkeypatch.setenv(name, value)
    db.engine.cache_clear()
    yield db.engine()
    db.engine().dispose()
    db.engine.cache_clear()


def _batch(ctx) -> None:
    from importlib import import_module

    for step, args in BATCH:
        getattr(import_module(f"crm_sync.pipeline.{step}"), step)(ctx, *args)


def _writes(calls: dict[str, int], *wanted: str) -> int:
    return sum(calls.get(call, 0) for call in wanted)


def test_a_fast_run_and_a_batch_run_together_write_each_change_once(steps_env, ghl_sim, gymdesk_sim, demo_data):
    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.fast_lane import fast_lane
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.tables import webhook_done, webhook_inbox

    base = profile_by_name("gymdesk")
    profile = base.model_copy(update={"ghl": base.ghl.model_copy(update={"location_id": LOCATION_ID})})
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", ghl_seed["contacts"])
    gymdesk_sim.seed("members", desk_seed["members"])
    _batch(RunContext(profile, "manual__first", "manual", dag_id=profile.dag_id))
    ghl_people = {(c.get("email") or "").lower(): c["id"] for c in ghl_sim.records("contacts")}
    desk_people = {(m.get("email") or "").lower(): m["id"] for m in gymdesk_sim.records("members")}
    both = sorted(e["email"] for e in demo_data.expected if e["email"] in ghl_people and e["email"] in desk_people)

    for round_ in range(3):  # three interleavings: the threads start together, each time other people
        ghl_edits, desk_edits = both[4 * round_:4 * round_ + 2], both[4 * round_ + 2:4 * round_ + 4]
        events = []
        for email in ghl_edits:
            httpx.put(f"{ghl_sim.url}/contacts/{ghl_people[email]}", json={"companyName": f"GHL {round_}"},
                      headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"}).raise_for_status()
            events.append(("ghl", ghl_people[email], None))
        for email in desk_edits:
            httpx.patch(f"{gymdesk_sim.url}/v1/members/{desk_people[email]}",
                        json={"data": {"company": f"Desk {round_}"}}, headers={"X-API-Key": GYMDESK_KEY}
                        ).raise_for_status()
            events.append(("app:gymdesk", str(desk_people[email]), "contact"))
        now = datetime.now(UTC)
        with steps_env.begin() as conn:
            ids = [conn.execute(sa.insert(webhook_inbox).values(
                webhook_id=f"{source}:{uuid.uuid4()}", location_id=LOCATION_ID, event_type="ContactUpdate",
                contact_id=record, object_id=record, event_at=now, received_at=now, routed=True, payload={},
                payload_bytes=0, source=source, entity=entity)).inserted_primary_key[0]
                for source, record, entity in events]
        ghl_sim.reset_calls()
        gymdesk_sim.reset_calls()
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def run(work, ctx) -> None:
            start.wait()
            try:
                work(ctx)
            except BaseException as error:  # noqa: BLE001 - the test reports it
                errors.append(error)

        threads = [threading.Thread(target=run, args=(fast_lane, RunContext(
                       profile, f"fast__{round_}", "asset_triggered", dag_id=profile.fast_dag_id))),
                   threading.Thread(target=run, args=(_batch, RunContext(
                       profile, f"batch__{round_}", "manual", dag_id=profile.dag_id)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not errors, errors

        ghl_calls, desk_calls = ghl_sim.calls(), gymdesk_sim.calls()
        assert _writes(desk_calls, "PATCH /v1/members/{member_id}", "POST /v1/members") == len(ghl_edits), desk_calls
        assert _writes(ghl_calls, "PUT /contacts/{contact_id}", "POST /contacts/upsert") == len(desk_edits), ghl_calls
        desk_now = {(m.get("email") or "").lower(): m for m in gymdesk_sim.records("members")}
        ghl_now = {(c.get("email") or "").lower(): c for c in ghl_sim.records("contacts")}
        assert all(desk_now[email]["company"] == f"GHL {round_}" for email in ghl_edits)
        assert all(ghl_now[email]["companyName"] == f"Desk {round_}" for email in desk_edits)
        with steps_env.connect() as conn:
            done = set(conn.execute(sa.select(webhook_done.c.inbox_id)).scalars())
        assert set(ids) <= done  # used by whichever run took them: nothing left pending
