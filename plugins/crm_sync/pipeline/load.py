"""Load: send the outbox, each row once, and record what each side now holds.

Load reads only the outbox. A row is claimed with a conditional update (pending ->
sending) so two runs can never send it both; it ends ``sent``, ``failed`` (the server
refused it, or a dead letter: the message is kept and the batch goes on) or back to ``pending`` when the
failure was transient, for the task's retry or the next run. Creates cannot duplicate:
GHL contacts go through ``/contacts/upsert``, app contacts are looked up by email first,
and a resent task, note or appointment is first looked up under its contact. After a write, the
side's response is staged and its hash stored on the link, so the echo of our own write
is recognised on the next extraction. Rows run in lanes (``lanes``): each side's writes apart,
concurrently, each side paced by its own client; every write of one contact in one lane, in
outbox order, so a contact's create is sent before the tasks and notes that need its new id.
Any other exception of one row (a NoRetryError such as paging that would not end too) is kept on the
row and, after MAX_ATTEMPTS, dead-letters it; but a SideUnavailable (crm_sync.errors: the GHL location
uninstalled the app, a wrong agency connection) stops its lane at once,
leaves the row pending as if never tried, and fails the task with that error once every lane is done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa

from crm_sync import alerts
from crm_sync.errors import SideUnavailable
from crm_sync.hooks.app import AppClient, AppHook
from crm_sync.hooks.ghl import DailyBudgetReached, GHLClient, GHLHook
from crm_sync.http import ApiError
from crm_sync.pipeline import webhook_events
from crm_sync.pipeline.context import RunContext, advance_watermark, log_step, utcnow
from crm_sync.pipeline.landing import mark_written
from crm_sync.pipeline.normalize import canonical_record, to_side, write_sets
from crm_sync.pipeline.reconcile.children import NATURAL_KEY
from crm_sync.pipeline.stage import record_hash
from crm_sync.profile import Side
from crm_sync.records import RuleBroken, dig, typed_id
from crm_sync.timezones import timestamp
from crm_sync.warehouse import outbox, staging
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.lock import profile_lock
from crm_sync.warehouse.tables import run_log, staging_contact, xref

log = logging.getLogger(__name__)


class TransientLoadError(RuntimeError):
    """Some writes failed transiently; they stay pending for the retry or the next run."""


class ContactNotReady(Exception):
    """A child's contact has no id on the target side yet: the child waits (pending) for a later load."""


