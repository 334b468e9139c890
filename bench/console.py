"""The console at a big location: people search, a person's page, the insights page and the runs list
with 100,000 people on both sides, on SQLite and on PostgreSQL.

A warehouse gets one profile (gymdesk) with --people people, each on both sides unless its status
says otherwise (9 in 10 synced; some GHL only, app only, waiting for review, quarantined, deleted):
their `person` rows (search keys filled as crm_sync.pipeline.people_search_keys folds them),
`staging_contact` rows of each side they are on, the `xref` of each linked pair, five activities
each in `person_activity` (a first-call task, a follow-up task, a note, two appointments, spread
around now), review candidates, and 50 runs (bench/console_runs.seed: run_log, raw records,
quarantine, outbox) with a `sync_changelog` row for a write of one person in five. Rows go in by
executemany in chunks (Core inserts), so 100,000 people seed in seconds.

Then, in-process (FastAPI's TestClient, Airflow's login dependencies stood in for), each timed
--repeat times after one warm-up, p95 in milliseconds:
- search: `GET /api/dags/<dag>/people?q=` by name, email and phone (typed differently from how it is
  stored);
- person: `GET /dags/<dag>/people/<id>` (the person's page);
- insights: `GET /dags/<dag>/insights?list=<each list>` (every list's count and one page);
- runs: `GET /dags/<dag>` (the runs list).
SQLite in a temporary folder first, then PostgreSQL at 127.0.0.1:5432 (user postgres) in a database
`bench_console_<pid>` created and dropped here (--no-pg skips it).
Prints one JSON object as its last line.

Run: .venv/bin/python bench/console.py [--people 100000] [--repeat 20] [--no-pg]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from crm_sync.pipeline import insights  # noqa: E402
from crm_sync.pipeline.people_search_keys import fold_name  # noqa: E402
from crm_sync.profile import Profile, profile_by_name  # noqa: E402
from crm_sync.warehouse.tables import (  # noqa: E402
    outbox,
    person,
    person_activity,
    review_candidate,
    staging_contact,
    sync_changelog,
    xref,
)

from bench.console_runs import seed as seed_runs  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)
CHUNK = 5000
FIRST = ["José", "Zoë", "Renée", "Łukasz", "Ana", "Chloé", "Søren", "Ines", "Noah", "Mia", "Liam", "Emma", "Olga",
         "Pat", "Dana", "Sam", "Alex", "Kim", "Jordan", "Taylor", "Björn", "Ngozi", "Aiko", "Mateo", "Élodie",
         "Kwame", "Priya", "Omar", "Fatima", "Chen", "Yusuf", "Lena", "Ivan", "Nadia", "Pablo", "Hana", "Tomás",
         "Greta", "Raúl", "Amélie"]
LAST = ["García", "Müller", "Smith", "Nguyen", "O'Brien", "Kowalski", "Dubois", "Rossi", "Silva", "Jensen",
        "Okafor", "Tanaka", "Patel", "Haddad", "Ivanova", "López", "Schmidt", "Brown", "Wilson", "Moore",
        "Novák", "Lindqvist", "Yilmaz", "Costa", "Fischer", "Kim", "Park", "Singh", "Ali", "Cohen", "Martin",
        "Bernard", "Romano", "Santos", "Pereira", "Andersen", "Hansen", "Popescu", "Horvat", "Zhang", "Wang",
        "Li", "Sato", "Suzuki", "Ortiz", "Ramos", "Ruiz", "Núñez", "Castro", "Vega"]
# status of person n by n % 100 (the contract's statuses; one side's id missing for *_only)
STATUS = ["ghl_only"] * 4 + ["app_only"] * 3 + ["review"] + ["quarantined"] + ["deleted"] + ["synced"] * 90


def _people(start: int, stop: int) -> dict[str, list[dict]]:
    """The rows of people ``start``..``stop`` (person ids start + 1 ...), per table."""
    rng = random.Random(start)
    rows: dict[str, list[dict]] = {"person": [], "staging_contact": [], "xref": [], "person_activity": [],
                                   "review_candidate": []}
    for n in range(start, stop):
        status = STATUS[n % 100]
        ghl_id = None if status == "app_only" else f"G{n:07d}"
        app_id = None if status == "ghl_only" else f"A{n:07d}"
        first, last = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
        email, phone = f"person{n}@example.org", f"+1555{n:07d}"
        seen = NOW - timedelta(hours=1 + (n * 37) % (60 * 24))
        on = [(side, sid) for side, sid in (("ghl", ghl_id), ("app", app_id)) if sid]
        folded = fold_name(f"{first} {last}")
        rows["person"].append({
            "person_id": n + 1, "profile": "gymdesk", "ghl_id": ghl_id, "app_id": app_id, "first_name": first,
            "last_name": last, "email": email, "phone": phone, "company_name": f"Company {n % 97}",
            "lead_source": "web" if n % 3 else None, "tags": ["member"], "status": status, "first_seen": seen,
            "last_synced": seen if status == "synced" else None, "ghl_changed_at": seen, "app_changed_at": seen,
            "winners": {"email": {"side": "ghl", "reason": "last_write_wins", "run_id": "r"}},
            "search_name": " | ".join([folded] * len(on)), "search_email": " ".join([email] * len(on)),
            "search_phone": " ".join([phone[1:]] * len(on)), "run_id": "seed", "updated_at": NOW})
        for side, sid in on:
            rows["staging_contact"].append({
                "profile": "gymdesk", "side": side, "source_id": sid, "email": email, "phone": phone,
                "first_name": first, "last_name": last, "company_name": f"Company {n % 97}", "lead_source": "web",
                "tags": ["member"], "deleted": status == "deleted", "updated_at": seen, "content_hash": "0" * 64,
                "run_id": "seed"})
        if ghl_id and app_id and status != "review":
            rows["xref"].append({"profile": "gymdesk", "entity": "contact", "ghl_id": ghl_id, "app_id": app_id,
                                 "ghl_hash": "0" * 64, "app_hash": "0" * 64, "updated_at": seen})
        if status == "review":
            rows["review_candidate"].append({"profile": "gymdesk", "ghl_id": ghl_id, "app_id": f"A{n + 1:07d}x",
                                             "reason": "by email, another first name", "run_id": "seed"})
        sides = "both" if len(on) == 2 else on[0][0]
        call = rng.random()
        for k, (entity, title, at, state) in enumerate((
                ("task", "Call new lead", seen + timedelta(hours=24),
                 "completed" if call < 0.85 else "open" if call < 0.95 else "deleted"),
                ("task", "Follow-up reminder", NOW + timedelta(hours=rng.randint(-20 * 24, 20 * 24)),
                 rng.choice(("open", "completed", "completed"))),
                ("note", "Asked about the family plan", seen + timedelta(hours=2), None),
                ("appointment", "Trial class", NOW + timedelta(hours=rng.randint(-30 * 24, 30 * 24)),
                 rng.choice(("confirmed", "confirmed", "cancelled", "showed"))),
                ("appointment", "Intro session", seen + timedelta(days=1), "showed"))):
            rows["person_activity"].append({
                "profile": "gymdesk", "entity": entity, "person_id": n + 1,
                "ghl_id": f"G{entity[0]}{n:07d}{k}" if sides != "app" else None,
                "app_id": f"A{entity[0]}{n:07d}{k}" if sides != "ghl" else None, "sides": sides, "title": title,
                "status": state, "at_utc": at, "at_local": at.isoformat(), "zone": "UTC", "run_id": "seed",
                "updated_at": NOW})
    return rows


TABLES = {"person": person, "staging_contact": staging_contact, "xref": xref, "person_activity": person_activity,
          "review_candidate": review_candidate}


def seed(conn: sa.Connection, profile: Profile, people: int, runs: int = 50) -> dict[str, int]:
    """``people`` people on both sides with five activities each, and ``runs`` runs; row counts per table."""
    counts: dict[str, int] = {}
    conn = conn.execution_options(insertmanyvalues_page_size=CHUNK)  # PostgreSQL: one INSERT per chunk, not per 1,000
    for start in range(0, people, CHUNK):
        for name, rows in _people(start, min(start + CHUNK, people)).items():
            if rows:
                conn.execute(sa.insert(TABLES[name]), rows)
                counts[name] = counts.get(name, 0) + len(rows)
    seed_runs(conn, profile, runs, landed=20, writes=10)
    writes = conn.execute(sa.select(outbox.c.id, outbox.c.run_id, outbox.c.side, outbox.c.op, outbox.c.status,
                                    outbox.c.payload, outbox.c.created_at)).all()
    changelog = [{"outbox_id": w.id, "profile": "gymdesk", "entity": "contact", "side": w.side, "op": w.op,
                  "person_id": (w.id * 7919) % people + 1, "record_id": None, "before": None, "after": w.payload,
                  "decisions": [], "status": w.status, "run_id": w.run_id, "planned_at": w.created_at}
                 for w in writes]
    extra = [{"outbox_id": 10_000_000 + n, "profile": "gymdesk", "entity": "contact", "side": "ghl", "op": "update",
              "person_id": n + 1, "record_id": f"G{n:07d}", "before": {"email": "old@example.org"},
              "after": {"email": f"person{n}@example.org"}, "decisions": [], "status": "sent", "run_id": "seed",
              "sent_run_id": "seed", "planned_at": NOW, "sent_at": NOW} for n in range(0, people, 5)]
    logged = changelog + extra
    for start in range(0, len(logged), CHUNK):
        conn.execute(sa.insert(sync_changelog), logged[start:start + CHUNK])
    counts["sync_changelog"] = len(changelog) + len(extra)
    counts["runs"] = runs
    return counts


def percentile(seconds: list[float], share: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(seconds)
    return round(1000 * ordered[max(0, math.ceil(share * len(ordered)) - 1)], 1)


def timed(calls: list, repeat: int, each: dict[int, list[float]] | None = None) -> list[float]:
    """The seconds of ``repeat`` calls, cycling through ``calls`` (one warm-up call each first); ``each``
    collects them by the call's index too."""
    for call in calls:
        call()
    seconds = []
    for index, call in itertools.islice(itertools.cycle(enumerate(calls)), repeat):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
        if each is not None:
            each.setdefault(index, []).append(seconds[-1])
    return seconds


