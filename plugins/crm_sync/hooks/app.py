"""Any business app's REST API, driven entirely by the profile's ``app`` section.

The profile names the paths, the auth header, the paging and the "changed since"
parameter; this client only follows it, so a new app is a profile file, not new code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from crm_sync.hooks.base import HookBase
from crm_sync.http import ApiClient
from crm_sync.profile import AppApi, AppEntityApi


def dig(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


class AppClient(ApiClient):
    def __init__(self, base_url: str, secret: str, api: AppApi):
        header = api.auth.header
        value = secret if api.auth.type == "api_key_header" else f"Bearer {secret}"
        super().__init__(base_url, headers={header: value, "Accept": "application/json"},
                         per_second=api.rate_limit_per_second, burst=max(1, int(api.rate_limit_per_second)))
        self.api = api

    def _unwrap(self, spec: AppEntityApi, body: Any) -> Any:
        return body.get(spec.envelope) if spec.envelope and isinstance(body, dict) else body

    def _wrap(self, spec: AppEntityApi, record: dict[str, Any]) -> Any:
        return {spec.envelope: record} if spec.envelope else record

    def list_changed(self, entity: str, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        """Records changed in [since, until), every page."""
        spec = self.api.entities[entity]
        paging = spec.pagination
        params: dict[str, Any] = {paging.size_param: paging.size}
        if since is not None:
            params[spec.changed_since_param] = since.isoformat()
        if until is not None and spec.changed_before_param:
            params[spec.changed_before_param] = until.isoformat()
        page = 1
        while True:
            body = self.request("GET", spec.path, params={**params, paging.page_param: page}, retry=True).json()
            records = self._unwrap(spec, body) or []
            for record in records:
                # An app without an "updated before" filter still gets a bounded window.
                updated = record.get(spec.updated_at_field)
                if until is not None and not spec.changed_before_param and updated and _after(updated, until):
                    continue
                yield record
            if not records or not dig(body, paging.has_more):
                return
            page += 1

    def lookup(self, entity: str, email: str) -> dict[str, Any] | None:
        spec = self.api.entities[entity]
        body = self.request("GET", spec.path, params={spec.lookup_param: email}, retry=True).json()
        found = self._unwrap(spec, body) or []
        return found[0] if found else None

    def create(self, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        spec = self.api.entities[entity]
        return self._unwrap(spec, self.request("POST", spec.path, json=self._wrap(spec, fields), retry=False).json())

    def update(self, entity: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        spec = self.api.entities[entity]
        response = self.request(spec.update_method, f"{spec.path}/{record_id}", json=self._wrap(spec, fields),
                                retry=True)
        return self._unwrap(spec, response.json())


def _after(value: str, moment: datetime) -> bool:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) >= moment


class AppHook(HookBase):
    """Connection: host = the app's API base URL, password = API key or token."""

    default_conn_name = "app_default"
    conn_type = "crm_sync_app"
    hook_name = "crm-sync business app"

    def __init__(self, api: AppApi):
        super().__init__(api.conn_id)
        self.api = api

    def get_conn(self) -> AppClient:
        conn = self.connection()
        if not conn.host or not conn.password:
            raise ValueError(f"connection '{self.conn_id}' needs a host (API base URL) and a password (API key)")
        return AppClient(self.base_url(conn, ""), conn.password, self.api)
