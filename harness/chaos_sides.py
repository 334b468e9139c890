"""What a chaos trial judges: both simulators' records, counted by natural key, against a reference.

``Sides`` holds admin clients of one GHL and one Gymdesk simulator (``simulators`` starts a seeded
pair); ``holdings`` reads every record both hold, and ``judge`` counts duplicates and losses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from harness.demo import APP_KEY, GHL_TOKEN
from harness.demo_apps import COLLECTIONS
from harness.demo_data import LOCATION_ID

PROFILE, DAG_ID = "gymdesk", "ghl_gymdesk"
GHL_COLLECTIONS = {"contacts": "contactId", "tasks": "contactId", "notes": "contactId", "appointments": "contactId"}
APP_COLLECTIONS = {name: "member_id" for name in COLLECTIONS[PROFILE].values()}
GENERATED = {"id", "dateAdded", "dateUpdated", "created_at", "updated_at", "noted_at"}


class Sides:
    """Admin clients of one GHL and one Gymdesk simulator."""

    def __init__(self, ghl_url: str, app_url: str):
        self.urls = {"ghl": ghl_url, "app": app_url}
        self.admin = {side: httpx.Client(base_url=url + "/_sim", timeout=10) for side, url in self.urls.items()}

    def close(self) -> None:
        for client in self.admin.values():
            client.close()

    def calls(self, side: str) -> dict[str, int]:
        return self.admin[side].get("/calls").json()

    def writes(self, side: str) -> int:
        return sum(n for call, n in self.calls(side).items()
                   if call.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE") and not call.endswith("/search"))

    def faults_met(self, side: str) -> int:
        return sum(n for call, n in self.calls(side).items() if call.startswith("fault "))

    def arm(self, side: str, body: dict[str, Any]) -> None:
        self.admin[side].post("/faults", json=body).raise_for_status()

    def holdings(self) -> Counter:
        """Every record both sides hold, as (side, collection, owner email, values) -> how many."""
        held: Counter = Counter()
        for side, collections in (("ghl", GHL_COLLECTIONS), ("app", APP_COLLECTIONS)):
            records = {name: self.admin[side].get(f"/records/{name}").json() for name in collections}
            contacts = "contacts" if side == "ghl" else "members"
            emails = {str(c["id"]): (c.get("email") or "").lower() for c in records[contacts]}
            for name, owner_field in collections.items():
                for record in records[name]:
                    owner = (record.get("email") or "").lower() if name == contacts \
                        else emails.get(str(record.get(owner_field)), f"unknown {record.get(owner_field)}")
                    values = tuple(sorted((k, _comparable(v)) for k, v in record.items()
                                          if k not in GENERATED and k != owner_field))
                    held[(side, name, owner or f"id {record.get('id')}", values)] += 1
        return held


def _comparable(value: Any) -> str:
    """A value as compared: a timestamp by its date (the profile's new-lead tasks fall due a fixed
    time after the run that creates them)."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return repr(value[:10])
    return repr(value)


def judge(expected: Counter, actual: Counter) -> tuple[int, int, list[str]]:
    """(duplicates, lost, what differs): per natural key, records beyond the expected count are
    duplicates; expected records not held with the same values are lost."""
    duplicates = lost = 0
    detail = []
    for key in sorted({k[:3] for k in expected} | {k[:3] for k in actual}):
        want = Counter({k[3]: n for k, n in expected.items() if k[:3] == key})
        have = Counter({k[3]: n for k, n in actual.items() if k[:3] == key})
        extra, missing = max(0, sum(have.values()) - sum(want.values())), sum((want - have).values())
        if extra or missing:
            detail.append(f"{'/'.join(key)}: expected {dict(want)}, held {dict(have)}")
        duplicates, lost = duplicates + extra, lost + missing
    return duplicates, lost, detail


@contextmanager
def simulators(ghl_seed: dict, app_seed_: dict, ports: tuple[int, int] = (0, 0)) -> Iterator[Sides]:
    """GHL and Gymdesk simulators on localhost (on ``ports``, else free ones), seeded; stopped on the way out."""
    from harness.simulators.__main__ import make_app, parse_args
    from harness.simulators.base import ServerThread, SimState

    with ExitStack() as stack:
        urls = []
        for name, port in (("ghl", ports[0]), (PROFILE, ports[1])):
            args = parse_args([name, "--token", GHL_TOKEN, "--location", LOCATION_ID, "--api-key", APP_KEY])
            urls.append(stack.enter_context(ServerThread(make_app(args, SimState()), port=port)).url)
        sides = Sides(*urls)
        stack.callback(sides.close)
        for side, seed in (("ghl", ghl_seed), ("app", app_seed_)):
            sides.admin[side].post("/seed", json=seed).raise_for_status()
        yield sides
