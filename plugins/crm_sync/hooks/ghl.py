"""GoHighLevel API v2: the Airflow hook and the client it builds.

Contacts are extracted incrementally with ``POST /contacts/search`` (dateUpdated range,
sorted, ``searchAfter`` cursor, 500 per page); writes use ``POST /contacts/upsert`` for
creates (GHL matches by email/phone, so a retried create cannot duplicate) and
``PUT /contacts/{id}`` for updates. Pacing stays under 100 requests / 10 s per location.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from crm_sync.hooks.agency import AgencyHook, is_agency
from crm_sync.hooks.base import HookBase
from crm_sync.hooks.oauth import GHLOAuth, OAuthClient, unsaved_alert
from crm_sync.hooks.token_store import AirflowVariableTokenStore, TokenStore, shared_store
from crm_sync.http import ApiClient, ApiError, header_number
from crm_sync.paging import PageGuard, PageRequest, SearchAfterPaginator, SkipLimitPaginator, pages
from crm_sync.profile_app import PagingLimits
from crm_sync.transport import quote_id

API_VERSION = "2021-07-28"
CALENDARS_API_VERSION = "2021-04-15"  # calendars.json pins its own Version
DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
log = logging.getLogger(__name__)


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
    auth: httpx.Auth

    def __repr__(self) -> str:
        return f"GHLConfig(base_url={self.base_url!r}, location_id={self.location_id!r}, auth=***)"


class DailyBudgetReached(RuntimeError):
    """The location's daily GHL budget left is down to the profile's reserve (``ghl.daily_reserve``):
    the run stops reading and writing GHL cleanly, and the next one goes on where it stopped."""

    def __init__(self, remaining: int, reserve: int):
        super().__init__(f"GHL's daily budget has {remaining} calls left, down to the reserve of {reserve} "
                         "(ghl.daily_reserve in the profile): the rest waits for the next run")
        self.partial: dict[str, list[dict[str, Any]]] = {}
        self.unread: list[str] = []


class GHLClient(ApiClient):
    def __init__(self, config: GHLConfig, page_limit: int = 500, paging: dict[str, PagingLimits] | None = None,
                 daily_reserve: int = 0):
        # 9.8/s with a burst of 1 sends at most 99 calls in any 10 s window: under GHL's 100.
        super().__init__(config.base_url, auth=config.auth, per_second=9.8, burst=1,
                         headers={"Version": API_VERSION, "Accept": "application/json"})
        self.location_id = config.location_id
        self.page_limit = page_limit
        self.paging = paging or {}
        self.daily_reserve = daily_reserve
        self.daily_remaining: int | None = None  # from X-RateLimit-Daily-Remaining, once GHL answered
        self._first_sent = False
        self._first_answered = threading.Event()

    def close(self) -> None:
        """Its httpx client, and an agency location auth's own clients (none leaks per task)."""
        super().close()
        close_auth = getattr(self.http.auth, "close", None)
        if callable(close_auth):
            close_auth()

    def _guard(self, entity: str, what: str) -> PageGuard:
        limits = self.paging.get(entity) or PagingLimits()
        return PageGuard(what, f"ghl.paging.{entity}", lambda record: record.get("id"),
                         max_pages=limits.max_pages, max_records=limits.max_records)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """No call once the day's remaining budget is down to the reserve. Each attempt (a retry too) is
        charged before it is sent, so calls in flight on other threads count too. Until GHL's first
        answer tells the day's remaining, only one call goes out: the reserve pays for at most that
        one, never for a blind call per thread. DailyBudgetReached is not an ApiError: never retried."""
        with self._count_lock:
            first, self._first_sent = not self._first_sent, True
        if not first:
            self._first_answered.wait()
        with self._count_lock:
            if self.daily_remaining is not None:
                if self.daily_remaining <= self.daily_reserve:
                    raise DailyBudgetReached(self.daily_remaining, self.daily_reserve)
                self.daily_remaining -= 1
        try:
            return super()._send(method, path, **kwargs)
        finally:
            self._first_answered.set()  # answered or failed: the others go on (a failure leaves it unknown)

    def observe(self, response: httpx.Response) -> None:
        daily = response.headers.get("X-RateLimit-Daily-Remaining", "")
        if daily.isdigit():
            with self._count_lock:  # answers arrive out of order: the lowest count is the latest
                held = self.daily_remaining
                self.daily_remaining = int(daily) if held is None else min(held, int(daily))
        if response.headers.get("X-RateLimit-Remaining") == "0":
            interval_ms = header_number(response, "X-RateLimit-Interval-Milliseconds", 10_000)
            self.limiter.pause(interval_ms / 1000 / max(1.0, header_number(response, "X-RateLimit-Max", 100)))

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
        guard = self._guard("contact", "GHL contacts (contact search)")
        for contacts in pages(SearchAfterPaginator(self.page_limit), PageRequest("/contacts/search", body),
                              self._search(lambda page: _listed(page, "contacts")), guard):
            yield from contacts

    def search_tasks(self, contact_ids: list[str] | None = None, completed: bool | None = None,
                     limit: int = 100) -> Iterator[dict[str, Any]]:
        """Tasks of the whole location (or of the given contacts) in a few calls, not one per contact."""
        chunks = [contact_ids[i:i + 100] for i in range(0, len(contact_ids), 100)] if contact_ids else [None]
        path = f"/locations/{quote_id(self.location_id)}/tasks/search"
        for chunk in chunks:
            body: dict[str, Any] = {"limit": limit, "skip": 0}
            if chunk is not None:
                body["contactId"] = chunk
            if completed is not None:
                body["completed"] = completed
            guard = self._guard("task", "GHL tasks (task search)")
            for tasks in pages(SkipLimitPaginator(limit), PageRequest(path, body),
                               self._search(lambda page: _flatten(_listed(page, "tasks"))), guard):
                yield from tasks

    def _search(self, records_of: Callable[[Any], list[Any]]) -> Callable[[PageRequest], tuple[Any, list[Any]]]:
        """Sends one page of a search: its answer, and the records ``records_of`` finds in it."""
        def fetch(call: PageRequest) -> tuple[Any, list[Any]]:
            page = self.request("POST", call.path, json=call.params, retry=True).json()
            return page, records_of(page)
        return fetch

    def calendar_events(self, start: datetime, end: datetime, *, calendar_id: str | None = None,
                        user_id: str | None = None, group_id: str | None = None) -> list[dict[str, Any]]:
        """Appointments of the location between two moments: one call per calendar, user or group."""
        params: dict[str, Any] = {"locationId": self.location_id, "startTime": int(start.timestamp() * 1000),
                                  "endTime": int(end.timestamp() * 1000)}
        for name, value in (("calendarId", calendar_id), ("userId", user_id), ("groupId", group_id)):
            if value:
                params[name] = value
        response = self.request("GET", "/calendars/events", params=params, headers={"Version": CALENDARS_API_VERSION},
                                retry=True)
        return response.json().get("events", [])

    def calendars(self) -> list[dict[str, Any]]:
        """The location's calendars: appointments are read per calendar, not per contact."""
        response = self.request("GET", "/calendars/", params={"locationId": self.location_id},
                                headers={"Version": CALENDARS_API_VERSION}, retry=True)
        return response.json().get("calendars", [])

    def appointments_between(self, start: datetime, end: datetime, window: timedelta) -> list[dict[str, Any]]:
        """Every appointment of the location starting in [start, end]: each calendar's events over
        consecutive time windows of at most ``window`` (one call each), whatever the contact count."""
        found: dict[str, dict[str, Any]] = {}
        for calendar in self.calendars():
            lower = start
            while lower < end:
                upper = min(lower + window, end)
                for event in self.calendar_events(lower, upper, calendar_id=calendar["id"]):
                    found[event["id"]] = event
                lower = upper + timedelta(milliseconds=1)  # both ends are inclusive
        return list(found.values())

    def contact_notes(self, contact_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/contacts/{quote_id(contact_id)}/notes", retry=True).json().get("notes", [])

    def contact_appointments(self, contact_id: str) -> list[dict[str, Any]]:
        path = f"/contacts/{quote_id(contact_id)}/appointments"
        return self.request("GET", path, retry=True).json().get("events", [])

    def contact_tasks(self, contact_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/contacts/{quote_id(contact_id)}/tasks", retry=True).json().get("tasks", [])

    def _per_contact(self, fetch, contact_ids: list[str], workers: int) -> dict[str, list[dict[str, Any]]]:
        """GHL has no location-wide listing of these: the per-contact calls run concurrently (bounded),
        paced by the shared rate limiter. A contact GHL no longer has (deleted since we linked it) is
        left out of the answer: its children were not read, which is not the same as none. When the
        daily budget reserve is reached, DailyBudgetReached carries what was read and what was not."""
        def read(contact_id: str) -> list[dict[str, Any]] | None | DailyBudgetReached:
            try:
                return fetch(contact_id)
            except DailyBudgetReached as stop:
                return stop
            except ApiError as exc:
                if exc.status in (400, 404) and "not found" in exc.message.lower():
                    log.warning("GHL contact %s not found: its children were not read", contact_id)
                    return None
                raise

        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = dict(zip(contact_ids, pool.map(read, contact_ids), strict=True))
        found = {contact_id: listed for contact_id, listed in answers.items() if isinstance(listed, list)}
        if stops := [a for a in answers.values() if isinstance(a, DailyBudgetReached)]:
            stops[0].partial = found
            stops[0].unread = [c for c, a in answers.items() if isinstance(a, DailyBudgetReached)]
            raise stops[0]
        return found

    def notes_for(self, contact_ids: list[str], workers: int = 4) -> dict[str, list[dict[str, Any]]]:
        """Notes of the contacts known to have changed."""
        return self._per_contact(self.contact_notes, contact_ids, workers)

    def tasks_for(self, contact_ids: list[str], workers: int = 4) -> dict[str, list[dict[str, Any]]]:
        """Complete task lists of these contacts (unpaged, unlike the location-wide search)."""
        return self._per_contact(self.contact_tasks, contact_ids, workers)

    def upsert_contact(self, fields: dict[str, Any]) -> dict[str, Any]:
        body = {"locationId": self.location_id, **fields}
        return self.request("POST", "/contacts/upsert", json=body, retry=True).json()["contact"]

    def update_contact(self, contact_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/contacts/{quote_id(contact_id)}", json=fields, retry=True).json()["contact"]

    def delete_contact(self, contact_id: str) -> None:
        self.request("DELETE", f"/contacts/{quote_id(contact_id)}", retry=True)

    def add_tags(self, contact_id: str, tags: list[str]) -> None:
        self.request("POST", f"/contacts/{quote_id(contact_id)}/tags", json={"tags": tags}, retry=True)

    def remove_tags(self, contact_id: str, tags: list[str]) -> None:
        self.request("DELETE", f"/contacts/{quote_id(contact_id)}/tags", json={"tags": tags}, retry=True)

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        return self.request("GET", f"/contacts/{quote_id(contact_id)}", retry=True).json()["contact"]

    def create_child(self, entity: str, contact_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a task or note under a contact (not retried: a resend could duplicate it).
        GHL requires a task's due date and completed flag: a task with no due date is due when created."""
        if entity == "task":
            fields = {"completed": False, **fields}
            fields["dueDate"] = fields.get("dueDate") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = self.request("POST", f"/contacts/{quote_id(contact_id)}/{entity}s", json=fields, retry=False).json()
        return body[entity]

    def update_child(self, entity: str, contact_id: str, child_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        if entity == "task" and set(fields) == {"completed"}:  # GHL's own call for (un)completing
            path = f"/contacts/{quote_id(contact_id)}/tasks/{quote_id(child_id)}/completed"
        else:
            path = f"/contacts/{quote_id(contact_id)}/{entity}s/{quote_id(child_id)}"
        return self.request("PUT", path, json=fields, retry=True).json()[entity]

    def delete_child(self, entity: str, contact_id: str, child_id: str) -> None:
        self.request("DELETE", f"/contacts/{quote_id(contact_id)}/{entity}s/{quote_id(child_id)}", retry=True)

    def find_child(self, entity: str, contact_id: str, fields: dict[str, Any],
                   exclude: set[str] = frozenset()) -> dict[str, Any] | None:
        """An unlinked task or note under the contact with this title and body: a create that may have
        reached GHL before a crash is found here instead of being sent twice."""
        listed = (self.contact_tasks if entity == "task" else self.contact_notes)(contact_id)
        for child in listed:
            if child.get("id") not in exclude and all(
                    child.get(k) == v for k, v in fields.items() if k in ("title", "body")):
                return child
        return None


def _listed(page: Any, key: str) -> list[Any]:
    """The list under ``key`` of a search answer; anything else is the server's error, not an empty page."""
    listed = page.get(key, []) if isinstance(page, dict) else None
    if not isinstance(listed, list):
        raise ApiError(None, "POST", f"{key} search", f"the answer holds no list under '{key}'")
    return listed


def _flatten(items: list[Any]) -> list[dict[str, Any]]:
    """The spec types the tasks list as an array of arrays; accept both shapes."""
    return [task for item in items for task in (item if isinstance(item, list) else [item])]


class GHLHook(HookBase):
    """GoHighLevel connection: a Private Integration Token, or an OAuth app's client id,
    secret and refresh token; plus the location id. The host defaults to GHL's API.

    Or an agency connection (extra.company_id, see hooks.agency): then the location is the caller's
    (``location_id``, the profile's ghl.location_id) and its calls carry a location token minted
    from the agency token and shared by every worker."""

    conn_name_attr = "ghl_conn_id"
    default_conn_name = "ghl_default"
    conn_type = "ghl"
    hook_name = "GoHighLevel"

    def __init__(self, conn_id: str | None = None, token_store: TokenStore | None = None,
                 location_id: str | None = None):
        super().__init__(conn_id)
        self.token_store = token_store
        self.location_id = location_id

    def config(self) -> GHLConfig:
        conn = self.connection()
        extra = self.extras(conn)
        base_url = self.base_url(conn, DEFAULT_BASE_URL)
        if is_agency(extra):
            if not self.location_id:
                raise ValueError(f"connection '{self.conn_id}' is an agency connection: the profile must name the "
                                 "location (ghl.location_id)")
            agency = AgencyHook(self.conn_id, token_store=self.token_store)
            return GHLConfig(base_url=base_url, location_id=self.location_id,
                             auth=agency.location_auth(self.location_id))
        location_id = extra.get("location_id")
        if not location_id:
            raise ValueError(f"connection '{self.conn_id}' needs extra.location_id")
        if self.location_id and self.location_id != location_id:
            raise ValueError(f"connection '{self.conn_id}' is for GHL location {location_id}, not "
                             f"{self.location_id} (the profile's ghl.location_id)")
        if extra.get("client_id"):
            if not extra.get("client_secret"):
                raise ValueError(f"connection '{self.conn_id}' uses OAuth and needs extra.client_secret")
            client = OAuthClient(extra["client_id"], extra["client_secret"], f"{base_url}/oauth/token")
            store = self.token_store or shared_store(AirflowVariableTokenStore(self.conn_id))
            auth: httpx.Auth = GHLOAuth(client, store, extra.get("refresh_token"),
                                        on_unsaved=unsaved_alert(self.conn_id))
        elif conn.password:
            auth = BearerToken(conn.password)
        else:
            raise ValueError(f"connection '{self.conn_id}' needs a Private Integration Token (password) "
                             "or OAuth extra fields client_id, client_secret, refresh_token")
        return GHLConfig(base_url=base_url, location_id=location_id, auth=auth)

    def get_conn(self, page_limit: int = 500, paging: dict[str, PagingLimits] | None = None,
                 daily_reserve: int = 0) -> GHLClient:
        return GHLClient(self.config(), page_limit=page_limit, paging=paging, daily_reserve=daily_reserve)

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call: a search for a single contact (an agency connection: one page of
        its installed locations)."""
        try:
            if is_agency(self.extras(self.connection())):
                return AgencyHook(self.conn_id, token_store=self.token_store).test_connection()
            client = self.get_conn(page_limit=1)
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        try:
            client.request("POST", "/contacts/search", json={"locationId": client.location_id, "pageLimit": 1},
                           retry=False)
            return True, "Connection to GoHighLevel works"
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        finally:
            client.close()
