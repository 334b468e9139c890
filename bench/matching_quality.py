"""Identity matching's precision and recall on a generated population with the ways people really
type: nicknames on one side (Bill / William), first and last names swapped (Chen Li / Li Chen), a
typo in an email's domain (@yaho.com) with the same phone, households sharing one email (parents
and children, Robert Sr / Bob Jr, each with their own phone), couples on one home line with their
own emails, and the usual noise (case, accents, spaces, phone formats, missing fields).

Every person has a true identity, so precision (matched pairs that are one person) and recall (one
person's two records found) are exact; per case too. Run:

    .venv/bin/python bench/matching_quality.py --people 20000

Prints one JSON object as its last line. tests/unit/test_matching_quality.py runs a smaller one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from anyascii import anyascii

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from bench.reconcile import phone_prefixes  # noqa: E402
from crm_sync.pipeline import bulk_normalize, matching  # noqa: E402

# Given names with the nicknames people commonly go by (not drawn from the matcher's own list)
NICKNAMES = {"William": ["Bill", "Will", "Billy"], "Robert": ["Bob", "Rob", "Bobby"], "Elizabeth": ["Liz", "Beth"],
             "Margaret": ["Maggie", "Peggy"], "Richard": ["Dick", "Rick", "Rich"], "James": ["Jim", "Jimmy"],
             "Katherine": ["Kate", "Kathy", "Katie"], "Anthony": ["Tony"], "Michael": ["Mike"],
             "Jennifer": ["Jen", "Jenny"], "Christopher": ["Chris"], "Patricia": ["Pat", "Patty", "Trish"],
             "Thomas": ["Tom", "Tommy"], "Susan": ["Sue", "Susie"], "Daniel": ["Dan", "Danny"],
             "Joseph": ["Joe", "Joey"], "Edward": ["Ed", "Eddie", "Ted"], "Alexander": ["Alex"],
             "Samuel": ["Sam"], "Rebecca": ["Becky"], "Andrew": ["Andy", "Drew"], "Victoria": ["Vicky", "Tori"]}
OTHER_FIRST = ["Ava", "Noah", "Emma", "Olivia", "José", "Zoë", "Łukasz", "Chloé", "Sofía", "Mia", "Lucas",
               "Amelia", "Yusuf", "Aarav", "Hana", "Noé", "Søren", "Ólafur", "Дмитрий", "Ingrid"]
EAST_ASIAN = [("Li", "Chen"), ("Wei", "Wang"), ("Min-jun", "Kim"), ("Yuki", "Tanaka"), ("Hui", "Zhang"),
              ("Jun", "Liu"), ("Ji-woo", "Park"), ("Haruto", "Sato"), ("Mei", "Huang"), ("Tuan", "Nguyen")]
LAST = ["Garcia", "Smith", "Müller", "O'Brien", "Kowalski", "Rossi", "Cohen", "Dubois", "Haddad", "Silva",
        "Ivanova", "Brown", "Patel", "Jones", "Björk", "Øster", "Reyes", "Okafor", "Novak", "Lindqvist"]
DOMAINS = {"gmail.com": "gmial.com", "yahoo.com": "yaho.com", "outlook.com": "outlok.com",
           "hotmail.com": "hotmal.com", "icloud.com": "icloud.co", "aol.com": "aol.cm"}


def _plain(text: str) -> str:
    """An email's local part as people make one from a name: ASCII letters and digits."""
    return re.sub(r"[^a-z0-9]", "", anyascii(text).lower())


