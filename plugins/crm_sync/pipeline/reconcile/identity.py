"""Identity and review decisions for contacts: which unlinked records are the same person (the
other side's id a record keeps, then email, then phone), which are ambiguous and wait in the review
queue (crm_sync.review), which a person linked or kept apart, and which would land on another
record if created. Then the contacts' merges and creates are
planned, and ambiguous or kept-apart records quarantined."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_sync import review
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.matching import external_matches, find_matches
from crm_sync.records import Broken
from crm_sync.pipeline.reconcile.deletes import contacts_deleted_in_ghl
from crm_sync.pipeline.reconcile.links import (
    busy_links,
    changed_links,
    insert_links,
    one_sided,
    read_link_ids,
    read_links,
)
from crm_sync.pipeline.reconcile.planner import OTHER, Planner
from crm_sync.pipeline.stage import quarantine_row
from crm_sync.profile import Side
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import quarantine, staging_contact


def reconcile_contacts(conn: sa.Connection, ctx: RunContext, plan: Planner) -> dict[str, int]:
    """Plan the contacts' writes: merges of changed links, identity for unlinked records (rules, then
    review decisions), creates, review candidates and quarantines.
    Returns the step's identity counts."""
    staged = pd.read_sql(sa.select(staging_contact).where(staging_contact.c.profile == ctx.profile.name), conn)
    unlinked = review.drop_undone_links(conn, ctx.profile.name)
    links, busy = read_links(conn, ctx, "contact"), busy_links(conn, ctx)
    ghl = staged[staged.side == "ghl"].set_index("source_id", drop=False)
    app = staged[staged.side == "app"].set_index("source_id", drop=False)
    ghl = contacts_deleted_in_ghl(conn, ctx, plan, links, ghl, app)
    changed = changed_links(links, ghl, app, busy)
    for link in plan.settle_identical(changed, ghl, app).itertuples():
        base = link.base if isinstance(link.base, dict) else None  # never synced yet: no base
        plan.pair(int(link.id), ghl.loc[link.ghl_id], app.loc[link.app_id], base)

    lone_ghl = ghl[~ghl.source_id.isin(links.ghl_id.dropna())]
    lone_app = app[~app.source_id.isin(links.app_id.dropna()) & ~app.deleted.astype(bool)]
    decided = review.active_decisions(conn, ctx.profile.name)
    pairs, chosen, ambiguous = _identify(lone_ghl, lone_app, links, decided, ghl, app,
                                         ctx.profile.matching.nicknames)
    linked_now = chosen + pairs
    kept_apart = _kept_apart(lone_ghl, lone_app, linked_now, ambiguous, decided, ghl, app, plan)
    new_links = [{"ghl_id": g, "app_id": a} for g, a in linked_now]
    matched = {("ghl", g) for g, _ in linked_now} | {("app", a) for _, a in linked_now}
    ambiguous.update(_clashes(lone_ghl, lone_app, ghl, app, links, linked_now, {*matched, *ambiguous, *kept_apart},
                              plan))
    for side, lone in (("ghl", lone_ghl), ("app", lone_app)):
        for source_id in lone.source_id:
            if (side, source_id) not in matched and (side, source_id) not in ambiguous \
                    and (side, source_id) not in kept_apart and plan.mapping.writes_to(OTHER[side]):
                new_links.append({f"{side}_id": source_id})
    insert_links(conn, ctx, "contact", new_links)
    link_ids = read_link_ids(conn, ctx, "contact")
    matched_links = pd.DataFrame({"id": [link_ids[p] for p in linked_now], "ghl_id": [g for g, _ in linked_now],
                                  "app_id": [a for _, a in linked_now]})
    by_review = set(chosen)
    for link in plan.settle_identical(matched_links, ghl, app).itertuples():
        plan.pair(int(link.id), ghl.loc[link.ghl_id], app.loc[link.app_id], None,
                  keep_conflicts=(link.ghl_id, link.app_id) in by_review)
    for link_id, side, row in one_sided(link_ids, busy, ghl, app):
        plan.create(link_id, side, row)
    first_time = _first_honoured(decided, chosen, link_ids, lone_ghl, lone_app)
    review.mark_applied(conn, ctx.profile.name, ctx.run_id, first_time)
    review.replace_candidates(conn, ctx.profile.name, ctx.run_id, ambiguous)

    # An ambiguous record is quarantined again only when it changed; it stays unlinked until reviewed.
    # A record kept apart but not created also when the decision is new.
    newly_apart = set(decided.id[decided.id.isin(first_time)])
    quarantined = [quarantine_row(ctx, side, int(row.raw_id or 0), source_id, Broken(
        "ambiguous_match", f"{side}:{source_id} has no unambiguous match, so it stays unlinked until reviewed "
                           f"(python -m crm_sync.cli review list --profile {ctx.profile.name}); "
                           f"candidates: {', '.join(sorted(set(c)))}"))
        for (side, source_id), c in ambiguous.items()
        for row in [(ghl if side == "ghl" else app).loc[source_id]] if row.run_id == ctx.run_id]
    quarantined += [quarantine_row(ctx, side, int(row.raw_id or 0), source_id, Broken("kept_apart", detail))
                    for (side, source_id), (decision_id, detail) in kept_apart.items()
                    for row in [(ghl if side == "ghl" else app).loc[source_id]]
                    if row.run_id == ctx.run_id or decision_id in newly_apart]
    insert_ignore(conn, quarantine, quarantined, keys=["profile", "run_id", "raw_id", "rule"])
    return {"new_matches": len(pairs), "linked_by_review": len(chosen), "unlinked_by_review": unlinked,
            "ambiguous": len(ambiguous), "kept_apart_not_created": len(kept_apart)}


