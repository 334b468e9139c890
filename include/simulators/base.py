"""Shared machinery of the local API simulators.

Each simulator is a FastAPI app over an in-memory store, served by uvicorn on a
real localhost socket. Tests, the demo and benchmarks drive them through the
same admin routes under ``/_sim`` (seed, read records, count calls, inject faults),
so nothing reaches into a simulator's memory from outside.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

ADMIN_PREFIX = "/_sim"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """Render a timestamp the way both APIs do: UTC, milliseconds, trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Faults:
    """Faults the next requests will meet; consumed in order, then normal service resumes."""

    latency_ms: float = 0.0
    queued_statuses: list[int] = field(default_factory=list)


@dataclass
class SimState:
    """In-memory records per collection, plus the call log the admin routes expose."""

    collections: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    faults: Faults = field(default_factory=Faults)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def table(self, name: str) -> dict[str, dict[str, Any]]:
        return self.collections.setdefault(name, {})


def error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def install_common(app: FastAPI, state: SimState) -> None:
    """Mount the admin routes and the middleware that counts calls and injects faults."""

    @app.middleware("http")
    async def count_and_fault(request: Request, call_next):
        if request.url.path.startswith(ADMIN_PREFIX):
            return await call_next(request)
        if state.faults.latency_ms:
            await asyncio.sleep(state.faults.latency_ms / 1000)
        with state.lock:
            queued = state.faults.queued_statuses.pop(0) if state.faults.queued_statuses else None
        if queued is not None:
            state.calls[f"fault {queued}"] += 1
            return Response(status_code=queued, content=b'{"statusCode": %d, "message": "injected fault"}' % queued,
                            media_type="application/json")
        response = await call_next(request)
        route = request.scope.get("route")
        key = f"{request.method} {getattr(route, 'path', request.url.path)}"
        state.calls[key] += 1
        state.calls["total"] += 1
        return response

    admin = APIRouter(prefix=ADMIN_PREFIX)

    @admin.get("/records/{collection}")
    def records(collection: str) -> list[dict[str, Any]]:
        with state.lock:
            return list(state.table(collection).values())

    @admin.post("/seed")
    def seed(body: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        with state.lock:
            for collection, rows in body.items():
                table = state.table(collection)
                for row in rows:
                    table[str(row["id"])] = dict(row)
        return {name: len(rows) for name, rows in body.items()}

    @admin.get("/calls")
    def calls() -> dict[str, int]:
        return dict(state.calls)

    @admin.post("/calls/reset")
    def reset_calls() -> dict[str, int]:
        state.calls.clear()
        return {}

    @admin.post("/faults")
    def set_faults(body: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            state.faults.latency_ms = float(body.get("latency_ms", state.faults.latency_ms))
            state.faults.queued_statuses.extend(int(s) for s in body.get("statuses", []))
        return {"latency_ms": state.faults.latency_ms, "queued": list(state.faults.queued_statuses)}

    app.include_router(admin)


def bind_localhost(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class ServerThread:
    """Serve an app on a free localhost port in a background thread (tests, benches)."""

    def __init__(self, app: FastAPI, port: int = 0):
        self._sock = bind_localhost(port)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"simulator at {self.url} did not start within 10 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
