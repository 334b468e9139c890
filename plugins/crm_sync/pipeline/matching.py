"""Normalise, match and diff whole frames of contacts: the bulk form of normalize and reconcile.

The per-row functions of normalize.py spend ~40 us a row in email-validator and phonenumbers,
which is minutes at a million rows. Here every column is factorised first (names repeat a lot),
the common shapes are decided with regular expressions over the unique values, and only what
those cannot decide goes to the per-row functions, once per unique value. The fast paths only
ever accept: every value they reject is looked at by normalize.py, so results and messages are
the ones the per-row path gives (tests/unit/test_matching.py checks that over noisy values).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, region_code_for_country_code

from crm_sync.pipeline import normalize
from crm_sync.profile import CANONICAL

TEXT_FIELDS = ("first_name", "last_name", "company_name", "lead_source")
FIELDS = ("email", "phone", *TEXT_FIELDS)  # the order a row's first broken rule is reported in
HASHED = tuple(sorted(CANONICAL["contact"]))  # json.dumps(sort_keys=True) order of content_hash

# email-validator accepts such an ASCII dot-atom address as it is, and normalises it to lower case.
# Labels may not hold "--" (IDNA rules) and the TLD ends with a letter; lengths are checked apart.
_ATEXT = r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]+"
_LABEL = r"[A-Za-z0-9](?:-?[A-Za-z0-9])*"
_EMAIL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+(?:{_LABEL})?[A-Za-z]")
_SPECIAL_DOMAIN = r"[.@](?:arpa|invalid|local|localhost|onion|test)$"
_LONG_LABEL = r"[^.@]{64}"
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII without " and \: json.dumps only quotes it
_PHONE_SEPARATORS = r"[ ().\-]"
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")


def _missing() -> pd.Series:
    return pd.Series(dtype=object)


def _per_value(values: pd.Series, fn: Callable[[Any], Any]) -> tuple[list, list]:
    """The per-row function on each value: (canonical or None, Broken or None)."""
    out, broken = [], []
    for value in values:
        try:
            out.append(fn(value))
            broken.append(None)
        except normalize.RuleBroken as exc:
            out.append(None)
            broken.append(exc.broken)
    return out, broken


def _fast_email(s: pd.Series) -> pd.Series:
    """Canonical email where the fast path can decide, else NaN. No inner whitespace, ASCII only,
    so text()'s NFC and whitespace collapsing reduce to strip()."""
    t = s.str.strip()
    ok = (t.str.fullmatch(_EMAIL) & (t.str.len() <= 254) & (t.str.find("@") <= 64)
          & ~t.str.contains(_LONG_LABEL) & ~t.str.lower().str.contains(_SPECIAL_DOMAIN))
    return t.str.lower().where(ok)


def _fast_text(s: pd.Series) -> pd.Series:
    """normalize.text for strings: NFC, runs of whitespace to one space, trimmed (re's \\s and
    str.split() both use str.isspace()); empty stays "" and becomes None later."""
    return s.str.normalize("NFC").str.replace(r"\s+", " ", regex=True).str.strip()


@cache
def _desc_regex(region: str) -> re.Pattern | None:
    """One regex equal to phonenumbers' `_number_type_helper(nsn) != UNKNOWN` for a region: the
    general description and at least one number type, each with its pattern and possible lengths."""
    md = PhoneMetadata.metadata_for_region(region)
    if md is None or not md.general_desc.national_number_pattern:
        return None

    def desc(d) -> str | None:
        if d is None or not d.national_number_pattern:
            return None
        lengths = "|".join(f"[0-9]{{{n}}}" for n in d.possible_length)
        return (f"(?=(?:{lengths})$)" if lengths else "") + f"(?:{d.national_number_pattern})"

    types = [t for t in (desc(getattr(md, name)) for name in _TYPES) if t]
    if not types:
        return None
    return re.compile(f"(?=(?:{desc(md.general_desc)})$)(?:{'|'.join(f'(?:{t})' for t in types)})")


