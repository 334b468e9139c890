"""What the app client does with answers our simulators never give: an app is not ours to trust."""

from __future__ import annotations

import httpx
from crm_sync.hooks.app import AppClient
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.reconcile.planner import Planner
from crm_sync.profile import profile_by_name


def test_a_lookup_takes_only_the_exact_email_even_when_the_app_ignores_its_filter():
    api = profile_by_name("mygadgetrepairs").app
    everyone = [{"id": 1, "email": "joann@example.com"}, {"id": 2, "email": "Ann@Example.com"}]
    client = AppClient("https://mgr.invalid/v1", api, secret="k")
    client.http = httpx.Client(base_url="https://mgr.invalid/v1",
                               transport=httpx.MockTransport(lambda request: httpx.Response(200, json=everyone)))
    assert client.lookup("contact", "ann@example.com")["id"] == 2
    assert client.lookup("contact", "nobody@example.com") is None


def test_when_both_sides_hold_the_same_full_name_ghl_decides_where_the_first_name_ends():
    planner = Planner(RunContext(profile_by_name("gist"), "r", "manual"), "contact")
    ghl = {"first_name": "Ludwig", "last_name": "van Beethoven"}
    app = {"first_name": "Ludwig van", "last_name": "Beethoven"}  # how "Ludwig van Beethoven" reads back
    planner.same_full_name(ghl, app)
    assert app == ghl
    other = {"first_name": "Ludwig", "last_name": "Beethoven"}
    planner.same_full_name(ghl, other)  # a real difference is left for the merge to decide
    assert other == {"first_name": "Ludwig", "last_name": "Beethoven"}