class Sender:
    """Performs outbox writes against both sides; returns the record the side now holds."""

    def __init__(self, ctx: RunContext, conn_factory, ghl: GHLClient, app: AppClient | None):
        self.ctx, self.profile = ctx, ctx.profile
        self.conn_factory, self.ghl, self.app = conn_factory, ghl, app

    def contact_id(self, row: sa.Row, side: Side) -> str:
        with self.conn_factory() as conn:
            found = conn.execute(sa.select(getattr(xref.c, f"{side}_id")).where(
                xref.c.id == row.contact_xref_id)).scalar_one_or_none()
        if found is None:
            raise ContactNotReady(f"{row.entity} of contact link {row.contact_xref_id}")
        return found

    def linked(self, row: sa.Row, side: Side = "ghl") -> set[str]:
        """The side's ids of this entity already linked: a lookup must never claim one of them."""
        column = getattr(xref.c, f"{side}_id")
        with self.conn_factory() as conn:
            return {r[0] for r in conn.execute(sa.select(column).where(
                xref.c.profile == self.profile.name, xref.c.entity == row.entity, column.is_not(None)))}

    def send(self, row: sa.Row) -> dict[str, Any] | None:
        fields = self.profile.fields(row.entity)
        body = to_side(row.entity, row.payload, row.side, fields, full=row.merged, zone=self.profile.zone)
        write_sets(body, row.payload.get("@set"), row.side)  # a profile rule's own fields
        if row.side == "ghl":
            return self._ghl(row, body)
        return self._app(row, body)

    def _ghl(self, row: sa.Row, body: dict[str, Any]) -> dict[str, Any] | None:
        ghl = self.ghl
        if row.entity == "contact":
            if row.op == "create":
                return ghl.upsert_contact(body)
            if row.op == "delete":
                ghl.delete_contact(row.target_id)
                return None
            if row.op == "archive":
                ghl.add_tags(row.target_id, row.payload["tags"])
                return ghl.get_contact(row.target_id)
            tags = body.pop("tags", None) if "tags" in row.payload else None
            held = ghl.update_contact(row.target_id, body) if body else None
            if "tags" in row.payload:
                self._retag(row, tags or [])
                held = ghl.get_contact(row.target_id)
            return held
        contact_id = self.contact_id(row, "ghl")
        if row.op == "create":
            # A resend (an earlier attempt may have reached GHL) first looks for what it created. ``row``
            # was read before this send's claim, so any attempt it counts is an earlier one.
            found = ghl.find_child(row.entity, contact_id, body, exclude=self.linked(row)) if row.attempts else None
            return found or ghl.create_child(row.entity, contact_id, body)
        if row.op == "delete":
            ghl.delete_child(row.entity, contact_id, row.target_id)
            return None
        return ghl.update_child(row.entity, contact_id, row.target_id, body)

    def _retag(self, row: sa.Row, wanted: list[str]) -> None:
        """Only the tags that changed: adding and removing leaves tags someone set meanwhile alone."""
        with self.conn_factory() as conn:
            current = conn.execute(sa.select(staging_contact.c.tags).where(
                staging_contact.c.profile == self.profile.name, staging_contact.c.side == "ghl",
                staging_contact.c.source_id == row.target_id)).scalar_one_or_none() or []
        if added := sorted(set(wanted) - set(current)):
            self.ghl.add_tags(row.target_id, added)
        if removed := sorted(set(current) - set(wanted)):
            self.ghl.remove_tags(row.target_id, removed)

    def _app(self, row: sa.Row, body: dict[str, Any]) -> dict[str, Any] | None:
        app, entity = self.app, row.entity
        if row.op == "delete":
            app.delete(entity, row.target_id)
            return None
        if row.op != "create":
            return app.update(entity, row.target_id, body) or None  # an empty answer: re-read next run
        if entity != "contact":
            field = self.profile.contact_field(entity)
            contact_id = self.contact_id(row, "app")
            top, _, rest = field.partition(".")
            body[top] = {rest: typed_id(contact_id)} if rest else typed_id(contact_id)
            # A resend (an earlier attempt may have reached the app) first looks for what it created.
            found = self._app_child_sent(row, field, contact_id) if row.attempts else None
            return found or self._created(row, app.create(entity, body))
        email = row.payload.get("email")
        existing = app.lookup(entity, email, self.profile.fields(entity)["email"].app) if email else None
        if existing is None:
            return self._created(row, app.create(entity, body))
        id_field, _ = self.profile.record_fields("app")
        return app.update(entity, str(dig(existing, id_field)), body)

    def _app_child_sent(self, row: sa.Row, contact_field: str, contact_id: str) -> dict[str, Any] | None:
        """An unlinked child of the contact with the write's natural key (a task's title, a note's body,
        an appointment's start), changed since the write was planned: an earlier attempt's record."""
        key = NATURAL_KEY[row.entity]
        planned = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        since = planned - timedelta(minutes=self.profile.overlap_minutes)  # the app's clock may run behind
        id_field, _ = self.profile.record_fields("app", row.entity)
        linked, fields = self.linked(row, "app"), self.profile.fields(row.entity)
        for record in self.app.list_changed(row.entity, since, None, self.profile.zone):
            if str(dig(record, contact_field)) != str(contact_id) or str(dig(record, id_field)) in linked:
                continue
            try:
                values = canonical_record(row.entity, record, "app", fields, self.profile.default_region,
                                          self.profile.zone)
            except RuleBroken:
                continue
            if values.get(key) == row.payload.get(key):
                return record
        return None

    def _created(self, row: sa.Row, held: dict[str, Any] | None) -> dict[str, Any]:
        """A create must answer with the record (its id is the link), else the profile's keys are wrong."""
        id_field, _ = self.profile.record_fields("app", row.entity)
        if not held or dig(held, id_field) in (None, ""):
            api = self.profile.app.entities[row.entity]
            raise ApiError(422, "POST", api.path, f"the app's answer holds no '{id_field}' under item_key "
                                                  f"{api.item_key!r}: check app.entities.{row.entity} in the profile")
        return held


