"""GHL webhooks on localhost: the receiver under a burst and under attack, and the time from an edit
in GHL to the write in the app through Airflow.

Starts GHL's and Gymdesk's simulators, an Airflow api-server serving the crm_sync receiver and a
scheduler (harness/webhook_lab.py), lets the first scheduled run sync the seeded contacts, then:

(a) a burst of --burst signed ContactUpdate events from 16 threads (one that gets no answer is
    sent again, up to 3 times, as GHL redelivers): answers, inbox rows, answer time p99, beside the p99 of the same api-server's /execution/health (the baseline: what any
    answer of that server costs on this machine), and the runs the burst became;
(b) forged (another key), altered, stale (signed, 6 minutes old), replayed and unsigned attempts:
    ``forged_accepted`` counts those answered 2xx as new or that added an inbox row;
(c) --edits contact edits made through GHL's API, one every --spacing seconds: the time from each
    edit to the member holding the new value in Gymdesk, through webhook -> inbox -> asset -> the
    profile's fast lane (one Airflow task);
(d) the same for Gymdesk's own webhooks (HMAC-SHA256, the gymdesk profile's ``app.webhooks``): a burst
    of --app-burst signed member events (``app_accepted``), the same attacks (``app_forged_accepted``),
    and --edits member edits through Gymdesk's API, each timed to the GHL contact holding the new value.
``processed_twice``: inbox events the extracts of more than one successful run used.

Prints one JSON object as its last line. Run: .venv/bin/python bench/webhooks.py
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from harness.demo import APP_WEBHOOK_SECRET  # noqa: E402
from harness.demo_data import LOCATION_ID  # noqa: E402
from harness.simulators import ghl_keys  # noqa: E402
from harness.simulators.gymdesk import PUSH  # noqa: E402
from harness.webhook_lab import Lab, event, lab, post_all, signed  # noqa: E402

PAST = "2026-11-01T09:00:00Z"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def contacts(n: int) -> list[dict]:
    return [{"id": f"ghlBench{i:011d}", "locationId": LOCATION_ID, "email": f"bench{i}@example.com",
             "firstName": f"Bench{i}", "lastName": "Person", "tags": [], "dateAdded": PAST, "dateUpdated": PAST}
            for i in range(n)]


def attacks(receiver: str) -> dict[str, int]:
    """Each kind of attempt once per round, 20 rounds; how many were let in."""
    other = Ed25519PrivateKey.generate()
    let_in = 0
    kinds = 0
    for _ in range(20):
        raw, headers = signed(event("ContactUpdate", id="ghlBench00000000000"))
        stale_raw, stale_headers = signed({**event("ContactUpdate", id="ghlBench00000000000"),
                                           "timestamp": (datetime.now(UTC) - timedelta(minutes=6)).isoformat()})
        attempts = [
            (raw, {**headers, "X-GHL-Signature": ghl_keys.sign(raw, other)}),  # forged
            (raw.replace(b"ContactUpdate", b"ContactDelete"), headers),  # altered
            (stale_raw, stale_headers),  # stale
            (raw, {"Content-Type": "application/json"}),  # unsigned
        ]
        first = httpx.post(receiver, content=raw, headers=headers)  # the genuine one, then its replay
        replay = httpx.post(receiver, content=raw, headers=headers)
        let_in += int(first.status_code != 200) + int(replay.json().get("status") != "duplicate")
        let_in += sum(1 for body, head in attempts if httpx.post(receiver, content=body, headers=head).is_success)
        kinds += 5
    return {"attempts": kinds, "let_in": let_in}


def app_signed(body: dict, secret: str = APP_WEBHOOK_SECRET) -> tuple[bytes, dict[str, str]]:
    """A body signed as Gymdesk's simulator signs its webhooks."""
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", **PUSH.signing.headers(raw, secret)}


def member_event(member: dict) -> dict:
    return {"id": f"evt_{uuid.uuid4().hex}", "type": "member.updated",
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "data": member}


def app_attacks(receiver: str, member: dict) -> dict[str, int]:
    """The attacks of ``attacks`` on the app's receiver: another secret, an altered body, a stale
    timestamp, no signature, and the genuine event twice (the replay must be a duplicate)."""
    let_in = kinds = 0
    for _ in range(20):
        raw, headers = app_signed(member_event(member))
        stale = (datetime.now(UTC) - timedelta(minutes=6)).isoformat().replace("+00:00", "Z")
        stale_sig = hmac.new(APP_WEBHOOK_SECRET.encode(), stale.encode() + b"." + raw, hashlib.sha256).hexdigest()
        attempts = [
            app_signed(json.loads(raw), "another-secret"),  # forged
            (raw.replace(b"member.updated", b"member.deleted"), headers),  # altered
            (raw, {**headers, PUSH.signing.header: stale_sig, PUSH.signing.timestamp_header: stale}),  # stale
            (raw, {"Content-Type": "application/json"}),  # unsigned
        ]
        first = httpx.post(receiver, content=raw, headers=headers)
        replay = httpx.post(receiver, content=raw, headers=headers)
        let_in += int(first.status_code != 200) + int(replay.json().get("status") != "duplicate")
        let_in += sum(1 for body, head in attempts if httpx.post(receiver, content=body, headers=head).is_success)
        kinds += 5
    return {"attempts": kinds, "let_in": let_in}


