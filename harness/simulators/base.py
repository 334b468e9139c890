"""Shared machinery of the local API simulators.

Each simulator is a FastAPI app over an in-memory store, served by uvicorn on a
real localhost socket. Tests, the demo and benchmarks drive them through the
same admin routes under ``/_sim`` (seed, read records, count calls, inject faults),
so nothing reaches into a simulator's memory from outside.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
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


def now_iso() -> str:
    return iso_z(utcnow())


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


MAX_FAULT_COUNT = 10_000
MAX_HOLD_S = 120.0
FAULT_KEYS = {"latency_ms", "statuses", "storm_429", "server_errors", "timeouts", "drops", "resets", "lost", "late",
              "html", "writes"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, met by exactly one request.

    kind: "status" answers ``status`` (with ``headers``); "hold" keeps the request ``seconds``
    before serving it, so a client with a shorter timeout sees a timeout; "drop" closes the
    connection without a response (httpx: RemoteProtocolError); "reset" aborts it (ReadError).
    ``after``: the request is served first, then its answer is lost (dropped or held): the
    write happened, but the client cannot know it.
    """

    kind: str
    status: int = 0
    seconds: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    after: bool = False

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **({"status": self.status} if self.status else {}),
                **({"seconds": self.seconds} if self.seconds else {}), **dict(self.headers),
                **({"after": True} if self.after else {})}


@dataclass
class Faults:
    """Faults the next requests will meet; consumed in order, then normal service resumes."""

    latency_ms: float = 0.0
    queue: list[Fault] = field(default_factory=list)
    write_queue: list[Fault] = field(default_factory=list)  # met by write requests only
    writes_to_skip: int = 0  # writes served normally before write_queue applies

    def next_for(self, write: bool) -> Fault | None:
        """The fault this request meets, if any (call under the state's lock)."""
        if self.queue:
            return self.queue.pop(0)
        if not write or not self.write_queue:
            return None
        if self.writes_to_skip:
            self.writes_to_skip -= 1
            return None
        return self.write_queue.pop(0)


def local_path(request: Request) -> str:
    """The request's path within its simulator, which may be mounted under a prefix (harness/simulators/tenants.py)."""
    return request.url.path.removeprefix(request.scope.get("root_path", "") or "")


def is_write(request: Request) -> bool:
    """A call that changes records (searches by POST only read)."""
    path = local_path(request)
    return request.method in WRITE_METHODS and not path.endswith("/search") and not path.startswith("/oauth/")


def _count(value: Any) -> int:
    count = int(value)
    if not 0 <= count <= MAX_FAULT_COUNT:
        raise ValueError(f"a fault count must be between 0 and {MAX_FAULT_COUNT}")
    return count


def parse_faults(body: dict[str, Any]) -> list[Fault]:
    """The faults a ``POST /_sim/faults`` body asks for, in the order they will be met.

    ``statuses: [500, 429]``; ``storm_429: {count, retry_after_s}``; ``server_errors: {count, status}``;
    ``timeouts: {count, hold_s}``; ``drops: n``; ``resets: n``; served, then the answer lost:
    ``lost: n`` (dropped), ``late: {count, hold_s}`` (held); ``html: n`` (an HTML page with 200).
    """
    faults = [Fault("status", int(status)) for status in body.get("statuses", [])]
    if storm := body.get("storm_429"):
        retry_after = str(max(1, int(storm.get("retry_after_s", 1))))
        faults += [Fault("status", 429, headers=(("Retry-After", retry_after),))] * _count(storm["count"])
    if errors := body.get("server_errors"):
        status = int(errors.get("status", 500))
        if not 500 <= status <= 599:
            raise ValueError("server_errors.status must be a 5xx")
        faults += [Fault("status", status)] * _count(errors["count"])
    for key, after in (("timeouts", False), ("late", True)):
        if held := body.get(key):
            hold = float(held.get("hold_s", 30))
            if not 0 < hold <= MAX_HOLD_S:
                raise ValueError(f"{key}.hold_s must be in (0, {MAX_HOLD_S}]")
            faults += [Fault("hold", seconds=hold, after=after)] * _count(held["count"])
    faults += [Fault("drop")] * _count(body.get("drops", 0)) + [Fault("reset")] * _count(body.get("resets", 0))
    faults += [Fault("html")] * _count(body.get("html", 0))
    return faults + [Fault("drop", after=True)] * _count(body.get("lost", 0))


