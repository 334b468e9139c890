"""Bulk normalise + match + diff (crm_sync.pipeline.matching) at 10k, 100k and 1M people per side.

Each side holds N people, 30% of them also on the other side, with the format noise real exports
have: case and whitespace in emails, phones as "(415) 201-1001", "415.201.1001", "+1 415 201 1001",
"1-415-201-1001" and bare digits, missing fields, family emails shared by 2-4 people, typos in the
email of 3% of the overlapped app records, a few invalid emails and phones, names in several
scripts with stray whitespace and decomposed accents.

Each size runs in a fresh subprocess (`--size N`): the data is generated first (not timed), then
normalise both sides, match, and diff the matched pairs are timed together; memory is that
process's peak resident set (ru_maxrss, so interpreter, pandas and the input data included; the
growth over the peak before the timed part is reported too). At 10k the same process then runs
the per-row Python path (normalize.canonical_contact + content_hash per row, a dict-based matcher
with reconcile's rules (first names that contradict make a match ambiguous), a per-pair diff), checks it gives the same rows, hashes and pairs, and
times it: speedup_vs_python_10k. Matching quality is measured on a labelled set (labelled_pairs).

Prints one JSON object as its last line. Run: .venv/bin/python bench/reconcile.py
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
from rapidfuzz.distance import OSA

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from crm_sync.pipeline import bulk_normalize, matching, names, normalize  # noqa: E402
from crm_sync.profile import FieldMap  # noqa: E402

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
REGION = "US"
FIRST = ["Ava", "Liam", "Noah", "Emma", "Olivia", "José", "Zoë", "Łukasz", "Chloé", "محمد", "李", "Sofía",
         "Mia", "Lucas", "Ethan", "Amelia", "Yusuf", "Aarav", "Hana", "Noé"]
LAST = ["Garcia", "Smith", "Nguyen", "Müller", "O'Brien", "Kowalski", "Rossi", "Kim", "Cohen", "García",
        "Dubois", "Haddad", "Silva", "Ivanova", "Brown", "Lee", "Patel", "Jones", "Björk", "Wang"]
ASCII = {"José": "jose", "Zoë": "zoe", "Łukasz": "lukasz", "Chloé": "chloe", "محمد": "mohamed", "李": "li",
         "Sofía": "sofia", "Noé": "noe", "Müller": "mueller", "O'Brien": "obrien", "García": "garcia",
         "Björk": "bjork"}
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "fitmail.net", "example.org", "acme.co"]
COMPANIES = [None, None, None, "Acme Inc", "Globex", "Initech", "Umbrella  Corp", "Café Olé", "Stark Ind."]
SOURCES = [None, "web", "referral", "walk-in", "facebook", "Google Ads"]


def gib(kib: int) -> float:
    return round(kib / 2**20, 3)


def maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# --- data ------------------------------------------------------------------------------------

def phone_prefixes(count: int, rng: np.random.Generator) -> np.ndarray:
    """Area code + exchange pairs phonenumbers calls valid: US ones, and 5% elsewhere in the NANP
    (Canada, the Caribbean), as a US business's customers have."""
    found: list[str] = []
    while len(found) < count:
        prefix = f"{rng.integers(200, 1000)}{rng.integers(200, 1000)}"
        number = phonenumbers.parse(f"+1{prefix}4567")
        home = phonenumbers.region_code_for_number(number) == "US"
        if phonenumbers.is_valid_number(number) and prefix not in found and home == (len(found) < count * 0.95):
            found.append(prefix)
    return np.array(found, dtype=object)


