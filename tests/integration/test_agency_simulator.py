"""The GHL simulator's agency (company) install over real sockets: the Company token, the installed
locations paged and filtered per apps/oauth.json, location tokens minted and counted, uninstalls, and
each location's own rate and daily limits."""

from __future__ import annotations

import httpx
import pytest

from harness.simulators import ghl, spec
from harness.simulators.base import ServerThread, SimState

COMPANY = "companyAgency00000001"


class Agency:
    """A running simulator with one agency install; ``token`` is the agency's access token."""

    def __init__(self, url: str, install: dict[str, str]):
        self.url, self.install = url, install
        self.http = httpx.Client(base_url=url, timeout=10)
        answer = self.refresh(install["refresh_token"])
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["access_token"]

    def refresh(self, refresh_token: str, user_type: str = "Company") -> httpx.Response:
        return self.http.post("/oauth/token", data={
            "client_id": self.install["client_id"], "client_secret": self.install["client_secret"],
            "grant_type": "refresh_token", "refresh_token": refresh_token, "user_type": user_type})

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}", "Version": ghl.API_VERSION}

    def listed(self, **params: str) -> httpx.Response:
        query = {"companyId": COMPANY, "appId": self.install["app_id"], **params}
        return self.http.get("/oauth/installedLocations", params=query, headers=self.headers())

    def mint(self, location_id: str, token: str | None = None) -> httpx.Response:
        return self.http.post("/oauth/locationToken", data={"companyId": COMPANY, "locationId": location_id},
                              headers=self.headers(token))

    def search(self, token: str, location_id: str) -> httpx.Response:
        return self.http.post("/contacts/search", json={"locationId": location_id}, headers=self.headers(token))


def locations(count: int, **extra) -> list[dict]:
    return [{"id": f"loc{i:03d}", "name": f"Gym {i:03d}", "address": f"{i} Main St", **extra} for i in range(count)]


@pytest.fixture
def agency():
    sim = ghl.GHLSimulator({}, SimState(), access_token_ttl_s=3600)
    with ServerThread(ghl.create_app(sim)) as server:
        install = httpx.post(server.url + "/_sim/agency", timeout=10, json={
            "client_id": "agencyapp-abc123", "company_id": COMPANY, "locations": [
                *locations(45), {"id": "uninstalled1", "name": "Closed gym", "installed": False}]}).json()
        running = Agency(server.url, install)
        yield running
        running.http.close()


def test_the_agency_app_id_defaults_to_the_client_ids_part_before_the_dash_and_its_refresh_token_rotates(agency):
    assert agency.install["app_id"] == "agencyapp"
    used = agency.refresh(agency.install["refresh_token"])  # the fixture used it
    assert used.status_code == 400
    spec.validate_response("POST", "/oauth/token", 400, used.json())


def test_a_company_token_answer_matches_the_spec_and_names_no_location():
    sim = ghl.GHLSimulator({}, SimState())
    with ServerThread(ghl.create_app(sim)) as server:
        install = httpx.post(server.url + "/_sim/agency", json={"client_id": "a-b", "company_id": COMPANY}).json()
        form = {"client_id": "a-b", "client_secret": install["client_secret"], "grant_type": "refresh_token",
                "refresh_token": install["refresh_token"]}
        as_location = httpx.post(server.url + "/oauth/token", data={**form, "user_type": "Location"})
        answer = httpx.post(server.url + "/oauth/token", data={**form, "user_type": "Company"})
        again = httpx.post(server.url + "/oauth/token", data={**form, "user_type": "Company"})
    assert as_location.status_code == 400 and "user_type" in as_location.json()["message"]
    body = answer.json()
    spec.validate_response("POST", "/oauth/token", 200, body)
    assert body["userType"] == "Company" and body["companyId"] == COMPANY and "locationId" not in body
    assert {"oauth.readonly", "oauth.write", ghl.READ} <= set(body["scope"].split())
    assert again.status_code == 400  # rotated: the old refresh token died


def test_installed_locations_page_by_skip_and_limit_and_count_every_match(agency):
    default = agency.listed().json()
    assert len(default["locations"]) == 20 and default["count"] == 46  # the spec's default limit
    seen, skip = [], 0
    while True:
        page = agency.listed(skip=str(skip), limit="10", isInstalled="true").json()
        spec.validate_response("GET", "/oauth/installedLocations", 200, page)
        seen += [row["_id"] for row in page["locations"]]
        assert page["count"] == 45
        if len(page["locations"]) < 10:
            break
        skip += 10
    assert seen == [f"loc{i:03d}" for i in range(45)]


