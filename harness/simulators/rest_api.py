"""What a REST app simulator is declared with (harness.simulators.rest_app serves it): the wire formats of
its timestamps, its resources' fields, filters, order, ids, deletes and parents, and its auth."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from harness.simulators.base import iso_z

# ------------------------------------------------------------------ wire formats


@dataclass(frozen=True)
class TimeFormat:
    """How a moment is written on the wire, and read back (ValueError when it is not in this form).
    A format without an offset reads a naive datetime, which the engine places in its shop zone."""

    name: str
    render: Callable[[datetime], Any]
    read: Callable[[Any], datetime]
    wire_type: type = str  # what a record holds (a query string is read whatever this is)


def _read_iso(value: Any) -> datetime:
    if not isinstance(value, str) or "T" not in value:
        raise ValueError(value)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read_unix(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError(value)
    return datetime.fromtimestamp(int(value), UTC)


def _strptime(pattern: str) -> Callable[[Any], datetime]:
    return lambda value: datetime.strptime(str(value), pattern)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _render_dmy(moment: datetime) -> str:
    return f"{moment.day:02d}-{MONTHS[moment.month - 1]}-{moment.year}"


def _read_dmy(value: Any) -> datetime:
    """``05-Nov-2026`` (month names in English whatever the locale, any letter case)."""
    day, month, year = str(value).split("-")
    return datetime(int(year), MONTHS.index(month.title()) + 1, int(day))


ISO = TimeFormat("an ISO 8601 timestamp", iso_z, _read_iso)
UNIX = TimeFormat("Unix seconds", lambda moment: int(moment.timestamp()), _read_unix, int)
SQL = TimeFormat("YYYY-MM-DD HH:MM:SS", lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S"),
                 _strptime("%Y-%m-%d %H:%M:%S"))
DATE = TimeFormat("YYYY-MM-DD", lambda moment: moment.strftime("%Y-%m-%d"), _strptime("%Y-%m-%d"))
DAY_DMY = TimeFormat("dd-mmm-yyyy", _render_dmy, _read_dmy)
HH_MM = TimeFormat("HH:MM", lambda moment: moment.strftime("%H:%M"), _strptime("%H:%M"))
EARLIEST = datetime.min.replace(tzinfo=UTC)

# ------------------------------------------------------------------ declarations


@dataclass(frozen=True)
class Field:
    """A field a write may set. ``kind``: text | email | int | bool | strings | dict | any;
    ``time`` makes it a timestamp/date in that format instead."""

    name: str
    kind: str = "text"
    required: bool = False
    choices: tuple[Any, ...] = ()
    max_length: int | None = None
    time: TimeFormat | None = None

    def problem(self, value: Any) -> str | None:
        if value is None:
            return f"{self.name} is required" if self.required else None
        if self.time is not None:
            try:
                if not isinstance(value, self.time.wire_type) or isinstance(value, bool):
                    raise TypeError(value)
                self.time.read(value)
            except (ValueError, TypeError, OverflowError, OSError):
                return f"{self.name} must be {self.time.name}"
            return None
        if self.kind == "email" and not (isinstance(value, str) and "@" in value):
            return f"email '{value}' is not a valid address"
        if not KINDS[self.kind](value):
            return f"{self.name} must be {KIND_NAMES[self.kind]}"
        if self.required and value == "":
            return f"{self.name} is required"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(map(str, self.choices))}"
        if self.max_length is not None and len(str(value)) > self.max_length:
            return f"{self.name} must be at most {self.max_length} characters"
        return None


KINDS: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: isinstance(v, str), "email": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool), "bool": lambda v: isinstance(v, bool),
    "strings": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "dict": lambda v: isinstance(v, dict), "any": lambda v: True,
}
KIND_NAMES = {"text": "a string", "email": "a string", "int": "an integer", "bool": "true or false",
              "strings": "a list of strings", "dict": "an object", "any": "a value"}


@dataclass(frozen=True)
class Filter:
    """``?param=value`` keeps records whose ``field`` (None: the updated-at field) is ``>=`` (or ``<``)
    the value read in ``time``; ``whole_day`` makes a ``<`` bound the end of the named day."""

    param: str
    time: TimeFormat
    op: str = ">="
    field: str | None = None
    whole_day: bool = False


def since(param: str, time_format: TimeFormat, field_name: str | None = None) -> Filter:
    return Filter(param, time_format, ">=", field_name)


def before(param: str, time_format: TimeFormat, field_name: str | None = None, whole_day: bool = False) -> Filter:
    return Filter(param, time_format, "<", field_name, whole_day)


@dataclass(frozen=True)
class Order:
    """Sort by ``field`` (None: updated-at), then by id; both descending when ``descending``."""

    field: str | None = None
    descending: bool = False


def ascending_by_update(query: Mapping[str, str]) -> Order:
    return Order()


@dataclass(frozen=True)
class Listing:
    """One GET route over a resource's records. ``path`` "" is the resource's own path.

    ``lookup`` params match a field of the same name exactly (case-insensitive); with
    ``lookup_one`` a lookup answers the single record (item envelope) or 404 instead of a list.
    ``order`` reads the request's query into an Order (ValueError: 400).
    """

    path: str = ""
    filters: tuple[Filter, ...] = ()
    lookup: tuple[str, ...] = ()
    lookup_one: bool = False
    order: Callable[[Mapping[str, str]], Order] = ascending_by_update


@dataclass(frozen=True)
class Ids:
    """How a new record's id is made: ``prefix`` + a counter (``mem_50000``), a bare int counter, or a uuid4."""

    style: str = "prefix"  # prefix | int | uuid
    prefix: str = ""
    start: int = 1


