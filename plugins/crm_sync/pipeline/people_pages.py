"""The console's people: a search over a profile's persons and one person's page, all in SQL.

Read from the analysts' models (person, person_activity, sync_changelog; crm_sync.pipeline.people_models
keeps them current) and the tables a person's sync history lives in (quarantine, review_decision,
webhook_inbox). A big location holds 100,000 people: the search filters, counts and pages in the
database (a LIKE reads the profile's persons once; a page sorts the narrow key, then reads its rows
by id), and a person's page reads the models, quarantine and webhook_inbox by key and by their indexes.

Search: the text is folded as the models fold what they store (crm_sync.pipeline.people_search_keys),
then matched with LIKE anywhere in the person's names (``search_name``: case and accents aside), emails
(``search_email``) and, when it reads as a phone, its digits (``search_phone``: "(555) 010-2030",
"+1 555.010.2030" and "5550102030" all find +15550102030). Newest changed first (``person.updated_at``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.people_search_keys import fold_name, phone_digits
from crm_sync.pipeline.report_pages import contains, page_span
from crm_sync.profile import CANONICAL, Profile
from crm_sync.timezones import show
from crm_sync.warehouse.tables import (
    outbox,
    person,
    person_activity,
    quarantine,
    review_decision,
    staging_contact,
    sync_changelog,
    webhook_done,
    webhook_inbox,
    xref,
)

PER_PAGE, PER_PAGE_MAX = 50, 100
HISTORY_MAX = 200  # newest rows of each kind of a person's history; older ones stay in the tables
ACTIVITIES_MAX = 500
FIELDS = list(CANONICAL["contact"])
_PHONE_LIKE = re.compile(r"^[\d\s().+\-/]+$")  # what a phone typed any way is made of


def search_filter(profile: Profile, q: str) -> sa.ColumnElement[bool] | None:
    """What the search ``q`` matches: its folded text in a name or an email, or (typed as a phone)
    its digits in a phone; None for an empty search (everyone)."""
    text = (q or "").strip()
    if not text:
        return None
    matches = [contains(person.c.search_name, fold_name(text)), contains(person.c.search_email, text.lower())]
    if _PHONE_LIKE.match(text) and (digits := phone_digits(text, profile.default_region)):
        matches.append(contains(person.c.search_phone, digits))
    return sa.or_(*matches)


def search_people(conn: sa.Connection, profile: Profile, q: str = "", page: int = 1, per_page: int = PER_PAGE
                  ) -> dict[str, Any]:
    """One page of the profile's persons matching ``q`` (everyone when empty), newest changed first,
    and how many match: ``{"people": [...], "span": page_span(...)}``."""
    per_page = min(max(1, per_page), PER_PAGE_MAX)
    where = [person.c.profile == profile.name]
    if (matched := search_filter(profile, q)) is not None:
        where.append(matched)
    newest = (person.c.updated_at.desc(), person.c.person_id.desc())

    def page_ids(at: int, counted: bool) -> list[Any]:
        """One page's person ids, sorted on the narrow key alone (the rows are read by id after)."""
        key = (person.c.person_id, sa.func.count().over().label("total")) if counted else (person.c.person_id,)
        return conn.execute(sa.select(*key).where(*where).order_by(*newest).limit(per_page)
                            .offset(per_page * (at - 1))).all()

    if matched is None:  # everyone: counted by an index, not by reading the rows
        total, ids = conn.execute(sa.select(sa.func.count()).select_from(person).where(*where)).scalar_one(), None
    else:  # a search reads the rows once: the matches, counted by a window, and one page of them
        ids = page_ids(max(1, page), counted=True)
        total = ids[0].total if ids else conn.execute(
            sa.select(sa.func.count()).select_from(person).where(*where)).scalar_one()
    shown = page_span(total, page, per_page)
    if total and not ids:  # everyone, or a page past the end of the matches: the last
        ids = page_ids(shown["page"], counted=False)
    order = [row.person_id for row in ids or []]
    found = {row["person_id"]: dict(row) for row in conn.execute(sa.select(
        person.c.person_id, person.c.ghl_id, person.c.app_id, person.c.first_name, person.c.last_name,
        person.c.email, person.c.phone, person.c.status, person.c.last_synced, person.c.updated_at)
        .where(person.c.person_id.in_(order))).mappings()} if order else {}
    rows = [found[person_id] for person_id in order]
    return {"people": rows, "span": shown}


# --- one person ----------------------------------------------------------------------------------------

def person_detail(conn: sa.Connection, profile: Profile, person_id: int, zone: tzinfo = UTC) -> dict[str, Any] | None:
    """A person (None when the profile has none of this id): both records side by side with, per field,
    the merged value and which side won it last; the timeline of tasks, notes and appointments of
    both sides, newest first, in ``zone``; and the sync history, newest first, each entry with its run."""
    found = conn.execute(sa.select(person).where(person.c.profile == profile.name,
                                                 person.c.person_id == person_id)).mappings().first()
    if found is None:
        return None
    me = dict(found)
    records = _records(conn, profile.name, me["ghl_id"], me["app_id"])
    winners = me.pop("winners") or {}
    for key in ("search_name", "search_email", "search_phone"):
        me.pop(key)
    fields = [{"field": name, "ghl": _value(records["ghl"], name), "app": _value(records["app"], name),
               "merged": me.get(name), "winner": winners.get(name)} for name in FIELDS]
    return {**me, "zone": str(getattr(zone, "key", zone)), "records": records, "fields": fields,
            "activities": activities(conn, profile.name, person_id, zone),
            "history": history(conn, profile.name, person_id, me["ghl_id"], me["app_id"])}


