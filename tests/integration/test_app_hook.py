"""The profile-driven app client against each app's simulator: every paging style walks every
record exactly once, and the window keeps only what changed in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_sync.hooks.app import AppClient
from crm_sync.http import ApiError
from crm_sync.profile import profile_by_name

from harness.demo_apps import COLLECTIONS, UPDATED_FORMAT
from tests.conftest import APP_KEY, CLIENT_ID, CLIENT_SECRET

pytestmark = [pytest.mark.integration]
APPS = ["gymdesk", "gymflow", "mygadgetrepairs", "gist", "generic"]
BASE_PATH = {"mygadgetrepairs": "/v1"}
PEOPLE = 130  # more than two pages in every app's paging


def stamp(app: str, moment: datetime):
    fmt = UPDATED_FORMAT.get(app, "iso")
    if fmt == "unix":
        return int(moment.timestamp())
    return moment.strftime(fmt if fmt != "iso" else "%Y-%m-%dT%H:%M:%SZ")


def person(app: str, n: int, moment: datetime) -> dict:
    api = profile_by_name(app).app.entities["contact"]
    record_id = n if app in ("mygadgetrepairs", "gist") else f"p-{n}"
    return {api.id_field: record_id, "email": f"person{n}@example.com", api.updated_at_field: stamp(app, moment)}


def client(app: str, sim) -> AppClient:
    profile = profile_by_name(app)
    if profile.app.auth.type == "oauth_client_credentials":
        from crm_sync.hooks.oauth import OAuthClient, RotatingOAuth

        class Memory:
            token = None

            def load(self):
                return self.token

            def save(self, token):
                self.token = token

        oauth = OAuthClient(CLIENT_ID, CLIENT_SECRET, f"{sim.url}/oauth/token", user_type=None, client_credentials=True)
        return AppClient(sim.url, profile.app, auth=RotatingOAuth(oauth, Memory(), None))
    return AppClient(sim.url + BASE_PATH.get(app, ""), profile.app, secret=APP_KEY)


@pytest.mark.parametrize("app_sim", APPS, indirect=True)
def test_every_paging_style_walks_every_record_once_and_windows_cut_by_updated_at(app_sim):
    app = app_sim.name
    start = datetime(2026, 11, 10, tzinfo=UTC)
    app_sim.seed(COLLECTIONS[app]["contact"], [person(app, n, start + timedelta(hours=n)) for n in range(PEOPLE)])
    api = client(app, app_sim)
    id_field = profile_by_name(app).app.entities["contact"].id_field
    try:
        everyone = [str(r[id_field]) for r in api.list_changed("contact", None, None)]
        assert len(everyone) == PEOPLE and len(set(everyone)) == PEOPLE
        since, until = start + timedelta(hours=100), start + timedelta(hours=110)
        window = sorted(str(r[id_field]) for r in api.list_changed("contact", since, until))
        expected = sorted(str(person(app, n, start)[id_field]) for n in range(100, 110))
        assert window == expected
    finally:
        api.close()


@pytest.mark.parametrize("app_sim", APPS, indirect=True)
def test_a_record_a_webhook_names_is_read_by_its_id_and_one_the_app_no_longer_has_is_none(app_sim):
    app = app_sim.name
    start = datetime(2026, 11, 10, tzinfo=UTC)
    app_sim.seed(COLLECTIONS[app]["contact"], [person(app, n, start) for n in range(3)])
    api = client(app, app_sim)
    id_field = profile_by_name(app).app.entities["contact"].id_field
    wanted = person(app, 1, start)[id_field]
    try:
        found = api.get("contact", str(wanted))
        assert found is not None and str(found[id_field]) == str(wanted) and found["email"] == "person1@example.com"
        assert api.get("contact", "999999" if isinstance(wanted, int) else "p-999") is None
    finally:
        api.close()


@pytest.mark.parametrize("app_sim", ["gymdesk"], indirect=True)
def test_a_record_the_app_refuses_is_left_to_the_batch_and_the_others_are_still_read(app_sim, caplog):
    """One bad event must not stall the fast lane: a 4xx for one record (not 429) is logged, naming the
    record and never the key, and the others are read; a server error still fails the read."""
    from crm_sync.pipeline.extract_named import read_app_records

    start = datetime(2026, 11, 10, tzinfo=UTC)
    app_sim.seed(COLLECTIONS["gymdesk"]["contact"], [person("gymdesk", n, start) for n in range(3)])
    api = client("gymdesk", app_sim)
    named = {"contact": {"p-0", "p-1", "p-2", "p-999"}}
    try:
        app_sim.admin.post("/faults", json={"statuses": [403]}).raise_for_status()  # met by p-0, read first
        with caplog.at_level("WARNING", logger="crm_sync.pipeline.extract_named"):
            records, refused = read_app_records(api, named, ["contact", "task"])
        assert sorted(r["id"] for _, r in records) == ["p-1", "p-2"] and refused == [("contact", "p-0")]
        assert "contact p-0" in caplog.text and "403" in caplog.text and APP_KEY not in caplog.text

        api.max_attempts = 1  # no retries: the 5xx is the answer
        app_sim.admin.post("/faults", json={"statuses": [503]}).raise_for_status()
        with pytest.raises(ApiError) as failed:
            read_app_records(api, named, ["contact"])
        assert failed.value.status == 503
        app_sim.admin.post("/faults", json={"statuses": [401]}).raise_for_status()  # about the key, not p-0
        with pytest.raises(ApiError):
            read_app_records(api, named, ["contact"])
    finally:
        api.close()
