"""Normalise, match and diff whole frames of contacts: the bulk form of normalize and reconcile.

normalize.py's per-row functions cost ~0.1 ms a record (email-validator, phonenumbers): minutes
at a million. Here the usual shapes are decided column-wise (regular expressions through pandas,
numpy's C string functions) and only what they cannot decide goes to normalize.py, once per
unique value. The fast paths only ever accept, and accept only what normalize.py would turn
into the same value, so values, hashes and rule messages are the ones the per-row path gives
(tests/unit/test_matching.py checks that over thousands of noisy values).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
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
FIELDS = ("email", "phone", *TEXT_FIELDS)  # the order a row's first broken rule is taken in
HASHED = tuple(sorted(CANONICAL["contact"]))  # the key order of content_hash's json.dumps(sort_keys=True)

# email-validator accepts such an ASCII dot-atom address as it is and only lower-cases it: a TLD
# ending with a letter, no "--" in a label (IDNA), no special-use domain; the lengths it checks
# (254 in all, 64 before the @, 63 a label) are checked apart on long values. Its output holds
# no " or \, so json.dumps only quotes it.
_ATEXT = r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]+"
_LABEL = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
_SPECIAL = "".join(rf"(?<!\.(?i:{name}))" for name in ("arpa", "invalid", "local", "localhost", "onion", "test"))
_EMAIL = re.compile(rf"\s*{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+{_LABEL}(?<=[A-Za-z]){_SPECIAL}\s*")
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but " and \: json.dumps only quotes it
_TEXT = np.dtypes.StringDType()  # numpy's variable-width strings, which np.strings works on in C
_SEPARATORS = str.maketrans("", "", " ().-")
_CODES = {size: [str(c) for c in COUNTRY_CODE_TO_REGION_CODE if len(str(c)) == size] for size in (1, 2, 3)}
# phonenumbers' number types: any one makes a number valid, so the common ones are tried first
_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "voip", "personal_number", "pager",
          "uan", "voicemail")


def _re(values: Any, pattern: str | re.Pattern, how: str = "fullmatch") -> np.ndarray:
    """A regular expression (Python's re, through pandas' str accessor) over strings."""
    if not len(values):
        return np.zeros(0, bool)
    return np.array(getattr(pd.Series(values, dtype="str").str, how)(pattern), dtype=bool)


# --- emails and text -----------------------------------------------------------------------

def _fast_email(s: pd.Series) -> np.ndarray:
    """Canonical emails where the fast path decides, else NaN. The address pattern has no
    whitespace and no non-ASCII, so text()'s NFC and whitespace collapsing come down to strip()."""
    ok = _re(s, _EMAIL)
    t = np.strings.strip(s[ok].to_numpy(object).astype(_TEXT))
    n = np.strings.str_len(t)
    keep = n <= 63
    if not keep.all():
        long = ~keep
        keep[long] = (n[long] <= 254) & (np.strings.find(t[long], "@") <= 64) & ~_re(t[long], r"[^.@]{64}", "contains")
    ok[ok] = keep
    out = np.full(len(s), np.nan, dtype=object)
    out[ok] = np.strings.lower(t[keep]).astype(object)
    return out


def _fast_text(s: pd.Series) -> np.ndarray:
    """normalize.text for strings: NFC, runs of whitespace to one space (re's \\s and str.split()
    both go by str.isspace()), trimmed, empty to None."""
    t = s.str.normalize("NFC").str.replace(r"\s+", " ", regex=True).str.strip().to_numpy(object)
    t[t == ""] = None
    return t


# --- phones: phonenumbers' parse() and is_valid_number, replayed column-wise -----------------

@cache
def _known_regex(region: str) -> re.Pattern | None:
    """One pattern equal to `_number_type_helper(nsn) != UNKNOWN` for a region (the general
    description and any number type, each with its possible lengths), narrowed to 2-17 digits
    without a leading 0 (italian_leading_zero numbers are left to the per-row path)."""
    md = PhoneMetadata.metadata_for_region(region)

    def desc(d) -> str | None:
        if d is None or not d.national_number_pattern:
            return None
        lengths = "|".join(f"[0-9]{{{n}}}" for n in d.possible_length)
        return (f"(?=(?:{lengths})$)" if lengths else "") + f"(?:{d.national_number_pattern})"

    types = list(dict.fromkeys(t for t in (desc(getattr(md, name)) for name in _TYPES) if t)) if md else []
    if not types or not desc(md.general_desc):
        return None
    return re.compile(f"(?!0)(?=[0-9]{{2,17}}$)(?=(?:{desc(md.general_desc)})$)(?:{'|'.join(types)})")