@dataclass(frozen=True)
class SoftDelete:
    """DELETE sets ``marks``, stamps ``stamps`` with now, bumps updated-at and answers the record (200):
    it stays listed, which is how an incremental sync learns about the delete."""

    marks: dict[str, Any]
    stamps: tuple[str, ...] = ()


@dataclass(frozen=True)
class HardDelete:
    """DELETE removes the record and answers 204 with no body."""


@dataclass(frozen=True)
class Parent:
    """The field (a dotted path when nested: ``customer.internal_id``) holding the id of a record of
    ``collection``; it is required on create and must name an existing record, else 422."""

    field: str
    collection: str


class BadRequest(ValueError):
    """A query the app refuses with 400."""


@dataclass(frozen=True)
class Resource:
    """One collection of records and the routes serving it."""

    collection: str
    path: str
    item_path: str  # names its path parameter as the app does, so /_sim/calls keys read like the app's docs
    fields: tuple[Field, ...]
    ids: Ids
    paging: Any  # one of PageMeta, Cursor, FixedPages, NextLink, OffsetTotal
    id_field: str = "id"
    updated: str = "updated_at"
    created: str | None = "created_at"
    clock: TimeFormat = ISO
    list_key: str | None = "data"  # None: a bare JSON array (FixedPages)
    item_key: str | None = None  # None: a single record is a bare object
    body_key: str | None = None  # a write's body is {body_key: {...}} ...
    body_key_optional: bool = False  # ... or may also come flat
    lists: tuple[Listing, ...] = (Listing(),)
    update: str | None = "PATCH"  # PATCH | PUT | None
    upsert_by: tuple[str, ...] = ()  # POST updates the record matching these fields (first given wins)
    delete: SoftDelete | HardDelete | None = None
    parent: Parent | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], str | None] | None = None  # a rule over the whole record after a write
    finish: Callable[[dict[str, Any]], None] | None = None  # fills derived fields after a write

    @property
    def noun(self) -> str:
        return self.collection.removesuffix("s")


@dataclass(frozen=True)
class HeaderAuth:
    """A credential in one header, after ``scheme`` when there is one (``Bearer``)."""

    header: str
    accepts: Callable[[str], bool]
    scheme: str = ""

    def credential(self, request: Request) -> str | None:
        value = request.headers.get(self.header, "")
        if self.scheme:
            scheme, _, value = value.partition(" ")
            if scheme.lower() != self.scheme.lower():
                return None
        value = value.strip()
        return value if value and self.accepts(value) else None

    @property
    def refusal(self) -> str:
        return f"missing or invalid {self.header}" + (f" ({self.scheme} token)" if self.scheme else "")


def secret_is(secret: str) -> Callable[[str], bool]:
    return lambda value: hmac.compare_digest(value.encode(), secret.encode())


@dataclass(frozen=True)
class Api:
    """An app: its auth, its error body ``error(status, code, message)``, its resources, its rate limit.

    Codes passed to ``error``: unauthorized, bad_request, not_found, validation_error, rate_limited.
    """

    title: str
    auth: HeaderAuth
    error: Callable[[int, str, str], Any]
    resources: tuple[Resource, ...]
    rate_limit_per_s: int | None = None
