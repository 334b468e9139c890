"""Many accounts of one app in one server: each tenant an independent simulator under ``/t/<key>``.

An agency's hundred locations each sync with their own app account; a hundred uvicorn servers (and
threads) would cost the bench more than the syncs it measures. Here each tenant is the app's own
simulator (its own records, API key, call counts and faults), mounted under its path prefix, so a
location's app connection is ``http://127.0.0.1:<port>/t/<key>`` and its admin routes are
``/t/<key>/_sim/...``. ``GET /_sim/calls`` at the root sums every tenant's calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI

from harness.simulators.base import ADMIN_PREFIX, SimState

PREFIX = "/t"


def tenant_path(key: str) -> str:
    """Where tenant ``key`` is mounted (append it to the server's URL for the app connection's host)."""
    return f"{PREFIX}/{key}"


def create_app(keys: Iterable[str], create: Callable[..., FastAPI], api_key: str, **options: Any) -> FastAPI:
    """One app per key, ``create(api_key, SimState(), **options)`` (an app simulator's ``create_app``),
    mounted at ``/t/<key>``."""
    root = FastAPI(title="app tenants")
    states: dict[str, SimState] = {}
    for key in keys:
        if not key or "/" in key:
            raise ValueError(f"tenant key {key!r}: must be a non-empty path segment")
        states[key] = SimState()
        tenant = create(api_key, states[key], **options)
        # the server's hooks (ServerThread sets them on the root app) for a tenant's dropped connections
        tenant.state.drop_connection = lambda *a, **k: root.state.drop_connection(*a, **k)
        tenant.state.client_connected = lambda *a, **k: root.state.client_connected(*a, **k)
        root.mount(tenant_path(key), tenant)

    @root.get(f"{ADMIN_PREFIX}/calls")
    def calls() -> dict[str, int]:
        total: Counter = Counter()
        for state in states.values():
            with state.lock:
                total.update(state.calls)
        return dict(total)

    @root.get(f"{ADMIN_PREFIX}/tenants")
    def tenants() -> list[str]:
        return list(states)

    return root