def record_success(conn: sa.Connection, ctx: RunContext, row: sa.Row, held: dict[str, Any] | None) -> None:
    side: Side = row.side
    profile = ctx.profile
    if held is None:  # a delete: nothing to stage
        outbox.mark_sent(conn, row.id, utcnow())
        return
    id_field, updated_field = profile.record_fields(side, row.entity)
    target_id = str(dig(held, id_field))
    try:
        values = canonical_record(row.entity, held, side, profile.fields(row.entity), profile.default_region,
                                  profile.zone)
        updated = timestamp(dig(held, updated_field), zone=profile.side_zone(side))
    except RuleBroken:  # the side reformatted a value beyond our rules: keep what we sent
        values, updated = dict(row.merged), utcnow()
    mark_written(conn, ctx, side, row.entity, target_id, held)
    held_hash = record_hash(values, row.entity, False)
    staged = {"profile": profile.name, "side": side, "source_id": target_id, "updated_at": updated,
              "content_hash": held_hash, "raw_id": None, "run_id": ctx.run_id, "deleted": False}
    if row.entity == "contact":
        staging.keep(conn, contacts=[{**staged, **values}])
    else:
        contact_id = held.get("contactId") if side == "ghl" else dig(held, profile.contact_field(row.entity))
        staging.keep(conn, children=[{**staged, "entity": row.entity, "fields": values,
                                      "contact_id": None if contact_id is None else str(contact_id)}])
    link = {f"{side}_id": target_id, f"{side}_hash": held_hash, "base": row.merged, "updated_at": utcnow()}
    if row.xref_id == 0:  # a template task planned by an older version (GHL only, no link yet): its link is born here
        conn.execute(sa.insert(xref).values(profile=profile.name, entity=row.entity, **link))
    else:
        other = "app" if side == "ghl" else "ghl"
        # the other side's own write records its hash
        if not outbox.planned_in_run(conn, row.xref_id, row.run_id, other) and row.source_hash:
            link[f"{other}_hash"] = row.source_hash
        conn.execute(sa.update(xref).where(xref.c.id == row.xref_id).values(link))
    outbox.mark_sent(conn, row.id, utcnow(), target_id)


def load(ctx: RunContext) -> dict[str, Any]:
    eng = engine()
    with profile_lock(eng, ctx.profile.name, "load"):
        return _send_outbox(ctx, eng)


MAX_ATTEMPTS = 3  # sends of one row that fail unexpectedly before it is dead-lettered (status failed)
LANES_PER_SIDE = 4  # concurrent writers per side: GHL answers in ~100 ms, its pace is ~10 calls/s
ERROR_CHARS = 500  # of a server's or an exception's message kept on the row


def lanes(rows: list[sa.Row], per_side: int = LANES_PER_SIDE) -> list[list[sa.Row]]:
    """The rows split into lanes sent concurrently, each in outbox order. A side's lanes never hold
    another side's rows (each side is paced by its own client), and every write of one contact (its
    own and its tasks', notes' and appointments') is in one lane: a contact's create goes before its
    children, and two writes of one record are never reordered."""
    split: dict[tuple[str, int], list[sa.Row]] = {}
    for row in rows:
        chain = row.contact_xref_id or row.xref_id
        split.setdefault((row.side, chain % per_side), []).append(row)
    return list(split.values())


def _send_outbox(ctx: RunContext, eng: sa.Engine) -> dict[str, Any]:
    name = ctx.profile.name
    with eng.begin() as conn:
        # A crash between claim and result leaves "sending": resend looks up what the first send may have
        # created (GHL upsert, GHL child lookup, app email lookup), so reclaim.
        outbox.release_stuck(conn, name)
        rows = outbox.due(conn, name)
        if ctx.dry_run:
            outbox.mark_dry_run(conn, [r.id for r in rows])
    counts = Counter({"sent": 0, "failed": 0, "transient": 0, "waiting": 0,
                      "dry_run": len(rows) if ctx.dry_run else 0})
    dead: list[dict[str, Any]] = []
    stops: list[SideUnavailable] = []
    ghl = GHLHook(ctx.profile.ghl.conn_id, location_id=ctx.profile.ghl.location_id).get_conn(
        page_limit=ctx.profile.ghl.page_limit, daily_reserve=ctx.profile.ghl.daily_reserve)
    app = AppHook(ctx.profile.app).get_conn() if ctx.profile.app.kind == "rest" else None
    sender = Sender(ctx, eng.connect, ghl, app)
    started = time.monotonic()
    busy: dict[str, float] = {}  # per side: seconds until its last lane finished
    try:
        todo = lanes([] if ctx.dry_run else rows)
        with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
            for lane, (lane_counts, lane_dead, lane_stop) in zip(todo, pool.map(
                    lambda lane: _send_lane(ctx, eng, sender, lane), todo), strict=True):
                busy[lane[0].side] = max(busy.get(lane[0].side, 0.0), lane_counts.pop("finished_s"))
                counts.update(lane_counts)
                dead += lane_dead
                stops += [lane_stop] if lane_stop is not None else []
    finally:
        ghl.close()
        if app is not None:
            app.close()
    api = {"ghl": ghl.metrics.as_dict(), "app": app.metrics.as_dict() if app else {}}
    stats = {**counts, "dead_letter": dead, "send_s": round(time.monotonic() - started, 3),
             "send_s_by_side": {side: round(seconds, 3) for side, seconds in busy.items()}, "api": api}
    if counts["failed"]:  # refused for good (422, dead letters): they wait for the outbox CLI, so someone must know
        alerts.send(alerts.Alert("rows_failed", profile=ctx.profile.name, dag_id=ctx.profile.dag_id,
                                 run_id=ctx.run_id, counts={"failed": counts["failed"], "sent": counts["sent"],
                                                            "dead_letter": len(dead)}))
    with eng.begin() as conn:
        log_step(conn, ctx, "load", stats)
        if not counts["transient"] and not stops:
            _advance_watermarks(conn, ctx)
            webhook_events.mark_done(conn, ctx)  # the webhook events this run's extract handed on
    if stops:  # e.g. the location uninstalled the app: its writes wait, pending, for a reinstall
        raise stops[0]
    if counts["transient"]:
        raise TransientLoadError(f"{counts['transient']} write(s) failed transiently and stay pending")
    return stats