def _identify(lone_ghl: pd.DataFrame, lone_app: pd.DataFrame, links: pd.DataFrame, decided: pd.DataFrame,
              ghl: pd.DataFrame, app: pd.DataFrame, nicknames: list[list[str]]
              ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[tuple[str, str], list]]:
    """(pairs matched by the rules, pairs linked by review now, ambiguous records) among unlinked
    contacts; ``nicknames``: the profile's own. A pair kept apart by review never matches. The
    records of an active ``link`` decision take part in matching as candidates (linked or not), so
    any other record that matches one of them stays in review, never linked or created past it.
    Whether a phone or full name is one record's is counted over every staged record of a side
    (``ghl``, ``app``; linked ones too), so a household line is never unique once the others are linked."""
    link, apart = decided[decided.decision == "link"], decided[decided.decision == "apart"]
    held_g = ghl[ghl.source_id.isin(link.ghl_id)]
    held_a = app[app.source_id.isin(link.app_id) & ~app.deleted.astype(bool)]
    cand_g = pd.concat([lone_ghl, held_g[~held_g.source_id.isin(lone_ghl.source_id)]])
    cand_a = pd.concat([lone_app, held_a[~held_a.source_id.isin(lone_app.source_id)]])
    others = links[~links.ghl_id.isin(held_g.source_id) & ~links.app_id.isin(held_a.source_id)]
    pairs, ambiguous = external_matches(cand_g, cand_a, others, apart)
    decided_keys = {*ambiguous, *(("ghl", g) for g, _ in pairs), *(("app", a) for _, a in pairs)}
    by_key, ambiguous_by_key = find_matches(_undecided(cand_g, "ghl", decided_keys),
                                            _undecided(cand_a, "app", decided_keys), apart, nicknames,
                                            everyone=(ghl, app[~app.deleted.astype(bool)]))
    pairs += by_key
    ambiguous.update(ambiguous_by_key)
    held = {*(("ghl", g) for g in held_g.source_id), *(("app", a) for a in held_a.source_id)}
    for key in held:
        ambiguous.pop(key, None)
    found = pd.DataFrame(pairs, columns=["g", "a"], dtype=object)
    touches = found.g.isin(held_g.source_id) | found.a.isin(held_a.source_id)
    for g, a in found[touches & ~(found.g.isin(held_g.source_id) & found.a.isin(held_a.source_id))].itertuples(
            index=False):  # rare: a record matching one linked by review to another record waits for review
        side, own, other = ("app", a, f"ghl:{g}") if ("ghl", g) in held else ("ghl", g, f"app:{a}")
        ambiguous.setdefault((side, own), []).append(f"{other} by review: linked to another record")
    chosen = [(g, a) for g, a in zip(link.ghl_id, link.app_id, strict=True)
              if g in lone_ghl.index and a in lone_app.index]
    return list(found[~touches].itertuples(index=False, name=None)), chosen, ambiguous