def population(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, str]], dict[str, str]]:
    """(ghl, app, true pairs, each person's case) for ``n`` people; record ids are side + person."""
    rng = np.random.default_rng(seed)
    prefixes = phone_prefixes(200, rng)
    given = list(NICKNAMES)
    people, case = [], {}
    p = 0
    while p < n:
        size = int(rng.choice([1, 2, 3, 4], p=[0.9, 0.05, 0.03, 0.02])) if p + 4 < n else 1
        last = f"{LAST[rng.integers(len(LAST))]}{'' if rng.random() < 0.5 else chr(97 + rng.integers(26))}"
        domain = list(DOMAINS)[rng.integers(len(DOMAINS))]
        shared_email = f"the.{_plain(last)}s{p}@{domain}" if size > 1 else None
        shared_line = size > 1 and rng.random() < 0.3  # a household on one home phone too
        for m in range(size):
            kind = rng.random()
            if kind < 0.1:
                first, last_m = EAST_ASIAN[rng.integers(len(EAST_ASIAN))]
            else:
                pool = given if rng.random() < 0.6 else OTHER_FIRST
                first, last_m = pool[rng.integers(len(pool))], last
            suffix = ""
            if size > 1 and m == 1 and people and people[-1]["first"] in NICKNAMES and rng.random() < 0.5:
                first, suffix = people[-1]["first"], " Jr"  # the son is named after the father
                people[-1]["suffix"] = " Sr"
            digits = f"{prefixes[(p + m) % len(prefixes)]}{(p + m) // len(prefixes):04d}"
            while size > 1 and not suffix and any((first, last_m) == (o["first"], o["last"]) for o in people[-m:]
                                                  if m):  # siblings are not named alike
                first = OTHER_FIRST[rng.integers(len(OTHER_FIRST))]
            if shared_line and m:
                digits = people[-m]["digits"]
            email = shared_email or f"{_plain(first)}.{_plain(last_m)}{p + m}@{domain}"
            people.append({"first": first, "last": last_m, "suffix": suffix, "email": email,
                           "digits": digits, "domain": domain, "household": size > 1})
        p += size
    people = people[:n]
    ghl, app, truth = [], [], set()
    for i, person in enumerate(people):
        on_ghl, on_app = rng.random() < 0.8, rng.random() < 0.8
        if not (on_ghl or on_app):
            on_ghl = True
        case[str(i)] = "household" if person["household"] else "plain"
        records = []
        for side, present in (("g", on_ghl), ("a", on_app)):
            if present:
                records.append(_record(side, i, person, rng))
        if len(records) == 2:
            truth.add((f"g{i}", f"a{i}"))
            g, a = records
            roll = rng.random()
            if person["first"] in NICKNAMES and roll < 0.25 and not person["suffix"]:
                target = g if rng.random() < 0.5 else a
                nicks = NICKNAMES[person["first"]]
                target["first_name"] = nicks[rng.integers(len(nicks))]
                case[str(i)] = "nickname"
            elif (person["first"], person["last"]) in EAST_ASIAN and roll < 0.5:
                a["first_name"], a["last_name"] = person["last"], person["first"]
                case[str(i)] = "swapped"
            elif roll < 0.08 and a["email"] and not person["household"]:
                a["email"] = a["email"].replace(person["domain"], DOMAINS[person["domain"]])
                case[str(i)] = "domain_typo"
        ghl += records[:1] if on_ghl else []
        app += records[-1:] if on_app else []
    return pd.DataFrame(ghl), pd.DataFrame(app), truth, case


def _record(side: str, i: int, person: dict, rng: np.random.Generator) -> dict:
    """One side's record of a person, in that side's messy ways: case, spaces, phone formats, gaps."""
    d = person["digits"]
    forms = [f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}", f"+1 {d[:3]} {d[3:6]} {d[6:]}", d, f"+1{d}"]
    email = person["email"]
    email = email.upper() if rng.random() < 0.1 else f" {email} " if rng.random() < 0.1 else email
    first = person["first"]
    first = first.upper() if rng.random() < 0.1 else first
    return {"source_id": f"{side}{i}", "email": None if rng.random() < 0.02 else email,
            "phone": None if rng.random() < 0.08 else forms[rng.integers(len(forms))],
            "first_name": first, "last_name": person["last"] + person["suffix"]}


def measure(n: int, seed: int = 11) -> dict:
    """Normalise and match a generated population; precision, recall, and recall per case."""
    ghl_raw, app_raw, truth, case = population(n, seed)
    ghl, _ = bulk_normalize.normalize_contacts(ghl_raw, "US")
    app, _ = bulk_normalize.normalize_contacts(app_raw, "US")
    ghl, app = ghl.set_index("source_id", drop=False), app.set_index("source_id", drop=False)
    started = time.perf_counter()
    pairs, ambiguous = matching.find_matches(ghl, app)
    seconds = time.perf_counter() - started
    found = set(pairs)
    right = found & truth
    by_case: dict[str, list[int]] = {}
    for g, a in truth:
        counts = by_case.setdefault(case[g[1:]], [0, 0])
        counts[0] += (g, a) in right
        counts[1] += 1
    wrong = sorted(found - truth)
    keyed = {(g, a) for g, a in truth if g in ghl.index and a in app.index and any(
        pd.notna(ghl.at[g, k]) and ghl.at[g, k] == app.at[a, k] for k in ("email", "phone"))}
    return {"people": n, "true_pairs": len(truth), "matched": len(found), "wrong": len(wrong),
            "precision": round(len(right) / max(len(found), 1), 4), "recall": round(len(right) / len(truth), 4),
            "sharing_a_key": len(keyed), "recall_of_those": round(len(right & keyed) / max(len(keyed), 1), 4),
            "recall_by_case": {k: f"{hit}/{total}" for k, (hit, total) in sorted(by_case.items())},
            "ambiguous_records": len(ambiguous), "match_seconds": round(seconds, 3), "wrong_pairs": wrong[:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(json.dumps(measure(args.people, args.seed)))


if __name__ == "__main__":
    main()
