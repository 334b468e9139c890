"""GHL client throughput against the API budget: one location sustained, and four at once.

Runs the GHL simulator on localhost with 100 ms latency and GHL's real limits (100 calls per
10 s and 200,000 per day, per location) and measures, in one run:

(a) sustained throughput of GHLClient over --seconds (>= 60) as a fraction of the 10 calls/s
    ceiling, and the 429s it met (target >= 0.95 and zero);
(b) is gone: the calls of the DAG's own runs are measured by bench/dag_budget.py;
(c) four locations synced at once, as a multiple of one location's throughput (about 4).

Prints one JSON object as its last line. Run: .venv/bin/python bench/ghl_extract.py
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from crm_sync.hooks.ghl import BearerToken, GHLClient, GHLConfig  # noqa: E402

from harness.simulators import ghl  # noqa: E402
from harness.simulators.base import ServerThread, SimState, iso_z  # noqa: E402

CEILING_PER_S = 10.0
LOCATIONS = [f"bench-location-{n}" for n in range(4)]


def token(location: str) -> str:
    return f"pit-bench-{location}"


def client_for(url: str, location: str) -> GHLClient:
    return GHLClient(GHLConfig(base_url=url, location_id=location, auth=BearerToken(token(location))))


def sustained_calls(url: str, location: str, seconds: float, contact_ids: list[str],
                    workers: int = 4) -> tuple[float, GHLClient]:
    """Calls per second one location's client sustains with ``workers`` threads sharing its limiter."""
    client = client_for(url, location)
    stop_at = time.monotonic() + seconds

    def worker(offset: int) -> None:
        n = offset
        while time.monotonic() < stop_at:
            client.request("GET", f"/contacts/{contact_ids[n % len(contact_ids)]}", retry=True)
            n += workers

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(worker, range(workers)))
    elapsed = time.monotonic() - started
    client.close()
    return client.metrics.calls / elapsed, client


def seed_location(admin: httpx.Client, location: str, contacts: int, changed: int, now: datetime) -> list[str]:
    """``contacts`` people, each with a task, a note and an appointment; the last ``changed`` edited lately."""
    rows: dict[str, list[dict]] = {"contacts": [], "tasks": [], "notes": [], "appointments": []}
    ids = []
    for i in range(contacts):
        updated = now - timedelta(minutes=10) if i >= contacts - changed else now - timedelta(days=30)
        contact_id = f"{location[-1]}c{i:06d}".ljust(20, "x")
        ids.append(contact_id)
        rows["contacts"].append({"id": contact_id, "locationId": location, "email": f"p{i}@{location}.example.com",
                                 "firstName": f"P{i}", "tags": [], "dateAdded": iso_z(now - timedelta(days=60)),
                                 "dateUpdated": iso_z(updated)})
        rows["tasks"].append({"id": f"t{contact_id}", "contactId": contact_id, "title": f"Call P{i}",
                              "body": "", "completed": False, "dueDate": iso_z(now + timedelta(days=2)),
                              "dateAdded": iso_z(updated)})
        rows["notes"].append({"id": f"n{contact_id}", "contactId": contact_id, "body": f"Note about P{i}",
                              "dateAdded": iso_z(updated)})
        start = now + timedelta(hours=i % 1000)
        rows["appointments"].append({"id": f"a{contact_id}", "contactId": contact_id, "locationId": location,
                                     "calendarId": "cal-bench", "title": "Session", "appointmentStatus": "confirmed",
                                     "startTime": iso_z(start), "endTime": iso_z(start + timedelta(hours=1))})
    for name, records in rows.items():
        for first in range(0, len(records), 2000):
            admin.post("/seed", json={name: records[first:first + 2000]}).raise_for_status()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the throughput run (a)")
    parser.add_argument("--scaling-seconds", type=float, default=30.0, help="length of each scaling run (c)")
    args = parser.parse_args()

    grants = {token(loc): {"location_id": loc, "scopes": [ghl.READ, ghl.WRITE]} for loc in LOCATIONS}
    sim = ghl.GHLSimulator(grants, SimState())
    now = datetime.now(UTC)
    with ServerThread(ghl.create_app(sim)) as server:
        admin = httpx.Client(base_url=server.url + "/_sim", timeout=60)
        ids = {loc: seed_location(admin, loc, 200, 0, now) for loc in LOCATIONS}
        admin.post("/faults", json={"latency_ms": 100}).raise_for_status()

        # (a) one location, sustained
        one_rate, one_client = sustained_calls(server.url, LOCATIONS[0], args.seconds, ids[LOCATIONS[0]])
        time.sleep(10)  # let every location's 10 s window empty before (c)

        # (c) four locations at once, each with its own budget
        results: dict[str, float] = {}
        clients: list[GHLClient] = []

        def run(location: str) -> None:
            rate, client = sustained_calls(server.url, location, args.scaling_seconds, ids[location])
            results[location] = rate
            clients.append(client)

        threads = [threading.Thread(target=run, args=(loc,)) for loc in LOCATIONS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate_limited = one_client.metrics.rate_limited + sum(c.metrics.rate_limited for c in clients)

    result = {
        "throughput_calls_per_s": round(one_rate, 3),
        "throughput_ratio": round(one_rate / CEILING_PER_S, 3),
        "rate_limited_429": rate_limited,
        "scaling_4_locations": round(sum(results.values()) / one_rate, 3),
        "seconds": args.seconds,
        "latency_ms": 100,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