def _value(record: dict[str, Any] | None, name: str) -> Any:
    return None if record is None else record["fields"].get(name)


def _records(conn: sa.Connection, profile: str, ghl_id: str | None, app_id: str | None
             ) -> dict[str, dict[str, Any] | None]:
    """Each side's staged record of the person (None: that side has none, or it is not staged)."""
    ids = [(side, source_id) for side, source_id in (("ghl", ghl_id), ("app", app_id)) if source_id]
    found: dict[str, dict[str, Any] | None] = {"ghl": None, "app": None}
    if not ids:
        return found
    rows = conn.execute(sa.select(staging_contact).where(
        staging_contact.c.profile == profile,
        sa.or_(*(sa.and_(staging_contact.c.side == side, staging_contact.c.source_id == source_id)
                 for side, source_id in ids)))).mappings()
    for row in rows:
        found[row["side"]] = {"side": row["side"], "id": row["source_id"], "deleted": row["deleted"],
                              "changed_at": row["updated_at"], "run_id": row["run_id"],
                              "fields": {name: row[name] for name in FIELDS}}
    return found


def activities(conn: sa.Connection, profile: str, person_id: int, zone: tzinfo = UTC) -> list[dict[str, Any]]:
    """The person's tasks, notes and appointments, either side's, newest first (undated last), their
    times in ``zone``."""
    rows = conn.execute(sa.select(person_activity).where(
        person_activity.c.profile == profile, person_activity.c.person_id == person_id)
        .order_by(person_activity.c.at_utc.desc().nulls_last(), person_activity.c.activity_id.desc())
        .limit(ACTIVITIES_MAX)).mappings()
    return [{"activity_id": row["activity_id"], "entity": row["entity"], "side": row["sides"],
             "ghl_id": row["ghl_id"], "app_id": row["app_id"], "title": row["title"], "status": row["status"],
             "at_utc": row["at_utc"], "at_local": row["at_utc"].astimezone(zone).isoformat() if row["at_utc"] else None,
             "at_shown": show(row["at_utc"], zone), "zone": str(getattr(zone, "key", zone))} for row in rows]


def history(conn: sa.Connection, profile: str, person_id: int, ghl_id: str | None, app_id: str | None
            ) -> list[dict[str, Any]]:
    """Every write for the person, quarantine entry of either record, review decision on either id and
    GHL webhook event about its contact, newest first, each with its run (``HISTORY_MAX`` of each kind)."""
    entries = _writes(conn, profile, person_id) + _quarantined(conn, profile, ghl_id, app_id)
    entries += _decisions(conn, profile, ghl_id, app_id) + _events(conn, profile, ghl_id)
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: e["at"] or never, reverse=True)


def _entry(kind: str, **values: Any) -> dict[str, Any]:
    empty = {"at": None, "run_id": None, "sent_run_id": None, "entity": None, "side": None, "record_id": None,
             "what": "", "status": None, "detail": None, "changes": []}
    return {"kind": kind, **empty, **values}


def _writes(conn: sa.Connection, profile: str, person_id: int) -> list[dict[str, Any]]:
    c = sync_changelog.c
    rows = conn.execute(sa.select(sync_changelog).where(c.profile == profile, c.person_id == person_id)
                        .order_by(c.outbox_id.desc()).limit(HISTORY_MAX)).mappings()
    found = []
    for row in rows:
        before, after = row["before"] or {}, row["after"] or {}
        changes = [{"field": name, "before": _text(before.get(name)) if row["op"] != "create" else "",
                    "after": _text(value)} for name, value in after.items()]
        winners = "; ".join(f"{d.get('field')}: {d.get('winner')} won ({d.get('reason')})"
                            for d in row["decisions"] or [] if isinstance(d, dict) and d.get("winner"))
        found.append(_entry("write", at=row["sent_at"] or row["planned_at"], run_id=row["run_id"],
                            sent_run_id=row["sent_run_id"], entity=row["entity"], side=row["side"],
                            record_id=row["record_id"], what=row["op"], status=row["status"],
                            detail=row["error"] or winners or None, changes=changes))
    return found


