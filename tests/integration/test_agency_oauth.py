"""An agency connection against the GHL simulator, over real sockets, with the real warehouse token store
(SQLite, and a PostgreSQL database made for the test): installed locations paged, one location token
minted per location per lifetime however many processes ask, re-minted once when it expires, a clear
error for an uninstalled location, the agency's refresh token rotated and kept, and no token in any
message or log."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle

import httpx
import pytest
import sqlalchemy as sa
from crm_sync.errors import NoRetryError
from crm_sync.hooks.agency import (
    AgencyConfigError,
    AgencyHook,
    InstalledLocation,
    LocationNotInstalled,
    agency_token_store,
    location_token_key,
)
from crm_sync.hooks.ghl import GHLHook
from crm_sync.hooks.token_store import WarehouseTokenStore
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import oauth_token
from cryptography.fernet import Fernet

from harness.simulators import ghl
from harness.simulators.base import ServerThread, SimState

pytestmark = [pytest.mark.integration]
CONN = "ghl_agency_test"
COMPANY = "companyAgencyTest0001"
CLIENT_ID, CLIENT_SECRET = "agencyapp-0c1d", "s3cret-agency-app"
WORKERS = 6
AGENCY_KEY = agency_token_store(CONN).key


class AgencySim:
    def __init__(self, url: str, refresh_token: str):
        self.url, self.refresh_token = url, refresh_token
        self.admin = httpx.Client(base_url=url + "/_sim", timeout=10)

    def calls(self) -> dict[str, int]:
        return self.admin.get("/calls").json()

    def mints(self) -> dict[str, int]:
        return self.admin.get("/agency/mints").json()

    def seed(self, location_id: str, count: int) -> None:
        rows = [{"id": f"{location_id}-c{i}", "locationId": location_id, "email": f"p{i}@{location_id}.example.com",
                 "tags": [], "dateAdded": "2026-01-01T00:00:00.000Z", "dateUpdated": "2026-01-02T00:00:00.000Z"}
                for i in range(count)]
        self.admin.post("/seed", json={"contacts": rows}).raise_for_status()


@pytest.fixture
def agency(monkeypatch, warehouse_url, fernet_key):
    """A simulated agency with 230 locations (the last 5 uninstalled), its connection, and the warehouse."""
    sim = ghl.GHLSimulator({}, SimState(), access_token_ttl_s=3600)
    locations = [{"id": f"loc{i:03d}", "name": f"Gym {i:03d}", "installed": i < 225} for i in range(230)]
    with ServerThread(ghl.create_app(sim)) as server:
        install = httpx.post(server.url + "/_sim/agency", timeout=10, json={
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "company_id": COMPANY, "locations": locations,
            "scopes": [ghl.READ, ghl.WRITE]}).json()
        monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
        extra = {"company_id": COMPANY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                 "refresh_token": install["refresh_token"]}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "ghl", "host": server.url,
                                                                       "extra": extra}))
        engine.cache_clear()  # the hooks find this test's warehouse through WAREHOUSE_URL (engine(None))
        engine(warehouse_url)  # migrated once, here
        yield AgencySim(server.url, install["refresh_token"])
    engine.cache_clear()


def stored(url: str, key: str) -> sa.Row | None:
    with engine(url).connect() as conn:
        return conn.execute(sa.select(oauth_token).where(oauth_token.c.key == key)).first()


def test_installed_locations_are_paged_by_100_and_every_installed_one_is_listed(agency):
    hook = AgencyHook(CONN)
    listed = list(hook.installed_locations())
    assert [location.id for location in listed] == [f"loc{i:03d}" for i in range(225)]
    assert listed[0] == InstalledLocation("loc000", "Gym 000", "", True, listed[0].installed_at)
    assert agency.calls()["GET /oauth/installedLocations"] == 3  # 100 + 100 + 25
    everyone = list(hook.installed_locations(installed=None))
    assert len(everyone) == 230 and [loc.id for loc in everyone if not loc.installed] == [
        f"loc{i}" for i in range(225, 230)]
    assert hook.app_id == "agencyapp"  # the client id's part before '-'
    works = (True, f"GoHighLevel agency {COMPANY}: the app is installed on 225 locations")
    assert hook.test_connection() == GHLHook(CONN).test_connection() == works  # the UI's Test button


def test_the_agency_refresh_token_is_rotated_and_kept_encrypted_in_the_warehouse(agency, warehouse_url, fernet_key):
    list(AgencyHook(CONN).installed_locations())
    row = stored(warehouse_url, AGENCY_KEY)
    kept = Fernet(fernet_key.encode()).decrypt(row.refresh_token.encode()).decode()
    assert kept != agency.refresh_token and kept not in row.refresh_token
    list(AgencyHook(CONN).installed_locations())  # a new hook (a new task) uses the kept access token
    assert agency.calls()["POST /oauth/token"] == 1
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "refresh_token",
            "user_type": "Company"}
    assert httpx.post(agency.url + "/oauth/token", data={**form, "refresh_token": agency.refresh_token}
                      ).status_code == 400  # the install's token died when it was rotated
    assert httpx.post(agency.url + "/oauth/token", data={**form, "refresh_token": kept}).status_code == 200


def test_a_ghl_client_of_an_agency_connection_reads_the_contacts_of_its_location_only(agency, warehouse_url):
    agency.seed("loc007", 3)
    agency.seed("loc008", 2)
    client = GHLHook(CONN, location_id="loc007").get_conn(page_limit=2)
    emails = sorted(contact["email"] for contact in client.search_contacts(None, None))
    assert emails == [f"p{i}@loc007.example.com" for i in range(3)]
    assert agency.mints() == {"loc007": 1}
    row = stored(warehouse_url, location_token_key(CONN, "loc007"))
    assert row.access_token and row.expires_at > 0 and row.refresh_token is None
    with pytest.raises(ValueError, match="agency connection: the profile must name the location"):
        GHLHook(CONN).config()


def _worker(url: str, location_id: str, barrier, results) -> None:
    """One Celery worker's task: a search when all start together, and another after every token expired."""
    engine(url).dispose()  # the parent's pooled connections are not this process's
    found = []
    try:
        for _phase in range(2):
            barrier.wait(timeout=60)
            client = GHLHook(CONN, location_id=location_id).get_conn(page_limit=10)  # a new task each phase
            found.append(len(list(client.search_contacts(None, None))))
            client.close()
            barrier.wait(timeout=60)
        results.put(("ok", found))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", repr(exc)))