def timed_edits(edit, arrived, people: list[dict], spacing: float, deadline: float, what: str) -> list[float]:
    """``edit(person, value)`` each person one after another, ``spacing`` apart; then the seconds from
    each edit until ``arrived()`` (email -> value the other side holds) shows its value."""
    edited: dict[str, tuple[str, float]] = {}
    latencies: dict[str, float] = {}

    def look(until: float) -> None:
        """Read the other side every 0.25 s until ``until``, noting when each edit arrived; between the
        edits too, so an edit's time runs from its own start, not from the last edit's."""
        while True:
            holds = arrived()
            for email, (value, started) in edited.items():
                if email not in latencies and holds.get(email) == value:
                    latencies[email] = time.monotonic() - started
            if time.monotonic() >= until or (until == deadline and len(latencies) == len(edited)):
                return
            time.sleep(0.25)

    for n, person in enumerate(people):
        value = f"Edited {what} {n} {time.time():.0f}"
        edit(person, value)
        edited[person["email"]] = (value, time.monotonic())
        look(time.monotonic() + spacing)
    look(deadline)
    if len(latencies) < len(edited):
        raise TimeoutError(f"{len(edited) - len(latencies)} {what} edits never reached the other side")
    return list(latencies.values())


def companies(bench: Lab, side: str) -> dict[str, str]:
    """email -> company, as one side holds it now."""
    records, field = ("contacts", "companyName") if side == "ghl" else ("members", "company")
    return {r.get("email"): r.get(field) for r in bench.sides.admin[side].get(f"/records/{records}").json()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--app-burst", type=int, default=200, help="signed Gymdesk events sent at once")
    parser.add_argument("--edits", type=int, default=20, help="edits on each side")
    parser.add_argument("--spacing", type=float, default=3.0, help="seconds between two edits in GHL")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--home", type=Path, help="keep the Airflow home and logs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    people = contacts(max(2 * args.edits, 2))  # the first half edited in GHL, the second in Gymdesk
    with (nullcontext(str(args.home)) if args.home else tempfile.TemporaryDirectory(prefix="bench-webhooks-")) as home, \
            lab(Path(home), {"contacts": people}, {}, timeout=args.timeout) as bench:
        first_runs = len(bench.runs())
        stored_before, _ = bench.inbox()
        health = f"http://127.0.0.1:{bench.services.port}/execution/health"
        baseline = _gets(health, args.burst)
        burst = [signed(event("ContactUpdate", id=people[n % len(people)]["id"])) for n in range(args.burst)]
        started = time.perf_counter()
        answers = post_all(bench.receiver, burst)
        burst_s = time.perf_counter() - started
        accepted = sum(1 for status, _, _ in answers if status == 200)
        unanswered = sum(1 for status, _, _ in answers if status == 0)
        resent = sum(tries - 1 for _, _, tries in answers)
        inbox_rows = bench.inbox()[0] - stored_before
        bench.settle(deadline, stored_before + inbox_rows)
        burst_runs = len(bench.runs()) - first_runs

        attempted = attacks(bench.receiver)

        ghl = bench.ghl()
        ghl_latencies = timed_edits(
            lambda person, value: ghl.put(f"/contacts/{person['id']}", json={"companyName": value}).raise_for_status(),
            lambda: companies(bench, "app"), people[:args.edits], args.spacing, deadline, "GHL")

        members = {m.get("email"): m for m in bench.sides.admin["app"].get("/records/members").json()}
        app_stored_before = bench.inbox()[0]
        app_answers = post_all(bench.app_receiver, [app_signed(member_event(members[people[n % len(people)]["email"]]))
                                                    for n in range(args.app_burst)])
        app_accepted = sum(1 for status, _, _ in app_answers if status == 200)
        bench.settle(deadline, app_stored_before + app_accepted)
        app_attempted = app_attacks(bench.app_receiver, members[people[0]["email"]])
        app = bench.app()
        app_latencies = timed_edits(
            lambda person, value: app.patch(f"/v1/members/{members[person['email']]['id']}",
                                            json={"data": {"company": value}}).raise_for_status(),
            lambda: companies(bench, "ghl"), people[args.edits:2 * args.edits], args.spacing, deadline, "Gymdesk")
        bench.settle(deadline, 0)
        result = {
            "accepted": accepted, "inbox_rows": inbox_rows, "processed_twice": bench.used_twice(),
            "answer_p50_ms": round(percentile([s for _, s, _ in answers], 0.5) * 1000, 1),
            "answer_p99_ms": round(percentile([s for _, s, _ in answers], 0.99) * 1000, 1),
            "baseline_health_p99_ms": round(percentile(baseline, 0.99) * 1000, 1),
            "unanswered": unanswered, "resent_after_no_answer": resent, "burst_seconds": round(burst_s, 1), "burst_runs": burst_runs,
            "attacks": attempted["attempts"], "forged_accepted": attempted["let_in"],
            "edits": len(ghl_latencies), "latency_p50_s": round(statistics.median(ghl_latencies), 1),
            "latency_p95_s": round(percentile(ghl_latencies, 0.95), 1),
            "app_accepted": app_accepted, "app_attacks": app_attempted["attempts"],
            "app_forged_accepted": app_attempted["let_in"], "app_edits": len(app_latencies),
            "app_latency_p50_s": round(statistics.median(app_latencies), 1),
            "app_latency_p95_s": round(percentile(app_latencies, 0.95), 1),
            "runs_total": len(bench.runs()),
        }
    print(json.dumps(result))
    return 0


def _gets(url: str, n: int, workers: int = 16) -> list[float]:
    """Answer times of ``n`` GETs from ``workers`` threads, like the burst's."""
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=workers)) as client:
        def get(_: int) -> float:
            started = time.perf_counter()
            client.get(url).raise_for_status()
            return time.perf_counter() - started

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(get, range(n)))


if __name__ == "__main__":
    sys.exit(main())
