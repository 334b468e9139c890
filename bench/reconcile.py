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
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from bench.matching_reference import labelled_pairs, plain_matches, precision_recall  # noqa: E402
from crm_sync.pipeline import bulk_normalize, matching, normalize  # noqa: E402
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

    ghl_raw, app_raw, truth, _families = labelled_pairs()
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
