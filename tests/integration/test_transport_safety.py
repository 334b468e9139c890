"""Credentials go only over https (plain http only to this machine), only to the configured host,
and record ids cannot change the path they are sent on. Against the simulators over sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crm_sync.hooks.app import AppClient
from crm_sync.hooks.ghl import BearerToken, GHLClient, GHLConfig
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import ProfileError, parse_profile, profile_by_name
from crm_sync.transport import UnsafeTransport

from harness.demo_data import LOCATION_ID
from tests.conftest import APP_KEY, GHL_TOKEN
from tests.integration.test_app_hook import person

pytestmark = [pytest.mark.integration]
ODD_ID = "mem 1#top?x=1&y=%2F"


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://crm.example.com", "ftp://127.0.0.1"])
def test_credentials_are_never_sent_in_clear_text_to_another_machine(url):
    with pytest.raises(UnsafeTransport, match="use https"):
        AppClient(url, profile_by_name("gymdesk").app, secret=APP_KEY)
    with pytest.raises(UnsafeTransport, match="use https"):
        GHLClient(GHLConfig(base_url=url, location_id=LOCATION_ID, auth=BearerToken(GHL_TOKEN)))


@pytest.mark.parametrize("key", ["list_path", "path"])
@pytest.mark.parametrize("target", ["https://collector.example/v1/members", "//collector.example/v1/members"])
def test_a_profile_path_naming_another_host_is_refused_at_load(key, target):
    text = (PROFILES_DIR / "gymdesk.yaml").read_text().replace("path: /v1/members\n",
                                                               f"path: /v1/members\n      {key}: {target}\n", 1)
    with pytest.raises(ProfileError, match=rf"app\.entities\.contact\.{key}"):
        parse_profile(text, "gymdesk.yaml")


@pytest.mark.parametrize("app_sim", ["gymdesk"], indirect=True)
def test_a_request_to_another_host_is_refused_before_it_is_sent(app_sim):
    api = AppClient(app_sim.url, profile_by_name("gymdesk").app, secret=APP_KEY)
    try:
        with pytest.raises(UnsafeTransport, match="configured host"):
            api.request("GET", "http://127.0.0.2:9/steal", retry=True)
        assert api.metrics.calls == 0
    finally:
        api.close()


@pytest.mark.parametrize("app_sim", ["gymdesk"], indirect=True)
def test_ids_are_quoted_into_paths_on_the_app_and_on_ghl(app_sim, ghl_sim):
    odd = {**person("gymdesk", 1, datetime(2026, 11, 10, tzinfo=UTC)), "id": ODD_ID}
    app_sim.seed("members", [odd, {**odd, "id": "mem 1"}])
    api = AppClient(app_sim.url, profile_by_name("gymdesk").app, secret=APP_KEY)
    try:
        api.update("contact", ODD_ID, {"first_name": "Quoted"})
    finally:
        api.close()
    names = {m["id"]: m.get("first_name") for m in app_sim.records("members")}
    assert names[ODD_ID] == "Quoted" and names["mem 1"] != "Quoted"

    ghl_sim.seed("contacts", [{"id": cid, "locationId": LOCATION_ID, "email": f"{n}@example.com",
                               "dateAdded": "2026-11-01T00:00:00Z", "dateUpdated": "2026-11-01T00:00:00Z"}
                              for n, cid in enumerate(["c#1", "c"])])
    ghl = GHLClient(GHLConfig(base_url=ghl_sim.url, location_id=LOCATION_ID, auth=BearerToken(GHL_TOKEN)))
    try:
        assert ghl.update_contact("c#1", {"firstName": "Hash"})["id"] == "c#1"
    finally:
        ghl.close()
    assert {c["id"]: c.get("firstName") for c in ghl_sim.records("contacts")}["c"] is None