def _starts(values: np.ndarray, pattern: str) -> np.ndarray:
    """re.match(pattern, value); a plain digit prefix ("1", "011") without re."""
    return np.strings.startswith(values, pattern) if pattern.isdigit() else _re(values, pattern, "match")


def _general(number: np.ndarray, md) -> np.ndarray:
    """_match_national_number against the general description (pattern only, no lengths)."""
    pattern = md.general_desc.national_number_pattern
    return _re(number, pattern) if pattern else np.zeros(len(number), bool)


def _length(number: np.ndarray, md, too_long: bool = False) -> np.ndarray:
    """_test_number_length is not TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH (too_long:
    is TOO_LONG)."""
    lengths, local = md.general_desc.possible_length, md.general_desc.possible_length_local_only
    if not lengths or lengths[0] == -1:
        return np.zeros(len(number), bool)
    n = np.strings.str_len(number)
    longer = (n > lengths[0]) & (n > lengths[-1])
    return ~np.isin(n, local) & (longer if too_long else (n == lengths[0]) | longer | np.isin(n, lengths[1:]))


def _strip_national_prefix(number: np.ndarray, md) -> tuple[np.ndarray, np.ndarray]:
    """_maybe_strip_national_prefix_carrier_code: (decided, number). Prefixes a transform rule
    would rewrite are left undecided."""
    prefix, decided = md.national_prefix_for_parsing, np.ones(len(number), bool)
    if not prefix or not len(number):
        return decided, number
    matched = _starts(number, prefix)
    if md.national_prefix_transform_rule:
        return ~matched, number
    if matched.any():
        hit = number[matched]
        rest = pd.Series(hit, dtype="str").str.replace(f"^(?:{prefix})", "", n=1, regex=True).to_numpy(_TEXT)
        number = number.copy()
        number[matched] = np.where(_general(hit, md) & ~_general(rest, md), hit, rest)
    return decided, number


def _national_significant(number: np.ndarray, md) -> tuple[np.ndarray, np.ndarray]:
    """parse(): the national prefix goes only if what is left has a possible length."""
    decided, stripped = _strip_national_prefix(number, md)
    take = stripped != number
    take[take] = _length(stripped[take], md)
    return decided, np.where(take, stripped, number)


def _after_country_code(number: np.ndarray, md) -> tuple[np.ndarray, np.ndarray]:
    """_maybe_extract_country_code for a number starting with the home country code: the code goes
    if the number did not fit the plan before and does after, or was too long."""
    decided, rest = _strip_national_prefix(np.strings.slice(number, len(str(md.country_code)), None), md)
    drop = (~_general(number, md) & _general(rest, md)) | _length(number, md, too_long=True)
    return decided, np.where(drop, rest, number)


def _valid(nsn: np.ndarray, cc: int) -> np.ndarray:
    """is_valid_number. As region_code_for_number does, each number goes to the first region whose
    leading digits match it or (without leading digits) whose patterns know it."""
    valid, left = np.zeros(len(nsn), bool), np.arange(len(nsn))
    for region in COUNTRY_CODE_TO_REGION_CODE[cc]:
        md, pattern = PhoneMetadata.metadata_for_region(region), _known_regex(region)
        if md is None or not len(left):
            continue
        number = nsn[left]
        if md.leading_digits:
            hit = _re(number, md.leading_digits, "match")
            valid[left[hit]] = _re(number[hit], pattern) if pattern else False
        else:
            hit = _re(number, pattern) if pattern else np.zeros(len(left), bool)
            valid[left[hit]] = True
        left = left[~hit]
    return valid


