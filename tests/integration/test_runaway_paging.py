"""Paging always ends: against each app's simulator (every paging style) and GHL's two searches,
a server that ignores the position and always says "more" fails the read with an error naming
the entity and the profile setting, after a bounded number of calls."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crm_sync.hooks.ghl import BearerToken, GHLClient, GHLConfig
from crm_sync.paging import PagingRunaway
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import PagingLimits, ProfileError, parse_profile, profile_by_name

from harness.demo_apps import COLLECTIONS
from harness.demo_data import LOCATION_ID
from tests.conftest import GHL_TOKEN
from tests.integration.test_app_hook import APPS, client, person

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize("app_sim", APPS, indirect=True)
def test_an_app_that_pages_forever_fails_the_read_naming_entity_and_setting(app_sim):
    app = app_sim.name
    start = datetime(2026, 11, 10, tzinfo=UTC)
    one = person(app, 0, start)  # a full page in every style (the largest page asked for is 100)
    id_field = next(iter(one))
    app_sim.seed(COLLECTIONS[app]["contact"],
                 [{**one, id_field: n if isinstance(one[id_field], int) else f"p-{n}"} for n in range(101)])
    app_sim.admin.post("/faults", json={"endless_pages": True}).raise_for_status()
    api = client(app, app_sim)
    try:
        with pytest.raises(PagingRunaway) as stopped:
            list(api.list_changed("contact", None, None))
    finally:
        api.close()
    assert "contacts" in str(stopped.value) and "app.entities.contact.pagination" in str(stopped.value)
    assert api.metrics.calls == 2  # the second page brought nothing new: stop there


@pytest.mark.parametrize("app_sim", ["gymdesk"], indirect=True)
def test_a_read_past_the_profiles_page_limit_fails_naming_max_pages(app_sim):
    start = datetime(2026, 11, 10, tzinfo=UTC)
    one = person("gymdesk", 0, start)
    app_sim.seed(COLLECTIONS["gymdesk"]["contact"], [{**one, "id": f"p-{n}"} for n in range(30)])
    api = client("gymdesk", app_sim)
    spec = api.api.entities["contact"]
    paging = spec.pagination.model_copy(update={"size": 5, "max_pages": 3})
    api.api = api.api.model_copy(update={"entities": {**api.api.entities,
                                                      "contact": spec.model_copy(update={"pagination": paging})}})
    try:
        with pytest.raises(PagingRunaway, match=r"more than 3 pages .* app\.entities\.contact\.pagination\.max_pages"):
            list(api.list_changed("contact", None, None))
    finally:
        api.close()


def ghl_client(sim, **paging: PagingLimits) -> GHLClient:
    return GHLClient(GHLConfig(base_url=sim.url, location_id=LOCATION_ID, auth=BearerToken(GHL_TOKEN)),
                     page_limit=2, paging=paging)


def test_ghl_searches_that_ignore_the_cursor_or_skip_stop_with_a_clear_error(ghl_sim):
    ghl_sim.seed("contacts", [{"id": f"c{i}", "locationId": LOCATION_ID, "dateAdded": "2026-11-01T00:00:00.000Z",
                               "dateUpdated": f"2026-11-20T00:00:0{i}.000Z"} for i in range(5)])
    ghl_sim.seed("tasks", [{"id": f"t{i}", "contactId": "c0", "title": f"t{i}", "completed": False,
                            "dateAdded": f"2026-11-20T00:00:0{i}.000Z"} for i in range(5)])
    ghl_sim.admin.post("/faults", json={"ignore_paging": True}).raise_for_status()
    api = ghl_client(ghl_sim)
    try:
        with pytest.raises(PagingRunaway, match=r"GHL contacts .* ghl\.paging\.contact"):
            list(api.search_contacts(None, None))
        with pytest.raises(PagingRunaway, match=r"GHL tasks .* ghl\.paging\.task"):
            list(api.search_tasks(limit=2))
    finally:
        api.close()
    assert api.metrics.calls == 4


def test_ghl_task_search_is_bounded_by_the_profiles_record_limit(ghl_sim):
    ghl_sim.seed("contacts", [{"id": "c0", "locationId": LOCATION_ID, "dateAdded": "2026-11-01T00:00:00.000Z",
                               "dateUpdated": "2026-11-20T00:00:00.000Z"}])
    ghl_sim.seed("tasks", [{"id": f"t{i}", "contactId": "c0", "title": f"t{i}", "completed": False,
                            "dateAdded": f"2026-11-20T00:00:0{i}.000Z"} for i in range(7)])
    api = ghl_client(ghl_sim, task=PagingLimits(max_records=4))
    try:
        with pytest.raises(PagingRunaway, match=r"more than 4 records .* ghl\.paging\.task\.max_records"):
            list(api.search_tasks(limit=2))
    finally:
        api.close()


def test_profile_paging_limits_default_and_validate():
    profile = profile_by_name("gymdesk")
    assert profile.app.entities["contact"].pagination.max_pages >= 1000
    assert profile.ghl.paging == {} and PagingLimits().max_records >= 100_000
    text = (PROFILES_DIR / "gymdesk.yaml").read_text()
    with pytest.raises(ProfileError, match=r"key 'ghl\.paging\.task\.max_pages'"):
        parse_profile(text.replace("ghl:\n", "ghl:\n  paging: {task: {max_pages: 0}}\n", 1), "gymdesk.yaml")
    with pytest.raises(ProfileError, match=r"key 'ghl\.paging\.note.*'contact' or 'task'"):
        parse_profile(text.replace("ghl:\n", "ghl:\n  paging: {note: {max_pages: 5}}\n", 1), "gymdesk.yaml")