def test_processes_asking_at_once_mint_one_token_per_location_and_once_more_after_expiry(agency, warehouse_url):
    agency.seed("loc010", 4)
    engine(warehouse_url).dispose()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(WORKERS + 1), context.Queue()
    workers = [context.Process(target=_worker, args=(warehouse_url, "loc010", barrier, results))
               for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=60)  # phase 1: every worker needs the location's token at once
    barrier.wait(timeout=120)
    first = agency.mints()
    agency.admin.post("/faults", json={"expire_tokens": True}).raise_for_status()
    barrier.wait(timeout=60)  # phase 2: the kept token answers 401 to everyone
    barrier.wait(timeout=120)
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert outcomes == [("ok", [4, 4])] * WORKERS, outcomes
    assert first == {"loc010": 1}
    assert agency.mints() == {"loc010": 2}  # re-minted once after expiry, not once per worker
    assert agency.calls()["POST /oauth/token"] == 2  # the agency token: once, and once after it expired too


def test_threads_of_one_task_share_one_mint(agency):
    agency.seed("loc011", 1)
    client = GHLHook(CONN, location_id="loc011").get_conn()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: len(list(client.search_contacts(None, None))), range(8)))
    assert counts == [1] * 8 and agency.mints() == {"loc011": 1}


def test_an_uninstalled_location_fails_clearly_and_no_token_is_in_any_message_or_log(agency, warehouse_url, caplog):
    caplog.set_level(logging.DEBUG)
    agency.seed("loc020", 1)
    client = GHLHook(CONN, location_id="loc020").get_conn()
    assert len(list(client.search_contacts(None, None))) == 1
    agency.admin.patch("/agency/locations/loc020", json={"installed": False}).raise_for_status()
    with pytest.raises(LocationNotInstalled) as raised:
        list(client.search_contacts(None, None))  # 401 (revoked), one re-mint: refused
    message = str(raised.value)
    assert isinstance(raised.value, NoRetryError)  # Airflow fails the task at once: a retry cannot reinstall
    assert "loc020" in message and "uninstalled" in message and raised.value.location_id == "loc020"
    with pytest.raises(LocationNotInstalled):  # a new task, whose kept token is dead too
        list(GHLHook(CONN, location_id="loc020").get_conn().search_contacts(None, None))
    assert agency.mints() == {"loc020": 1}
    secrets = [agency.refresh_token]
    for key in (AGENCY_KEY, location_token_key(CONN, "loc020")):
        row = stored(warehouse_url, key)
        store = WarehouseTokenStore(key, url=warehouse_url)
        secrets += [token for token in (store.load(), (store.load_access() or ("",))[0]) if token]
        assert row is not None
    assert len(secrets) == 4
    text = caplog.text + message + repr(raised.value) + repr(client.http.auth)
    assert not [secret for secret in secrets if secret in text]