def _valid(nsn: pd.Series, cc: int) -> pd.Series:
    """phonenumbers.is_valid_number for numbers of one country code, as region_code_for_number
    picks the region: the first whose leading digits match, or whose patterns know the number."""
    valid = pd.Series(False, index=nsn.index)
    undecided = pd.Series(True, index=nsn.index)
    for region in COUNTRY_CODE_TO_REGION_CODE[cc]:
        md = PhoneMetadata.metadata_for_region(region)
        if md is None:
            continue
        pattern = _desc_regex(region)
        known = nsn.str.fullmatch(pattern) if pattern else pd.Series(False, index=nsn.index)
        hit = undecided & (nsn.str.match(md.leading_digits) if md.leading_digits else known)
        valid |= hit & known
        undecided &= ~hit
    return valid


def _possible(nsn: pd.Series, md) -> pd.Series:
    """phonenumbers' _test_number_length is not TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH."""
    lengths, local = md.general_desc.possible_length, md.general_desc.possible_length_local_only
    n = nsn.str.len()
    if not lengths or lengths[0] == -1:
        return pd.Series(False, index=nsn.index)
    possible = (n == lengths[0]) | ((n > lengths[0]) & ((n > lengths[-1]) | n.isin(lengths[1:])))
    return possible & ~n.isin(local)


def _strip_national_prefix(number: pd.Series, md) -> tuple[pd.Series, pd.Series]:
    """parse()'s national prefix stripping: (national significant number, decided). Prefixes with a
    transform rule (carrier codes rewritten) are left undecided for the per-row path."""
    prefix = md.national_prefix_for_parsing
    if not prefix:
        return number, pd.Series(True, index=number.index)
    matched = number.str.match(prefix)
    if md.national_prefix_transform_rule:
        return number, ~matched
    general = md.general_desc.national_number_pattern
    rest = number.str.replace(f"^(?:{prefix})", "", n=1, regex=True)
    allowed = ~(number.str.fullmatch(general) & ~rest.str.fullmatch(general))
    return number.where(~(matched & allowed & _possible(rest, md)), rest), pd.Series(True, index=number.index)


def _fast_phone(s: pd.Series, region: str) -> pd.Series:
    """E.164 where the fast path can decide, else NaN. For ASCII digits with ( ) . - and spaces and
    at most a leading +, phonenumbers' result depends only on the digits and the plus (no letters,
    extensions or second numbers); parse() and is_valid_number are replayed on them here for the
    usual cases: +<country code><number>, or a national number without IDD or country code."""
    t = s.str.strip()
    digits = t.str.replace(_PHONE_SEPARATORS, "", regex=True)
    shaped = digits.str.fullmatch(r"\+?[0-9]{3,17}") & (t.str.len() <= 64)
    plus = shaped & digits.str.startswith("+")
    groups = []  # (country code, metadata parse() strips the national prefix with, number after the code)

    # +<cc><number>: country codes are prefix-free, so the first 1-3 digits that form one are it.
    number = digits[plus].str[1:]
    heads = [number.str[:n] for n in (1, 2, 3)]
    known = [{str(c) for c in COUNTRY_CODE_TO_REGION_CODE if len(str(c)) == n} for n in (1, 2, 3)]
    cc = pd.Series(np.select([h.isin(k) for h, k in zip(heads, known, strict=True)], heads, ""), index=number.index)
    for code in cc.unique():
        if code and "001" not in COUNTRY_CODE_TO_REGION_CODE[int(code)]:  # non-geographic: per row
            md = PhoneMetadata.metadata_for_region(region_code_for_country_code(int(code)))
            groups.append((int(code), md, number[cc == code].str[len(code):]))

    # A national number: parse() takes it as is unless it starts with an IDD or the country code.
    home = PhoneMetadata.metadata_for_region(region.upper())
    if home is not None:
        national = digits[shaped & ~plus]
        idd = national.str.match(home.international_prefix) if home.international_prefix else False
        groups.append((home.country_code, home,
                       national[~idd & ~national.str.startswith(str(home.country_code))]))

    out = pd.Series(np.nan, index=s.index, dtype=object)
    for code, md, rest in groups:
        if md is None or rest.empty:
            continue
        nsn, decided = _strip_national_prefix(rest, md)
        ok = decided & nsn.str.len().between(2, 17) & ~nsn.str.startswith("0") & _valid(nsn, code)
        out[ok[ok].index] = f"+{code}" + nsn[ok]
    return out


