"""Match and diff whole frames of contacts (the bulk form of reconcile's identity rules): which
unlinked records are the same person, and which linked pairs changed. Frames hold canonical values
(crm_sync.pipeline.bulk_normalize); ids and keys become integer codes, so joins and counts are numpy
work, not a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist

from crm_sync.pipeline import normalize
from crm_sync.pipeline.bulk_normalize import FIELDS
from crm_sync.pipeline.names import NICKNAME, OTHER, SAME, SWAPPED, Names


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


def _codes(ghl: pd.DataFrame, app: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column of both sides as shared integer codes (-1 missing), and the values the codes index."""
    values = pd.concat([ghl.get(column, pd.Series(None, index=ghl.index, dtype=object)),
                        app.get(column, pd.Series(None, index=app.index, dtype=object))], ignore_index=True)
    codes, uniques = pd.factorize(values)
    return codes[:len(ghl)], codes[len(ghl):], np.asarray(uniques, dtype=object)


def find_matches(ghl: pd.DataFrame, app: pd.DataFrame, apart: pd.DataFrame | None = None,
                 nicknames: Iterable[Iterable[str]] = (), everyone: tuple[pd.DataFrame, pd.DataFrame] | None = None
                 ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list]]:
    """Pairs by email, then by phone among the records the email step did not involve, and the
    ambiguous records with candidates like "app:<id> by email, another first name". Without a
    Python loop per row: ids, keys and names are integer codes (docs/sync-rules.md has examples).

    - Names agree when the first names are one person's (crm_sync.pipeline.names: folded equal,
      nicknames of each other, or first and last swapped) or missing on a side, and no generation
      suffix differs (Robert Sr / Robert Jr).
    - A key that joins two records only matches them when their names agree; a nickname pair on one
      email whose phones differ is unsure (a father and son share a family email).
    - A key several records share (a household's email or phone) matches a pair only when that
      pair alone is consistent there (names agree, the other key does not differ) and is told apart
      by the other key being equal or by names on both sides.
    - By phone with different emails: only a one-to-one phone with the same (or swapped) first and
      last names (a typo in an email); with other names (a nickname too) they are different people
      here, no candidates (reconcile still keeps a create from landing on the other: identity.py).
    - Last, records no key joined: an email one typo apart with a full name unique on each side; the
      same with a full name a few records of a side hold (up to ``FEW``) is unsure (review: "by email
      one typo apart, a full name several records hold"), never a create beside the other.
    - Every other pair a record that did not match is in makes it ambiguous (review). Pairs kept
      ``apart`` (ghl_id, app_id) by a review decision never join.
    - "One-to-one" (a key; a full name in the typo step) counts the holders among ``everyone`` (each side's records,
      linked ones too; default: ``ghl`` and ``app``): a household line is never unique because the
      others on it were matched or linked before. A generation suffix on one side only, with the other
      key differing (Robert Smith Sr / Robert Smith, two phones), is unsure: maybe father and son.
    """
    g_id, g_ids = pd.factorize(ghl["source_id"])
    a_id, a_ids = pd.factorize(app["source_id"])
    g_ids, a_ids = np.asarray(g_ids, dtype=object), np.asarray(a_ids, dtype=object)
    keys = {key: _codes(ghl, app, key) for key in ("email", "phone")}
    all_g, all_a = everyone if everyone is not None else (ghl, app)
    names = Names(pd.concat([ghl, all_g], ignore_index=True), pd.concat([app, all_a], ignore_index=True),
                  nicknames) if everyone is not None else Names(ghl, app, nicknames)
    once = {key: (_held(ghl, all_g, key) == 1, _held(app, all_a, key) == 1) if everyone is not None
            else (_codes_once(keys[key][0]), _codes_once(keys[key][1])) for key in ("email", "phone")}
    name_held = _names_held(names, len(ghl), len(app), everyone is not None)
    taken_g, taken_a = np.zeros(len(g_ids), bool), np.zeros(len(a_ids), bool)
    pairs: list[tuple[str, str]] = []
    ambiguous: dict[tuple[str, str], list] = {}
    for key, other_key in (("email", "phone"), ("phone", "email")):
        gk, ak, _ = keys[key]
        left = np.flatnonzero(~taken_g[g_id] & (gk >= 0))
        right = np.flatnonzero(~taken_a[a_id] & (ak >= 0))
        rows = pd.DataFrame({"gr": left, "k": gk[left]}).merge(pd.DataFrame({"ar": right, "k": ak[right]}), on="k")
        gr, ar = rows.gr.to_numpy(np.int64), rows.ar.to_numpy(np.int64)
        rows["g"], rows["a"] = g_id[gr], a_id[ar]
        rows["lone"] = once[key][0][gr] & once[key][1][ar]
        go, ao = keys[other_key][0][gr], keys[other_key][1][ar]
        rows["same_other"], rows["other_differs"] = (go >= 0) & (go == ao), (go >= 0) & (ao >= 0) & (go != ao)
        seen = names.compare(gr, ar)
        rows = rows.assign(**seen._asdict())
        named = rows["first"].isin([SAME, SWAPPED, NICKNAME])
        if key == "phone":  # different emails and other names: different people; the same names: a typo
            rows = rows[~rows.other_differs | (rows["first"].isin([SAME, SWAPPED]) & rows.last_agrees
                                               & ~rows.generation_differs)]
            named = named[rows.index]
        if apart is not None and not apart.empty:
            keep = ~_apart(pd.DataFrame({"g": g_ids[rows.g.to_numpy()], "a": a_ids[rows.a.to_numpy()]}), apart)
            rows, named = rows[keep], named[keep]
        g, a = rows.g.to_numpy(), rows.a.to_numpy()
        lone, differs = rows.lone.to_numpy(), rows.other_differs.to_numpy()
        first = rows["first"].to_numpy()
        fits = (first != OTHER) & ~rows.generation_differs.to_numpy() & ~(differs & (
            (first == NICKNAME) | ~lone | rows.one_suffix.to_numpy()))
        told_apart = lone | rows.same_other.to_numpy() | named.to_numpy()
        fits_once = np.zeros(len(rows), bool)
        fits_once[fits] = _once(g[fits], len(g_ids)) & _once(a[fits], len(a_ids))
        match = fits & fits_once & told_apart
        done_g, done_a = np.zeros(len(g_ids), bool), np.zeros(len(a_ids), bool)
        done_g[g[match]], done_a[a[match]] = True, True
        pairs.extend(zip(g_ids[g[match]].tolist(), a_ids[a[match]].tolist(), strict=True))
        why = _why(key, rows)
        for side, own, own_ids, other, other_ids, done in (("ghl", g, g_ids, a, a_ids, done_g),
                                                            ("app", a, a_ids, g, g_ids, done_a)):
            rest = ~done[own]
            label = "app:" if side == "ghl" else "ghl:"
            text = label + pd.Series(other_ids[other[rest]], dtype=object).astype(str) + why[rest]
            groups = _by_owner(own[rest], text.to_numpy(object))
            ambiguous.update(zip(((side, i) for i in own_ids[list(groups)].tolist()), groups.values(), strict=True))
        taken_g[g], taken_a[a] = True, True
    typo_pairs, unsure = _typoed_emails(names, keys, name_held, g_id, a_id, g_ids, a_ids, taken_g, taken_a, apart)
    for g, a in unsure:  # records no key joined, so none of them is ambiguous yet
        ambiguous.setdefault(("ghl", g), []).append(f"app:{a}{TYPO_UNSURE}")
        ambiguous.setdefault(("app", a), []).append(f"ghl:{g}{TYPO_UNSURE}")
    return pairs + typo_pairs, ambiguous