def test_a_location_connection_refuses_another_location(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GHL_ONE_LOCATION", json.dumps({
        "conn_type": "ghl", "password": "pit-abc", "extra": {"location_id": "locA"}}))
    assert GHLHook("ghl_one_location", location_id="locA").config().location_id == "locA"
    assert GHLHook("ghl_one_location").config().location_id == "locA"
    with pytest.raises(ValueError, match="is for GHL location locA, not locB"):
        GHLHook("ghl_one_location", location_id="locB").config()


def _refused_mints(agency: AgencySim) -> int:
    return agency.calls().get("POST /oauth/locationToken", 0) - sum(agency.mints().values())


def test_a_refused_mint_is_remembered_one_extract_after_an_uninstall_asks_ghl_once(agency):
    agency.seed("loc030", 30)
    client = GHLHook(CONN, location_id="loc030").get_conn(page_limit=10)
    ids = [contact["id"] for contact in client.search_contacts(None, None)]
    assert len(ids) == 30 and _refused_mints(agency) == 0
    agency.admin.patch("/agency/locations/loc030", json={"installed": False}).raise_for_status()
    with pytest.raises(LocationNotInstalled):
        client.notes_for(ids, workers=4)  # four threads meet 401 at once: one of them asks for a token
    for read in (lambda: client.tasks_for(ids, workers=4), lambda: list(client.search_contacts(None, None))):
        with pytest.raises(LocationNotInstalled, match="loc030"):
            read()  # the rest of the extract: refused without asking GHL
    assert _refused_mints(agency) == 1
    assert agency.calls()["GET /contacts/{contact_id}/notes"] <= 4  # only the calls in flight went out
    client.close()


def test_a_refusal_is_uninstalled_only_when_ghl_lists_the_location_so_else_a_configuration_error(
        agency, monkeypatch):
    hook = AgencyHook(CONN)
    with pytest.raises(LocationNotInstalled, match="nosuchlocation"):  # not listed at all: not (or no longer) ours
        hook.mint("nosuchlocation")
    agency.admin.post("/faults", json={"statuses": [400]}).raise_for_status()  # the mint refused, loc001 installed
    with pytest.raises(AgencyConfigError) as raised:
        hook.mint("loc001")
    message = str(raised.value)
    assert "loc001" in message and "HTTP 400" in message and COMPANY in message and "injected" not in message
    assert not isinstance(raised.value, LocationNotInstalled) and isinstance(raised.value, NoRetryError)

    # A wrong company id in the extra: GHL refuses the mint and the listing; neither is called uninstalled.
    wrong = json.loads(os.environ[f"AIRFLOW_CONN_{CONN.upper()}"])
    wrong["extra"]["company_id"] = "companyElsewhere00001"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(wrong))  # its kept agency token still works
    with pytest.raises(AgencyConfigError) as raised:
        list(GHLHook(CONN, location_id="loc002").get_conn().search_contacts(None, None))
    message = str(raised.value)
    assert "companyElsewhere00001" in message and "HTTP 400" in message and "loc002" in message
    assert "not the company of this token" not in message  # GHL's own text is never repeated