def _fast_phone(s: pd.Series, region: str) -> np.ndarray:
    """E.164 where the fast path decides, else NaN. For ASCII digits with ( ) . - and spaces and
    at most a leading +, phonenumbers' result depends only on the digits and the plus (no letters,
    extensions, second numbers or RFC 3966), so parse() and is_valid_number are replayed on them
    for +<country code><number> and for national numbers without an international prefix."""
    out = np.full(len(s), np.nan, dtype=object)
    values, clean = s.to_numpy(object), np.ones(len(s), bool)
    text = "\n".join(values)
    if "\x00" in text or text.count("\n") != len(values) - 1:  # numpy misreads NULs; a newline splits
        clean = ~s.str.contains("[\n\x00]").to_numpy(bool)
        text = "\n".join(values[clean])
    if not clean.any():
        return out
    digits = np.array(text.translate(_SEPARATORS).split("\n"), dtype=_TEXT)  # one C pass over all
    plus = np.strings.startswith(digits, "+")
    digits = np.where(plus, np.strings.slice(digits, 1, None), digits)
    n = np.strings.str_len(digits)
    ok = (n >= 3) & (n <= 17) & (np.strings.lstrip(digits, "0123456789") == "")
    ok &= np.strings.str_len(values[clean].astype(_TEXT)) <= 64
    at, digits, plus = np.flatnonzero(clean)[ok], digits[ok], plus[ok]

    def accept(code: int, md, where: np.ndarray, number: np.ndarray, decided: Any = True) -> None:
        """Numbers after the country code, from positions ``where``: the valid ones to ``out``."""
        ok, nsn = _national_significant(number, md)
        ok &= _valid(nsn, code) & decided
        out[where[ok]] = np.strings.add(f"+{code}", nsn[ok]).astype(object)

    # +<cc><number>: country codes are prefix-free, so the first 1-3 digits that form one are it.
    number, where = digits[plus], at[plus]
    cc_len = np.zeros(len(number), int)
    for size in (1, 2, 3):
        head = pd.Series(np.strings.slice(number, 0, size), dtype="str")
        cc_len[(cc_len == 0) & head.isin(_CODES[size]).to_numpy()] = size
    cc = np.strings.slice(number, 0, cc_len)
    for code in np.unique(cc[cc_len > 0]):
        main = region_code_for_country_code(int(code))
        if main != "001":  # non-geographic codes: per row
            mine = cc == code
            accept(int(code), PhoneMetadata.metadata_for_region(main), where[mine],
                   np.strings.slice(number[mine], len(code), None))

    # A national number, unless it starts with an international prefix (then per row).
    home = PhoneMetadata.metadata_for_region(region.upper())
    if home is not None:
        number, where = digits[~plus], at[~plus]
        idd = _starts(number, home.international_prefix) if home.international_prefix else np.zeros(len(number), bool)
        lead = np.strings.startswith(number, str(home.country_code)) & ~idd
        accept(home.country_code, home, where[~idd & ~lead], number[~idd & ~lead])
        decided, number = _after_country_code(number[lead], home)
        accept(home.country_code, home, where[lead], number, decided)
    return out


# --- a column, the hash, the frame -----------------------------------------------------------

def _call(fn: Callable[[Any], Any], value: Any) -> tuple[Any, normalize.Broken | None]:
    try:
        return fn(value), None
    except normalize.RuleBroken as exc:
        return None, exc.broken


def _per_unique(values: pd.Series, fn: Callable[[Any], Any]) -> tuple[np.ndarray, np.ndarray]:
    """normalize.py's function once per unique value: (canonical value, Broken or None) per value."""
    codes, uniques = pd.factorize(values)
    results = [_call(fn, value) for value in uniques] + [(None, None)]
    out, broken = (np.array(column, dtype=object) for column in zip(*results, strict=True))
    return out[codes], broken[codes]


def _json(values: np.ndarray, plain: np.ndarray | None = None) -> np.ndarray:
    """json.dumps of each value (str or None) as content_hash writes it. Values known (``plain``)
    or found to be printable ASCII without " and \\ are only quoted."""
    out = np.full(len(values), "null", dtype=object)
    present = ~pd.isna(values)
    if plain is None:
        plain = present.copy()
        plain[present] = _re(values[present], _JSON_PLAIN)
    out[plain] = '"' + values[plain] + '"'
    out[present & ~plain] = [json.dumps(v) for v in values[present & ~plain]]
    return out


