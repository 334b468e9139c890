"""Match and diff whole frames of contacts (the bulk form of reconcile's identity rules): which
unlinked records are the same person, and which linked pairs changed. Frames hold canonical values
(crm_sync.pipeline.bulk_normalize); ids and keys become integer codes, so joins and counts are numpy
work, not a Python loop per row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from crm_sync.pipeline import normalize
from crm_sync.pipeline.bulk_normalize import FIELDS


def _by_owner(own: np.ndarray, text: np.ndarray) -> dict[int, list[str]]:
    """``text`` grouped by ``own`` (codes), in row order within a group: a stable sort, then one
    slice per group (the result is a dict of lists anyway)."""
    if not len(own):
        return {}
    order = np.argsort(own, kind="stable")
    own, text = own[order], text[order].tolist()
    starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
    ends = np.r_[starts[1:], len(own)]
    return {key: text[b:e] for key, b, e in zip(own[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)}


def _apart(pairs: pd.DataFrame, apart: pd.DataFrame | None, g: str = "g", a: str = "a") -> np.ndarray:
    """Which rows of ``pairs`` (columns ``g``, ``a``) are pairs people said to keep apart (ghl_id,
    app_id): an anti-join, so such a pair is never a candidate again."""
    if apart is None or apart.empty or pairs.empty:
        return np.zeros(len(pairs), bool)
    keys = pd.MultiIndex.from_arrays([apart.ghl_id.to_numpy(object), apart.app_id.to_numpy(object)])
    return pd.MultiIndex.from_arrays([pairs[g].to_numpy(object), pairs[a].to_numpy(object)]).isin(keys)


def external_matches(ghl: pd.DataFrame, app: pd.DataFrame, linked: pd.DataFrame, apart: pd.DataFrame | None = None
                     ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list]]:
    """Pairs that a record names itself: the app record keeps the GHL id (or the GHL record the app
    id) in its ``external_id``. Unlinked records on both sides (frames with source_id and
    external_id); ``linked`` holds the links already made (ghl_id, app_id). A claim on a record
    linked to another, or a record claimed by two, is ambiguous for every record it involves; a
    claim naming a record we do not hold is ignored (email and phone may still match it), and so is
    a pair kept ``apart`` (ghl_id, app_id) by a review decision."""
    claims = pd.concat([
        pd.DataFrame({"g": app["external_id"].to_numpy(object), "a": app["source_id"].to_numpy(object), "by": "app"}),
        pd.DataFrame({"g": ghl["source_id"].to_numpy(object), "a": ghl["external_id"].to_numpy(object), "by": "ghl"}),
    ]).dropna(subset=["g", "a"]).drop_duplicates(["g", "a"])
    claims = claims[~_apart(claims, apart)]
    ambiguous: dict[tuple[str, str], list] = {}
    taken = claims.g.isin(linked.ghl_id.dropna()) | claims.a.isin(linked.app_id.dropna())
    for g, a, by in claims[taken].itertuples(index=False):  # rare: a conflict to review
        own, other = (("app", a), f"ghl:{g}") if by == "app" else (("ghl", g), f"app:{a}")
        ambiguous.setdefault(own, []).append(f"{other} by external id, already linked to another record")
    claims = claims[~taken & claims.g.isin(ghl.source_id) & claims.a.isin(app.source_id)]
    single = ~claims.g.duplicated(keep=False) & ~claims.a.duplicated(keep=False)
    for g, a in zip(claims.g[~single], claims.a[~single], strict=True):
        ambiguous.setdefault(("ghl", g), []).append(f"app:{a} by external id")
        ambiguous.setdefault(("app", a), []).append(f"ghl:{g} by external id")
    return list(zip(claims.g[single], claims.a[single], strict=True)), ambiguous


def name_keys(values: pd.Series) -> pd.Series:
    """normalize.name_key of each value, computed once per distinct value (names repeat)."""
    codes, uniques = pd.factorize(values)
    keys = np.array([normalize.name_key(v) for v in uniques] + [None], dtype=object)
    return pd.Series(keys[codes], index=values.index, dtype=object)


def _codes(ghl: pd.DataFrame, app: pd.DataFrame, column: str, fold: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A column of both sides as shared integer codes (-1 missing); ``fold`` compares names as
    people do (normalize.name_key: case, accents, transliterations)."""
    values = pd.concat([ghl.get(column, pd.Series(None, index=ghl.index, dtype=object)),
                        app.get(column, pd.Series(None, index=app.index, dtype=object))], ignore_index=True)
    codes, uniques = pd.factorize(values)
    if fold:  # fold each distinct name once, then merge the codes of equal folds
        folded, _ = pd.factorize(name_keys(pd.Series(uniques, dtype=object)))
        codes = np.append(folded, -1)[codes]
    return codes[:len(ghl)], codes[len(ghl):]


