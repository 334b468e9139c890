"""Normalise and hash whole frames of contacts: the bulk form of normalize.py, for stage.

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
from typing import Any

import numpy as np
import pandas as pd
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, region_code_for_country_code

from crm_sync.pipeline import normalize
from crm_sync.profile import CANONICAL
from crm_sync.records import Broken, RuleBroken

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

def _call(fn: Callable[[Any], Any], value: Any) -> tuple[Any, Broken | None]:
    try:
        return fn(value), None
    except RuleBroken as exc:
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