def _kept_apart(lone_ghl: pd.DataFrame, lone_app: pd.DataFrame, pairs: list[tuple[str, str]],
                ambiguous: dict[tuple[str, str], list], decided: pd.DataFrame, ghl: pd.DataFrame,
                app: pd.DataFrame, plan: Planner) -> dict[tuple[str, str], tuple[int, str]]:
    """Records left alone by a keep-apart decision that must not be created on the other side:
    (side, id) -> (decision id, why). GHL keeps one contact per email and phone (its upsert would
    land on the record it was kept apart from), and an app create is looked up by email first."""
    apart = decided[decided.decision == "apart"]
    paired = {("ghl", g) for g, _ in pairs} | {("app", a) for _, a in pairs}
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for side, lone, other in (("ghl", lone_ghl, app), ("app", lone_app, ghl)):
        target = OTHER[side]
        if not plan.mapping.writes_to(target):
            continue
        mine = apart[apart[f"{side}_id"].isin(lone.source_id)].drop_duplicates(f"{side}_id")
        keys = ("email", "phone") if target == "ghl" else ("email",)
        for decision in mine.itertuples():  # one per decision: people decide a handful, not a million
            source_id, partner = getattr(decision, f"{side}_id"), getattr(decision, f"{target}_id")
            if (side, source_id) in paired or (side, source_id) in ambiguous:
                continue
            row = lone.loc[source_id]
            shared = [k for k in keys if pd.notna(row[k]) and (other[k] == row[k]).any()]
            if shared:
                out[(side, source_id)] = (int(decision.id), (
                    f"{side}:{source_id} is kept apart from {target}:{partner} (review decision {decision.id}) "
                    f"and is not created in {plan.ctx.side_name(target)}: a record there has the same "
                    f"{' and '.join(shared)}, which a create would land on"))
    return out


def _clashes(lone_ghl: pd.DataFrame, lone_app: pd.DataFrame, ghl: pd.DataFrame, app: pd.DataFrame,
             links: pd.DataFrame, linked_now: list[tuple[str, str]], settled: set[tuple[str, str]], plan: Planner
             ) -> dict[tuple[str, str], list[str]]:
    """Records to be created on the other side whose create would land on another record: GHL's
    upsert matches an existing contact by email or phone, and an app create is looked up by email
    first. So a record sharing such a key with any record there (linked to someone else, or left
    unlinked because matching found them to be different or unsure people), or with another record
    to be created, would overwrite that person: it waits for review, ambiguous, never created. (A
    record there that is clearly the same person was linked by matching already.)"""
    found: dict[tuple[str, str], list[str]] = {}
    for side, lone, other, at in (("ghl", lone_ghl, app, 1), ("app", lone_app, ghl, 0)):
        target = OTHER[side]
        if not plan.mapping.writes_to(target) or lone.empty:
            continue
        creating = lone[[(side, i) not in settled for i in lone.source_id]]
        linked = set(links[f"{target}_id"].dropna()) | {pair[at] for pair in linked_now}
        for key in ("email", "phone") if target == "ghl" else ("email",):
            mine = creating[["source_id", key]].dropna()
            hits = mine.merge(other[["source_id", key]].dropna(), on=key, suffixes=("", "_there"))
            for own, there in zip(hits.source_id, hits.source_id_there, strict=True):
                found.setdefault((side, own), []).append(
                    f"{target}:{there} by {key}, already linked to another record" if there in linked else
                    f"{target}:{there} by {key}: a create in {plan.ctx.side_name(target)} would land on it")
            twins = mine[mine[key].duplicated(keep=False)]
            for _, group in twins.groupby(key):
                for own in group.source_id:
                    found.setdefault((side, own), []).extend(
                        f"{side}:{twin} by {key}: one create in {plan.ctx.side_name(target)} would land on the other"
                        for twin in group.source_id if twin != own)
    return found


def _first_honoured(decided: pd.DataFrame, chosen: list[tuple[str, str]], link_ids: dict[tuple, int],
                    lone_ghl: pd.DataFrame, lone_app: pd.DataFrame) -> dict[int, int | None]:
    """Decisions this run honoured for the first time: a link it made (decision -> xref id), a
    keep-apart whose records it saw unlinked."""
    fresh = decided[decided.applied_run_id.isna()]
    made = {(g, a) for g, a in chosen}
    out: dict[int, int | None] = {}
    for d in fresh.itertuples():
        if d.decision == "link" and (d.ghl_id, d.app_id) in made:
            out[int(d.id)] = link_ids[(d.ghl_id, d.app_id)]
        elif d.decision == "apart" and (d.ghl_id in lone_ghl.index or d.app_id in lone_app.index):
            out[int(d.id)] = None
    return out


def _undecided(frame: pd.DataFrame, side: Side, decided: set[tuple[str, str]]) -> pd.DataFrame:
    return frame[~frame.source_id.isin({source_id for s, source_id in decided if s == side})]
