"""What extract hands on: to reconcile and load of its run, to the report, and to the next run's
extract. One typed, versioned record per extract (profile, run, side), written and read only here.

It lives in run_log's own ``handoff`` column (migration 0008), not in ``stats``: stats are figures
for people (the report, the console, the task's return value) and may change with them; the handoff
is a contract between steps, so it has a version, a schema checked when read, and no key a report
could rename. Rows logged before the column existed carry the same facts as loose keys of stats
(``complete_lists``, ``unchanged_listed``, ``owed``, ``task_full_scan``, ``inbox``): they are read as
version 0 and upgraded, so a profile upgraded between two runs of its schedule still reads what the
last old run owed and when it last scanned every task. A version this code does not know (written
by a newer crm-sync) is refused, naming it: an older worker must not guess what it means.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from crm_sync.pipeline.context import RunContext
from crm_sync.profile import Side
from crm_sync.warehouse.tables import run_log

VERSION = 1


class HandoffVersionError(ValueError):
    """A handoff written in a version this code cannot read."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Owed(_Frozen):
    """What the GHL extract left unread when the day's budget ran down to the reserve."""

    note: list[str] = Field(default_factory=list, description="contacts whose notes were not read")
    task: list[str] = Field(default_factory=list, description="contacts whose tasks were not read")
    appointment_from: str | None = Field(None, description="where the unread appointment range began (ISO)")


class WebhookEvents(_Frozen):
    """The webhook inbox events a side's extract used: load marks exactly ``ids`` done on success."""

    ids: list[int] = Field(default_factory=list, description="empty when extract stopped before using them")
    reads: dict[str, int] = Field(default_factory=dict, description="entity -> contacts the events asked to read")
    deleted_contacts: list[str] = Field(default_factory=list, description="ContactDelete events GHL confirmed")
    oldest_received_at: str | None = Field(None, description="ISO time the oldest of them reached the inbox")
    age_at_start_s: float | None = Field(None, description="how old that event was when the run started")


class Handoff(_Frozen):
    version: int = VERSION
    complete_lists: dict[str, list[str]] = Field(
        default_factory=dict, description="entity -> GHL contacts whose complete child list this run read")
    unchanged_listed: dict[str, list[str]] = Field(
        default_factory=dict, description="entity -> children on those lists read but not landed (unchanged)")
    task_full_scan: bool = Field(False, description="this run read every GHL task of the location, to the end")
    owed: Owed = Field(default_factory=Owed)
    webhook_events: WebhookEvents = Field(default_factory=WebhookEvents)


def _upgraded(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Version 0: the facts as loose keys of an extract's stats (crm-sync before migration 0008)."""
    return {"version": VERSION, "complete_lists": stats.get("complete_lists") or {},
            "unchanged_listed": stats.get("unchanged_listed") or {},
            "task_full_scan": bool(stats.get("task_full_scan")), "owed": stats.get("owed") or {},
            "webhook_events": stats.get("inbox") or {}}


def parse(handoff: Mapping[str, Any] | None, stats: Mapping[str, Any] | None = None) -> Handoff:
    """The handoff of one run_log row: its ``handoff`` column, or (NULL: logged by an older crm-sync)
    the version-0 keys of its ``stats``."""
    if handoff is None:
        return Handoff.model_validate(_upgraded(stats or {}))
    if handoff.get("version") != VERSION:
        raise HandoffVersionError(f"run_log handoff version {handoff.get('version')!r}: this crm-sync reads "
                                  f"version {VERSION} (and older stats); it was written by another release, "
                                  "so run the same crm-sync on every worker")
    return Handoff.model_validate(handoff)


def of_row(row: Any) -> Handoff:
    """The handoff of a run_log row selected with its ``handoff`` and ``stats`` columns."""
    return parse(row.handoff, row.stats)


def record(conn: sa.Connection, ctx: RunContext, side: Side, handoff: Handoff) -> None:
    """Attach the handoff to this run's extract row of ``side`` (log it first, in the same transaction)."""
    done = conn.execute(sa.update(run_log).where(*_extract_of(ctx.profile.name, side), run_log.c.run_id == ctx.run_id)
                        .values(handoff=handoff.model_dump(mode="json")))
    if done.rowcount != 1:
        raise LookupError(f"no extract of {side} logged for run {ctx.run_id} of profile {ctx.profile.name}")


def read(conn: sa.Connection, ctx: RunContext, side: Side) -> Handoff:
    """What this run's extract of ``side`` handed on (nothing, if it logged none)."""
    row = conn.execute(sa.select(run_log.c.handoff, run_log.c.stats).where(
        *_extract_of(ctx.profile.name, side), run_log.c.run_id == ctx.run_id)).first()
    return of_row(row) if row else Handoff()


def read_last(conn: sa.Connection, profile: str, side: Side) -> Handoff:
    """What the latest extract of ``side`` for the profile handed on: what it owes the next run."""
    row = conn.execute(sa.select(run_log.c.handoff, run_log.c.stats).where(*_extract_of(profile, side))
                       .order_by(run_log.c.finished_at.desc()).limit(1)).first()
    return of_row(row) if row else Handoff()


def last_task_full_scan(conn: sa.Connection, profile: str) -> datetime | None:
    """When the latest GHL extract that read every task of the location finished (None: never)."""
    for row in conn.execute(sa.select(run_log.c.finished_at, run_log.c.handoff, run_log.c.stats).where(
            *_extract_of(profile, "ghl")).order_by(run_log.c.finished_at.desc())):
        if of_row(row).task_full_scan:
            return row.finished_at
    return None


def _extract_of(profile: str, side: Side) -> tuple[sa.ColumnElement[bool], ...]:
    return run_log.c.profile == profile, run_log.c.step == "extract", run_log.c.side == side
