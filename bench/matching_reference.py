"""The labelled set identity matching is measured on, and its rules written plainly (a loop per
pair): the reference the vectorised crm_sync.pipeline.matching must equal (tests/unit/test_matching.py,
bench/reconcile.py's per-row path)."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
from rapidfuzz.distance import OSA

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from crm_sync.pipeline import matching, names  # noqa: E402


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
    for k, (one, other) in enumerate([("Louis", "Louise"), ("Edwin", "Edwina"), ("Justin", "Justina"),
                                      ("Ernest", "Ernestine"), ("Clement", "Clementine"), ("August", "Augustine")]):
        line = f"(617) 555-16{k:02d}"  # a household: a name's other form is another person, not a nickname
        person(f"xform{k}", {"email": f"fam.martin{k}@example.com", "phone": line, "first_name": one,
                             "last_name": "Martin"},
               {"email": f"fam.martin{k}@example.com", "phone": line if k % 2 else None, "first_name": other,
                "last_name": "Martin"})
    for k in range(3):  # father with a suffix, son without: one email, two phones, unsure
        person(f"xsr{k}", {"email": f"robert{k}@example.com", "phone": f"(617) 555-17{k:02d}",
                           "first_name": "Robert", "last_name": "Smith Sr"},
               {"email": f"robert{k}@example.com", "phone": f"(617) 555-18{k:02d}", "first_name": "Robert",
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


def plain_matches(ghl: dict[str, dict], app: dict[str, dict], apart: set[tuple[str, str]] = frozenset(),
                  nicknames: tuple = ()) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list]]:
    """matching.find_matches's rules written plainly, a loop per pair (the reference the vectorised
    version must equal): records are {id: {email, phone, first_name, last_name}}."""
    known = names.nickname_pairs(nicknames)

    def verdict(g: dict, a: dict) -> tuple[int, bool, bool, bool, bool]:
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
        return first, last, bool(gs and as_ and gs != as_), plausible, bool(gs) != bool(as_)

    def full(row: dict) -> tuple | None:  # a record's folded first and last name, both known, and its suffix
        (first, fs), (last, ls) = names.split_suffix(row.get("first_name")), names.split_suffix(row.get("last_name"))
        return None if first is None or last is None else (first, last, ls or fs)

    holders = {side: {key: Counter(row[key] for row in records.values() if row[key] is not None)
                      for key in ("email", "phone")} for side, records in (("ghl", ghl), ("app", app))}
    name_holders = {side: Counter(full(row)[:2] for row in records.values() if full(row))
                    for side, records in (("ghl", ghl), ("app", app))}

    def name_held(side: str, row: dict) -> int:
        return name_holders[side][full(row)[:2]] if full(row) else 0

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
        rows = []
        for g, a in joined:
            first, last, generation, plausible, one_suffix = verdict(ghl[g], app[a])
            go, ao = ghl[g][other], app[a][other]
            differs = go is not None and ao is not None and go != ao
            if key == "phone" and differs and not (first in (names.SAME, names.SWAPPED) and last and not generation):
                continue  # different emails and names: different people
            if (g, a) in apart:
                continue
            lone = holders["ghl"][key][ghl[g][key]] == 1 and holders["app"][key][app[a][key]] == 1
            fits = first != names.OTHER and not generation and not (differs and (
                first == names.NICKNAME or not lone or one_suffix))
            told = lone or (go is not None and go == ao) or first in (names.SAME, names.SWAPPED, names.NICKNAME)
            why = f" by {key}" + (", another first name" if first == names.OTHER else "") \
                + (" (not a known nickname)" if plausible else "") \
                + (", another generation (Sr / Jr)" if generation else "") \
                + (", a generation suffix on one side (Sr / Jr)" if differs and one_suffix else "") \
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

    few = matching.FEW  # a name more records of a side hold is too common to say anything
    left = {side: [(i, full(row)) for i, row in records.items()
                   if (side, i) not in taken and row["email"] is not None and 1 <= name_held(side, row) <= few]
            for side, records in (("ghl", ghl), ("app", app))}
    app_by_name = defaultdict(list)
    for a, af in left["app"]:
        app_by_name[af[:2]].append((a, af))
    for g, gf in left["ghl"]:
        for a, af in app_by_name.get(gf[:2], ()):
            phones = ghl[g]["phone"], app[a]["phone"]
            if None not in phones and phones[0] != phones[1] or gf[2] and af[2] and gf[2] != af[2] \
                    or bool(gf[2]) != bool(af[2]) or (g, a) in apart:
                continue
            digits = ["".join(c for c in row["email"] if c.isdigit()) for row in (ghl[g], app[a])]
            if OSA.distance(ghl[g]["email"], app[a]["email"]) > 1 or digits[0] != digits[1]:
                continue
            if name_held("ghl", ghl[g]) == 1 and name_held("app", app[a]) == 1:
                pairs.append((g, a))
            else:  # two records of that name on a side: which one mistyped? unsure
                ambiguous.setdefault(("ghl", g), []).append(f"app:{a}{matching.TYPO_UNSURE}")
                ambiguous.setdefault(("app", a), []).append(f"ghl:{g}{matching.TYPO_UNSURE}")
    return pairs, ambiguous