def parse_write_faults(body: dict[str, Any]) -> tuple[int, list[Fault]]:
    """``writes: {skip: k, <faults as above>}``: faults met only by write requests, after ``k``
    writes were served normally (a crash or fault at a chosen write)."""
    if not isinstance(body, dict):
        raise ValueError("writes must be an object")
    if unknown := set(body) - FAULT_KEYS - {"skip"} | ({"latency_ms", "writes"} & set(body)):
        raise ValueError(f"unknown write faults: {sorted(unknown)}")
    return _count(body.get("skip", 0)), parse_faults(body)


class Table(dict):
    """Records by id that know which records belong to a parent (say, a contact's tasks) without
    scanning the whole table on every call; the index is rebuilt after the table changes."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.version = 0
        self._indexes: dict[str, tuple[int, dict[Any, list[dict[str, Any]]]]] = {}

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        self.version += 1

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.version += 1

    def pop(self, *args: Any) -> Any:
        self.version += 1
        return super().pop(*args)

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self.version += 1

    def by(self, field_name: str, value: Any) -> list[dict[str, Any]]:
        """Records whose ``field_name`` equals ``value`` (the field must not change after creation)."""
        version, index = self._indexes.get(field_name, (-1, {}))
        if version != self.version:
            index = {}
            for record in self.values():
                index.setdefault(record.get(field_name), []).append(record)
            self._indexes[field_name] = (self.version, index)
        return index.get(value, [])


@dataclass
class SimState:
    """In-memory records per collection, plus the call log the admin routes expose."""

    collections: dict[str, Table] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    faults: Faults = field(default_factory=Faults)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def table(self, name: str) -> Table:
        return self.collections.setdefault(name, Table())


def error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


FaultAction = Callable[[Any], None]


def _meet(fault: Fault, request: Request) -> Response:
    """Answer with an injected status, or cut the connection so that no answer arrives."""
    if fault.kind == "status":
        body = b'{"statusCode": %d, "message": "injected fault"}' % fault.status
        return Response(status_code=fault.status, content=body, media_type="application/json",
                        headers=dict(fault.headers))
    if fault.kind == "html":  # a proxy's or maintenance page, answered 200 instead of the API's JSON
        return Response(status_code=200, content=b"<html><body>Down for maintenance</body></html>",
                        media_type="text/html")
    drop = getattr(request.app.state, "drop_connection", None)
    if drop is None:
        raise RuntimeError("dropping a connection needs the app served by ServerThread")
    drop(tuple(request.scope["client"]), abort=fault.kind == "reset")
    return Response(status_code=500)  # never reaches the client: its connection is gone


async def _hold(request: Request, seconds: float) -> bool:
    """Keep a request waiting; True when its client is still there to be served. Asks the server
    for the client's connection where it can (ServerThread): Starlette's is_disconnected, behind
    the middleware, can miss a client killed meanwhile, and its write would then land late."""
    await request.body()  # read it now: a client that gives up meanwhile leaves nothing to read later
    await asyncio.sleep(seconds)
    connected = getattr(request.app.state, "client_connected", None)
    if connected is not None:
        return connected(tuple(request.scope["client"]))
    return not await request.is_disconnected()


def install_common(app: FastAPI, state: SimState, fault_actions: dict[str, FaultAction] | None = None,
                   id_fields: dict[str, str] | None = None,
                   on_seed: Callable[[str, dict[str, Any], bool], None] | None = None) -> None:
    """Mount the admin routes and the middleware that counts calls and injects faults.

    ``fault_actions`` adds simulator-specific faults to ``POST /_sim/faults``: a body key
    whose value, when truthy, is passed to the action (GHL: ``expire_tokens``).
    ``id_fields`` names the id field of collections whose records do not call it ``id``
    (``/_sim/seed`` keys records by it). ``on_seed(collection, record, existed)`` hears of every
    record seeded (an app simulator sends its webhook: a seed stands for an edit in the app's admin).
    """
    actions = fault_actions or {}
    id_of = id_fields or {}

    @app.middleware("http")
    async def count_and_fault(request: Request, call_next):
        if local_path(request).startswith(ADMIN_PREFIX):
            return await call_next(request)
        if state.faults.latency_ms:
            await asyncio.sleep(state.faults.latency_ms / 1000)
        with state.lock:
            fault = state.faults.next_for(is_write(request))
        if fault is not None:
            state.calls[f"fault {fault.status or fault.kind}{' after' if fault.after else ''}"] += 1
        if fault is not None and not fault.after:
            if fault.kind != "hold":
                return _meet(fault, request)
            if not await _hold(request, fault.seconds):
                return Response(status_code=408)  # nobody left to answer
        response = await call_next(request)
        route = request.scope.get("route")
        key = f"{request.method} {getattr(route, 'path', request.url.path)}"
        state.calls[key] += 1
        state.calls["total"] += 1
        if fault is not None and fault.after:
            if fault.kind != "hold":
                return _meet(fault, request)
            await asyncio.sleep(fault.seconds)  # served; the answer comes too late for a waiting client
        return response

    admin = APIRouter(prefix=ADMIN_PREFIX)

    @admin.get("/records/{collection}")
    def records(collection: str) -> list[dict[str, Any]]:
        with state.lock:
            return list(state.table(collection).values())

    @admin.post("/seed")
    def seed(body: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        seeded = []
        with state.lock:
            for collection, rows in body.items():
                table = state.table(collection)
                for row in rows:
                    key = str(row[id_of.get(collection, "id")])
                    seeded.append((collection, dict(row), key in table))
                    table[key] = dict(row)
        for collection, row, existed in seeded if on_seed else ():
            on_seed(collection, row, existed)
        return {name: len(rows) for name, rows in body.items()}

    @admin.get("/calls")
    def calls() -> dict[str, int]:
        return dict(state.calls)

    @admin.post("/calls/reset")
    def reset_calls() -> dict[str, int]:
        state.calls.clear()
        return {}

    def fault_state() -> dict[str, Any]:
        return {"latency_ms": state.faults.latency_ms, "queued": [f.describe() for f in state.faults.queue],
                "on_writes": {"skip": state.faults.writes_to_skip,
                              "queued": [f.describe() for f in state.faults.write_queue]}}

    @admin.get("/faults")
    def get_faults() -> dict[str, Any]:
        return fault_state()

    @admin.post("/faults")
    def set_faults(body: dict[str, Any]):
        if unknown := set(body) - FAULT_KEYS - set(actions):
            return error(400, {"statusCode": 400, "message": f"unknown faults: {sorted(unknown)}"})
        try:
            queued = parse_faults(body)
            skip, on_writes = parse_write_faults(body["writes"]) if "writes" in body else (0, [])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return error(400, {"statusCode": 400, "message": f"invalid faults: {exc}"})
        with state.lock:
            state.faults.latency_ms = float(body.get("latency_ms", state.faults.latency_ms))
            state.faults.queue.extend(queued)
            if on_writes:
                state.faults.writes_to_skip = skip
                state.faults.write_queue.extend(on_writes)
        for name, action in actions.items():
            if body.get(name):
                action(body[name])
        return fault_state()

    @admin.post("/faults/reset")
    def reset_faults() -> dict[str, Any]:
        with state.lock:
            state.faults = Faults()
        return fault_state()

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
        app.state.drop_connection = self.drop_connection
        app.state.client_connected = self.client_connected

    def drop_connection(self, client: tuple[str, int], abort: bool = False) -> None:
        """Close (or reset) the connection of one client; runs on the server's event loop.

        An ASGI app cannot do this itself: uvicorn answers 500 to an app that fails before
        responding. So the fault reaches for the transport of the matching connection.
        """
        for connection in list(self._server.server_state.connections):
            if getattr(connection, "client", None) == client:
                if abort:  # linger 0: the kernel answers with RST instead of a polite FIN
                    sock = connection.transport.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    connection.transport.abort()
                else:
                    connection.transport.close()

    def client_connected(self, client: tuple[str, int]) -> bool:
        """Whether the client's connection is still open (uvicorn forgets a connection once lost)."""
        return any(getattr(connection, "client", None) == client and not connection.transport.is_closing()
                   for connection in list(self._server.server_state.connections))

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
