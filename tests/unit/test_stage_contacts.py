"""Stage normalises contacts in bulk: the same staging rows, hashes and quarantine rules as the per-row path."""

from __future__ import annotations

import math
from collections import namedtuple

import pytest
from crm_sync.pipeline import normalize
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.stage import record_hash, stage_contacts
from crm_sync.profile import CANONICAL, profile_by_name

from tests.unit.test_matching import noisy_frame

Raw = namedtuple("Raw", "id entity side source_id payload")


def raw_records(profile, seed: int) -> list[Raw]:
    """Noisy people written in each side's own fields (dotted paths, full names, ...) by the profile."""
    fields = profile.fields("contact")
    _, updated_ghl = profile.record_fields("ghl", "contact")
    _, updated_app = profile.record_fields("app", "contact")
    raws = []
    for i, row in enumerate(noisy_frame(600, seed).astype(object).to_dict("records")[:600]):
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
                  if k in fields}
        side = "ghl" if i % 2 else "app"
        payload = normalize.to_side("contact", values, side, fields)
        normalize.set_path(payload, updated_ghl if side == "ghl" else updated_app, "2026-11-01T09:00:00Z")
        if i % 50 == 7:
            normalize.set_path(payload, fields["first_name"].ghl if side == "ghl" else fields["first_name"].app,
                               {"not": "a name"})
        raws.append(Raw(i + 1, "contact", side, None if i % 97 == 5 else f"id{i}", payload))
    return raws


def per_row(ctx: RunContext, raws: list[Raw]) -> tuple[dict, dict]:
    good, bad = {}, {}
    for raw in raws:
        if raw.source_id is None:
            bad[raw.id] = "id_missing"
            continue
        try:
            values = normalize.canonical_record("contact", raw.payload, raw.side, ctx.profile.fields("contact"),
                                                ctx.profile.default_region)
        except normalize.RuleBroken as exc:
            bad[raw.id] = (exc.broken.rule, exc.broken.detail)
            continue
        good[raw.id] = {**values, "content_hash": record_hash(values, "contact", False)}
    return good, bad


@pytest.mark.parametrize(("name", "seed"), [("gymdesk", 1), ("gist", 2), ("mygadgetrepairs", 3), ("gymflow", 4)])
def test_bulk_stage_equals_the_per_row_path(name, seed):
    ctx = RunContext(profile=profile_by_name(name), run_id="r1", run_type="manual")
    raws = raw_records(ctx.profile, seed)
    expected_good, expected_bad = per_row(ctx, raws)

    staged, broken = stage_contacts(ctx, raws)

    got_good = {row["raw_id"]: {k: row[k] for k in [*CANONICAL["contact"], "content_hash"]} for row in staged}
    got_bad = {raw.id: "id_missing" if rule.rule == "id_missing" else (rule.rule, rule.detail) for raw, rule in broken}
    assert got_bad == expected_bad
    assert got_good == expected_good
    assert len(got_good) > 100 and len(got_bad) > 50
    assert any(rule.rule == "type" and "entities.contact.fields.first_name" in rule.detail for _, rule in broken)
