"""Stage: normalise this run's raw records into staging; quarantine what breaks a rule.

People go to staging_contact (typed columns; normalised and hashed column by column, then
matched and validated in bulk); tasks, notes and appointments to staging_record (canonical
fields as JSON, with their contact's id on that side). Staging holds the newest good version of every record of each side. A row is
rewritten only when its content hash changes, so echoes of our own writes (which load
already recorded) leave it untouched.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.bulk_normalize import FIELDS as BULK_FIELDS
from crm_sync.pipeline.bulk_normalize import normalize_contacts
from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.landing import mark_staged
from crm_sync.pipeline.normalize import canonical_record, content_hash, field_key, field_value, raw_value
from crm_sync.pipeline.shape import MALFORMED
from crm_sync.profile import CANONICAL
from crm_sync.records import Broken, RuleBroken, dig
from crm_sync.timezones import timestamp
from crm_sync.warehouse import staging
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.lock import profile_lock
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import quarantine, raw_record, staging_contact, staging_record


def quarantine_row(ctx: RunContext, side: str, raw_id: int, source_id: str | None, broken: Broken,
                   entity: str = "contact") -> dict[str, Any]:
    return {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": entity,
            "source_id": source_id, "rule": broken.rule, "detail": broken.detail, "raw_id": raw_id,
            "created_at": utcnow()}


def record_hash(values: dict[str, Any], entity: str, deleted: bool) -> str:
    """The content hash, marked when the record is deleted there (a delete is a change too)."""
    digest = content_hash(values, entity)
    return _deleted_mark(digest) if deleted else digest


def _deleted_mark(digest: str) -> str:
    return hashlib.sha256(f"{digest}:deleted".encode()).hexdigest()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def is_deleted(ctx: RunContext, side: str, entity: str, payload: dict[str, Any]) -> bool:
    if side == "ghl" or ctx.profile.app.kind == "csv":
        return False
    marker = ctx.profile.app.entities[entity].deleted
    return marker is not None and dig(payload, marker.field) in marker.values


def _bookkeeping(ctx: RunContext, raw: sa.Row) -> dict[str, Any]:
    """A staging row's columns other than the canonical fields; raises RuleBroken when the record
    cannot be staged at all (an unreadable CSV line, no id, an unreadable updated-at)."""
    profile, entity, payload = ctx.profile, raw.entity, raw.payload
    if payload.get(MALFORMED):  # a record extract found the wrong shape (crm_sync.pipeline.shape)
        raise RuleBroken(Broken(payload[MALFORMED], payload["_detail"]))
    if payload.get("_error"):  # a CSV line that could not be read
        raise RuleBroken(Broken("csv_format", f"{payload['_file']} line {payload['_line']}: {payload['_error']}"))
    if raw.source_id is None:
        id_field, _ = profile.record_fields(raw.side, entity)
        key = "" if raw.side == "ghl" else f" (profile key app.entities.{entity}.id_field)"
        raise RuleBroken(Broken("id_missing", f"{ctx.side_name(raw.side)} {entity} has no id field '{id_field}'{key}"))
    _, updated_field = profile.record_fields(raw.side, entity)
    return {"profile": profile.name, "side": raw.side, "source_id": raw.source_id,
            "deleted": is_deleted(ctx, raw.side, entity, payload), "updated_at": timestamp(dig(payload, updated_field), zone=profile.side_zone(raw.side)),
            "raw_id": raw.id, "run_id": ctx.run_id}


def stage_one(ctx: RunContext, raw: sa.Row) -> dict[str, Any]:
    """One raw task, note or appointment to a staging row; raises RuleBroken with the first rule it breaks."""
    row = _bookkeeping(ctx, raw)
    entity, payload = raw.entity, raw.payload
    values = canonical_record(entity, payload, raw.side, ctx.profile.fields(entity), ctx.profile.default_region,
                              ctx.profile.zone)
    contact_id = payload.get("contactId") if raw.side == "ghl" else dig(payload, ctx.profile.contact_field(entity))
    if contact_id in (None, ""):
        raise RuleBroken(Broken("contact_missing", f"{ctx.side_name(raw.side)} {entity} {raw.source_id} names "
                                                   "no contact"))
    return {**row, "entity": entity, "contact_id": str(contact_id),
            "content_hash": record_hash(values, entity, row["deleted"]), "fields": values}


def stage_contacts(ctx: RunContext, raws: list[sa.Row]) -> tuple[list[dict[str, Any]], list[tuple[sa.Row, Broken]]]:
    """Contacts in bulk: each payload's fields are read row by row (JSON has to be), and emails,
    phones and names are normalised and hashed column-wise (crm_sync.pipeline.bulk_normalize), which is
    where the per-row cost was. Returns (staging rows, (raw, rule broken) of the rest)."""
    fields = ctx.profile.fields("contact")
    rows, sources, read, bad = [], [], [], []
    for raw in raws:
        try:
            row, values = _bookkeeping(ctx, raw), {}
            for name, spec in fields.items():
                try:
                    values[name] = (raw_value(spec, raw.payload, raw.side) if name in BULK_FIELDS else
                                    field_value("contact", name, spec, raw.payload, raw.side, ctx.profile.default_region,
                                                ctx.profile.zone))
                except RuleBroken as exc:
                    raise RuleBroken(Broken(exc.broken.rule, f"{field_key('contact', name, spec, raw.side)}: "
                                                             f"{exc.broken.detail}")) from None
        except RuleBroken as exc:
            bad.append((raw, exc.broken))
            continue
        read.append({"position": len(rows), **values})
        rows.append({**row, "external_id": external_id(ctx, raw)})
        sources.append(raw)
    frame = pd.DataFrame(read, columns=["position", *CANONICAL["contact"]]).astype(object)
    good, broken = normalize_contacts(frame, ctx.profile.default_region)
    for position, name, rule, detail in zip(broken.position, broken.field, broken.rule, broken.detail, strict=True):
        raw = sources[position]
        bad.append((raw, Broken(rule, f"{field_key('contact', name, fields[name], raw.side)}: {detail}")))
    staged = []
    names = CANONICAL["contact"]
    columns = [good[name].to_numpy(object) for name in ("position", "content_hash", *names)]
    for position, digest, *values in zip(*columns, strict=True):
        row = rows[position]
        staged.append({**row, **{name: None if _missing(v) else v for name, v in zip(names, values, strict=True)},
                       "content_hash": _deleted_mark(digest) if row["deleted"] else digest})
    return staged, bad


def external_id(ctx: RunContext, raw: sa.Row) -> str | None:
    """The other side's id this contact keeps, where the profile says it keeps one."""
    spec = ctx.profile.entities["contact"].external_id
    value = None
    if spec is not None and raw.side == "app" and spec.app:
        value = dig(raw.payload, spec.app)
    elif spec is not None and raw.side == "ghl" and spec.ghl_custom_field:
        value = next((field.get("value") for field in raw.payload.get("customFields") or []
                      if isinstance(field, dict) and field.get("id") == spec.ghl_custom_field), None)
    return None if value in (None, "") or isinstance(value, dict | list) else str(value)