def _canonical(raw: pd.Series, field: str, region: str) -> tuple[pd.Series, pd.Series]:
    """One column's canonical values and broken rules (Broken or None), aligned with raw."""
    if field == "email":
        fast, slow = _fast_email, normalize.email
    elif field == "phone":
        fast, slow = (lambda s: _fast_phone(s, region)), (lambda v: normalize.phone(v, region))
    else:
        fast, slow = _fast_text, normalize.text
    values = pd.Series(None, index=raw.index, dtype=object)
    broken = pd.Series(None, index=raw.index, dtype=object)
    present = raw.notna()
    if raw.dtype == object:  # non-strings (numbers, dicts) go to the per-row function as they are
        odd = present & ~raw.map(lambda v: isinstance(v, str), na_action="ignore").astype(bool)
        values[odd], broken[odd] = _per_value(raw[odd], slow)
        present &= ~odd
    codes, uniques = pd.factorize(raw[present])
    uniques = pd.Series(uniques, dtype="str")
    canon = fast(uniques).astype(object)
    if field not in ("email", "phone"):
        canon = canon.where(canon != "", None)
        wrong = pd.Series(None, index=uniques.index, dtype=object)
    else:
        undecided = canon.isna()
        canon[undecided], wrong = _per_value(uniques[undecided], slow)
        wrong = pd.Series(wrong, index=uniques.index[undecided], dtype=object).reindex(uniques.index)
    values[present] = canon.to_numpy()[codes]
    broken[present] = wrong.to_numpy()[codes]
    return values.where(values.notna(), None), broken


def _json(values: pd.Series) -> np.ndarray:
    """json.dumps of each value (str or None), without calling it for plain ASCII strings."""
    out = np.full(len(values), "null", dtype=object)
    present = values.notna().to_numpy()
    strings = values[present].astype("str")
    plain = strings.str.fullmatch(_JSON_PLAIN).to_numpy()
    quoted = np.where(plain, '"' + strings.to_numpy(object) + '"', None)
    quoted[~plain] = [json.dumps(v) for v in strings[~plain]]
    out[present] = quoted
    return out


def content_hashes(frame: pd.DataFrame) -> pd.Series:
    """normalize.content_hash of every row: the same JSON text, built column-wise; sha256 itself
    runs once per row (no vectorised sha256 gives the same digest)."""
    text: Any = "{"
    for i, name in enumerate(HASHED):
        if name not in frame:
            part = "null"
        elif name in FIELDS:
            part = _json(frame[name])
        else:  # e.g. tags: lists, already canonical
            part = np.array([json.dumps(None if v is None or v is np.nan else v, default=str)
                             for v in frame[name].astype(object)], dtype=object)
        text = text + ("" if i == 0 else ", ") + f'"{name}": ' + part
    text = text + "}"
    if isinstance(text, str):
        text = np.full(len(frame), text, dtype=object)
    return pd.Series([hashlib.sha256(t.encode()).hexdigest() for t in text], index=frame.index, dtype="str")