def test_installed_locations_filter_by_installation_and_name(agency):
    gone = agency.listed(isInstalled="false").json()
    assert [(row["_id"], row["isInstalled"]) for row in gone["locations"]] == [("uninstalled1", False)]
    named = agency.listed(query="gym 01").json()
    assert [row["_id"] for row in named["locations"]] == [f"loc{i:03d}" for i in range(10, 20)]
    assert named["count"] == 10
    assert agency.listed(appId="another-app").status_code == 400
    assert agency.listed(limit="ten").status_code == 422


def test_a_location_token_reads_only_its_location_and_each_mint_is_counted(agency):
    minted = agency.mint("loc001")
    assert minted.status_code == 200
    body = minted.json()
    spec.validate_response("POST", "/oauth/locationToken", 200, body)
    assert body["locationId"] == "loc001" and body["expires_in"] == 3600 and ghl.READ in body["scope"].split()
    assert agency.search(body["access_token"], "loc001").status_code == 200
    assert agency.search(body["access_token"], "loc002").status_code == 400
    agency.mint("loc001")
    agency.mint("loc002")
    assert agency.http.get("/_sim/agency/mints").json() == {"loc001": 2, "loc002": 1}


def test_only_an_agency_token_of_the_same_company_mints_and_lists(agency):
    location_token = agency.mint("loc001").json()["access_token"]
    refused = agency.mint("loc002", token=location_token)
    other_company = agency.http.post("/oauth/locationToken", data={"companyId": "elsewhere", "locationId": "loc001"},
                                     headers=agency.headers())
    company_on_contacts = agency.search(agency.token, "loc001")
    assert refused.status_code == 401 and refused.json()["error"] == "Unauthorized"
    assert other_company.status_code == 400 and "elsewhere" in other_company.json()["message"]
    assert company_on_contacts.status_code == 401
    assert agency.http.post("/oauth/locationToken", data={"companyId": COMPANY},
                            headers=agency.headers()).status_code == 422


def test_uninstalling_revokes_the_location_tokens_and_a_new_mint_names_the_location(agency):
    token = agency.mint("loc003").json()["access_token"]
    agency.http.patch("/_sim/agency/locations/loc003", json={"installed": False}).raise_for_status()
    after = agency.search(token, "loc003")
    again = agency.mint("loc003")
    assert after.status_code == 401
    assert again.status_code == 400 and again.json() == {
        "statusCode": 400, "message": "The app is not installed on location loc003"}
    assert "loc003" not in [row["_id"] for row in agency.listed(isInstalled="true", limit="100").json()["locations"]]
    agency.http.patch("/_sim/agency/locations/loc003", json={"installed": True}).raise_for_status()
    assert agency.search(agency.mint("loc003").json()["access_token"], "loc003").status_code == 200


def test_each_location_has_its_own_burst_and_daily_limits(agency):
    http = agency.http
    http.post("/_sim/agency/locations", json={"locations": [{"id": "tiny", "name": "Tiny", "burst_max": 2}]})
    http.patch("/_sim/agency/locations/loc004", json={"daily_max": 3}).raise_for_status()
    tiny, limited, other = (agency.mint(name).json()["access_token"] for name in ("tiny", "loc004", "loc005"))
    tiny_answers = [agency.search(tiny, "tiny") for _ in range(3)]
    daily_answers = [agency.search(limited, "loc004") for _ in range(4)]
    free = agency.search(other, "loc005")
    assert [r.status_code for r in tiny_answers] == [200, 200, 429]
    assert tiny_answers[0].headers["X-RateLimit-Max"] == "2" and tiny_answers[2].headers["Retry-After"]
    assert [r.status_code for r in daily_answers] == [200, 200, 200, 429]
    assert daily_answers[0].headers["X-RateLimit-Limit-Daily"] == "3"
    assert daily_answers[2].headers["X-RateLimit-Daily-Remaining"] == "0"
    assert free.status_code == 200 and free.headers["X-RateLimit-Max"] == "100"
    assert free.headers["X-RateLimit-Limit-Daily"] == "200000"


def test_listing_faults_drop_count_and_cap_the_page_size(agency):
    agency.http.post("/_sim/faults", json={"listing_without_count": True, "listing_max_limit": 50}
                     ).raise_for_status()
    page = agency.listed(limit="100", skip="0").json()
    spec.validate_response("GET", "/oauth/installedLocations", 200, page)  # count is optional in the spec
    assert "count" not in page and len(page["locations"]) == 46
    assert len(agency.listed(limit="10").json()["locations"]) == 10
    agency.http.post("/_sim/agency/locations", json={"locations": locations(120)}).raise_for_status()
    assert len(agency.listed(limit="100").json()["locations"]) == 50