def _text(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _quarantined(conn: sa.Connection, profile: str, ghl_id: str | None, app_id: str | None) -> list[dict[str, Any]]:
    ids = [sa.and_(quarantine.c.side == side, quarantine.c.source_id == source_id)
           for side, source_id in (("ghl", ghl_id), ("app", app_id)) if source_id]
    if not ids:
        return []
    rows = conn.execute(sa.select(quarantine).where(quarantine.c.profile == profile, sa.or_(*ids))
                        .order_by(quarantine.c.id.desc()).limit(HISTORY_MAX)).mappings()
    return [_entry("quarantine", at=row["created_at"], run_id=row["run_id"], entity=row["entity"], side=row["side"],
                   record_id=row["source_id"], what=row["rule"], status="quarantined", detail=row["detail"])
            for row in rows]


def _decisions(conn: sa.Connection, profile: str, ghl_id: str | None, app_id: str | None) -> list[dict[str, Any]]:
    c = review_decision.c
    ids = [column == value for column, value in ((c.ghl_id, ghl_id), (c.app_id, app_id)) if value]
    if not ids:
        return []
    rows = conn.execute(sa.select(review_decision).where(c.profile == profile, sa.or_(*ids))
                        .order_by(c.id.desc()).limit(HISTORY_MAX)).mappings()
    found = []
    for row in rows:
        undone = f"; undone by {row['undone_by']}" if row["undone_at"] else ""
        found.append(_entry("review", at=row["decided_at"], run_id=row["applied_run_id"], entity="contact",
                            record_id=f"ghl:{row['ghl_id']} app:{row['app_id']}", what=row["decision"],
                            status="undone" if row["undone_at"] else "active",
                            detail=f"decided by {row['decided_by']}{undone}"))
    return found


def _events(conn: sa.Connection, profile: str, ghl_id: str | None) -> list[dict[str, Any]]:
    """GHL's webhook events about the contact, with the run of this profile that took each in (None: not yet)."""
    if not ghl_id:
        return []
    done = sa.and_(webhook_done.c.inbox_id == webhook_inbox.c.id, webhook_done.c.profile == profile)
    rows = conn.execute(sa.select(webhook_inbox.c.id, webhook_inbox.c.event_type, webhook_inbox.c.object_id,
                                  webhook_inbox.c.event_at, webhook_done.c.run_id)
                        .outerjoin(webhook_done, done).where(webhook_inbox.c.contact_id == ghl_id)
                        .order_by(webhook_inbox.c.id.desc()).limit(HISTORY_MAX)).mappings()
    return [_entry("webhook", at=row["event_at"], run_id=row["run_id"], side="ghl", record_id=row["object_id"],
                   what=row["event_type"], status="taken in" if row["run_id"] else "waiting for a run")
            for row in rows]


# --- a run report's rows, each to its person ------------------------------------------------------------

def report_people(conn: sa.Connection, profile: str, report: dict[str, Any]) -> dict[str, dict]:
    """The person of each write (by outbox id) and quarantined row (by side and record id) a report page
    lists: one query per list, whatever its length. A row whose person the models do not hold yet has none."""
    ids = [w["outbox_id"] for w in report.get("writes", []) if w.get("outbox_id") is not None]
    return {"writes": _write_people(conn, profile, ids),
            "quarantine": _record_people(conn, profile, {(q["side"], q["source_id"])
                                                         for q in report.get("quarantine", []) if q["source_id"]})}


def _write_people(conn: sa.Connection, profile: str, ids: list[int]) -> dict[int, int]:
    """Per outbox row: its person, as the changelog says, else through its contact's link (a write the
    models have not logged yet)."""
    if not ids:
        return {}
    by_ghl, by_app = person.alias("by_ghl"), person.alias("by_app")
    contact = xref.alias("contact")
    link = sa.func.coalesce(outbox.c.contact_xref_id, outbox.c.xref_id)
    rows = conn.execute(
        sa.select(outbox.c.id, sa.func.coalesce(sync_changelog.c.person_id, by_ghl.c.person_id, by_app.c.person_id))
        .outerjoin(sync_changelog, sync_changelog.c.outbox_id == outbox.c.id)
        .outerjoin(contact, contact.c.id == link)
        .outerjoin(by_ghl, sa.and_(by_ghl.c.profile == profile, by_ghl.c.ghl_id == contact.c.ghl_id))
        .outerjoin(by_app, sa.and_(by_app.c.profile == profile, by_app.c.app_id == contact.c.app_id))
        .where(outbox.c.profile == profile, outbox.c.id.in_(ids)))
    return {outbox_id: person_id for outbox_id, person_id in rows if person_id is not None}


def _record_people(conn: sa.Connection, profile: str, records: set[tuple[str, str]]) -> dict[str, int]:
    """Per ``side:id`` of a contact or of a task, note or appointment: its person."""
    if not records:
        return {}
    def of(table: sa.Table) -> sa.Select:
        ids = [table.c[f"{side}_id"].in_([i for s, i in records if s == side])
               for side in ("ghl", "app") if any(s == side for s, _ in records)]
        return sa.select(table.c.person_id, table.c.ghl_id, table.c.app_id).where(
            table.c.profile == profile, table.c.person_id.is_not(None), sa.or_(*ids))

    found: dict[str, int] = {}
    for person_id, ghl_id, app_id in conn.execute(sa.union_all(of(person), of(person_activity))):
        for side, record_id in (("ghl", ghl_id), ("app", app_id)):
            if (side, record_id) in records:
                found.setdefault(f"{side}:{record_id}", person_id)
    return found