def _ok(answer: Any) -> Any:
    assert answer.status_code == 200, answer.text[:500]
    return answer


def measure(people: int, repeat: int) -> dict[str, Any]:
    """Seed the warehouse WAREHOUSE_URL names, then time the four reads."""
    from crm_sync.warehouse.db import engine
    from crm_sync.web import security
    from crm_sync.web.app import create_app
    from fastapi.testclient import TestClient

    profile = profile_by_name("gymdesk")
    began = time.perf_counter()
    with engine().begin() as conn:
        counted = seed(conn, profile, people)
    # fresh statistics (and PostgreSQL's visibility map, for index-only scans), as autovacuum leaves them
    with engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if engine().dialect.name == "postgresql" else "ANALYZE"))
    seeded = time.perf_counter() - began

    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS, *security.READ_TASK_LOGS):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True
    client = TestClient(app)
    dag = profile.dag_id
    picks = random.Random(7).sample(range(people), 20)
    queries = []
    for n in picks[:5]:
        queries += [f"{FIRST[n % len(FIRST)]} {LAST[(n // len(FIRST)) % len(LAST)]}".upper(),  # a name, accents aside
                    f"Person{n}@Example.org",  # an email, case aside
                    f"(555) {n:07d}"[:9] + "-" + f"{n:07d}"[3:]]  # stored +1555NNNNNNN, typed (555) NNN-NNNN

    searches = [lambda q=q: _ok(client.get(f"/api/dags/{dag}/people", params={"q": q})) for q in queries]
    persons = [lambda n=n: _ok(client.get(f"/dags/{dag}/people/{n + 1}")) for n in picks]
    found = [searches[k]().json()["total_entries"] for k in range(3)]  # the searches find whom they look for
    assert all(found) and found[1] == 1 and found[2] == 1, found

    lists = [lambda name=name: _ok(client.get(f"/dags/{dag}/insights", params={"list": name}))
             for name in insights.LISTS]
    with engine().connect() as conn:
        sizes = insights.counts(conn, profile)
    shown = _ok(client.get(f"/dags/{dag}/insights", params={"list": "one_side"})).text
    assert f'1-{min(50, sizes["one_side"]):,} of {sizes["one_side"]:,}' in shown, shown[-3000:]
    per_list: dict[int, list[float]] = {}
    seconds = {"search": timed(searches, repeat), "person": timed(persons, repeat),
               "insights": timed(lists, repeat, per_list),
               "runs": timed([lambda: _ok(client.get(f"/dags/{dag}"))], repeat)}
    result: dict[str, Any] = {f"{what}_p95_ms": percentile(took, 0.95) for what, took in seconds.items()}
    result["p50_ms"] = {what: percentile(took, 0.5) for what, took in seconds.items()}  # the noise beside p95
    result["insights_max_ms_by_list"] = {name: round(1000 * max(per_list.get(index, [0])), 1)
                                         for index, name in enumerate(insights.LISTS)}
    engine().dispose()
    return {"people": people, "seed_s": round(seeded, 1), "rows": counted, "list_sizes": sizes,
            **result}


def _postgres(people: int, repeat: int) -> dict[str, Any]:
    from crm_sync.warehouse.db import engine
    from harness.celery_stack import postgres_database

    with postgres_database("bench_console") as url:
        os.environ["WAREHOUSE_URL"] = url
        engine.cache_clear()
        try:
            return measure(people, repeat)
        finally:
            engine.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    from crm_sync.warehouse.db import engine

    with tempfile.TemporaryDirectory(prefix="console-bench-") as home:
        os.environ["CRM_SYNC_HOME"] = home
        os.environ["WAREHOUSE_URL"] = f"sqlite:///{home}/warehouse.db"
        engine.cache_clear()
        result = measure(args.people, args.repeat)
        if not args.no_pg:
            pg = _postgres(args.people, args.repeat)
            result.update({f"{key}_pg": value for key, value in pg.items() if key != "people"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