def test_installed_locations_are_all_found_without_count_and_with_pages_capped_at_50(agency):
    agency.admin.post("/faults", json={"listing_max_limit": 50}).raise_for_status()
    assert [loc.id for loc in AgencyHook(CONN).installed_locations()] == [f"loc{i:03d}" for i in range(225)]
    assert agency.calls()["GET /oauth/installedLocations"] == 5  # by count: 50 a page, not a short page's end

    agency.admin.post("/calls/reset").raise_for_status()
    agency.admin.post("/faults", json={"listing_max_limit": 1000, "listing_without_count": True}).raise_for_status()
    assert [loc.id for loc in AgencyHook(CONN).installed_locations()] == [f"loc{i:03d}" for i in range(225)]
    assert agency.calls()["GET /oauth/installedLocations"] == 3  # full pages of 100 go on, a short one ends


def test_closing_the_ghl_client_closes_the_agency_clients_and_the_refusal_pickles(agency):
    agency.seed("loc040", 1)
    client = GHLHook(CONN, location_id="loc040").get_conn()
    list(client.search_contacts(None, None))
    hook = client.http.auth.agency
    api, token_api = hook._api.http, hook.agency_auth._token_api.http
    client.close()
    assert api.is_closed and token_api.is_closed
    for error in (LocationNotInstalled(CONN, "loc040", 400), AgencyConfigError("check extra.company_id")):
        again = pickle.loads(pickle.dumps(error))  # Airflow and Celery may pickle a task's exception
        assert type(again) is type(error) and str(again) == str(error) and again.args == error.args
    assert pickle.loads(pickle.dumps(LocationNotInstalled(CONN, "loc040", 400))).location_id == "loc040"


def test_a_location_a_shifted_listing_missed_is_confirmed_by_its_id_and_stays_installed(agency, warehouse_url):
    from crm_sync.pipeline.discover import confirmed, refresh_book
    from crm_sync.profile import parse_profile
    from crm_sync.profile_agency import book_of

    from tests.fixtures import agency_profile_text

    profile = parse_profile(agency_profile_text(), "agency.yaml")
    hook = AgencyHook(CONN)
    with engine(warehouse_url).begin() as conn:
        refresh_book(conn, profile, hook.installed_locations(), lambda _: True)
    listing = hook.installed_locations()
    listed = [next(listing) for _ in range(100)]
    agency.admin.patch("/agency/locations/loc000", json={"installed": False}).raise_for_status()
    agency.admin.patch("/agency/locations/loc150", json={"installed": False}).raise_for_status()
    listed += list(listing)  # skip=100 now starts at loc101: loc100 is missed though installed
    assert "loc100" not in {loc.id for loc in listed} and len(listed) == 223
    agency.admin.post("/calls/reset").raise_for_status()
    with engine(warehouse_url).connect() as conn:
        before = {row.location_id for row in book_of(conn, profile.name) if row.installed}
    kept = confirmed(listed, before, hook.installed_location)
    assert agency.calls()["GET /oauth/installedLocations"] == 2  # one call for each of loc100 and loc150
    with engine(warehouse_url).begin() as conn:
        counts = refresh_book(conn, profile, kept, lambda _: True)
        book = {row.location_id: row.installed for row in book_of(conn, profile.name)}
    assert counts["newly_uninstalled"] == 1 and book["loc100"] and not book["loc150"]
    assert book["loc000"]  # listed before its uninstall: the next discovery finds it


def test_a_location_token_answered_for_another_location_is_refused(agency):
    agency.admin.post("/faults", json={"mint_answers_location": "loc099"}).raise_for_status()
    with pytest.raises(AgencyConfigError, match="for location loc099 when agency connection .* asked one for "
                                                "location loc050"):
        list(GHLHook(CONN, location_id="loc050").get_conn().search_contacts(None, None))
    assert agency.calls()["POST /oauth/locationToken"] == 1 and "POST /contacts/search" not in agency.calls()
