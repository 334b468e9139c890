"""The app's side of a profile: how its API is called (auth, paths, envelopes, paging, the
"changed since" filter, writes, soft deletes), or which folder of CSV files it is read from.

A new app is a new profile file, not code: ``hooks.app`` reads everything it needs from here.
``crm_sync.profile`` holds the rest of a profile; ``profile_webhooks`` the app's push.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from crm_sync.paging import DEFAULT_MAX_PAGES, DEFAULT_MAX_RECORDS
from crm_sync.profile_base import Strict
from crm_sync.profile_webhooks import AppWebhooks

Entity = Literal["contact", "task", "note", "appointment"]

# A path on the app's base URL: never a URL or a scheme-relative "//host" (that would send the key elsewhere).
RELATIVE_PATH = r"^/([^/\s\\][^\s\\]*)?$"


class PagingLimits(Strict):
    """Bounds of one entity's paged read: past them (or on a page of records already seen) the
    read fails, naming this setting, instead of paging forever."""

    max_pages: int = Field(DEFAULT_MAX_PAGES, ge=1, description="pages one read may take")
    max_records: int = Field(DEFAULT_MAX_RECORDS, ge=1, description="records one read may bring")


class Pagination(PagingLimits):
    """How a list is paged. ``page``: page number (ends on ``has_more`` false, or a short page when
    the app has no such flag); ``offset``: offset/limit; ``cursor``: the body names the next cursor;
    ``next_link``: the body carries the next page's URL; ``none``: one call returns everything."""

    style: Literal["page", "offset", "cursor", "next_link", "none"] = "page"
    size: int = Field(100, ge=1, le=1000, description="records asked for per call")
    size_param: str | None = Field("per_page", description="query parameter for the page size; null: fixed by the app")
    page_param: str = "page"
    has_more: str | None = Field(None, description="dotted path to a has-more flag in a list body")
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_cursor: str = Field("next_cursor", description="dotted path to the next cursor in a list body")
    next_link: str = Field("next", description="dotted path to the next page's URL in a list body")


class ChangedSince(Strict):
    """The filter that makes extraction incremental. ``format``: iso, unix (seconds), unix_ms, or
    a strftime pattern such as ``%d-%b-%Y`` for an app that filters by day."""

    param: str | None = Field(None, description="null: the app has no such filter (see newest_first)")
    before_param: str | None = None
    format: str = "iso"


class Operation(Strict):
    """One write: HTTP method and path; ``{id}`` is the record's id on the app."""

    method: Literal["POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(pattern=RELATIVE_PATH)
    id_in_body: str | None = Field(None, description="the app takes the record's id in the body, under this key")


class DeletedMarker(Strict):
    """A record the app lists as deleted: ``field`` holds one of ``values`` (soft delete)."""

    field: str
    values: list[Any]


class AppEntityApi(Strict):
    path: str = Field(pattern=RELATIVE_PATH, description="the collection")
    list_path: str | None = Field(None, pattern=RELATIVE_PATH,
                                  description="where changed records are listed, when not the collection")
    list_params: dict[str, str | int] = Field(default_factory=dict, description="fixed query parameters of the list")
    list_key: str | None = Field(None, description="key holding records in a list body; null: a bare array")
    item_key: str | None = Field(None, description="key wrapping one record in a response body")
    send_key: str | None = Field(None, description="key wrapping one record in a request body")
    id_field: str = "id"
    updated_at_field: str = "updated_at"
    contact_field: str | None = Field(None, description="tasks, notes, appointments: field with the contact's id")
    changed_since: ChangedSince = ChangedSince()
    newest_first: bool = Field(False, description="the list is newest first: paging stops at the watermark")
    pagination: Pagination = Pagination()
    lookup_param: str | None = Field(None, description="query parameter that finds a record by email")
    create: Operation | None = None
    update: Operation | None = None
    delete: Operation | None = None
    deleted: DeletedMarker | None = None


class AppAuth(Strict):
    """``api_key_header``: the key as the header's whole value; ``bearer``: ``Bearer <key>``;
    ``oauth_client_credentials``: client id and secret (connection extras) exchanged at
    ``token_path`` for an access token, renewed with the rotated refresh token."""

    type: Literal["api_key_header", "bearer", "oauth_client_credentials"]
    header: str = "Authorization"
    token_path: str = Field("/oauth/token", pattern=RELATIVE_PATH)


class CsvSource(Strict):
    """Contacts from CSV files dropped in a folder: each file is imported once."""

    folder: str = Field(description="folder of *.csv files, relative to CRM_SYNC_HOME")
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    key_column: str = Field("email", description="column that identifies a row's person")
    notes_column: str | None = None
    tags_column: str | None = None
    tags_separator: str = Field(";", min_length=1)

    @field_validator("folder")
    @classmethod
    def _inside_home(cls, folder: str) -> str:  # the import reads every file there; see csv_source.csv_folder
        if Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise ValueError("must be a folder inside CRM_SYNC_HOME: a relative path without '..'")
        return folder


class AppApi(Strict):
    kind: Literal["rest", "csv"] = "rest"
    base_url: str | None = Field(None, pattern=r"^https?://", description="used when the connection has no host")
    conn_id: str | None = None
    auth: AppAuth | None = None
    rate_limit_per_second: float = Field(10.0, gt=0)
    csv: CsvSource | None = None
    entities: dict[Entity, AppEntityApi] = Field(default_factory=dict)
    webhooks: AppWebhooks | None = Field(None, description="the app pushes its changes (crm_sync.profile_webhooks)")

    @model_validator(mode="after")
    def _kind_needs(self) -> AppApi:
        if self.kind == "rest" and (self.conn_id is None or self.auth is None):
            raise ValueError("a rest app needs conn_id and auth")
        if self.kind == "csv" and self.csv is None:
            raise ValueError("a csv app needs a csv section")
        if self.kind == "csv" and self.webhooks is not None:
            raise ValueError("webhooks: a csv source pushes nothing (its secret would live in the app's connection)")
        return self
