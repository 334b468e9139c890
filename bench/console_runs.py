"""The console's runs list of a profile with 1,000 runs: one counts query against the old way, side
by side in one process.

A warehouse (SQLite in a temporary folder, or --warehouse-url) gets one profile (gymdesk) with
--runs runs, written through the product's tables and `log_step`: every run logs extract (both
sides), stage, validate, reconcile, load and report as the steps do; lands records on both sides,
queues writes with their payloads and decisions (sent, failed, pending), and quarantines a few rows;
one run in ten stops at validate. Then GET /dags/ghl_gymdesk (the runs list, its newest 100 runs) is
timed in-process (FastAPI's TestClient, Airflow's login dependency stood in for): as it is now
(crm_sync.pipeline.run_list: the run ids, their run_log rows and one counts query) and the old way
(the full report, writes and payloads, built for each run shown). Both pages must be the same HTML.
Prints one JSON object as its last line.

Run: .venv/bin/python bench/console_runs.py [--runs 1000] [--repeat 5] [--warehouse-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from crm_sync.pipeline.context import RunContext, log_step  # noqa: E402
from crm_sync.profile import Profile, profile_by_name  # noqa: E402
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, xref  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def _person(side: str, n: int) -> dict:
    return {"id": f"{side}{n}", "email": f"person{n}@example.org", "phone": f"+1555{n:07d}",
            "firstName": f"First{n}", "lastName": f"Last{n}", "companyName": f"Company {n % 97}",
            "source": "web", "tags": ["member", f"cohort-{n % 12}"], "dateUpdated": "2026-11-01T09:00:00Z"}


def seed(conn: sa.Connection, profile: Profile, runs: int, landed: int = 20, writes: int = 10) -> list[str]:
    """``runs`` hourly scheduled runs of ``profile``, oldest first; returns their run ids."""
    people = landed * 4  # records come back run after run: each person is linked once
    first_link = conn.execute(sa.insert(xref).returning(xref.c.id), [
        {"profile": profile.name, "entity": "contact", "ghl_id": f"ghl{n}", "app_id": f"app{n}",
         "updated_at": START} for n in range(people)]).scalars().all()[0]
    run_ids = []
    for i in range(runs):
        start = START + timedelta(hours=i)
        ctx = RunContext(profile, f"scheduled__{start.isoformat()}", "scheduled", start, start + timedelta(hours=1))
        run_ids.append(ctx.run_id)
        ids = [(i * 7 + k) % people for k in range(landed)]
        raw_ids = {}
        for side in ("ghl", "app"):
            raw_ids[side] = conn.execute(sa.insert(raw_record).returning(raw_record.c.id), [
                {"profile": profile.name, "run_id": ctx.run_id, "side": side, "entity": "contact",
                 "record_key": f"{side}{n}", "source_id": f"{side}{n}", "payload": _person(side, n),
                 "extracted_at": start} for n in ids]).scalars().all()
            log_step(conn, ctx, "extract", {"extracted": landed + 30, "landed": landed, "unchanged": 30,
                                            "by_entity": {"contact": landed + 30}, "window_mode": "interval",
                                            "api": {"calls": 3 + i % 5}}, side=side)
        conn.execute(sa.insert(quarantine), [
            {"profile": profile.name, "run_id": ctx.run_id, "side": side, "entity": "contact",
             "source_id": f"{side}{ids[0]}", "rule": "email_format", "detail": "not an email: broken.email@@example",
             "raw_id": raw_ids[side][0], "created_at": start} for side in ("ghl", "app")])
        log_step(conn, ctx, "stage", {"staged": 2 * landed - 2})
        passed = i % 10 != 9
        log_step(conn, ctx, "validate", {"validated": 2 * landed, "failed": 2, "newly_bad": 2, "bad_share": 0.05,
                                         "threshold": profile.quality_threshold, "passed": passed,
                                         "expectations": []})
        if passed:
            statuses = ("sent", "sent", "sent", "failed", "pending")
            conn.execute(sa.insert(outbox), [
                {"profile": profile.name, "run_id": ctx.run_id, "entity": "contact", "side": side,
                 "op": "update" if k % 2 else "create", "xref_id": first_link + ids[1 + k // 2],
                 "target_id": f"{side}{ids[1 + k // 2]}", "payload": _person(side, ids[1 + k // 2]),
                 "merged": _person("merged", ids[1 + k // 2]), "source_hash": "0" * 64,
                 "decisions": [{"field": "email", "winner": "ghl", "reason": "last_write_wins: GHL's is newer",
                                "ghl": "a@example.org", "app": "b@example.org", "value": "a@example.org"}],
                 "idempotency_key": f"{profile.name}:{ctx.run_id}:{side}:{k}", "status": statuses[k % len(statuses)],
                 "created_at": start} for k in range(writes) for side in ("ghl", "app") if k % 2 == (side == "app")])
            log_step(conn, ctx, "reconcile", {"planned": writes})
            log_step(conn, ctx, "load", {"sent": writes * 3 // 5, "failed": writes // 5, "dead_letter": [],
                                         "api": {"ghl": {"calls": writes // 2}, "app": {"calls": writes // 2}}})
        log_step(conn, ctx, "report", {"interval_start": ctx.interval_start.isoformat(),
                                       "interval_end": ctx.interval_end.isoformat(), "dry_run": False,
                                       "generated_at": (start + timedelta(hours=1)).isoformat(timespec="seconds")})
    return run_ids


def timed(get, repeat: int) -> tuple[float, str]:
    seconds, page = [], ""
    for _ in range(repeat):
        began = time.perf_counter()
        answer = get()
        seconds.append(time.perf_counter() - began)
        assert answer.status_code == 200, answer.text
        page = answer.text
    return statistics.median(seconds), page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warehouse-url", help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-runs-") as home:
        os.environ["CRM_SYNC_HOME"] = home
        os.environ["WAREHOUSE_URL"] = args.warehouse_url or f"sqlite:///{home}/warehouse.db"
        print(json.dumps(measure(args.runs, args.repeat)))


def measure(runs: int, repeat: int) -> dict:
    """Seed the warehouse WAREHOUSE_URL names, then time the runs list both ways."""
    from fastapi.testclient import TestClient

    from crm_sync.pipeline.report import build_report
    from crm_sync.pipeline.run_list import newest_run_ids
    from crm_sync.warehouse.db import engine
    from crm_sync.web import security, services
    from crm_sync.web.app import create_app

    profile = profile_by_name("gymdesk")
    began = time.perf_counter()
    with engine().begin() as conn:
        seed(conn, profile, runs)
    seeded = time.perf_counter() - began

    app = create_app()
    app.dependency_overrides.update({depends.dependency: lambda: None for depends in security.READ_DAG})
    client = TestClient(app)

    def get():
        return client.get(f"/dags/{profile.dag_id}")

    now_s, now_page = timed(get, repeat)
    counted = services.runs_page

    def old_way(conn, profile, limit, offset, state=None, dry_run=None):  # the full report of each run shown
        return ([build_report(conn, profile, run_id) for run_id in newest_run_ids(conn, profile.name, limit, offset)],
                runs)

    services.runs_page = old_way
    try:
        old_s, old_page = timed(get, repeat)
    finally:
        services.runs_page = counted
    assert now_page == old_page, "the runs list is not the page it was"
    engine().dispose()
    assert now_page.count('<td class="title">') == min(runs, 100)
    return {"runs": runs, "runs_shown": min(runs, 100), "seed_s": round(seeded, 1), "runs_list_s": round(now_s, 3),
            "old_way_s": round(old_s, 3), "speedup": round(old_s / now_s, 1), "same_page": True}


if __name__ == "__main__":
    main()
