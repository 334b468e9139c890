"""GoHighLevel API v2: the Airflow hook and the client it builds.

Contacts are extracted incrementally with ``POST /contacts/search`` (dateUpdated range,
sorted, ``searchAfter`` cursor, 500 per page); writes use ``POST /contacts/upsert`` for
creates (GHL matches by email/phone, so a retried create cannot duplicate) and
``PUT /contacts/{id}`` for updates. Pacing stays under 100 requests / 10 s per location.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from crm_sync.http import ApiClient
from crm_sync.hooks.base import HookBase

API_VERSION = "2021-07-28"
DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"


class BearerToken(httpx.Auth):
    """Bearer auth kept out of reprs and logs."""

    def __init__(self, token: str):
        self._token = token

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(***)"


@dataclass(frozen=True)
class GHLConfig:
    base_url: str
    location_id: str
    token: str

    def __repr__(self) -> str:
        return f"GHLConfig(base_url={self.base_url!r}, location_id={self.location_id!r}, token=***)"


class GHLClient(ApiClient):
    def __init__(self, config: GHLConfig, page_limit: int = 500):
        # 9.8/s with a burst of 1 sends at most 99 calls in any 10 s window: under GHL's 100.
        super().__init__(config.base_url, auth=BearerToken(config.token), per_second=9.8, burst=1,
                         headers={"Version": API_VERSION, "Accept": "application/json"})
        self.location_id = config.location_id
        self.page_limit = page_limit

    def observe(self, response: httpx.Response) -> None:
        if response.headers.get("X-RateLimit-Remaining") == "0":
            interval_ms = float(response.headers.get("X-RateLimit-Interval-Milliseconds", 10_000))
            self.limiter.pause(interval_ms / 1000 / max(1, int(response.headers.get("X-RateLimit-Max", 100))))

    def search_contacts(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        """Contacts whose dateUpdated is in [since, until), oldest first, every page."""
        bounds = {}
        if since is not None:
            bounds["gte"] = since.isoformat()
        if until is not None:
            bounds["lt"] = until.isoformat()
        body: dict[str, Any] = {
            "locationId": self.location_id,
            "pageLimit": self.page_limit,
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
            "filters": [{"field": "dateUpdated", "operator": "range", "value": bounds}] if bounds else [],
        }
        seen_cursors: set[tuple] = set()
        while True:
            page = self.request("POST", "/contacts/search", json=body, retry=True).json()
            contacts = page.get("contacts", [])
            yield from contacts
            if len(contacts) < self.page_limit:
                return
            cursor = tuple(contacts[-1]["searchAfter"])
            if cursor in seen_cursors:
                raise RuntimeError(f"GHL search returned the cursor {cursor} twice; stopping to avoid a loop")
            seen_cursors.add(cursor)
            body = {**body, "searchAfter": list(cursor)}

    def upsert_contact(self, fields: dict[str, Any]) -> dict[str, Any]:
        body = {"locationId": self.location_id, **fields}
        return self.request("POST", "/contacts/upsert", json=body, retry=True).json()["contact"]

    def update_contact(self, contact_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/contacts/{contact_id}", json=fields, retry=True).json()["contact"]


class GHLHook(HookBase):
    """Connection: host = API base URL (default GHL's), password = Private Integration Token,
    extra ``location_id``."""

    conn_name_attr = "ghl_conn_id"
    default_conn_name = "ghl_default"
    conn_type = "ghl"
    hook_name = "GoHighLevel"

    def config(self) -> GHLConfig:
        conn = self.connection()
        location_id = conn.extra_dejson.get("location_id")
        if not location_id or not conn.password:
            raise ValueError(f"connection '{self.conn_id}' needs a token (password) and extra.location_id")
        return GHLConfig(base_url=self.base_url(conn, DEFAULT_BASE_URL), location_id=location_id, token=conn.password)

    def get_conn(self, page_limit: int = 500) -> GHLClient:
        return GHLClient(self.config(), page_limit=page_limit)