def _canonical(raw: pd.Series, field: str, region: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One column: canonical values, Broken or None, and the JSON the hash takes, row by row."""
    if field == "email":
        fast, slow = _fast_email, normalize.email
    elif field == "phone":
        fast, slow = (lambda s: _fast_phone(s, region)), (lambda v: normalize.phone(v, region))
    else:
        fast, slow = _fast_text, normalize.text
    raw = raw.reset_index(drop=True)
    odd = np.zeros(len(raw), bool)  # dicts and lists, which text() refuses: per row
    if raw.dtype == object:
        odd = raw.map(lambda v: isinstance(v, dict | list)).to_numpy(bool)  # (fillna on an all-missing column warns)
    # text() reads any other value as str(value), and so does the rest of normalize.py
    strings = raw.mask(odd).map(str, na_action="ignore").astype("str") if raw.dtype != "str" else raw
    if field in TEXT_FIELDS:  # names repeat: the fast path runs once per unique value
        codes, uniques = pd.factorize(strings)
    else:  # emails and phones hardly do
        present = strings.notna().to_numpy()
        codes = np.full(len(raw), -1)
        codes[present] = np.arange(present.sum())
        uniques = strings[present]
    uniques = pd.Series(uniques, dtype="str").reset_index(drop=True)
    canon, wrong, plain = fast(uniques), np.full(len(uniques), None, dtype=object), None
    if field in ("email", "phone"):
        plain = ~pd.isna(canon)  # what the fast path wrote is plain ASCII
        canon[~plain], wrong[~plain] = _per_unique(uniques[~plain], slow)
    values = np.append(canon, None)[codes]  # code -1 (missing) takes the last one
    broken = np.append(wrong, None)[codes]
    js = np.append(_json(canon, plain), "null")[codes]
    if odd.any():
        values[odd], broken[odd] = zip(*(_call(slow, v) for v in raw[odd]), strict=True)
    return values, broken, js


def _hashes(parts: dict[str, Any], n: int) -> np.ndarray:
    """sha256 of content_hash's JSON text, put together from each field's JSON. sha256 runs once a
    row (no vectorised sha256 gives the same digest), the hex conversion once for all."""
    template = "{" + ", ".join(f'"{name}": ' + ("%s" if name in parts else "null") for name in HASHED) + "}"
    sha = hashlib.sha256
    rows = zip(*(parts[name] for name in HASHED if name in parts), strict=True) if parts else [()] * n
    digests = b"".join([sha((template % row).encode()).digest() for row in rows])
    return np.frombuffer(binascii.hexlify(digests), dtype="S64").astype("U64").astype(object)


def _json_other(values: pd.Series) -> list[str]:
    """Canonical fields normalised elsewhere (tags: lists), as content_hash dumps them."""
    return [json.dumps(None if v is None or (isinstance(v, float) and math.isnan(v)) else v, default=str)
            for v in values.astype(object)]


def content_hashes(frame: pd.DataFrame) -> pd.Series:
    """normalize.content_hash of each row of a frame of canonical values."""
    parts = {name: (_json(frame[name].to_numpy(object)) if name in FIELDS else _json_other(frame[name]))
             for name in HASHED if name in frame}
    return pd.Series(_hashes(parts, len(frame)), index=frame.index, dtype="str")


def normalize_contacts(frame: pd.DataFrame, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good, bad). Good rows have canonical email, phone and text fields and content_hash; bad rows
    the first rule broken (`field`, `rule`, `detail`, fields taken in FIELDS order; `detail` is
    normalize.py's, without canonical_record's "entities.contact.fields.<name>: " prefix). Missing
    values (None, NaN, NA) and columns are None; other columns (source_id, tags) pass through, tags
    taken as canonical already."""
    good = frame.copy()
    rule = np.full(len(frame), None, dtype=object)
    field_of = np.full(len(frame), None, dtype=object)
    parts = {name: _json_other(frame[name]) for name in HASHED if name in frame and name not in FIELDS}
    for field in FIELDS:
        raw = frame[field] if field in frame else pd.Series(None, index=frame.index, dtype=object)
        values, broken, parts[field] = _canonical(raw, field, region)
        first = pd.isna(rule) & ~pd.isna(broken)
        rule[first], field_of[first] = broken[first], field
        good[field] = values
    bad_rows = ~pd.isna(rule)
    good["content_hash"] = pd.array(_hashes(parts, len(frame)), dtype="str")
    bad = frame[bad_rows].assign(field=field_of[bad_rows], rule=[b.rule for b in rule[bad_rows]],
                                 detail=[b.detail for b in rule[bad_rows]])
    return good[~bad_rows], bad


# --- identity matching and diff --------------------------------------------------------------

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
