"""One engine for the simulators of the REST business apps (Gymdesk, GymFlow, MyGadgetRepairs, Gist, generic).

The apps differ in exactly the details a sync client must get right (auth header, envelopes,
paging style, timestamp format, how a delete shows) and not in what a collection does. So an app
module declares its API as data (``Api`` of ``Resource``s) and this module serves it: auth, rate
limits, paging, filters, validation and errors are written once, answered in each app's shapes.

Shared rules: lists are ordered by (updated-at, id) ascending unless a ``Listing`` says otherwise;
every write stamps updated-at with the server clock in the resource's wire format, while
``POST /_sim/seed`` keeps seeded values verbatim; a write's unknown fields are ignored; a dict field
is merged one level deep on update (partial updates of nested objects).

Shop zone: formats without an offset (``SQL``, ``DATE``, ``DAY_DMY``, ``HH_MM``) are wall-clock
times in the simulator's ``zone`` (UTC unless given), as a shop app keeps them: the updated-at
stamps are its local time and a day filter such as ``updatedDateFrom`` names a local day.
Fault ``endless_pages`` (``POST /_sim/faults {"endless_pages": true}``): every list ignores the
client's position and answers its first page forever, still saying there is more (a fresh cursor,
a next link one page on, ``has_more``): the broken app a paginator must not follow forever.
Fault ``extra_rows`` (a list of any JSON values): appended to every list answer as they are (a
string, an array, a number where a record belongs).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from harness.simulators.app_push import AppWebhooks, Push, Verb
from harness.simulators.base import FaultAction, SimState, error, install_common, utcnow
from harness.simulators.rest_api import EARLIEST, Api, BadRequest, Filter, HardDelete, Listing, Order, Parent, Resource

# ------------------------------------------------------------------ the engine


def _get_path(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _set_path(record: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        record = record.setdefault(part, {})
    record[last] = value


def _id_key(record_id: Any) -> tuple[int, Any]:
    """Ints sort as numbers, anything else as text."""
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        return (0, record_id)
    return (1, str(record_id))


class RestSim:
    """Serves an ``Api`` over a SimState. ``build()`` makes the FastAPI app; an app module may add
    routes of its own to it, using ``guard`` and ``fail`` so they authenticate and answer alike."""

    def __init__(self, api: Api, state: SimState | None = None, zone: tzinfo | str = UTC, push: Push | None = None):
        self.api = api
        self.webhooks = AppWebhooks(push) if push else None  # every change, signed, to registered targets
        self.state = state or SimState()
        self.zone = ZoneInfo(zone) if isinstance(zone, str) else zone
        self._counters = {r.collection: itertools.count(r.ids.start) for r in api.resources}
        self._recent: dict[str, deque[float]] = {}
        self._id_fields = {r.collection: r.id_field for r in api.resources}
        self.endless_pages = False
        self.extra_rows: list[Any] = []
        self._endless = itertools.count(1)

    # -- answers

    def fail(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return error(status, self.api.error(status, code, message), headers)

    def guard(self, request: Request) -> JSONResponse | None:
        """The refusal of a request that is not authenticated or over the rate limit, else None."""
        credential = self.api.auth.credential(request)
        if credential is None:
            return self.fail(401, "unauthorized", self.api.auth.refusal)
        limit = self.api.rate_limit_per_s
        if limit and not self._admit(credential, limit):
            return self.fail(429, "rate_limited", f"more than {limit} requests per second",
                             headers={"Retry-After": "1"})
        return None

    def _admit(self, credential: str, limit: int) -> bool:
        """A sliding one-second window of admitted requests per credential."""
        now = time.monotonic()
        with self.state.lock:
            window = self._recent.setdefault(credential, deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True

    def _item(self, resource: Resource, record: dict[str, Any], status: int = 200) -> JSONResponse:
        body = record if resource.item_key is None else {resource.item_key: record}
        return JSONResponse(status_code=status, content=body)

    def _not_found(self, resource: Resource, record_id: Any) -> JSONResponse:
        return self.fail(404, "not_found", f"{resource.noun} {record_id} not found")

    def changed(self, verb: Verb, resource: Resource, record: dict[str, Any]) -> None:
        """Tell the app's webhook targets (app_push), if it pushes."""
        if self.webhooks is not None and self.webhooks.targets:  # a bulk seed with no target copies nothing
            self.webhooks.changed(verb, resource.collection, deepcopy(record), record.get(resource.id_field))

    def _seeded(self, collection: str, record: dict[str, Any], existed: bool) -> None:
        resource = next((r for r in self.api.resources if r.collection == collection), None)
        if resource is not None:
            self.changed("updated" if existed else "created", resource, record)

    # -- reading

    def _moment(self, resource: Resource, record: Mapping[str, Any], field_name: str) -> datetime | None:
        value = record.get(field_name)
        try:
            return None if value is None else self._placed(resource.clock.read(value))
        except (ValueError, TypeError, OverflowError, OSError):
            return None

    def _placed(self, moment: datetime) -> datetime:
        """A wall-clock time read from the wire, placed in the shop's zone (PEP 495: fold 0)."""
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment

    def _now(self) -> datetime:
        return utcnow().astimezone(self.zone)

    def _sort_key(self, resource: Resource, order: Order) -> Callable[[Mapping[str, Any]], tuple]:
        field_name = order.field or resource.updated
        return lambda record: (self._moment(resource, record, field_name) or EARLIEST,
                               _id_key(record.get(resource.id_field)))

    def _passes(self, resource: Resource, record: Mapping[str, Any], rule: Filter, bound: datetime) -> bool:
        moment = self._moment(resource, record, rule.field or resource.updated)
        return moment is not None and (moment >= bound if rule.op == ">=" else moment < bound)

    def _select(self, resource: Resource, listing: Listing, query: Mapping[str, str], order: Order
                ) -> list[dict[str, Any]]:
        """The records a list request matches (copies, taken under the lock), in ``order``."""
        bounds = []
        for rule in listing.filters:
            if raw := query.get(rule.param):
                try:
                    bound = self._placed(rule.time.read(raw))
                except (ValueError, TypeError, OverflowError, OSError) as exc:
                    raise BadRequest(f"{rule.param} must be {rule.time.name}") from exc
                bounds.append((rule, bound + timedelta(days=1) if rule.whole_day else bound))
        lookups = [(name, query[name].lower()) for name in listing.lookup if query.get(name)]
        with self.state.lock:
            rows = [deepcopy(r) for r in self.state.table(resource.collection).values()]
        rows = [r for r in rows
                if all(str(r.get(name) or "").lower() == wanted for name, wanted in lookups)
                and all(self._passes(resource, r, rule, bound) for rule, bound in bounds)]
        rows.sort(key=self._sort_key(resource, order), reverse=order.descending)
        return rows

    # -- writing

    async def _body(self, request: Request, resource: Resource) -> dict[str, Any] | JSONResponse:
        try:
            payload = await request.json()
        except ValueError:
            return self.fail(400, "bad_request", "the body must be JSON")
        key = resource.body_key
        if key is not None:
            inner = payload.get(key) if isinstance(payload, dict) else None
            if isinstance(inner, dict):
                payload = inner
            elif not resource.body_key_optional:
                return self.fail(422, "validation_error", f'the body must be {{"{key}": {{...}}}}')
        if not isinstance(payload, dict):
            return self.fail(422, "validation_error", "the body must be a JSON object")
        return payload

    def _write(self, resource: Resource, body: dict[str, Any], existing: dict[str, Any] | None
               ) -> dict[str, Any] | str:
        """The record after this write (a new dict), or why the app refuses it. Call under the lock."""
        creating = existing is None
        for spec in resource.fields:
            if spec.name in body:
                if (problem := spec.problem(body[spec.name])) is not None:
                    return problem
            elif creating and spec.required:
                return f"{spec.name} is required"
        now = resource.clock.render(self._now())
        if creating:
            record = {resource.id_field: None, **deepcopy(resource.defaults)}
            if resource.created:
                record[resource.created] = now
        else:
            record = deepcopy(existing)
        parent_name = resource.parent.field.split(".")[0] if resource.parent else None
        for name in [spec.name for spec in resource.fields] + ([parent_name] if parent_name else []):
            if name in body:
                old, new = record.get(name), deepcopy(body[name])
                record[name] = {**old, **new} if isinstance(old, dict) and isinstance(new, dict) else new
        # Checked when set, so a child outlives a parent deleted since.
        relinks = resource.parent and (creating or parent_name in body)
        if relinks and (problem := self._link_parent(resource.parent, record)):
            return problem
        record[resource.updated] = now
        if creating:
            record[resource.id_field] = self._new_id(resource)
        if resource.finish:
            resource.finish(record)
        if resource.check and (problem := resource.check(record)):
            return problem
        return record

    def _link_parent(self, parent: Parent, record: dict[str, Any]) -> str | None:
        """Point the record at its parent's own id (so "12" becomes 12 for int ids), or say why not."""
        value = _get_path(record, parent.field)
        if value is None or value == "":
            return f"{parent.field} is required"
        found = self.state.table(parent.collection).get(str(value))
        if found is None:
            return f"{parent.field} {value} does not match any {parent.collection.removesuffix('s')}"
        _set_path(record, parent.field, found.get(self._id_fields.get(parent.collection, "id"), value))
        return None

    def _new_id(self, resource: Resource) -> Any:
        table = self.state.table(resource.collection)
        if resource.ids.style == "uuid":
            return str(uuid.uuid4())
        while True:
            n = next(self._counters[resource.collection])
            record_id = n if resource.ids.style == "int" else f"{resource.ids.prefix}{n}"
            if str(record_id) not in table:
                return record_id

    def _match(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any] | None | JSONResponse:
        """The record an upsert updates: the first of ``upsert_by`` given in the body decides."""
        table = self.state.table(resource.collection)
        for name in resource.upsert_by:
            value = body.get(name)
            if value is None or value == "":
                continue
            if name == resource.id_field:
                return table.get(str(value)) or self._not_found(resource, value)
            wanted = str(value).lower()
            if found := next((r for r in table.values() if str(r.get(name) or "").lower() == wanted), None):
                return found
        return None

    # -- routes

    def _list_route(self, resource: Resource, listing: Listing) -> Callable:
        async def list_records(request: Request):
            if (refused := self.guard(request)) is not None:
                return refused
            query = request.query_params
            try:
                order = listing.order(query)
                rows = self._select(resource, listing, query, order)
                if listing.lookup_one and any(query.get(name) for name in listing.lookup):
                    if not rows:
                        asked = ", ".join(f"{n}={query[n]}" for n in listing.lookup if query.get(n))
                        return self.fail(404, "not_found", f"no {resource.noun} with {asked}")
                    return self._item(resource, rows[0])
                if self.endless_pages:
                    return self._endless_page(resource, rows, request, order)
                body = resource.paging.page(rows, request, resource.list_key, self._sort_key(resource, order))
                (body if isinstance(body, list) else body[resource.list_key]).extend(deepcopy(self.extra_rows))
                return body
            except ValueError as exc:  # BadRequest, or an order the listing refuses
                return self.fail(400, "bad_request", str(exc))
        return list_records

    def _endless_page(self, resource: Resource, rows: list[dict[str, Any]], request: Request, order: Order) -> Any:
        """Fault ``endless_pages``: the first page whatever the position asked, and always "more"."""
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "offset", "cursor")]
        first = Request({**request.scope, "query_string": urlencode(kept).encode()})
        body = resource.paging.page(rows, first, resource.list_key, self._sort_key(resource, order))
        if isinstance(body, dict):
            if "meta" in body:
                body["meta"]["has_more"] = True
            if "next_cursor" in body:
                body["next_cursor"] = f"again-{next(self._endless)}"
            if "pages" in body:
                page = int(request.query_params.get("page") or 1)
                body["pages"]["next"] = str(request.url.include_query_params(page=page + 1))
        return body

    def _create_route(self, resource: Resource) -> Callable:
        async def create_record(request: Request):
            if (refused := self.guard(request)) is not None:
                return refused
            body = await self._body(request, resource)
            if isinstance(body, Response):
                return body
            with self.state.lock:
                existing = self._match(resource, body) if resource.upsert_by else None
                if isinstance(existing, Response):
                    return existing
                record = self._write(resource, body, existing)
                if isinstance(record, str):
                    return self.fail(422, "validation_error", record)
                self.state.table(resource.collection)[str(record[resource.id_field])] = record
                self.changed("created" if existing is None else "updated", resource, record)
                return self._item(resource, deepcopy(record), 201 if existing is None else 200)
        return create_record

    def _get_route(self, resource: Resource) -> Callable:
        async def get_record(request: Request):
            if (refused := self.guard(request)) is not None:
                return refused
            record_id = next(iter(request.path_params.values()))
            with self.state.lock:
                record = deepcopy(self.state.table(resource.collection).get(record_id))
            return self._not_found(resource, record_id) if record is None else self._item(resource, record)
        return get_record

    def _update_route(self, resource: Resource) -> Callable:
        async def update_record(request: Request):
            if (refused := self.guard(request)) is not None:
                return refused
            record_id = next(iter(request.path_params.values()))
            body = await self._body(request, resource)
            if isinstance(body, Response):
                return body
            with self.state.lock:
                table = self.state.table(resource.collection)
                if (existing := table.get(record_id)) is None:
                    return self._not_found(resource, record_id)
                record = self._write(resource, body, existing)
                if isinstance(record, str):
                    return self.fail(422, "validation_error", record)
                table[record_id] = record
                self.changed("updated", resource, record)
                return self._item(resource, deepcopy(record))
        return update_record

    def _delete_route(self, resource: Resource) -> Callable:
        async def delete_record(request: Request):
            if (refused := self.guard(request)) is not None:
                return refused
            record_id = next(iter(request.path_params.values()))
            with self.state.lock:
                table = self.state.table(resource.collection)
                if (record := table.get(record_id)) is None:
                    return self._not_found(resource, record_id)
                if isinstance(resource.delete, HardDelete):
                    del table[record_id]
                    self.changed("deleted", resource, record)
                    return Response(status_code=204)
                soft = resource.delete
                if any(record.get(k) != v for k, v in soft.marks.items()):  # deleting twice changes nothing
                    now = resource.clock.render(self._now())
                    record = {**record, **soft.marks, **dict.fromkeys(soft.stamps, now), resource.updated: now}
                    table[record_id] = record
                    self.changed("deleted", resource, record)
                return self._item(resource, deepcopy(record))
        return delete_record

    def build(self, fault_actions: dict[str, FaultAction] | None = None) -> FastAPI:
        app = FastAPI(title=f"{self.api.title} simulator")
        app.state.sim = self.state
        app.state.id_fields = dict(self._id_fields)
        actions = {"endless_pages": lambda on: setattr(self, "endless_pages", bool(on)),
                   "extra_rows": lambda rows: self.extra_rows.extend(rows), **(fault_actions or {})}
        install_common(app, self.state, actions, id_fields=self._id_fields, on_seed=self._seeded)
        if self.webhooks is not None:
            app.include_router(self.webhooks.router())
        # Every list route first: /customers/updated must not be read as /customers/{id}.
        for resource in self.api.resources:
            for listing in resource.lists:
                app.add_api_route(listing.path or resource.path, self._list_route(resource, listing),
                                  methods=["GET"])
        for resource in self.api.resources:
            app.add_api_route(resource.path, self._create_route(resource), methods=["POST"])
            app.add_api_route(resource.item_path, self._get_route(resource), methods=["GET"])
            if resource.update:
                app.add_api_route(resource.item_path, self._update_route(resource), methods=[resource.update])
            if resource.delete is not None:
                app.add_api_route(resource.item_path, self._delete_route(resource), methods=["DELETE"])
        return app