def _send_lane(ctx: RunContext, eng: sa.Engine, sender: Sender, rows: list[sa.Row]
               ) -> tuple[Counter, list[dict[str, Any]], SideUnavailable | None]:
    """Send one lane's rows in order. Whatever one row raises, the lane goes on: a refusal marks it
    failed, a transient error leaves it pending, anything else (an HTML page answered with 200, a body
    without the expected key, a bug) is recorded on the row and retried by the next attempts, then
    dead-lettered (failed) after MAX_ATTEMPTS so it never stands first in line forever. A SideUnavailable
    is not the row's fault (the GHL location uninstalled the app): the lane stops there, the row and the
    rest stay pending, unattempted, and the error is returned for the task to fail with."""
    counts: Counter = Counter()
    dead: list[dict[str, Any]] = []
    started = time.monotonic()
    for row in rows:
        with eng.begin() as conn:
            if not outbox.claim(conn, row.id, ctx.run_id):
                continue
        try:
            held = sender.send(row)
            with eng.begin() as conn:
                record_success(conn, ctx, row, held)
            counts["sent"] += 1
            continue
        except ContactNotReady as waiting:
            counts["waiting"] += 1
            log.info("outbox row %s waits: %s has no id on %s yet", row.id, waiting, row.side)
            with eng.begin() as conn:
                outbox.retry_later(conn, row.id, "waiting for its contact to be created")
            continue
        except SideUnavailable as stop:
            log.error("outbox row %s (%s %s %s) not sent, nor the rest of its lane: %s", row.id, row.op, row.side,
                      row.entity, stop)
            with eng.begin() as conn:
                outbox.unclaim(conn, row.id, f"not sent: {stop}"[:ERROR_CHARS], row.sent_run_id)
            counts["stopped"] += 1
            counts["finished_s"] = time.monotonic() - started
            return counts, dead, stop
        except DailyBudgetReached as stop:  # GHL's day is spent: the write goes out with the next run
            counts["budget_waiting"] += 1
            status, error = "pending", str(stop)
        except ApiError as exc:
            status = "pending" if exc.retriable else "failed"
            counts["transient" if exc.retriable else "failed"] += 1
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop the others
            error = f"{type(exc).__name__}: {exc}"
            if row.attempts + 1 >= MAX_ATTEMPTS:
                status, error = "failed", f"dead letter after {row.attempts + 1} attempts: {error}"
                counts["failed"] += 1
                dead.append({"id": row.id, "entity": row.entity, "side": row.side, "op": row.op,
                             "error": error[:ERROR_CHARS]})
            else:
                status = "pending"
                counts["transient"] += 1
        log.warning("outbox row %s (%s %s %s xref %s) %s: %s", row.id, row.op, row.side, row.entity,
                    row.xref_id, status, error[:ERROR_CHARS])
        with eng.begin() as conn:
            (outbox.fail if status == "failed" else outbox.retry_later)(conn, row.id, error[:ERROR_CHARS])
    counts["finished_s"] = time.monotonic() - started
    return counts, dead, None


def _advance_watermarks(conn: sa.Connection, ctx: RunContext) -> None:
    windows = conn.execute(sa.select(run_log.c.side, run_log.c.window_end).where(
        run_log.c.profile == ctx.profile.name, run_log.c.run_id == ctx.run_id, run_log.c.step == "extract")).all()
    for side, window_end in windows:
        if window_end is not None:
            for entity in ctx.profile.synced():
                advance_watermark(conn, ctx.profile.name, side, entity, window_end)
