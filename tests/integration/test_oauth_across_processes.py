"""OAuth across processes: 8 workers needing a token at once make one refresh per expiry.

Each process builds its own GHL client over the shared warehouse token store (as every Celery
worker's task does) and searches the GHL simulator; the simulator counts the token calls.
A rotated refresh token whose save fails is retried, and alerted to a webhook when it keeps failing.
Tokens are stored only encrypted: without a Fernet key a refresh is refused by name, and a rotated
key re-encrypts what is stored.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import httpx
import pytest
import sqlalchemy as sa
from crm_sync.hooks import oauth
from crm_sync.hooks.ghl import GHLClient, GHLConfig
from crm_sync.hooks.oauth import GHLOAuth, OAuthClient
from crm_sync.hooks.token_store import WarehouseTokenStore
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import oauth_token
from cryptography.fernet import Fernet

from tests.contract.ghl_sim import LOCATION, running_sim, webhook_receiver

pytestmark = [pytest.mark.integration]
WORKERS = 8
KEY = "crm_sync_ghl_refresh_token__ghl_test"


@pytest.fixture
def sim():
    with running_sim(access_token_ttl_s=3600) as running:
        yield running


def install(sim) -> tuple[OAuthClient, str]:
    sim.admin.post("/oauth/clients", json={"client_id": "crm-sync", "client_secret": "s3cret-app"}).raise_for_status()
    grant = sim.admin.post("/oauth/installs", json={"client_id": "crm-sync", "location_id": LOCATION,
                                                    "scopes": ["contacts.readonly", "contacts.write"]}).json()
    return OAuthClient("crm-sync", "s3cret-app", f"{sim.url}/oauth/token"), grant["refresh_token"]


def _worker(url: str, sim_url: str, client: OAuthClient, refresh_token: str, barrier, results) -> None:
    """One worker: a search when all start together, and another after the tokens expired."""
    auth = GHLOAuth(client, WarehouseTokenStore(KEY, url=url), refresh_token)
    api = GHLClient(GHLConfig(sim_url, LOCATION, auth), page_limit=10)
    found = []
    try:
        for _phase in range(2):
            barrier.wait(timeout=60)  # all at once
            found.append(len(list(api.search_contacts(None, None))))
            barrier.wait(timeout=60)  # the parent expires every access token in between
        results.put(("ok", found, auth.refreshes))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", repr(exc), auth.refreshes))


def test_eight_processes_make_one_refresh_per_expiry_and_keep_the_tokens_encrypted(sim, warehouse_url, fernet_key):
    sim.contact(email="shared@example.com")
    client, refresh_token = install(sim)
    engine(warehouse_url).dispose()  # migrated once here; each child opens its own connections
    sim.admin.post("/calls/reset").raise_for_status()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(WORKERS + 1), context.Queue()
    workers = [context.Process(target=_worker, args=(warehouse_url, sim.url, client, refresh_token, barrier, results))
               for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=60)  # phase 1 starts
    barrier.wait(timeout=120)  # phase 1 done
    sim.admin.post("/faults", json={"expire_tokens": True}).raise_for_status()
    barrier.wait(timeout=60)  # phase 2 starts: every worker meets a 401 with its expired token
    barrier.wait(timeout=120)
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert [o[0] for o in outcomes] == ["ok"] * WORKERS, outcomes
    assert all(o[1] == [1, 1] for o in outcomes)
    calls = sim.admin.get("/calls").json()
    assert calls.get("POST /oauth/token") == 2  # one refresh per expiry; a refused (invalid_grant) one counts too
    assert sum(o[2] for o in outcomes) == 2

    with engine(warehouse_url).connect() as conn:
        row = conn.execute(sa.select(oauth_token).where(oauth_token.c.key == KEY)).one()
    access = Fernet(fernet_key.encode()).decrypt(row.access_token.encode()).decode()
    assert access not in row.access_token and row.expires_at > 0
    with sim.api(token=access) as api:  # the kept token is the live one
        assert api.post("/contacts/search", json={"locationId": LOCATION}).status_code == 200
    live = Fernet(fernet_key.encode()).decrypt(row.refresh_token.encode()).decode()
    assert live not in row.refresh_token
    assert httpx.post(f"{sim.url}/oauth/token", data={  # the stored refresh token is the one GHL honours now
        "client_id": "crm-sync", "client_secret": "s3cret-app", "grant_type": "refresh_token",
        "refresh_token": live, "user_type": "Location"}).status_code == 200


class FailingSaves(WarehouseTokenStore):
    """The real store, whose first ``failures`` refresh-token saves fail as an unreachable database would."""

    def __init__(self, *args, failures: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.failures = failures

    def save(self, refresh_token: str) -> None:
        if self.failures:
            self.failures -= 1
            raise sa.exc.OperationalError("UPDATE oauth_token", {}, Exception("server closed the connection"))
        super().save(refresh_token)


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(oauth, "SAVE_BACKOFF_S", 0.01)


def test_a_failed_save_is_retried_then_alerted_without_losing_the_token(sim, tmp_path, fernet_key, quick_retries,
                                                                         monkeypatch):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    sim.contact(email="saved@example.com")
    with webhook_receiver() as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_CRM_SYNC_ALERTS", json.dumps({"conn_type": "http", "host": receiver.url}))
        client, refresh_token = install(sim)
        # a save failing a few times is retried: the rotated token is stored, nobody is alerted
        store = FailingSaves(KEY, url=url, failures=oauth.SAVE_ATTEMPTS - 1)
        auth = GHLOAuth(client, store, refresh_token, on_unsaved=oauth.unsaved_alert("ghl_test"))
        api = GHLClient(GHLConfig(sim.url, LOCATION, auth))
        assert len(list(api.search_contacts(None, None))) == 1
        assert store.load() != refresh_token and receiver.received == []

        # a save failing every time: the run goes on with the token in memory, and one alert says so
        store.failures = 10 * oauth.SAVE_ATTEMPTS
        sim.admin.post("/faults", json={"expire_tokens": True}).raise_for_status()
        assert len(list(api.search_contacts(None, None))) == 1
        assert auth.unsaved_refresh_token is not None and auth.unsaved_refresh_token != store.load()
        assert len(receiver.received) == 1
        body = json.loads(receiver.received[0][1])
        assert body["kind"] == "refresh_token_not_saved" and body["connection"] == "ghl_test"
        for secret in (auth.unsaved_refresh_token, auth.access_token, "s3cret-app"):
            assert secret not in receiver.received[0][1].decode()

        # the next refresh uses the unsaved token (the stored one is dead) and saves it at last
        store.failures = 0
        sim.admin.post("/faults", json={"expire_tokens": True}).raise_for_status()
        assert len(list(api.search_contacts(None, None))) == 1
        assert auth.unsaved_refresh_token is None and len(receiver.received) == 1
        assert httpx.post(f"{sim.url}/oauth/token", data={
            "client_id": "crm-sync", "client_secret": "s3cret-app", "grant_type": "refresh_token",
            "refresh_token": store.load(), "user_type": "Location"}).status_code == 200


def test_a_worker_with_another_fernet_key_is_told_so_without_the_token(tmp_path, fernet_key, monkeypatch):
    from airflow.sdk.crypto import get_fernet
    from crm_sync.hooks.token_store import TokenKeyMismatch

    store = WarehouseTokenStore(KEY, url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    store.save("refresh-secret-1")
    assert store.load() == "refresh-secret-1"
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    get_fernet.cache_clear()
    with pytest.raises(TokenKeyMismatch, match="same key") as mismatch:
        store.load()
    assert "refresh-secret-1" not in str(mismatch.value)


@pytest.fixture
def no_fernet_key(monkeypatch):
    from airflow.sdk.crypto import get_fernet

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    get_fernet.cache_clear()
    yield
    get_fernet.cache_clear()


def stored_values(url: str) -> list[str]:
    with engine(url).connect() as conn:
        return [str(value) for row in conn.execute(sa.select(oauth_token)) for value in row]


def test_without_a_fernet_key_a_refresh_is_refused_by_name_and_no_token_is_stored(sim, warehouse_url, no_fernet_key):
    from airflow.sdk.crypto import get_fernet
    from crm_sync.hooks.token_store import AirflowVariableTokenStore, TokenKeyMissing

    assert not get_fernet().is_encrypted  # Airflow's NullFernet: it would store plaintext
    sim.contact(email="keyless@example.com")
    client, refresh_token = install(sim)
    store = WarehouseTokenStore(KEY, url=warehouse_url)
    api = GHLClient(GHLConfig(sim.url, LOCATION, GHLOAuth(client, store, refresh_token)))
    sim.admin.post("/calls/reset").raise_for_status()
    with pytest.raises(TokenKeyMissing, match=r"\[core\] fernet_key") as refused:
        list(api.search_contacts(None, None))
    assert refresh_token not in str(refused.value)
    assert "POST /oauth/token" not in sim.admin.get("/calls").json()  # never rotated: the install is intact
    for save in (store.save, lambda token: store.save_access(token, 1e10), AirflowVariableTokenStore("ghl").save):
        with pytest.raises(TokenKeyMissing, match=r"\[core\] fernet_key"):
            save("plaintext-refresh-secret")
    assert not any("plaintext-refresh-secret" in value or refresh_token in value
                   for value in stored_values(warehouse_url))
    assert httpx.post(f"{sim.url}/oauth/token", data={  # the refresh token still works once a key is set
        "client_id": "crm-sync", "client_secret": "s3cret-app", "grant_type": "refresh_token",
        "refresh_token": refresh_token, "user_type": "Location"}).status_code == 200


def test_a_key_that_is_no_fernet_key_is_named_too(tmp_path, monkeypatch):
    from airflow.sdk.crypto import get_fernet
    from crm_sync.hooks.token_store import TokenKeyMissing

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "not-a-fernet-key")
    get_fernet.cache_clear()
    try:
        with pytest.raises(TokenKeyMissing, match=r"\[core\] fernet_key is not a Fernet key"):
            WarehouseTokenStore(KEY, url=f"sqlite:///{tmp_path / 'warehouse.db'}").save("refresh-secret-3")
    finally:
        get_fernet.cache_clear()
    assert not any("refresh-secret-3" in value for value in stored_values(f"sqlite:///{tmp_path / 'warehouse.db'}"))


def test_with_a_key_the_stored_values_are_not_the_tokens(tmp_path, fernet_key):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    store = WarehouseTokenStore(KEY, url=url)
    store.save("refresh-secret-2")
    store.save_access("access-secret-2", 1e10)
    values = stored_values(url)
    assert not any("secret-2" in value for value in values)
    assert store.load() == "refresh-secret-2" and store.load_access() == ("access-secret-2", 1e10)


def test_a_rotated_key_re_encrypts_tokens_on_read_and_by_the_cli(tmp_path, fernet_key, monkeypatch):
    """``[core] fernet_key = new,old``: tokens under the old key (or in plaintext, from a keyless
    crm-sync before this one) are still read, and written again under the new key."""
    from airflow.sdk.crypto import get_fernet
    from crm_sync.hooks.token_store import TokenKeyMismatch

    from tests.conftest import ROOT

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    store, other = WarehouseTokenStore(KEY, url=url), WarehouseTokenStore(KEY + "_b", url=url)
    store.save("refresh-under-old")
    other.save("other-under-old")
    store.save_access("access-under-old", 1e10)
    with engine(url).begin() as conn:  # what a keyless crm-sync wrote before this one refused to
        conn.execute(sa.insert(oauth_token).values(key=KEY + "_plain", refresh_token="legacy-plaintext",
                                                   updated_at=sa.func.now()))
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", f"{new},{fernet_key}")
    get_fernet.cache_clear()

    assert store.load() == "refresh-under-old"  # read with the old key, sealed again with the new one
    with engine(url).connect() as conn:
        row = conn.execute(sa.select(oauth_token).where(oauth_token.c.key == KEY)).one()
    assert Fernet(new.encode()).decrypt(row.refresh_token.encode()) == b"refresh-under-old"

    done = subprocess.run([sys.executable, "-m", "crm_sync.cli", "rotate-token-key"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "WAREHOUSE_URL": url,
                                                      "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"})
    assert done.returncode == 0, done.stderr
    assert "3 OAuth token row(s) re-encrypted" in done.stdout
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", new)  # the old key dropped
    get_fernet.cache_clear()
    assert store.load() == "refresh-under-old" and store.load_access() == ("access-under-old", 1e10)
    assert other.load() == "other-under-old"
    assert WarehouseTokenStore(KEY + "_plain", url=url).load() == "legacy-plaintext"
    assert not any("plaintext" in value or "under-old" in value for value in stored_values(url))
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", fernet_key)  # only the old key: told so
    get_fernet.cache_clear()
    with pytest.raises(TokenKeyMismatch):
        store.load()