def find_matches(ghl: pd.DataFrame, app: pd.DataFrame, apart: pd.DataFrame | None = None
                 ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list]]:
    """Pairs by email, then by phone among the rest (never across two different emails), without
    a Python loop per row. One-to-many either way is ambiguous, and so is a one-to-one match whose
    first names contradict each other (a family's shared email or phone; names compared by
    normalize.name_key, so José and Jose agree), with candidates like
    "app:<id> by email". Pairs kept ``apart`` (ghl_id, app_id) by a review decision never join.
    Ids and keys become integer codes, so the joins and counts are numpy work."""
    g_id, g_ids = pd.factorize(ghl["source_id"])
    a_id, a_ids = pd.factorize(app["source_id"])
    g_ids, a_ids = np.asarray(g_ids, dtype=object), np.asarray(a_ids, dtype=object)
    keys = {key: _codes(ghl, app, key) for key in ("email", "phone")}
    g_first, a_first = _codes(ghl, app, "first_name", fold=True)
    taken_g, taken_a = np.zeros(len(g_ids), bool), np.zeros(len(a_ids), bool)
    pairs: list[tuple[str, str]] = []
    ambiguous: dict[tuple[str, str], list] = {}
    for key in ("email", "phone"):
        (gk, ak), (ge, ae) = keys[key], keys["email"]
        left = np.flatnonzero(~taken_g[g_id] & (gk >= 0))
        right = np.flatnonzero(~taken_a[a_id] & (ak >= 0))
        joined = pd.DataFrame({"g": g_id[left], "k": gk[left], "g_email": ge[left], "g_first": g_first[left]}).merge(
            pd.DataFrame({"a": a_id[right], "k": ak[right], "a_email": ae[right], "a_first": a_first[right]}), on="k")
        if key == "phone":  # a shared phone never overrides two different emails
            joined = joined[(joined.g_email < 0) | (joined.a_email < 0) | (joined.g_email == joined.a_email)]
        if apart is not None and not apart.empty:
            joined = joined[~_apart(pd.DataFrame({"g": g_ids[joined.g.to_numpy()], "a": a_ids[joined.a.to_numpy()]}),
                                    apart)]
        g, a = joined.g.to_numpy(), joined.a.to_numpy()
        other_name = ((joined.g_first >= 0) & (joined.a_first >= 0) & (joined.g_first != joined.a_first)).to_numpy()
        unique = (np.bincount(g, minlength=len(g_ids))[g] == 1) & (np.bincount(a, minlength=len(a_ids))[a] == 1) \
            & ~other_name
        pairs.extend(zip(g_ids[g[unique]].tolist(), a_ids[a[unique]].tolist(), strict=True))
        why = np.where(other_name[~unique], f" by {key}, another first name", f" by {key}").astype(object)
        for side, own, own_ids, other, other_ids in (("ghl", g, g_ids, a, a_ids), ("app", a, a_ids, g, g_ids)):
            label = "app:" if side == "ghl" else "ghl:"
            text = label + pd.Series(other_ids[other[~unique]], dtype=object).astype(str) + why
            groups = _by_owner(own[~unique], text.to_numpy(object))
            ambiguous.update(zip(((side, i) for i in own_ids[list(groups)].tolist()), groups.values(), strict=True))
        taken_g[g], taken_a[a] = True, True
    return pairs, ambiguous


class PairDiff(NamedTuple):
    """Linked pairs found on both sides, and where their canonical fields disagree."""

    links: pd.DataFrame  # ghl_id, app_id, differs
    differ: pd.DataFrame  # per field: the two values differ (None equals None)
    ghl_missing: pd.DataFrame  # per field: the GHL record lacks a value the app record has
    app_missing: pd.DataFrame  # per field: the app record lacks a value the GHL record has


def diff(ghl: pd.DataFrame, app: pd.DataFrame, links: pd.DataFrame, fields: tuple[str, ...] = FIELDS) -> PairDiff:
    """Compare linked pairs column by column, so reconcile merges only the pairs that changed.
    Links whose record is not in its frame (source_id, unique per side) are left out. A conflict
    (both sides hold a value, different ones) is differ & ~ghl_missing & ~app_missing."""
    fields = tuple(f for f in fields if f in ghl and f in app)
    g_at = pd.Index(ghl["source_id"]).get_indexer(links["ghl_id"])
    a_at = pd.Index(app["source_id"]).get_indexer(links["app_id"])
    found = (g_at >= 0) & (a_at >= 0)
    g_at, a_at = g_at[found], a_at[found]
    differ, ghl_missing, app_missing = {}, {}, {}
    for field in fields:
        g, a = ghl[field].to_numpy(object)[g_at], app[field].to_numpy(object)[a_at]
        g_na, a_na = pd.isna(g), pd.isna(a)
        differ[field] = ~((g == a) | (g_na & a_na))
        ghl_missing[field], app_missing[field] = g_na & ~a_na, a_na & ~g_na
    out = links.loc[found, ["ghl_id", "app_id"]].reset_index(drop=True)
    frames = [pd.DataFrame(d, index=out.index, columns=list(fields)) for d in (differ, ghl_missing, app_missing)]
    return PairDiff(out.assign(differs=frames[0].any(axis=1)), *frames)