def _where_csv(raw: sa.Row, broken: Broken) -> Broken:
    """Errors on CSV lines say which line, so the user can fix the file."""
    line = raw.payload.get("_line") if isinstance(raw.payload, dict) else None
    if line is None or broken.rule == "csv_format":
        return broken
    return Broken(broken.rule, f"{raw.payload.get('_file')} line {line}: {broken.detail}")


def stage(ctx: RunContext) -> dict[str, Any]:
    eng = engine()
    name = ctx.profile.name
    with eng.connect() as conn:
        raws = conn.execute(sa.select(raw_record).where(
            raw_record.c.profile == name, raw_record.c.run_id == ctx.run_id).order_by(raw_record.c.id)).all()
        current = {("contact", r.side, r.source_id): (r.content_hash, r.external_id) for r in conn.execute(
            sa.select(staging_contact.c.side, staging_contact.c.source_id, staging_contact.c.content_hash,
                      staging_contact.c.external_id).where(staging_contact.c.profile == name))}
        current.update({(r.entity, r.side, r.source_id): r.content_hash for r in conn.execute(
            sa.select(staging_record.c.entity, staging_record.c.side, staging_record.c.source_id,
                      staging_record.c.content_hash).where(staging_record.c.profile == name))})
    contacts, broken = stage_contacts(ctx, [raw for raw in raws if raw.entity == "contact"])
    children = []
    for raw in raws:
        if raw.entity != "contact":
            try:
                children.append(stage_one(ctx, raw))
            except RuleBroken as exc:
                broken.append((raw, exc.broken))
    bad = [quarantine_row(ctx, raw.side, raw.id, raw.source_id, _where_csv(raw, rule), raw.entity)
           for raw, rule in sorted(broken, key=lambda item: item[0].id)]
    contacts = [r for r in contacts
                if current.get(("contact", r["side"], r["source_id"])) != (r["content_hash"], r["external_id"])]
    children = [r for r in children if current.get((r["entity"], r["side"], r["source_id"])) != r["content_hash"]]
    # Under the profile's lock: the fast lane's load must not stage a newer answer between the check and the write.
    with profile_lock(eng, name, "stage"), eng.begin() as conn:
        contacts, children, older = staging.newer_only(conn, name, contacts, children)
        staging.keep(conn, contacts, children)
        insert_ignore(conn, quarantine, bad, keys=["profile", "run_id", "raw_id", "rule"])
        mark_staged(conn, ctx, raws)
        stats = {"staged_changed": len(contacts) + len(children), "quarantined": len(bad), "rows": len(raws),
                 "older_than_staged": older}
        log_step(conn, ctx, "stage", stats)
    return stats
