"""The review queue: people decide the ambiguous matches reconcile refuses to guess.

Reconcile quarantines a contact it cannot match for sure (several candidates, another first name,
a create that would land on an existing record: ``ambiguous_match``) and writes each open
candidate pair, with why it is unsure (crm_sync.pipeline.matching), to ``review_candidate``
(rewritten by every reconcile, so it is the queue as of the last run). A person then says of a
pair "link these two" or "keep them apart"; the decision goes to ``review_decision`` (who, when,
which two ids: never a copy of a personal field) and the next run honours it:

- ``link``: the pair becomes an identity link and is merged and synced both ways like any newly
  matched pair. Other candidates of either record stay in the queue until decided.
- ``apart``: the pair is never proposed again; a record left without candidates is created on the
  other side where the profile's direction writes there, unless that side already holds a
  contact with its email or phone (GHL keeps one contact per email and phone, and an app create
  is looked up by email first: either would land on the record it was kept apart from). Such a
  record stays where it is, quarantined as ``kept_apart`` with the reason.
- ``undo``: the decision stops counting. An undone ``apart`` makes the pair a candidate again
  (unless a run meanwhile created the record on the other side: it is linked to that copy now).
  An undone ``link`` removes the identity link on the next run (the values already written stay
  written); the pair is then matched afresh: back in the queue while still ambiguous.

API (``profile`` is a Profile or its name; ``conn`` a warehouse connection in a transaction):
``pending(conn, profile)`` (``pending_counts(conn, names)``: how many, for many profiles at once),
``decide(conn, profile, ghl_id, app_id, decision, user)`` (only a pair the queue holds:
``is_candidate``), ``undo(conn, profile, decision_id, user)``, ``decisions(conn, profile)``. Each
raises ReviewError with a message for the user when a request cannot be honoured.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from crm_sync.profile import Profile, profile_by_name
from crm_sync.timezones import utcnow
from crm_sync.warehouse import outbox
from crm_sync.warehouse.tables import review_candidate, review_decision, staging_contact, xref

Decision = Literal["link", "apart"]
DECISIONS = ("link", "apart")
# A candidate as matching.py words it: "app:<id> by email, another first name"
_CANDIDATE = re.compile(r"(ghl|app):(.*) (by (?:email|phone|external id|review)\b.*)")


class ReviewError(ValueError):
    """A review request that cannot be honoured; the message says why."""


def resolve(profile: Profile | str) -> Profile:
    """The profile, by name or as given; an unknown name is a ReviewError."""
    if isinstance(profile, Profile):
        return profile
    try:
        return profile_by_name(profile)
    except FileNotFoundError:
        raise ReviewError(f"no profile named {profile!r}") from None


# --- what people see and do -------------------------------------------------------------------

def pending(conn: sa.Connection, profile: Profile | str) -> list[dict[str, Any]]:
    """Open ambiguous matches as of the last reconcile, one item per group of records tied by
    candidate pairs: ``{"id", "records": [{"side", "id", "fields", "staged"}], "pairs": [{"ghl_id",
    "app_id", "reason", "decision"}]}``. ``fields`` are the profile's mapped contact fields as
    staged; ``decision`` is the active decision on the pair not yet applied by a run, else None.
    An item is listed while one of its pairs is undecided. A pair whose GHL record is linked
    (xref) has left the queue: it can no longer be linked, and GHL holds one contact per email."""
    prof = resolve(profile)
    rows = conn.execute(sa.select(review_candidate).where(review_candidate.c.profile == prof.name)
                        .order_by(review_candidate.c.ghl_id, review_candidate.c.app_id)).all()
    linked = _linked_ghl(conn, prof, {r.ghl_id for r in rows})
    rows = [r for r in rows if r.ghl_id not in linked]  # linked since the last run: nothing left to decide
    active = {(d["ghl_id"], d["app_id"]): d for d in decisions(conn, prof) if d["active"]}
    groups = _groups([(r.ghl_id, r.app_id) for r in rows])
    staged = _staged(conn, prof, {key for r in rows for key in (("ghl", r.ghl_id), ("app", r.app_id))})
    items = []
    for members in groups:
        pairs = [{"ghl_id": r.ghl_id, "app_id": r.app_id, "reason": r.reason,
                  "decision": _brief(active.get((r.ghl_id, r.app_id)))}
                 for r in rows if ("ghl", r.ghl_id) in members]
        if all(p["decision"] for p in pairs):
            continue
        records = [{"side": side, "id": source_id, "staged": (side, source_id) in staged,
                    "fields": staged.get((side, source_id), {})} for side, source_id in sorted(members)]
        items.append({"id": f"{records[0]['side']}:{records[0]['id']}", "records": records, "pairs": pairs})
    return items


def pending_counts(conn: sa.Connection, profiles: list[str]) -> dict[str, int]:
    """How many items `pending` lists for each of ``profiles``, in one query whatever their number (the
    console's index counts a page of profiles): their candidate pairs, each with whether its GHL record
    is linked and whether an active decision holds it; grouped as `pending` groups them."""
    c, d = review_candidate.c, review_decision.c
    linked = sa.exists().where(xref.c.profile == c.profile, xref.c.entity == "contact", xref.c.ghl_id == c.ghl_id)
    decided = sa.exists().where(d.profile == c.profile, d.ghl_id == c.ghl_id, d.app_id == c.app_id,
                                d.undone_at.is_(None))
    open_pairs: dict[str, list[tuple[str, str, bool]]] = {name: [] for name in profiles}
    for row in conn.execute(sa.select(c.profile, c.ghl_id, c.app_id, decided.label("decided"))
                            .where(c.profile.in_(profiles), ~linked)):
        open_pairs[row.profile].append((row.ghl_id, row.app_id, bool(row.decided)))
    counted = {}
    for name, pairs in open_pairs.items():
        undecided = {("ghl", g) for g, _, done in pairs if not done}
        counted[name] = sum(1 for members in _groups([(g, a) for g, a, _ in pairs]) if members & undecided)
    return counted


def decide(conn: sa.Connection, profile: Profile | str, ghl_id: str, app_id: str, decision: Decision,
           user: str) -> int:
    """Record ``user``'s decision on a pair; the next run honours it. Returns the decision's id. An
    active decision on the same pair is replaced (recorded as undone by ``user``); the same decision
    again is the one already there."""
    prof = resolve(profile)
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not user:
        raise ReviewError("a decision needs the name of the user who makes it")
    if not is_candidate(conn, prof, ghl_id, app_id):
        raise ReviewError(f"ghl:{ghl_id} and app:{app_id} are not a pair the review queue of profile {prof.name} "
                          "proposed: only its candidate pairs (as of the last run) can be linked or kept apart")
    staged = _staged(conn, prof, {("ghl", ghl_id), ("app", app_id)})
    for key in (("ghl", ghl_id), ("app", app_id)):
        if key not in staged:
            raise ReviewError(f"{key[0]}:{key[1]} is not a staged contact of profile {prof.name}")
    same = conn.execute(sa.select(review_decision.c.id).where(
        review_decision.c.profile == prof.name, review_decision.c.ghl_id == ghl_id, review_decision.c.app_id == app_id,
        review_decision.c.decision == decision, review_decision.c.undone_at.is_(None))).scalar_one_or_none()
    if same is not None:
        return same
    if decision == "link":
        _check_linkable(conn, prof, ghl_id, app_id)
    now = utcnow()
    conn.execute(sa.update(review_decision).where(
        review_decision.c.profile == prof.name, review_decision.c.ghl_id == ghl_id,
        review_decision.c.app_id == app_id, review_decision.c.undone_at.is_(None)
    ).values(undone_by=user, undone_at=now))
    return conn.execute(sa.insert(review_decision).values(
        profile=prof.name, ghl_id=ghl_id, app_id=app_id, decision=decision, decided_by=user, decided_at=now
    ).returning(review_decision.c.id)).scalar_one()


def is_candidate(conn: sa.Connection, profile: Profile | str, ghl_id: str, app_id: str) -> bool:
    """Whether the pair is in the profile's review queue: the last reconcile proposed it, and its GHL
    record has not been linked since (``pending`` lists the same pairs)."""
    prof, c = resolve(profile), review_candidate.c
    proposed = conn.execute(sa.select(c.ghl_id).where(c.profile == prof.name, c.ghl_id == ghl_id,
                                                      c.app_id == app_id).limit(1)).first() is not None
    return proposed and not _linked_ghl(conn, prof, {ghl_id})


def undo(conn: sa.Connection, profile: Profile | str, decision_id: int, user: str) -> None:
    """Undo an active decision (see the module's docstring for what the next run does)."""
    prof = resolve(profile)
    if not user:
        raise ReviewError("an undo needs the name of the user who makes it")
    done = conn.execute(sa.update(review_decision).where(
        review_decision.c.profile == prof.name, review_decision.c.id == decision_id,
        review_decision.c.undone_at.is_(None)).values(undone_by=user, undone_at=utcnow())).rowcount
    if not done:
        raise ReviewError(f"profile {prof.name} has no active review decision {decision_id}")


def decisions(conn: sa.Connection, profile: Profile | str) -> list[dict[str, Any]]:
    """Every decision of the profile, newest first, with ``active`` (not undone)."""
    prof = resolve(profile)
    rows = conn.execute(sa.select(review_decision).where(review_decision.c.profile == prof.name)
                        .order_by(review_decision.c.id.desc())).all()
    return [{**row._mapping, "active": row.undone_at is None} for row in rows]


# --- what reconcile asks --------------------------------------------------------------------

def active_decisions(conn: sa.Connection, profile: str) -> pd.DataFrame:
    """Active decisions: id, ghl_id, app_id, decision, xref_id, applied_run_id."""
    c = review_decision.c
    return pd.read_sql(sa.select(c.id, c.ghl_id, c.app_id, c.decision, c.xref_id, c.applied_run_id).where(
        c.profile == profile, c.undone_at.is_(None)).order_by(c.id), conn)


def drop_undone_links(conn: sa.Connection, profile: str) -> int:
    """Remove the identity links that undone ``link`` decisions made, unless an active decision
    links the same pair again; their unsent writes are superseded. Returns how many went."""
    c = review_decision.c
    undone = conn.execute(sa.select(c.id, c.ghl_id, c.app_id, c.xref_id).where(
        c.profile == profile, c.decision == "link", c.undone_at.is_not(None), c.xref_id.is_not(None))).all()
    again = {(d.ghl_id, d.app_id) for d in active_decisions(conn, profile).itertuples() if d.decision == "link"}
    gone = [d for d in undone if (d.ghl_id, d.app_id) not in again]
    for d in gone:
        outbox.supersede_link(conn, d.xref_id)
        conn.execute(sa.delete(xref).where(xref.c.id == d.xref_id, xref.c.ghl_id == d.ghl_id,
                                           xref.c.app_id == d.app_id))
        conn.execute(sa.update(review_decision).where(c.id == d.id).values(xref_id=None))
    return len(gone)


def mark_applied(conn: sa.Connection, profile: str, run_id: str, applied: dict[int, int | None]) -> None:
    """Decisions (id -> the link a ``link`` made, else None) a run honoured for the first time."""
    for decision_id, xref_id in applied.items():
        values = {"applied_run_id": run_id} | ({"xref_id": xref_id} if xref_id is not None else {})
        conn.execute(sa.update(review_decision).where(review_decision.c.profile == profile,
                                                      review_decision.c.id == decision_id).values(**values))


def replace_candidates(conn: sa.Connection, profile: str, run_id: str, ambiguous: dict[tuple[str, str], list]
                       ) -> int:
    """The queue as of this run: every pair named by an ambiguous record's candidates."""
    pairs: dict[tuple[str, str], str] = {}
    for (side, source_id), candidates in ambiguous.items():
        for candidate in candidates:
            found = _CANDIDATE.fullmatch(candidate)
            if found is None or found[1] == side:
                continue
            pair = (source_id, found[2]) if side == "ghl" else (found[2], source_id)
            pairs.setdefault(pair, found[3])
    conn.execute(sa.delete(review_candidate).where(review_candidate.c.profile == profile))
    if pairs:
        conn.execute(sa.insert(review_candidate), [{"profile": profile, "ghl_id": g, "app_id": a, "reason": why,
                                                    "run_id": run_id} for (g, a), why in sorted(pairs.items())])
    return len(pairs)


# --- helpers --------------------------------------------------------------------------------

def _check_linkable(conn: sa.Connection, prof: Profile, ghl_id: str, app_id: str) -> None:
    """Each record may have one identity: no existing link, no other active link decision."""
    for side, source_id in (("ghl", ghl_id), ("app", app_id)):
        column = getattr(xref.c, f"{side}_id")
        link = conn.execute(sa.select(xref.c.ghl_id, xref.c.app_id).where(
            xref.c.profile == prof.name, xref.c.entity == "contact", column == source_id)).first()
        if link is not None and (link.ghl_id, link.app_id) != (ghl_id, app_id):
            partner = link.app_id if side == "ghl" else link.ghl_id
            raise ReviewError(f"{side}:{source_id} is already linked " + (
                f"to {'app' if side == 'ghl' else 'ghl'}:{partner}" if partner else "to its copy on the other side"))
        other = conn.execute(sa.select(review_decision.c.id, review_decision.c.ghl_id, review_decision.c.app_id)
                             .where(review_decision.c.profile == prof.name, review_decision.c.decision == "link",
                                    review_decision.c.undone_at.is_(None), getattr(review_decision.c, f"{side}_id")
                                    == source_id)).first()
        if other is not None and (other.ghl_id, other.app_id) != (ghl_id, app_id):
            raise ReviewError(f"{side}:{source_id} is already linked by decision {other.id} "
                              f"(ghl:{other.ghl_id} with app:{other.app_id}); undo it first")


def _linked_ghl(conn: sa.Connection, prof: Profile, ghl_ids: set[str]) -> set[str]:
    """Those of ``ghl_ids`` that have an identity link (to an app record, or to a copy on the way)."""
    return set(conn.execute(sa.select(xref.c.ghl_id).where(
        xref.c.profile == prof.name, xref.c.entity == "contact", xref.c.ghl_id.in_(sorted(ghl_ids)))).scalars())


def _staged(conn: sa.Connection, prof: Profile, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """The profile's mapped contact fields of each staged record among ``keys``."""
    names = [n for n in prof.fields("contact") if n in staging_contact.c]
    found: dict[tuple[str, str], dict] = {}
    for side in ("ghl", "app"):
        ids = sorted(source_id for s, source_id in keys if s == side)
        if not ids:
            continue
        rows = conn.execute(sa.select(staging_contact.c.source_id, *(staging_contact.c[n] for n in names)).where(
            staging_contact.c.profile == prof.name, staging_contact.c.side == side,
            staging_contact.c.source_id.in_(ids))).all()
        found.update({(side, r.source_id): {n: r._mapping[n] for n in names} for r in rows})
    return found


def _groups(pairs: list[tuple[str, str]]) -> list[set[tuple[str, str]]]:
    """Records tied together by candidate pairs (connected components), in a stable order."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(key: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for g, a in pairs:
        parent[root(("ghl", g))] = root(("app", a))
    groups: dict[tuple[str, str], set] = {}
    for key in list(parent):
        groups.setdefault(root(key), set()).add(key)
    return sorted(groups.values(), key=lambda members: sorted(members))


def _brief(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if decision is None else {k: decision[k] for k in ("id", "decision", "decided_by", "decided_at")}
