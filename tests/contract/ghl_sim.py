"""A GHL simulator on a real socket for the contract and unit tests, driven only over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from harness.simulators import ghl
from harness.simulators.base import ServerThread, SimState

LOCATION = "locContract000000001"
TOKENS = {"pit-all": list(ghl.SCOPES), "pit-write-only": [ghl.WRITE], "pit-read-only": [ghl.READ]}


@dataclass
class RunningSim:
    url: str

    def api(self, token: str = "pit-all", version: str = ghl.API_VERSION, **kwargs: Any) -> httpx.Client:
        options = {"timeout": 10, **kwargs}
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}", "Version": version},
                            **options)

    @property
    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/_sim", timeout=10)

    def contact(self, **fields: Any) -> dict[str, Any]:
        body = {"locationId": LOCATION, "firstName": "Ada", "email": f"{ghl.new_id().lower()}@example.com", **fields}
        with self.api() as api:
            response = api.post("/contacts/", json=body)
        assert response.status_code == 201, response.text
        return response.json()["contact"]


@contextmanager
def running_sim(**options: Any) -> Iterator[RunningSim]:
    """A fresh simulator with three static tokens: all scopes, contacts.write only, contacts.readonly only."""
    tokens = {token: {"location_id": LOCATION, "scopes": list(scopes)} for token, scopes in TOKENS.items()}
    with ServerThread(ghl.create_app(ghl.GHLSimulator(tokens, SimState(), **options))) as server:
        yield RunningSim(server.url)


@dataclass
class Receiver:
    """A webhook endpoint on a real socket that keeps every request; answers ``fail_first`` 500s first."""

    url: str
    received: list[tuple[dict[str, str], bytes]]


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[Receiver]:
    received: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=500 if len(received) <= fail_first else 200)

    with ServerThread(app) as server:
        yield Receiver(server.url + "/hook", received)