def people(count: int, rng: np.random.Generator) -> pd.DataFrame:
    """The true identities: person p has a unique email and phone, unless in a family (shared email)."""
    p = np.arange(count)
    first = np.array(FIRST, dtype=object)[rng.integers(0, len(FIRST), count)]
    last = np.array(LAST, dtype=object)[rng.integers(0, len(LAST), count)]
    to_ascii = np.vectorize(lambda name: ASCII.get(name, name.lower()), otypes=[object])
    domain = np.array(DOMAINS, dtype=object)[rng.integers(0, len(DOMAINS), count)]
    email = to_ascii(first) + "." + to_ascii(last) + p.astype(str).astype(object) + "@" + domain
    head = p - p % 100  # every 100 people, a family of 2-4 shares the first one's email
    family = p - head < rng.integers(2, 5, count)[head]
    email[family] = (to_ascii(last[head[family]]) + ".family" + head[family].astype(str).astype(object)
                     + "@" + domain[head[family]])
    prefixes = phone_prefixes(400, rng)
    line = ((p // len(prefixes)) % 10_000).astype(str).astype(object)
    digits = prefixes[p % len(prefixes)] + pd.Series(line).str.zfill(4).to_numpy(object)
    return pd.DataFrame({"email": email, "digits": digits, "first_name": first, "last_name": last,
                         "company_name": np.array(COMPANIES, dtype=object)[rng.integers(0, len(COMPANIES), count)],
                         "lead_source": np.array(SOURCES, dtype=object)[rng.integers(0, len(SOURCES), count)]})


def _choose(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=np.array(weights) / sum(weights))


def render(persons: pd.DataFrame, ids: np.ndarray, side: str, rng: np.random.Generator,
           typo: np.ndarray | None = None) -> pd.DataFrame:
    """One side's export of some people, in that side's messy formats."""
    rows = persons.iloc[ids].reset_index(drop=True)
    n = len(rows)
    email = rows.email.to_numpy(object).copy()
    if typo is not None:  # swap two letters of the local part
        i = np.flatnonzero(typo)
        swapped = pd.Series(email[i]).str.replace(r"^(.)(.)", r"\2\1", regex=True)
        email[i] = np.where(swapped == email[i], "x" + email[i], swapped)
    style = _choose(rng, n, [60, 15, 10, 7, 8])
    email = np.select([style == 1, style == 2, style == 3], [pd.Series(email).str.upper(), "  " + email + " ",
                      pd.Series(email).str.title()], email).astype(object)
    email[style == 4] = None
    email[rng.random(n) < 0.003] = "broken@@" + DOMAINS[0]
    d = pd.Series(rows.digits)
    area, exchange, line = d.str[:3], d.str[3:6], d.str[6:]
    forms = ["(" + area + ") " + exchange + "-" + line, area + "." + exchange + "." + line,
             "+1 " + area + " " + exchange + " " + line, d, "+1" + d, "1-" + area + "-" + exchange + "-" + line]
    form = _choose(rng, n, [30, 20, 20, 10, 10, 2, 8])
    phone = np.select([form == k for k in range(len(forms))], [f.to_numpy(object) for f in forms], None).astype(object)
    phone[rng.random(n) < 0.003] = "555-01"
    first = rows.first_name.to_numpy(object).copy()
    messy = rng.random(n) < 0.1
    first[messy] = " " + first[messy] + "  "
    zoe = first == "Zoë"
    first[zoe & (rng.random(n) < 0.5)] = "Zoe\u0308"  # decomposed: NFC makes it Zoë again
    return pd.DataFrame({"source_id": side + pd.Series(ids.astype(str)), "email": email, "phone": phone,
                         "first_name": first, "last_name": rows.last_name, "company_name": rows.company_name,
                         "lead_source": rows.lead_source})


def dataset(n: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GHL holds people 0..n-1; the app 30% of them and 0.7n others. source_id is side + person."""
    rng = np.random.default_rng(seed)
    overlap = int(n * 0.3)
    persons = people(n + n - overlap, rng)
    ghl = render(persons, np.arange(n), "g", rng)
    app_ids = np.concatenate([rng.choice(n, overlap, replace=False), np.arange(n, 2 * n - overlap)])
    typo = np.zeros(n, bool)
    typo[:overlap] = rng.random(overlap) < 0.03
    app = render(persons, app_ids, "a", rng, typo)
    return ghl, app.sample(frac=1.0, random_state=seed).reset_index(drop=True)


# --- labelled matching quality ------------------------------------------------------------------

def labelled_pairs() -> tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, str]], set[tuple[str, str]]]:
    """(ghl, app, true pairs, family records) for measuring find_matches. True pairs are the same
    person; family records (several people, one email, a phone each) match their own record only."""
    ghl, app, truth = [], [], set()

    def person(key: str, g: dict | None, a: dict | None) -> None:
        if g is not None:
            ghl.append({"source_id": f"g-{key}", **g})
        if a is not None:
            app.append({"source_id": f"a-{key}", **a})
        if g is not None and a is not None and key[0] != "x":  # "x...": different people
            truth.add((f"g-{key}", f"a-{key}"))

    formats = ["({a}) {e}-{l}", "{a}.{e}.{l}", "+1 {a} {e} {l}", "{a}{e}{l}", "+1{a}{e}{l}", "1-{a}-{e}-{l}"]
    for k in range(40):  # the same person, written differently on each side
        a, e, line = 212 + k % 7, 555 + k % 3, f"{1000 + k:04d}"
        mail = f"Person.{k}@Example.com"
        g = {"email": mail if k % 5 else None, "phone": formats[k % 6].format(a=a, e=e, l=line)}
        o = {"email": f"  {mail.lower()} " if k % 7 else mail.upper(),
             "phone": formats[(k + 3) % 6].format(a=a, e=e, l=line) if k % 4 else None}
        person(f"same{k}", g, o)
    families = set()
    for f, size in enumerate((2, 3, 4, 2)):  # one family email on both sides, one phone each
        for m in range(size):
            phone = f"(415) 20{f}-1{m:03d}"
            person(f"fam{f}-{m}", {"email": f"the.family{f}@example.com", "phone": phone},
                   {"email": f"The.Family{f}@Example.com ", "phone": phone})
            families |= {("ghl", f"g-fam{f}-{m}"), ("app", f"a-fam{f}-{m}")}
    for k in range(8):  # a typo in the app's email: the same phone and names tell it is the same person
        who = {"first_name": "Jordan", "last_name": f"Reyes{k}"}
        person(f"typo{k}", {"email": f"jordan{k}@example.com", "phone": f"312-555-20{k:02d}", **who},
               {"email": f"jrodan{k}@example.com", "phone": f"(312) 555-20{k:02d}" if k % 2 else None, **who})
    for k in range(4):  # a typo, but GHL has no email: the phone decides, and rightly
        person(f"typofix{k}", {"email": None, "phone": f"+1 646 555 01{k:02d}"},
               {"email": f"sam{k}@exmaple.com", "phone": f"646.555.01{k:02d}"})
    for k in range(5):  # near-identical emails of different people
        person(f"xnear{k}", {"email": f"jon.smith{k}@example.com", "phone": f"713-555-03{k:02d}"},
               {"email": f"john.smith{k}@example.com", "phone": f"713-555-04{k:02d}"})
    for k in range(3):  # one office line, different people with their own emails
        person(f"xoffice{k}", {"email": f"boss{k}@corp.com", "phone": "(617) 555-0900"},
               {"email": f"clerk{k}@corp.com", "phone": "617.555.0900"})
    person("xshared", {"email": None, "phone": "(305) 555-0111"}, None)  # one GHL record, two app records
    app += [{"source_id": f"a-xshared{k}", "email": None, "phone": "305-555-0111"} for k in range(2)]
    names = [("José", "Jose"), ("Zoë", "ZOE"), ("Søren", "Soren"), ("Ólafur", "Olafur"), ("Æsa", "Aesa"),
             ("Jürgen", "JURGEN"), ("Françoise", "Francoise"), ("Дмитрий", "Dmitriy")]
    for k, (one, other) in enumerate(names):  # one email each, the first name written as each side could
        person(f"name{k}", {"email": f"name{k}@example.com", "phone": None, "first_name": one},
               {"email": f"NAME{k}@example.com", "phone": None, "first_name": other})
    for k, (one, other) in enumerate([("Ana", "Anna"), ("Eli", "Ela"), ("Jose", "Josefa"), ("Zoë", "Chloé")]):
        person(f"xname{k}", {"email": f"shared{k}@example.com", "phone": None, "first_name": one},  # other people
               {"email": f"shared{k}@example.com", "phone": None, "first_name": other})
    nicks = [("Bill", "William"), ("Bob", "Robert"), ("Liz", "Elizabeth"), ("Peggy", "Margaret"), ("Dick", "Richard"),
             ("Jim", "James"), ("Kate", "Katherine"), ("Tony", "Anthony"), ("Sasha", "Alexander"), ("Bill", "willy")]
    for k, (one, other) in enumerate(nicks):  # a nickname on one side, the given name on the other, one email
        person(f"nick{k}", {"email": f"nick{k}@example.com", "phone": f"212-555-31{k:02d}", "first_name": one,
                            "last_name": "Øster"},
               {"email": f"Nick{k}@example.com", "phone": None, "first_name": other, "last_name": "Oster"})
    for k, (one, other) in enumerate([("Chen", "Li"), ("Wang", "Wei"), ("Kim", "Min-jun"), ("Tanaka", "Yuki")]):
        person(f"swap{k}", {"email": f"swap{k}@example.com", "phone": None, "first_name": one, "last_name": other},
               {"email": f"swap{k}@example.com", "phone": None, "first_name": other, "last_name": one})
        person(f"swapphone{k}", {"email": f"sw{k}@gmail.com", "phone": f"+1 415 555 07{k:02d}", "first_name": one,
                                 "last_name": other},  # swapped names, and a typo in the domain
               {"email": f"sw{k}@gmial.com", "phone": f"415-555-07{k:02d}", "first_name": other, "last_name": one})
    typos = [("yahoo.com", "yaho.com"), ("gmail.com", "gmial.com"), ("hotmail.com", "hotmal.com"),
             ("outlook.com", "outlok.com"), ("icloud.com", "icloud.co"), ("gmail.com", "gmail.con")]
    for k, (right, domain) in enumerate(typos):  # a typo in the app's email domain, the same phone and name
        person(f"domain{k}", {"email": f"pat.lane{k}@{right}", "phone": f"(503) 555-01{k:02d}",
                              "first_name": "Pat", "last_name": f"Lane{k}"},
               {"email": f"pat.lane{k}@{domain}", "phone": f"503.555.01{k:02d}", "first_name": "PAT",
                "last_name": f"lane{k}"})
    for k in range(3):  # a household: father and son, one email, their own phones, nicknames of each other
        person(f"xgen{k}", {"email": f"smiths{k}@example.com", "phone": f"(617) 555-11{k:02d}",
                            "first_name": "Robert", "last_name": "Smith Sr."},
               {"email": f"smiths{k}@example.com", "phone": f"(617) 555-12{k:02d}", "first_name": "Bob",
                "last_name": "Smith Jr"})
        person(f"xdad{k}", {"email": f"home{k}@example.com", "phone": f"(617) 555-13{k:02d}", "first_name": "Robert",
                            "last_name": "Smith"},  # no suffix, but another phone: unsure
               {"email": f"home{k}@example.com", "phone": f"(617) 555-14{k:02d}", "first_name": "Bob",
                "last_name": "Smith"})
        person(f"xline{k}", {"email": f"ann{k}@example.com", "phone": f"(617) 555-15{k:02d}", "first_name": "Ann",
                             "last_name": "Smith"},  # one home line, two emails, two names: two people
               {"email": f"tom{k}@example.com", "phone": f"(617) 555-15{k:02d}", "first_name": "Tom",
                "last_name": "Smith"})
    for f in range(3):  # a household on both sides: each member's own name tells them apart
        for m, first in enumerate(("Maria", "Jose", "Lucia")):
            person(f"home{f}-{m}", {"email": f"garcia{f}@example.com", "phone": None, "first_name": first,
                                    "last_name": "Garcia"},
                   {"email": f"Garcia{f}@example.com", "phone": None, "first_name": first.upper(),
                    "last_name": "García"})
    for k in range(10):  # on one side only
        person(f"xonly{k}", {"email": f"only{k}@ghl.com", "phone": None}, None)
        person(f"xapp{k}", None, {"email": f"only{k}@app.com", "phone": None})
    return pd.DataFrame(ghl), pd.DataFrame(app), truth, families


def precision_recall(pairs: list[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple[float, float]:
    found = set(pairs)
    right = len(found & truth)
    return (right / len(found) if found else 1.0), (right / len(truth) if truth else 1.0)


# --- the two paths --------------------------------------------------------------------------

def bulk(ghl_raw: pd.DataFrame, app_raw: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    ghl, ghl_bad = bulk_normalize.normalize_contacts(ghl_raw, REGION)
    app, app_bad = bulk_normalize.normalize_contacts(app_raw, REGION)
    t1 = time.perf_counter()
    pairs, ambiguous = matching.find_matches(ghl, app)
    t2 = time.perf_counter()
    changed = matching.diff(ghl, app, pd.DataFrame(pairs, columns=["ghl_id", "app_id"]))
    t3 = time.perf_counter()
    return {"ghl": ghl, "app": app, "bad": len(ghl_bad) + len(app_bad), "pairs": pairs, "ambiguous": ambiguous,
            "differs": int(changed.links.differs.sum()),
            "stages": {"normalise": round(t1 - t0, 3), "match": round(t2 - t1, 3), "diff": round(t3 - t2, 3)}}


FIELDS = {name: FieldMap(ghl=name) for name in bulk_normalize.FIELDS}


def plain_matches(ghl: dict[str, dict], app: dict[str, dict], apart: set[tuple[str, str]] = frozenset(),
                  nicknames: tuple = ()) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list]]:
    """matching.find_matches's rules written plainly, a loop per pair (the reference the vectorised
    version must equal): records are {id: {email, phone, first_name, last_name}}."""
    known = names.nickname_pairs(nicknames)

    def verdict(g: dict, a: dict) -> tuple[int, bool, bool, bool]:
        (gf, gs), (af, as_) = names.split_suffix(g.get("first_name")), names.split_suffix(a.get("first_name"))
        (gl, gls), (al, als) = names.split_suffix(g.get("last_name")), names.split_suffix(a.get("last_name"))
        gs, as_ = gls or gs, als or as_
        if gf is None or af is None:
            first = names.UNKNOWN
        elif gf == af:
            first = names.SAME
        elif gl is not None and al is not None and gf == al and gl == af:
            first = names.SWAPPED
        elif (gf, af) in known:
            first = names.NICKNAME
        else:
            first = names.OTHER
        last = first == names.SWAPPED or (gl is not None and gl == al)
        plausible = first == names.OTHER and gf[0] == af[0]
        return first, last, bool(gs and as_ and gs != as_), plausible

    pairs: list[tuple[str, str]] = []
    ambiguous: dict[tuple[str, str], list] = {}
    taken: set[tuple[str, str]] = set()
    for key, other in (("email", "phone"), ("phone", "email")):
        by_key = defaultdict(list)
        for a, row in app.items():
            if row[key] is not None and ("app", a) not in taken:
                by_key[row[key]].append(a)
        joined = [(g, a) for g, row in ghl.items() if row[key] is not None and ("ghl", g) not in taken
                  for a in by_key.get(row[key], ())]
        per_g, per_a = Counter(g for g, _ in joined), Counter(a for _, a in joined)
        rows = []
        for g, a in joined:
            first, last, generation, plausible = verdict(ghl[g], app[a])
            go, ao = ghl[g][other], app[a][other]
            differs = go is not None and ao is not None and go != ao
            if key == "phone" and differs and not (first in (names.SAME, names.SWAPPED) and last and not generation):
                continue  # different emails and names: different people
            if (g, a) in apart:
                continue
            lone = per_g[g] == 1 and per_a[a] == 1
            fits = first != names.OTHER and not generation and not (differs and (first == names.NICKNAME or not lone))
            told = lone or (go is not None and go == ao) or first in (names.SAME, names.SWAPPED, names.NICKNAME)
            why = f" by {key}" + (", another first name" if first == names.OTHER else "") \
                + (" (not a known nickname)" if plausible else "") \
                + (", another generation (Sr / Jr)" if generation else "") \
                + (f", a nickname with another {other}" if first == names.NICKNAME and differs else "") \
                + (f", {other} differs" if first != names.NICKNAME and differs else "") \
                + ("" if lone else ", shared household contact")
            rows.append((g, a, fits, told, why))
        fit_g = Counter(g for g, _, fits, _, _ in rows if fits)
        fit_a = Counter(a for _, a, fits, _, _ in rows if fits)
        matched = [(g, a) for g, a, fits, told, _ in rows if fits and told and fit_g[g] == 1 and fit_a[a] == 1]
        pairs += matched
        done = {("ghl", g) for g, _ in matched} | {("app", a) for _, a in matched}
        for g, a, _, _, why in rows:
            if ("ghl", g) not in done:
                ambiguous.setdefault(("ghl", g), []).append(f"app:{a}{why}")
            if ("app", a) not in done:
                ambiguous.setdefault(("app", a), []).append(f"ghl:{g}{why}")
            taken |= {("ghl", g), ("app", a)}

    def full(row: dict) -> tuple | None:  # a record's folded first and last name, both known, and its suffix
        (first, fs), (last, ls) = names.split_suffix(row.get("first_name")), names.split_suffix(row.get("last_name"))
        return None if first is None or last is None or row["email"] is None else (first, last, ls or fs)

    left = {side: [(i, full(row)) for i, row in records.items() if (side, i) not in taken and full(row)]
            for side, records in (("ghl", ghl), ("app", app))}
    once = {side: {name for name, n in Counter(f[:2] for _, f in rows).items() if n == 1}
            for side, rows in left.items()}
    app_by_name = {f[:2]: (i, f) for i, f in left["app"] if f[:2] in once["app"]}
    for g, gf in left["ghl"]:
        if gf[:2] not in once["ghl"] or gf[:2] not in app_by_name:
            continue
        a, af = app_by_name[gf[:2]]
        phones = ghl[g]["phone"], app[a]["phone"]
        if None not in phones and phones[0] != phones[1] or gf[2] and af[2] and gf[2] != af[2] or (g, a) in apart:
            continue
        digits = ["".join(c for c in row["email"] if c.isdigit()) for row in (ghl[g], app[a])]
        if OSA.distance(ghl[g]["email"], app[a]["email"]) <= 1 and digits[0] == digits[1]:
            pairs.append((g, a))
    return pairs, ambiguous


def python_path(ghl_raw: pd.DataFrame, app_raw: pd.DataFrame) -> dict:
    """What the per-row code does: canonical_contact and content_hash per record, dict lookups."""
    sides = {}
    for side, frame in (("ghl", ghl_raw), ("app", app_raw)):
        rows = {}
        for record in frame.astype(object).to_dict("records"):
            payload = {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                       for k, v in record.items()}
            try:
                values = normalize.canonical_contact(payload, "ghl", FIELDS, REGION)
            except normalize.RuleBroken:
                continue
            rows[record["source_id"]] = {**{f: values[f] for f in bulk_normalize.FIELDS},
                                         "content_hash": normalize.content_hash(values)}
        sides[side] = rows
    pairs, ambiguous = plain_matches(sides["ghl"], sides["app"])
    differs = sum(any(sides["ghl"][g][f] != sides["app"][a][f] for f in bulk_normalize.FIELDS) for g, a in pairs)
    return {"sides": sides, "pairs": pairs, "ambiguous": ambiguous, "differs": differs}


def same_results(fast: dict, slow: dict) -> bool:
    for side in ("ghl", "app"):
        frame = fast[side].astype(object).where(fast[side].notna(), None)
        rows = {r["source_id"]: {f: r[f] for f in (*bulk_normalize.FIELDS, "content_hash")}
                for r in frame.to_dict("records")}
        if rows != slow["sides"][side]:
            return False
    return (sorted(fast["pairs"]) == sorted(slow["pairs"]) and fast["ambiguous"] == slow["ambiguous"]
            and fast["differs"] == slow["differs"])


def run_size(n: int) -> dict:
    """One size, in this (fresh) process."""
    ghl_raw, app_raw = dataset(n)
    gc.collect()
    before = maxrss_kib()
    started, cpu = time.perf_counter(), time.process_time()
    fast = bulk(ghl_raw, app_raw)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = maxrss_kib()
    truth = sum(g[1:] == a[1:] for g, a in fast["pairs"])
    result = {"n_per_side": n, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
              "load_avg_1m": round(os.getloadavg()[0], 2), "peak_gib": gib(peak), "peak_growth_gib": gib(peak - before),
              "stages": fast["stages"], "pairs": len(fast["pairs"]), "ambiguous": len(fast["ambiguous"]),
              "bad_rows": fast["bad"], "pairs_differing": fast["differs"],
              "synthetic_precision": round(truth / max(len(fast["pairs"]), 1), 4),
              "synthetic_recall": round(truth / int(n * 0.3), 4)}
    if n <= 10_000:
        started = time.perf_counter()
        slow = python_path(ghl_raw, app_raw)
        result["python_seconds"] = round(time.perf_counter() - started, 3)
        result["python_same_results"] = same_results(fast, slow)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, help="run one size in this process and print its JSON")
    parser.add_argument("--sizes", default=",".join(SIZES), help="which of 10k,100k,1m to run")
    args = parser.parse_args()
    if args.size:
        print(json.dumps(run_size(args.size)))
        return

    sizes = {}
    for name in args.sizes.split(","):
        out = subprocess.run([sys.executable, __file__, "--size", str(SIZES[name])], check=True,
                             capture_output=True, text=True).stdout
        sizes[name] = json.loads(out.strip().splitlines()[-1])
        print(f"{name}: {json.dumps(sizes[name])}", file=sys.stderr)

    ghl_raw, app_raw, truth, families = labelled_pairs()
    ghl, _ = bulk_normalize.normalize_contacts(ghl_raw, REGION)
    app, _ = bulk_normalize.normalize_contacts(app_raw, REGION)
    pairs, ambiguous = matching.find_matches(ghl, app)
    precision, recall = precision_recall(pairs, truth)
    result = {f"seconds_{name}": s["seconds"] for name, s in sizes.items()}
    if "1m" in sizes:
        result["peak_gib_1m"] = sizes["1m"]["peak_gib"]
    if "10k" in sizes:
        result["speedup_vs_python_10k"] = round(sizes["10k"]["python_seconds"] / sizes["10k"]["seconds"], 1)
        result["python_same_results_10k"] = sizes["10k"]["python_same_results"]
    names = list(sizes)
    result["growth"] = {f"{a}_to_{b}": round(sizes[b]["seconds"] / sizes[a]["seconds"], 2)
                        for a, b in itertools.pairwise(names)}
    result.update({"precision": round(precision, 4), "recall": round(recall, 4), "labelled_true_pairs": len(truth),
                   "family_members_own_record_only": all(g[2:] == a[2:] for g, a in pairs if g.startswith("g-fam")),
                   "sizes": sizes})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
