"""A location that uninstalls the app between a run's extract and its load: the load stops its GHL lanes
at the first write, leaves every GHL write pending and unattempted (never dead-lettered, no rows_failed
alert), asks GHL for a token once, and fails the task naming the location; the app's writes still go
out. After a reinstall the next load sends the GHL writes. Real simulators and a SQLite warehouse."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa
from crm_sync.errors import NoRetryError
from crm_sync.hooks.agency import LocationNotInstalled
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import outbox
from cryptography.fernet import Fernet

from harness.simulators import ghl
from harness.simulators.base import ServerThread, SimState
from tests.conftest import GYMDESK_KEY, Sim

pytestmark = [pytest.mark.integration]
CONN, COMPANY, LOCATION = "ghl_agency_load", "companyAgencyLoad0001", "LocLoad01"
PAST = "2026-10-01T09:00:00Z"


@pytest.fixture
def agency_run(tmp_path, monkeypatch, gymdesk_sim):
    """An agency install on LOCATION, the Gymdesk simulator with 3 members, and the gymdesk profile as that
    location's profile (the agency connection, ghl.location_id); yields (GHL simulator, app simulator, ctx)."""
    from airflow.sdk.crypto import get_fernet

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    get_fernet.cache_clear()
    sim = ghl.GHLSimulator({}, SimState(), access_token_ttl_s=3600)
    with ServerThread(ghl.create_app(sim)) as server:
        install = httpx.post(server.url + "/_sim/agency", timeout=10, json={
            "client_id": "agencyapp-load", "company_id": COMPANY,
            "locations": [{"id": LOCATION, "name": "Gym"}]}).json()
        extra = {"company_id": COMPANY, "client_id": install["client_id"], "client_secret": install["client_secret"],
                 "refresh_token": install["refresh_token"]}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "ghl", "host": server.url,
                                                                       "extra": extra}))
        monkeypatch.setenv("AIRFLOW_CONN_GYMDESK_DEFAULT", json.dumps({
            "conn_type": "crm_sync_app", "host": gymdesk_sim.url, "password": GYMDESK_KEY}))
        monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'w.db'}")
        engine.cache_clear()
        gymdesk_sim.seed("members", [{"id": f"mem_{n}", "first_name": f"P{n}", "last_name": "Lee", "phone": None,
                                      "email": f"p{n}@example.com", "company": None, "lead_source": "Walk-in",
                                      "status": "active", "created_at": PAST, "updated_at": PAST} for n in range(3)])
        profile = profile_by_name("gymdesk")
        profile = profile.model_copy(update={"ghl": profile.ghl.model_copy(update={
            "conn_id": CONN, "location_id": LOCATION})})
        yield Sim(server.url), RunContext(profile, "manual__1", "manual", None, None)
        engine().dispose()
        engine.cache_clear()
    get_fernet.cache_clear()


def rows(side: str) -> list[tuple[str, int]]:
    with engine().connect() as conn:
        return sorted((r.status, r.attempts) for r in conn.execute(
            sa.select(outbox.c.status, outbox.c.attempts).where(outbox.c.side == side)))


def test_an_uninstall_between_extract_and_load_leaves_the_ghl_writes_pending_and_fails_the_task(agency_run):
    ghl_sim, ctx = agency_run
    for side in ("ghl", "app"):
        extract(ctx, side)  # GHL read through the location's token
    stage(ctx)
    reconcile(ctx)
    planned = rows("ghl")
    assert len(planned) >= 3 and {status for status, _ in planned} == {"pending"}

    ghl_sim.admin.patch(f"/agency/locations/{LOCATION}", json={"installed": False}).raise_for_status()
    asked = ghl_sim.calls().get("POST /oauth/locationToken", 0)
    with pytest.raises(LocationNotInstalled) as raised:
        load(ctx)
    assert isinstance(raised.value, NoRetryError) and LOCATION in str(raised.value)  # fails now, says where
    assert rows("ghl") == planned  # pending, no attempt counted: neither failed nor dead-lettered
    assert ghl_sim.calls()["POST /oauth/locationToken"] - asked == 1  # every lane: one refused mint
    assert {status for status, _ in rows("app")} <= {"sent", "pending"}  # the app's side is not GHL's fault
    with engine().connect() as conn:
        kept = conn.execute(sa.select(outbox.c.last_error).where(outbox.c.side == "ghl",
                                                                  outbox.c.last_error.is_not(None))).scalars().all()
    assert kept and all(error.startswith("not sent: GHL location LocLoad01") for error in kept)
    with engine().connect() as conn:  # never tried: no run is credited with them (NULL, as before the claim)
        assert set(conn.execute(sa.select(outbox.c.sent_run_id).where(outbox.c.side == "ghl")).scalars()) == {None}

    ghl_sim.admin.patch(f"/agency/locations/{LOCATION}", json={"installed": True}).raise_for_status()
    stats = load(RunContext(ctx.profile, "manual__2", "manual", None, None))
    assert stats["failed"] == 0 and {status for status, _ in rows("ghl")} == {"sent"}
    created = [c for c in ghl_sim.records("contacts") if c.get("locationId") == LOCATION]
    assert sorted(c["email"] for c in created) == [f"p{n}@example.com" for n in range(3)]
