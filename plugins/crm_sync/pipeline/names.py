"""People's names compared as one person's, for identity matching (crm_sync.pipeline.matching).

Two first names agree when they are equal after folding (normalize.name_key: case, accents,
transliterations), or known nicknames of each other, or when first and last are swapped on one side
and both match (Chen Li / Li Chen). A generation suffix (Sr, Jr, II, III) is taken out of the name
before comparing and compared on its own: Robert Sr and Bob Jr are two people. Everything is
computed once per distinct name and compared as integer codes, so a million pairs are a few numpy
operations, and the nickname test is a join of code pairs against the list (never a Python call per
row).

Known nicknames come from three places, each a set of pairs (never a chain: a pair is one person's
only when one line says so):

- the ``nicknames`` package (a well-kept public dataset), a name and each of its listed nicknames
  (Bill / William), but a name's other form (Louis / Louise, ``gendered_form``);
- ``nickname_supplement.csv`` beside this module: a short, curated list of groups the package lacks,
  each line with its source. Every two names of one group are one person's: Sasha / Alexander
  (Russian diminutives the package lacks), Bill / Willy (two diminutives of William the package
  lists for William but not for each other). A name of both genders is in one group per gender
  (Sasha with Alexander, and Sasha with Alexandra), so Alexander and Alexandra never pair;
- the profile's own ``matching.nicknames``, groups read the same way.

Why a curated list and not "two diminutives of one canonical name are one person's" in general:
over the package that rule adds about 2,400 pairs, many of them two people: Chris / Tina (both
listed for Christina, but Chris is mostly Christopher), Al / Bert (Albert; Al is also Alan, Alfred),
Kit / Kate, Billy / Rupert, Erin / Ronnie. Each added pair is a merge the household guards
(matching.find_matches: another phone, Sr / Jr, a key several records hold) must then catch, so a
pair is added only when someone checked it, with its source on its line.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from anyascii import anyascii

from crm_sync.pipeline.normalize import name_key

# What a pair's first names say (``Names.compare``)
UNKNOWN, SAME, NICKNAME, SWAPPED, OTHER = 0, 1, 2, 3, 4

_SUFFIX = re.compile(r"^(?:jr|sr|junior|senior|ii|iii|iv)$")
_SUFFIX_NAME = {"junior": "jr", "senior": "sr"}
_TOKEN = re.compile(r"[^\w']+")
# a name's feminine (or other) form: Louis / Louise, Justin / Justina, Ernest / Ernestine; not a
# diminutive ending (-ie, -y: Frank / Frankie stays a nickname)
_FORM = re.compile(r"a|e|ine|ina|ette|etta|elle|ene|ia|ita|iana|ienne")
_DIMINUTIVE = re.compile(r".*(?:ie|y|i|ey)$")
SUPPLEMENT = Path(__file__).with_name("nickname_supplement.csv")


def gendered_form(one: str, other: str) -> bool:
    """One name is another's other form (Louis / Louise, Edwin / Edwina, Claud / Claudia): the
    package lists them as nicknames of each other, but they are usually two people of one family."""
    short, long = sorted((one, other), key=len)
    common = len(os.path.commonprefix([short, long]))
    if common == len(short):
        return _FORM.fullmatch(long[common:]) is not None
    return (common >= 4 and common >= len(short) - 2 and _FORM.fullmatch(long[common:]) is not None
            and not _DIMINUTIVE.match(short) and not _FORM.fullmatch(short[common:]))


def split_suffix(value: object) -> tuple[str | None, str | None]:
    """(the name's key without a generation suffix, the suffix) of one name: "Bob Jr." ->
    ("bob", "jr"). A name that is only a suffix keeps it as its name."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None, None
    tokens = [t for t in _TOKEN.split(anyascii(str(value)).casefold()) if t]
    suffix = None
    if len(tokens) > 1 and _SUFFIX.match(tokens[-1]):
        suffix = _SUFFIX_NAME.get(tokens[-1], tokens[-1])
        tokens = tokens[:-1]
    return name_key(" ".join(tokens)) if suffix else name_key(value), suffix


@lru_cache(maxsize=1)
def _listed_pairs() -> frozenset[tuple[str, str]]:
    """Every (name, nickname) pair of the nicknames package, folded, both ways, but a name's other
    form (Louis / Louise: ``gendered_form``), which would merge two people of one household."""
    from nicknames import NickNamer

    pairs = set()
    for name, nicks in NickNamer().nickname_lookup.items():
        for nick in nicks:
            a, b = name_key(name), name_key(nick)
            if a and b and a != b and not gendered_form(a, b):
                pairs |= {(a, b), (b, a)}
    return frozenset(pairs)


@lru_cache(maxsize=1)
def supplement() -> tuple[tuple[str, ...], ...]:
    """The curated groups of ``nickname_supplement.csv`` (names, "|"-separated, and a source per line):
    what the package lacks, every two names of a group one person's."""
    with SUPPLEMENT.open(encoding="utf-8", newline="") as handle:
        return tuple(tuple(name.strip() for name in row["names"].split("|")) for row in csv.DictReader(handle))


def _group_pairs(groups: Iterable[Iterable[str]]) -> set[tuple[str, str]]:
    """Every two different names of each group (folded keys), both ways; never across groups."""
    pairs = set()
    for group in groups:
        keys = sorted({k for k in (name_key(n) for n in group) if k})
        pairs |= {(a, b) for a in keys for b in keys if a != b}
    return pairs


def nickname_pairs(extra: Iterable[Iterable[str]] = ()) -> frozenset[tuple[str, str]]:
    """The known nickname pairs (folded keys, both ways): the package's list, the curated supplement,
    and ``extra`` groups of names that are one person's (a profile's ``matching.nicknames``)."""
    return _listed_pairs() | _supplement_pairs() | _group_pairs(extra)


@lru_cache(maxsize=1)
def _supplement_pairs() -> frozenset[tuple[str, str]]:
    return frozenset(_group_pairs(supplement()))


class Verdict(NamedTuple):
    """Per compared pair: what the first names say, and whether the names otherwise disagree."""

    first: np.ndarray  # UNKNOWN, SAME, NICKNAME, SWAPPED or OTHER
    last_agrees: np.ndarray  # both last names known and equal (or swapped with the first names)
    generation_differs: np.ndarray  # both carry a suffix (Sr / Jr / II...), different ones
    one_suffix: np.ndarray  # only one side carries a suffix (Robert Smith Sr / Robert Smith): maybe a parent
    plausible_nickname: np.ndarray  # OTHER, but one could shorten the other (same initial): worth a look


class Names:
    """First and last names of both sides' records as shared integer codes, to compare pairs."""

    def __init__(self, ghl: pd.DataFrame, app: pd.DataFrame, extra: Iterable[Iterable[str]] = ()):
        n = len(ghl)
        cols = {}
        for column in ("first_name", "last_name"):
            cols[column] = pd.concat([_column(ghl, column), _column(app, column)], ignore_index=True)
        values = pd.concat([cols["first_name"], cols["last_name"]], ignore_index=True)
        codes, uniques = pd.factorize(values)
        split = [split_suffix(v) for v in uniques]
        keys = pd.Series([k for k, _ in split] + [None], dtype=object)
        key_codes, key_uniques = pd.factorize(keys)  # -1 for a missing name
        suffix_codes, _ = pd.factorize(pd.Series([s for _, s in split] + [None], dtype=object))
        key_of, suffix_of = key_codes[codes], suffix_codes[codes]
        total = len(cols["first_name"])
        self.first, self.last = key_of[:total], key_of[total:]
        suffix_first, suffix_last = suffix_of[:total], suffix_of[total:]
        self.suffix = np.where(suffix_last >= 0, suffix_last, suffix_first)
        self.n_ghl, self.size = n, max(len(key_uniques), 1)
        self.initial = np.array([k[0] for k in key_uniques], dtype=object)
        self._nick = self._nickname_codes(pd.Index(key_uniques), nickname_pairs(extra))

    def _nickname_codes(self, index: pd.Index, pairs: frozenset[tuple[str, str]]) -> np.ndarray:
        """The known nickname pairs among the names present, as sorted code-pair integers."""
        if not pairs or not len(index):
            return np.empty(0, np.int64)
        table = pd.DataFrame(list(pairs), columns=["a", "b"])
        a, b = index.get_indexer(table.a), index.get_indexer(table.b)
        held = (a >= 0) & (b >= 0)
        return np.unique(a[held].astype(np.int64) * self.size + b[held])

    def full_name(self) -> np.ndarray:
        """Per record (GHL's, then the app's): its first and last name as one code, -1 if either is missing."""
        known = (self.first >= 0) & (self.last >= 0)
        return np.where(known, self.first.astype(np.int64) * self.size + self.last, -1)

    def compare(self, g: np.ndarray, a: np.ndarray) -> Verdict:
        """Compare pairs of records: ``g`` rows of GHL's frame, ``a`` rows of the app's."""
        a = a + self.n_ghl
        gf, af, gl, al = self.first[g], self.first[a], self.last[g], self.last[a]
        known = (gf >= 0) & (af >= 0)
        same = known & (gf == af)
        swapped = known & ~same & (gl >= 0) & (al >= 0) & (gf == al) & (gl == af)
        nick = known & ~same & ~swapped & np.isin(gf.astype(np.int64) * self.size + af, self._nick)
        first = np.select([~known, same, swapped, nick], [UNKNOWN, SAME, SWAPPED, NICKNAME], OTHER)
        last_agrees = np.where(swapped, True, (gl >= 0) & (gl == al))
        gs, as_ = self.suffix[g], self.suffix[a]
        generation = (gs >= 0) & (as_ >= 0) & (gs != as_)
        one_suffix = (gs >= 0) != (as_ >= 0)
        other = first == OTHER
        plausible = np.zeros(len(g), bool)
        if other.any():
            plausible[other] = self.initial[gf[other]] == self.initial[af[other]]
        return Verdict(first, last_agrees, generation, one_suffix, plausible)


def _column(frame: pd.DataFrame, column: str) -> pd.Series:
    if column in frame:
        return frame[column].astype(object).reset_index(drop=True)
    return pd.Series(None, index=range(len(frame)), dtype=object)
