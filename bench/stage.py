"""Stage's contacts: bulk (stage.stage_contacts) against the per-row path, side by side in one process.

The GHL side of bench/reconcile.py's noisy dataset, written as GHL contact payloads through the
gymdesk profile, is staged twice: by stage_contacts (fields read per row, emails, phones and names
normalised and hashed column-wise) and by the per-row path stage used before (canonical_record and
record_hash per record). Both must give the same rows, hashes and quarantined records; the ratio of
their times is the result. Prints one JSON object as its last line.

Run: .venv/bin/python bench/stage.py [--size 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import namedtuple
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from crm_sync.pipeline import normalize  # noqa: E402
from crm_sync.pipeline.context import RunContext  # noqa: E402
from crm_sync.pipeline.stage import record_hash, stage_contacts  # noqa: E402
from crm_sync.profile import profile_by_name  # noqa: E402

from bench.reconcile import dataset  # noqa: E402

Raw = namedtuple("Raw", "id entity side source_id payload")


def raws(size: int, ctx: RunContext) -> list[Raw]:
    ghl, _ = dataset(size)
    fields = ctx.profile.fields("contact")
    records = ghl.astype(object).where(ghl.notna(), None).to_dict("records")
    return [Raw(i, "contact", "ghl", r["source_id"],
                {**normalize.to_side("contact", r, "ghl", fields), "dateUpdated": "2026-11-01T09:00:00Z"})
            for i, r in enumerate(records, 1)]


def per_row(ctx: RunContext, records: list[Raw]) -> tuple[dict, set]:
    good, bad = {}, set()
    for raw in records:
        try:
            values = normalize.canonical_record("contact", raw.payload, "ghl", ctx.profile.fields("contact"),
                                                ctx.profile.default_region)
            normalize.timestamp(raw.payload["dateUpdated"])
        except normalize.RuleBroken:
            bad.add(raw.id)
            continue
        good[raw.id] = record_hash(values, "contact", False)
    return good, bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=20_000)
    size = parser.parse_args().size
    ctx = RunContext(profile=profile_by_name("gymdesk"), run_id="bench", run_type="manual")
    records = raws(size, ctx)
    started = time.perf_counter()
    staged, broken = stage_contacts(ctx, records)
    bulk_s = time.perf_counter() - started
    started = time.perf_counter()
    good, bad = per_row(ctx, records)
    row_s = time.perf_counter() - started
    same = {r["raw_id"]: r["content_hash"] for r in staged} == good and {raw.id for raw, _ in broken} == bad
    print(json.dumps({"size": size, "bulk_seconds": round(bulk_s, 3), "per_row_seconds": round(row_s, 3),
                      "speedup_vs_per_row": round(row_s / bulk_s, 2), "quarantined": len(bad), "same_results": same}))
    if not same:
        sys.exit("bulk and per-row staging disagree")


if __name__ == "__main__":
    main()
