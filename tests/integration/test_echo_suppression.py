"""Echo suppression (issue 7): what we wrote is recognised when it is read back, so runs with no
outside change write nothing and read nothing beyond the incremental listings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from harness.demo_apps import app_seed, ghl_children
from harness.demo_data import build
from tests.conftest import app_connection_env, run_dag

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
# The incremental listings: GHL's contact search and task search, the app's changed-since lists.
LISTINGS = {"POST /contacts/search", "POST /locations/{location_id}/tasks/search",
            "GET /api/v2/contacts", "GET /api/v2/tasks", "GET /api/v2/notes"}


@pytest.mark.parametrize("app_sim", ["gymflow"], indirect=True)
def test_ten_runs_after_a_sync_write_nothing_and_read_only_the_listings(airflow_home, tmp_path, ghl_sim, app_sim):
    from crm_sync.profile import profile_by_name

    profile, now = profile_by_name("gymflow"), datetime.now(UTC)
    data = build(now.date())
    data.ghl_children = ghl_children(profile, data, now)
    for collection, rows in {"contacts": data.ghl_contacts, **data.ghl_children}.items():
        ghl_sim.seed(collection, rows)
    for collection, rows in app_seed(profile, data, now).items():
        app_sim.seed(collection, rows)
    env = {**app_connection_env("gymflow", ghl_sim.url, app_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}
    run_dag(airflow_home, "ghl_gymflow", env)
    assert len(ghl_sim.records("tasks")) > 3 and len(app_sim.records("notes")) > 3  # children were synced

    for run in range(10):
        ghl_sim.reset_calls()
        app_sim.reset_calls()
        run_dag(airflow_home, "ghl_gymflow", env)
        calls = {k: v for k, v in {**ghl_sim.calls(), **app_sim.calls()}.items() if k != "total"}
        assert not [k for k in calls if k.split(" ")[0] in WRITE_VERBS and k not in LISTINGS], (run, calls)
        assert set(calls) <= LISTINGS, (run, calls)
        assert calls["POST /contacts/search"] == 1, (run, calls)
