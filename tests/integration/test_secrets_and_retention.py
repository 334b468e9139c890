"""Secrets and personal data: tokens obtained at run time are masked, reports are owner-only, and
expired raw records, quarantine rows, report files and webhook events are deleted at the end of a run."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa
from airflow.sdk._shared.secrets_masker.secrets_masker import redact
from crm_sync.paths import data_home
from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.report import RunFailed, report
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import quarantine, raw_record, webhook_done, webhook_inbox

from tests.conftest import APP_KEY, ROOT
from tests.integration.test_app_hook import client
from tests.integration.test_malformed_records import warehouse  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize("app_sim", ["generic"], indirect=True)
def test_oauth_tokens_obtained_at_run_time_are_masked(app_sim):
    api = client("generic", app_sim)
    try:
        api.lookup("contact", "private.person@example.com")
        auth = api.http.auth
        refresh = auth.store.load()
    finally:
        api.close()
    assert auth.access_token and refresh
    assert auth.access_token not in redact(f"oops {auth.access_token}")
    assert refresh not in redact(f"oops {refresh}")


@pytest.mark.parametrize("app_sim", ["gymflow"], indirect=True)
def test_an_email_in_a_query_string_never_reaches_the_logs_at_info(app_sim):
    """httpx logs each request line (with its query string, a lookup's email) at INFO. Airflow's
    logging quiets it in tasks; the one client every request goes through (crm_sync.http) quiets it
    wherever it runs: here a plain process logging at INFO, without Airflow."""
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        "from crm_sync.http import ApiClient\n"
        f"api = ApiClient({app_sim.url!r}, headers={{'Authorization': 'Bearer {APP_KEY}'}})\n"
        "api.request('GET', '/api/v2/contacts', params={'email': 'private.person@example.com'}, retry=False)\n"
        "assert 'airflow' not in sys.modules\n"
        "print('calls', api.metrics.calls)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"})
    assert done.returncode == 0, done.stderr
    assert "calls 1" in done.stdout  # the lookup was sent
    assert "private.person" not in done.stdout + done.stderr


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_reports_are_owner_only_and_expired_data_is_deleted(warehouse):  # noqa: F811
    profile = profile_by_name("gymdesk")
    profile = profile.model_copy(update={"ghl": profile.ghl.model_copy(update={"location_id": "mine"})})
    ctx = RunContext(profile=profile, run_id="manual__now", run_type="manual")
    old, new = utcnow() - timedelta(days=91), utcnow() - timedelta(days=89)
    events = [("mine", True, old), ("mine", True, new), ("theirs", True, old), ("nobody", False, old)]
    with warehouse.begin() as conn:
        for n, (location, routed, moment) in enumerate(events):
            conn.execute(sa.insert(webhook_inbox).values(
                id=n + 1, webhook_id=f"w{n}", location_id=location, event_type="ContactUpdate", contact_id="c",
                event_at=moment, received_at=moment, routed=routed, payload={"type": "ContactUpdate"}))
            conn.execute(sa.insert(webhook_done).values(profile="gymdesk", inbox_id=n + 1, run_id="r",
                                                        done_at=moment))
        for n, (profile, moment) in enumerate([("gymdesk", old), ("gymdesk", new), ("gist", old)]):
            conn.execute(sa.insert(raw_record).values(
                profile=profile, run_id=f"r{n}", side="app", entity="contact", record_key=f"k{n}", source_id=f"k{n}",
                payload={"id": f"k{n}"}, extracted_at=moment))
            conn.execute(sa.insert(quarantine).values(
                profile=profile, run_id=f"r{n}", side="app", entity="contact", source_id=f"k{n}", rule="x",
                detail="x", raw_id=n, created_at=moment))
    folder = data_home() / "reports" / "ghl_gymdesk"
    folder.mkdir(parents=True)
    expired, kept = folder / "manual__old.html", folder / "manual__recent.json"
    for path, moment in ((expired, old), (kept, new)):
        path.write_text("{}")
        os.utime(path, (moment.timestamp(), moment.timestamp()))

    with pytest.raises(RunFailed):  # nothing ran before it: the report is written all the same
        report(ctx)

    written = folder / "manual__now.html"
    for path in (written, written.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not expired.exists() and kept.exists()
    with warehouse.connect() as conn:
        left = {(r.profile, r.run_id) for r in conn.execute(sa.select(raw_record.c.profile, raw_record.c.run_id))}
        bad = {(r.profile, r.run_id) for r in conn.execute(sa.select(quarantine.c.profile, quarantine.c.run_id))}
    assert left == bad == {("gymdesk", "r1"), ("gist", "r2")}
    with warehouse.connect() as conn:  # webhook events: this location's old ones and old unrouted ones go
        kept_events = {r.webhook_id for r in conn.execute(sa.select(webhook_inbox.c.webhook_id))}
        done = {r.inbox_id for r in conn.execute(sa.select(webhook_done.c.inbox_id))}
    assert kept_events == {"w1", "w2"} and done == {2, 3}