# A full name held by more records than this on a side is too common to say anything: its near misses
# are neither matched nor reviewed (and the name join stays small: at most FEW x FEW pairs a name)
FEW = 5
TYPO_UNSURE = " by email one typo apart, a full name several records hold"


def _typoed_emails(names: Names, keys: dict, name_held: tuple[np.ndarray, np.ndarray], g_id: np.ndarray,
                   a_id: np.ndarray, g_ids: np.ndarray, a_ids: np.ndarray, taken_g: np.ndarray, taken_a: np.ndarray,
                   apart: pd.DataFrame | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pairs, unsure pairs) of records no key joined, with the same full name (first and last,
    folded), whose emails are one typo apart ("jordan@" / "jrodan@", "@gmail.con"; not in a digit:
    smith1@ / smith2@ are numbered accounts) and whose phones do not differ, nor generation suffixes
    (nor one present on one side only). One person when only one record on each side holds that name
    (``name_held``: among all its records, matched or linked too); unsure when up to ``FEW`` do (two
    Jordan Reyes: which one mistyped?). The edit distances are one vectorised call (rapidfuzz) over
    the name join's pairs only, in GHL's then the app's row order."""
    (ge, ae, emails), (gp, ap, _) = keys["email"], keys["phone"]
    full = names.full_name()
    g_full, a_full = full[:len(g_id)], full[names.n_ghl:names.n_ghl + len(a_id)]
    g_rows = np.flatnonzero(~taken_g[g_id] & (ge >= 0) & (name_held[0] >= 1) & (name_held[0] <= FEW))
    a_rows = np.flatnonzero(~taken_a[a_id] & (ae >= 0) & (name_held[1] >= 1) & (name_held[1] <= FEW))
    if not len(g_rows) or not len(a_rows):
        return [], []
    rows = pd.DataFrame({"gr": g_rows, "k": g_full[g_rows]}).merge(pd.DataFrame({"ar": a_rows, "k": a_full[a_rows]}),
                                                                   on="k").sort_values(["gr", "ar"])
    gr, ar = rows.gr.to_numpy(np.int64), rows.ar.to_numpy(np.int64)
    seen = names.compare(gr, ar)
    keep = ~((gp[gr] >= 0) & (ap[ar] >= 0) & (gp[gr] != ap[ar])) & ~seen.generation_differs & ~seen.one_suffix
    gr, ar = gr[keep], ar[keep]
    if not len(gr):
        return [], []
    g_mail, a_mail = pd.Series(emails[ge[gr]], dtype=object), pd.Series(emails[ae[ar]], dtype=object)
    near = cpdist(g_mail.to_numpy(), a_mail.to_numpy(), scorer=OSA.distance, score_cutoff=1) <= 1
    # the same digits: john.smith1@ and john.smith2@ are two numbered accounts, often two people
    near &= (g_mail.str.replace(r"\D", "", regex=True) == a_mail.str.replace(r"\D", "", regex=True)).to_numpy()
    found = pd.DataFrame({"g": g_ids[g_id[gr[near]]], "a": a_ids[a_id[ar[near]]],
                          "once": (name_held[0][gr[near]] == 1) & (name_held[1][ar[near]] == 1)})
    if apart is not None and not apart.empty:
        found = found[~_apart(found, apart)]
    pairs, unsure = found[found.once], found[~found.once]
    return (list(zip(pairs.g.tolist(), pairs.a.tolist(), strict=True)),
            list(zip(unsure.g.tolist(), unsure.a.tolist(), strict=True)))


