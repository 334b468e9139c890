"""The console's report of ONE run with 100,000 writes: its first page and a search, against the same
pages of a 100-write run, side by side in one process.

A warehouse (SQLite in a temporary folder, or --warehouse-url) gets one profile (gymdesk) with two
manual runs written through the product's tables and `log_step`, as the steps write them: a big
one (--writes, 100,000 by default: contact writes to both sides with payloads, merged records and
decisions, sent, failed and pending; --writes // 100 rows quarantined) and a baseline of 100 writes
(1 quarantined). Then, through the real FastAPI app in-process (TestClient, Airflow's login
dependencies stood in for), median of --repeat: GET /dags/ghl_gymdesk/runs/<run> (its first page of
50 writes), and GET ...?q=<an email> (a search, one write found), for each run. The pages must say
"1-50 of 100,000" and "1-1 of 1". With --export, also the report task's full build (every write,
what the exported file holds), once. Prints one JSON object as its last line.

Run: .venv/bin/python bench/report_page.py [--writes 100000] [--repeat 5] [--warehouse-url URL] [--export]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from bench.console_runs import timed  # noqa: E402
from crm_sync.pipeline.context import RunContext, log_step  # noqa: E402
from crm_sync.profile import Profile, profile_by_name  # noqa: E402
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, xref  # noqa: E402

START = datetime(2026, 12, 1, tzinfo=UTC)
CHUNK = 5000


def _contact(n: int) -> dict:
    return {"email": f"member{n}@example.org", "phone": f"+1555{n:07d}", "first_name": f"First{n}",
            "last_name": f"Last{n}", "company_name": f"Company {n % 97}", "lead_source": "web",
            "tags": ["member", f"cohort-{n % 12}"]}


def seed_run(conn: sa.Connection, profile: Profile, run_id: str, writes: int, offset: int = 0) -> None:
    """One manual run of ``profile`` that read ``writes`` contacts from the app, planned a write of each
    to GHL (a create for one in three, else an update) and sent most: 4 in 5 sent, 1 in 10 failed, the
    rest pending; one record in 100 quarantined. Person numbers start at ``offset``."""
    ctx = RunContext(profile, run_id, "manual")
    people = range(offset, offset + writes)
    for side in ("ghl", "app"):
        log_step(conn, ctx, "extract", {"extracted": writes if side == "app" else 0, "unchanged": 0,
                                        "by_entity": {"contact": writes if side == "app" else 0},
                                        "window_mode": "watermark", "api": {"calls": writes // 100}}, side=side)
    bad = [n for n in people if n % 100 == 0]
    for start in range(0, len(bad), CHUNK):
        raw_ids = conn.execute(sa.insert(raw_record).returning(raw_record.c.id), [
            {"profile": profile.name, "run_id": run_id, "side": "app", "entity": "contact", "record_key": f"app{n}",
             "source_id": f"app{n}", "extracted_at": START,
             "payload": {"id": f"app{n}", "email": f"member{n}@@example", "firstName": f"Bad{n}"}}
             for n in bad[start:start + CHUNK]]).scalars().all()
        conn.execute(sa.insert(quarantine), [
            {"profile": profile.name, "run_id": run_id, "side": "app", "entity": "contact", "source_id": f"app{n}",
             "rule": "email_format", "detail": f"not an email: member{n}@@example", "raw_id": raw_id,
             "created_at": START} for n, raw_id in zip(bad[start:start + CHUNK], raw_ids, strict=True)])
    log_step(conn, ctx, "stage", {"staged": writes - len(bad)})
    log_step(conn, ctx, "validate", {"validated": writes, "failed": len(bad), "bad_share": len(bad) / max(writes, 1),
                                     "threshold": profile.quality_threshold, "passed": True, "expectations": []})
    for start in range(0, writes, CHUNK):
        chunk = people[start:start + CHUNK]
        links = conn.execute(sa.insert(xref).returning(xref.c.id), [
            {"profile": profile.name, "entity": "contact", "ghl_id": None if n % 3 == 0 else f"ghl{n}",
             "app_id": f"app{n}", "updated_at": START} for n in chunk]).scalars().all()
        rows = []
        for n, link in zip(chunk, links, strict=True):
            status = "sent" if n % 10 < 8 else "failed" if n % 10 == 8 else "pending"
            create = n % 3 == 0
            rows.append({
                "profile": profile.name, "run_id": run_id, "entity": "contact", "side": "ghl",
                "op": "create" if create else "update", "xref_id": link,
                "target_id": (f"ghl{n}" if status == "sent" else None) if create else f"ghl{n}",
                "payload": _contact(n), "merged": _contact(n), "source_hash": "0" * 64,
                "decisions": [{"field": "email", "winner": "app", "reason": "last_write_wins: the app's is newer",
                               "ghl": f"old{n}@example.org", "app": f"member{n}@example.org"}],
                "idempotency_key": f"{run_id}:{n}", "status": status, "created_at": START,
                "last_error": "409 duplicate" if status == "failed" else None,
                "sent_run_id": run_id if status in ("sent", "failed") else None})
        conn.execute(sa.insert(outbox), rows)
    log_step(conn, ctx, "reconcile", {"planned": writes})
    log_step(conn, ctx, "load", {"sent": writes * 8 // 10, "failed": writes // 10, "dead_letter": [],
                                 "api": {"ghl": {"calls": writes}, "app": {"calls": 0}}})
    log_step(conn, ctx, "report", {"dry_run": False, "generated_at": START.isoformat(timespec="seconds")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warehouse-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--export", action="store_true", help="also time the full build the exported file needs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-page-") as home:
        os.environ["CRM_SYNC_HOME"] = home
        os.environ["WAREHOUSE_URL"] = args.warehouse_url or f"sqlite:///{home}/warehouse.db"
        print(json.dumps(measure(args.writes, args.repeat, args.export)))


def measure(writes: int, repeat: int, export: bool = False) -> dict:
    """Seed the warehouse WAREHOUSE_URL names with a big run and a 100-write run, then time their pages."""
    from fastapi.testclient import TestClient

    from crm_sync.pipeline.report import build_report
    from crm_sync.warehouse.db import engine
    from crm_sync.web import security
    from crm_sync.web.app import create_app

    profile = profile_by_name("gymdesk")
    big, small = "manual__big", "manual__baseline"
    began = time.perf_counter()
    with engine().begin() as conn:
        seed_run(conn, profile, small, 100, offset=10_000_000)
        seed_run(conn, profile, big, writes)
    seeded = time.perf_counter() - began

    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS, *security.READ_TASK_LOGS):
        app.dependency_overrides[depends.dependency] = lambda: None
    client = TestClient(app)

    def page(run_id: str, **params):
        return lambda: client.get(f"/dags/{profile.dag_id}/runs/{quote(run_id, safe='')}", params=params)

    page(small)()  # warm up: templates compiled, profiles read once
    found = {"big": writes // 2 + 1, "small": 10_000_000 + 51}  # a sent write of each
    seconds: dict[str, float] = {}
    for name, run_id in (("small", small), ("big", big)):
        seconds[f"{name}_first_page_s"], first = timed(page(run_id), repeat)
        seconds[f"{name}_search_s"], search = timed(page(run_id, q=f"MEMBER{found[name]}@example.org"), repeat)
        total = writes if name == "big" else 100
        assert f'<span class="shown">1-50 of {total:,}</span>' in first, f"{name}: not the first page of {total:,}"
        assert '<span class="shown">1-1 of 1</span>' in search and f"member{found[name]}@example.org" in search
    result = {"writes": writes, "repeat": repeat, "seed_s": round(seeded, 1),
              **{k: round(v, 3) for k, v in seconds.items()},
              "first_page_ratio": round(seconds["big_first_page_s"] / seconds["small_first_page_s"], 1),
              "search_ratio": round(seconds["big_search_s"] / seconds["small_search_s"], 1)}
    if export:
        began = time.perf_counter()
        with engine().connect() as conn:
            full = build_report(conn, profile, big)
        result["export_build_s"] = round(time.perf_counter() - began, 1)
        assert len(full["writes"]) == writes
    engine().dispose()
    return result


if __name__ == "__main__":
    main()
