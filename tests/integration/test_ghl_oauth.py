"""OAuth against the GHL simulator: expiry mid-run, rotation, persistence before use, 429 storms."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from crm_sync.hooks.ghl import GHLClient, GHLConfig
from crm_sync.hooks.oauth import GHLOAuth, OAuthClient, TokenRefreshError
from crm_sync.http import ApiError

from tests.contract.ghl_sim import LOCATION, running_sim

pytestmark = [pytest.mark.integration]


class RecordingStore:
    """A token store that remembers every save, and what had been used when it was saved."""

    def __init__(self, sim_admin: httpx.Client):
        self.saved: list[str] = []
        self.calls_at_save: list[int] = []
        self.admin = sim_admin

    def load(self) -> str | None:
        return self.saved[-1] if self.saved else None

    def save(self, refresh_token: str) -> None:
        self.saved.append(refresh_token)
        self.calls_at_save.append(self.admin.get("/calls").json().get("total", 0))


@pytest.fixture
def sim():
    with running_sim(access_token_ttl_s=3600) as running:
        yield running


def install(sim) -> tuple[OAuthClient, str]:
    app = sim.admin.post("/oauth/clients", json={"client_id": "crm-sync", "client_secret": "s3cret-app"}).json()
    grant = sim.admin.post("/oauth/installs", json={"client_id": app["client_id"], "location_id": LOCATION,
                                                    "scopes": ["contacts.readonly", "contacts.write"]}).json()
    return OAuthClient(app["client_id"], app["client_secret"], f"{sim.url}/oauth/token"), grant["refresh_token"]


def oauth_client(sim, store) -> tuple[GHLClient, GHLOAuth, str]:
    client_app, refresh_token = install(sim)
    auth = GHLOAuth(client_app, store, refresh_token)
    return GHLClient(GHLConfig(sim.url, LOCATION, auth), page_limit=1), auth, refresh_token


def test_a_token_expiring_mid_run_is_refreshed_once_and_the_run_goes_on(sim):
    for n in range(3):
        sim.contact(email=f"p{n}@example.com")
    store = RecordingStore(sim.admin)
    client, auth, _ = oauth_client(sim, store)
    pages = client.search_contacts(None, None)
    first = next(pages)
    sim.admin.post("/faults", json={"expire_tokens": True}).raise_for_status()
    rest = list(pages)  # the next call meets a 401, refreshes, resends
    assert len([first, *rest]) == 3
    assert auth.refreshes == 2  # the first token, then exactly one refresh after expiry
    assert client.metrics.retries == 0  # the 401 never reached the retry logic or the caller


def test_the_rotated_refresh_token_is_persisted_before_the_new_access_token_is_used(sim):
    store = RecordingStore(sim.admin)
    client, auth, original = oauth_client(sim, store)
    list(client.search_contacts(None, None))
    assert len(store.saved) == 1 and store.saved[0] != original
    # saved after the token call (1 call) and before any API call used the new access token
    assert store.calls_at_save == [1]
    sim.admin.post("/faults", json={"expire_tokens": True}).raise_for_status()
    list(client.search_contacts(None, None))
    assert len(store.saved) == 2 and store.saved[1] != store.saved[0]
    # the old refresh token died when it was rotated: a crash that lost the new one would be fatal
    dead = httpx.post(f"{sim.url}/oauth/token", data={
        "client_id": "crm-sync", "client_secret": "s3cret-app", "grant_type": "refresh_token",
        "refresh_token": store.saved[0], "user_type": "Location"})
    assert dead.status_code in (400, 401)


def test_a_refused_refresh_token_fails_clearly_without_echoing_secrets(sim, caplog):
    caplog.set_level(logging.DEBUG)
    client_app, _ = install(sim)
    auth = GHLOAuth(client_app, RecordingStore(sim.admin), "not-a-real-refresh-token")
    client = GHLClient(GHLConfig(sim.url, LOCATION, auth))
    with pytest.raises(TokenRefreshError) as refused:
        list(client.search_contacts(None, None))
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records) + str(refused.value)
    assert "not-a-real-refresh-token" not in logged and "s3cret-app" not in logged


def test_a_429_storm_is_survived_without_exceeding_the_limit(sim):
    sim.contact(email="storm@example.com")
    client, _, _ = oauth_client(sim, RecordingStore(sim.admin))
    client.max_attempts = 8
    list(client.search_contacts(None, None))  # holds a fresh access token before the storm
    sim.admin.post("/faults", json={"storm_429": {"count": 5, "retry_after_s": 1}}).raise_for_status()
    started = time.monotonic()
    assert [c["email"] for c in client.search_contacts(None, None)] == ["storm@example.com"]
    assert client.metrics.rate_limited == 5
    assert time.monotonic() - started >= 5.0  # no retry went out before its Retry-After second had passed


def test_5xx_and_timeouts_are_retried(sim):
    sim.contact(email="flaky@example.com")
    client, _, _ = oauth_client(sim, RecordingStore(sim.admin))
    client.http.timeout = httpx.Timeout(1.0)
    list(client.search_contacts(None, None))  # holds an access token, so the faults meet API calls
    sim.admin.post("/faults", json={"server_errors": {"count": 2, "status": 502},
                                    "timeouts": {"count": 1, "hold_s": 3}}).raise_for_status()
    assert [c["email"] for c in client.search_contacts(None, None)] == ["flaky@example.com"]
    assert client.metrics.retries == 3


def test_a_write_refused_with_422_is_not_retried(sim):
    contact = sim.contact(email="ok@example.com")
    client, _, _ = oauth_client(sim, RecordingStore(sim.admin))
    with pytest.raises(ApiError) as refused:
        client.update_contact(contact["id"], {"email": "not-an-email"})
    assert refused.value.status == 422 and contact["id"] in str(refused.value)
    assert client.metrics.retries == 0
