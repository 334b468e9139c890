"""Any business app's REST API, driven entirely by the profile's ``app`` section.

The profile names the auth, the paths, the envelopes, the paging style and the
"changed since" filter of each entity; this client only follows it, so a new app is a
profile file, not new code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any

import httpx

from crm_sync.hooks.base import HookBase
from crm_sync.hooks.oauth import OAuthClient, RotatingOAuth, unsaved_alert
from crm_sync.hooks.token_store import AirflowVariableTokenStore, TokenStore, shared_store
from crm_sync.http import ApiClient, ApiError
from crm_sync.paging import (CursorPaginator, NextLinkPaginator, OffsetPaginator, PageGuard, PageNumberPaginator,
                             PageRequest, Paginator, SinglePagePaginator, pages)
from crm_sync.profile_app import AppApi, AppEntityApi, Pagination
from crm_sync.records import dig, typed_id
from crm_sync.timezones import day_start, format_moment, moment_or_none
from crm_sync.transport import quote_id


class AppClient(ApiClient):
    def __init__(self, base_url: str, api: AppApi, *, secret: str | None = None, auth: httpx.Auth | None = None):
        headers = {"Accept": "application/json"}
        if secret is not None:
            headers[api.auth.header] = secret if api.auth.type == "api_key_header" else f"Bearer {secret}"
        rate = api.rate_limit_per_second
        super().__init__(base_url, headers=headers, auth=auth, per_second=rate, burst=max(1, int(rate)))
        self.api = api

    @staticmethod
    def _unwrap(key: str | None, body: Any) -> Any:
        return body.get(key) if key and isinstance(body, dict) else body

    def list_changed(self, entity: str, since: datetime | None, until: datetime | None,
                     zone: tzinfo = UTC) -> Iterator[dict[str, Any]]:
        """Records changed in [since, until), every page, whatever the app's paging style. ``zone``:
        where the app's dates and times without an offset are (its filter's and its updated-at's)."""
        spec = self.api.entities[entity]
        filt = spec.changed_since
        params: dict[str, Any] = dict(spec.list_params)
        if since is not None and filt.param:  # a filter by day asks from the start of the local day
            asked = since if filt.format in ("iso", "unix", "unix_ms") or "%H" in filt.format else day_start(since, zone)
            params[filt.param] = format_moment(asked, filt.format, zone)
        if until is not None and filt.before_param:
            params[filt.before_param] = format_moment(until, filt.format, zone)
        for records in self._pages(entity, spec, spec.list_path or spec.path, params):
            older = False
            for record in records:
                updated = moment_or_none(dig(record, spec.updated_at_field), zone)
                # Filters by day, or none at all: the exact window is enforced here.
                if updated is not None and until is not None and updated >= until:
                    continue
                if updated is not None and since is not None and updated < since:
                    older = True
                    continue
                yield record
            if older and spec.newest_first:
                return

    def _pages(self, entity: str, spec: AppEntityApi, path: str, params: dict[str, Any]
               ) -> Iterator[list[dict[str, Any]]]:
        paging = spec.pagination
        guard = PageGuard(f"the app's {entity}s ({path})", f"app.entities.{entity}.pagination",
                          lambda record: dig(record, spec.id_field),
                          max_pages=paging.max_pages, max_records=paging.max_records)
        if paging.size_param:
            params[paging.size_param] = paging.size

        def fetch(call: PageRequest) -> tuple[Any, list[Any]]:
            body = self.request("GET", call.path, params=call.params, retry=True).json()
            records = self._unwrap(spec.list_key, body) or []
            if not isinstance(records, list):
                raise ApiError(None, "GET", call.path, f"the list body holds no list of records under "
                                                       f"app.entities.{entity}.list_key ({spec.list_key!r})")
            return body, records

        yield from pages(paginator(paging, self.http.base_url.path), PageRequest(path, params), fetch, guard)

    def lookup(self, entity: str, email: str, email_field: str = "email") -> dict[str, Any] | None:
        """The record with this email, found by the app's own search, or None."""
        spec = self.api.entities[entity]
        if not spec.lookup_param:
            return None
        try:
            body = self.request("GET", spec.path, params={spec.lookup_param: email}, retry=True).json()
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        found = self._unwrap(spec.list_key if isinstance(self._unwrap(spec.list_key, body), list) else spec.item_key,
                             body)
        candidates = found if isinstance(found, list) else [found] if found else []
        # Only an exact match: an app that ignores the filter, or searches by substring, must not
        # hand us someone else's record to overwrite.
        return next((c for c in candidates if str(dig(c, email_field) or "").strip().lower() == email.strip().lower()),
                    None)

    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        """One record by its id, at the entity's item path (the collection's path, then the id), as
        the fast lane reads what a webhook names; None when the app no longer has it (404)."""
        spec = self.api.entities[entity]
        try:
            response = self.request("GET", f"{spec.path.rstrip('/')}/{quote_id(record_id)}", retry=True)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return self._unwrap(spec.item_key, response.json()) if response.content else None

    def _write(self, entity: str, op: str, record_id: str | None, fields: dict[str, Any] | None,
               retry: bool) -> dict[str, Any]:
        spec = self.api.entities[entity]
        operation = getattr(spec, op)
        if operation is None:
            raise ValueError(f"the profile describes no {op} operation for the app's {entity}s")
        path = operation.path.replace("{id}", quote_id(record_id))
        if fields is not None and operation.id_in_body and record_id is not None:
            fields = {**fields, operation.id_in_body: typed_id(str(record_id))}
        body = None if fields is None else ({spec.send_key: fields} if spec.send_key else fields)
        response = self.request(operation.method, path, json=body, retry=retry)
        return self._unwrap(spec.item_key, response.json()) if response.content else {}

    def create(self, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self._write(entity, "create", None, fields, retry=False)

    def update(self, entity: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self._write(entity, "update", record_id, fields, retry=True)

    def delete(self, entity: str, record_id: str) -> dict[str, Any]:
        return self._write(entity, "delete", record_id, None, retry=True)


def paginator(paging: Pagination, base_path: str = "") -> Paginator:
    """The paginator of the profile's paging style, reading the answer where the profile says
    (``base_path``: the path of the app's base URL, which its next links repeat)."""
    has_more = (lambda body: dig(body, paging.has_more)) if paging.has_more else None
    match paging.style:
        case "page":
            return PageNumberPaginator(paging.page_param, paging.size, has_more)
        case "offset":
            return OffsetPaginator(paging.offset_param, paging.size, has_more)
        case "cursor":
            return CursorPaginator(paging.cursor_param, lambda body: dig(body, paging.next_cursor))
        case "next_link":
            return NextLinkPaginator(lambda body: dig(body, paging.next_link), base_path)
        case _:
            return SinglePagePaginator()


class AppHook(HookBase):
    """Connection: host = the app's API base URL (else the profile's ``app.base_url``); password =
    API key or token; for OAuth apps, extras client_id and client_secret (and optionally refresh_token)."""

    default_conn_name = "app_default"
    conn_type = "crm_sync_app"
    hook_name = "crm-sync business app"

    def __init__(self, api: AppApi, token_store: TokenStore | None = None):
        super().__init__(api.conn_id)
        self.api = api
        self.token_store = token_store

    def get_conn(self) -> AppClient:
        conn = self.connection()
        base_url = self.base_url(conn, self.api.base_url or "")
        if not base_url:
            raise ValueError(f"connection '{self.conn_id}' needs a host (the app's API base URL), "
                             "or the profile an app.base_url")
        if self.api.auth.type != "oauth_client_credentials":
            if not conn.password:
                raise ValueError(f"connection '{self.conn_id}' needs a password (the API key or token)")
            return AppClient(base_url, self.api, secret=conn.password)
        extra = self.extras(conn)
        if not extra.get("client_id") or not extra.get("client_secret"):
            raise ValueError(f"connection '{self.conn_id}' uses OAuth and needs extra.client_id and extra.client_secret")
        client = OAuthClient(extra["client_id"], extra["client_secret"], f"{base_url}{self.api.auth.token_path}",
                             user_type=None, client_credentials=True)
        store = self.token_store or shared_store(AirflowVariableTokenStore(self.conn_id,
                                                                           prefix="crm_sync_app_refresh_token"))
        return AppClient(base_url, self.api, auth=RotatingOAuth(client, store, extra.get("refresh_token"),
                                                                on_unsaved=unsaved_alert(self.conn_id)))