def normalize_contacts(frame: pd.DataFrame, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good rows with canonical email, phone and text fields and content_hash; bad rows with
    `rule` and `detail` of the first rule broken, in the order email, phone, text fields).
    Missing values (None, NaN) are None. Other columns are kept as they are."""
    good = frame.copy()
    rule = pd.Series(None, index=frame.index, dtype=object)
    for field in FIELDS:
        raw = frame[field] if field in frame else pd.Series(None, index=frame.index, dtype=object)
        values, broken = _canonical(raw, field, region)
        first = rule.isna() & broken.notna()
        rule[first] = broken[first]
        if field in frame or field in ("email", "phone"):
            good[field] = values
    bad_rows = rule.notna()
    bad = frame[bad_rows].copy()
    bad["rule"] = [b.rule for b in rule[bad_rows]]
    bad["detail"] = [b.detail for b in rule[bad_rows]]
    good = good[~bad_rows].copy()
    good["content_hash"] = content_hashes(good)
    return good, bad


def find_matches(ghl: pd.DataFrame, app: pd.DataFrame) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list]]:
    """reconcile.find_matches without a Python loop per row: pairs by email, then by phone among
    the rest (never across two different emails); one-to-many either way is ambiguous, with
    candidates like "app:<id> by email". Keys are factorised to integers so the joins and the
    counts are numpy work."""
    g_id, g_ids = pd.factorize(ghl["source_id"])
    a_id, a_ids = pd.factorize(app["source_id"])
    keys = {}
    for key in ("email", "phone"):
        codes, _ = pd.factorize(pd.concat([ghl[key], app[key]], ignore_index=True))
        keys[key] = codes[:len(ghl)], codes[len(ghl):]
    taken_g, taken_a = np.zeros(len(g_ids), bool), np.zeros(len(a_ids), bool)
    pairs: list[tuple[str, str]] = []
    ambiguous: dict[tuple[str, str], list] = {}
    for key in ("email", "phone"):
        (gk, ak), (ge, ae) = keys[key], keys["email"]
        left = np.flatnonzero(~taken_g[g_id] & (gk >= 0))
        right = np.flatnonzero(~taken_a[a_id] & (ak >= 0))
        joined = pd.DataFrame({"g": g_id[left], "k": gk[left], "ge": ge[left]}).merge(
            pd.DataFrame({"a": a_id[right], "k": ak[right], "ae": ae[right]}), on="k")
        if key == "phone":  # a shared phone never overrides two different emails
            joined = joined[(joined.ge < 0) | (joined.ae < 0) | (joined.ge == joined.ae)]
        g, a = joined.g.to_numpy(), joined.a.to_numpy()
        unique = (np.bincount(g, minlength=len(g_ids))[g] == 1) & (np.bincount(a, minlength=len(a_ids))[a] == 1)
        pairs.extend(zip(g_ids[g[unique]], a_ids[a[unique]], strict=True))
        g, a = g[~unique], a[~unique]
        for side, own, own_ids, other, other_ids in (("ghl", g, g_ids, a, a_ids), ("app", a, a_ids, g, g_ids)):
            prefix = "app:" if side == "ghl" else "ghl:"
            candidates = prefix + pd.Series(other_ids[other], dtype=object).astype(str) + f" by {key}"
            lists = candidates.groupby(own, sort=False).agg(list)
            ambiguous.update(zip(((side, i) for i in own_ids[lists.index]), lists, strict=True))
        taken_g[joined.g.to_numpy()] = True
        taken_a[joined.a.to_numpy()] = True
    return pairs, ambiguous


class PairDiff(NamedTuple):
    """Linked pairs found on both sides, and where their canonical fields disagree."""

    links: pd.DataFrame  # ghl_id, app_id, differs
    differ: pd.DataFrame  # per field: the two values differ (None equals None)
    ghl_missing: pd.DataFrame  # per field: the GHL record lacks a value the app record has
    app_missing: pd.DataFrame  # per field: the app record lacks a value the GHL record has


def diff(ghl: pd.DataFrame, app: pd.DataFrame, links: pd.DataFrame,
         fields: tuple[str, ...] = FIELDS) -> PairDiff:
    """Compare linked pairs column by column, so reconcile only merges pairs that changed.
    A conflict (both sides hold different values) is differ & ~ghl_missing & ~app_missing."""
    fields = tuple(f for f in fields if f in ghl and f in app)
    pairs = links[["ghl_id", "app_id"]].merge(
        ghl[["source_id", *fields]].rename(columns={"source_id": "ghl_id"}), on="ghl_id").merge(
        app[["source_id", *fields]].rename(columns={"source_id": "app_id"}), on="app_id", suffixes=("_g", "_a"))
    differ, ghl_missing, app_missing = {}, {}, {}
    for field in fields:
        g, a = pairs[f"{field}_g"].astype(object), pairs[f"{field}_a"].astype(object)
        g_na, a_na = g.isna().to_numpy(), a.isna().to_numpy()
        differ[field] = ~((g.to_numpy() == a.to_numpy()) | (g_na & a_na))
        ghl_missing[field], app_missing[field] = g_na & ~a_na, a_na & ~g_na
    frames = [pd.DataFrame(d, index=pairs.index, columns=list(fields)) for d in (differ, ghl_missing, app_missing)]
    out = pairs[["ghl_id", "app_id"]].assign(differs=frames[0].any(axis=1))
    return PairDiff(out, *frames)