def _held(part: pd.DataFrame, whole: pd.DataFrame, column: str) -> np.ndarray:
    """Per row of ``part``: how many records of ``whole`` hold its ``column`` value (0 if missing)."""
    if column not in part or column not in whole:
        return np.zeros(len(part), np.int64)
    return part[column].map(whole[column].value_counts()).fillna(0).to_numpy(np.int64)


def _codes_once(codes: np.ndarray) -> np.ndarray:
    """Per row: its code is known (>= 0) and no other row holds it (numpy, for a million rows)."""
    known = codes >= 0
    counts = np.bincount(codes[known], minlength=int(codes.max(initial=-1)) + 1)
    return known & (counts[np.where(known, codes, 0)] == 1) if len(counts) else known


def _names_held(names: Names, n_ghl: int, n_app: int, extended: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per record of each side's frame: how many records of that side (among everyone ``names`` was
    built on, after the frames themselves when ``extended``) hold its full name; 0 when it has none."""
    full = names.full_name()
    out = []
    for part, whole in ((full[:n_ghl], full[n_ghl if extended else 0:names.n_ghl]),
                        (full[names.n_ghl:names.n_ghl + n_app], full[names.n_ghl + (n_app if extended else 0):])):
        counts = pd.Series(part).map(pd.Series(whole).value_counts()).fillna(0).to_numpy(np.int64)
        out.append(np.where(part >= 0, counts, 0))
    return out[0], out[1]


def _once(codes: np.ndarray, size: int) -> np.ndarray:
    """Per row: its code occurs once among ``codes``."""
    return np.bincount(codes, minlength=size)[codes] == 1


def _why(key: str, rows: pd.DataFrame) -> np.ndarray:
    """Why each pair is unsure, as the review queue shows it ("by email, another first name", ...)."""
    first, other = rows["first"].to_numpy(), "email" if key == "phone" else "phone"
    notes = [(first == OTHER, ", another first name"),
             ((first == OTHER) & rows.plausible_nickname.to_numpy(), " (not a known nickname)"),
             (rows.generation_differs.to_numpy(), ", another generation (Sr / Jr)"),
             (rows.other_differs.to_numpy() & rows.one_suffix.to_numpy(),
              ", a generation suffix on one side (Sr / Jr)"),
             ((first == NICKNAME) & rows.other_differs.to_numpy(), f", a nickname with another {other}"),
             ((first != NICKNAME) & rows.other_differs.to_numpy(), f", {other} differs"),
             (~rows.lone.to_numpy(), ", shared household contact")]
    why = np.full(len(rows), f" by {key}", dtype=object)
    for where, note in notes:
        why[where] = why[where] + note
    return why


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
