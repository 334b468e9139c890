"""Validate: Great Expectations checks this run's staged contacts before anything is written.

Rows failing an expectation are quarantined (the expectation names the rule) and
withdrawn from staging, so reconcile never sees them. When the share of bad rows in the
run passes the profile's threshold, the run fails here and load writes nothing.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.errors import NoRetryError
from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.normalize import Broken
from crm_sync.pipeline.stage import quarantine_row
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import quarantine, raw_record, staging_contact

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
E164_RE = r"^\+[1-9]\d{6,14}$"
CLOCK_SKEW = timedelta(minutes=5)
MIN_ROWS_FOR_THRESHOLD = 20


class DataQualityError(NoRetryError):
    """Too large a share of the run's rows failed validation; nothing is written."""


def _suite(now_epoch: float):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="staging_contact")
    for expectation in (
        gx.expectations.ExpectColumnValuesToNotBeNull(column="source_id"),
        gx.expectations.ExpectColumnValuesToBeUnique(column="record_key"),
        gx.expectations.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_RE),
        gx.expectations.ExpectColumnValuesToMatchRegex(column="phone", regex=E164_RE),
        gx.expectations.ExpectColumnValuesToBeBetween(column="updated_epoch", max_value=now_epoch),
    ):
        suite.add_expectation(expectation)
    return suite


def run_expectations(frame: pd.DataFrame) -> list[tuple[int, Broken]]:
    """(row position, broken rule) for every failed expectation, from GX's own results."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("staging").add_dataframe_asset("staging_contact")
    batch = asset.add_batch_definition_whole_dataframe("run").get_batch(batch_parameters={"dataframe": frame})
    limit = (utcnow() + CLOCK_SKEW).timestamp()
    result = batch.validate(_suite(limit), result_format={"result_format": "COMPLETE"})
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        column = config.kwargs.get("column")
        for index in outcome.result.get("unexpected_index_list") or []:
            value = frame.at[index, column]
            failures.append((index, Broken(config.type, f"{column}={value!r} fails {config.type}")))
    return failures


def _newly_bad(conn: sa.Connection, ctx: RunContext) -> int:
    """This run's quarantined records, less those already quarantined earlier with the same payload.

    The threshold guards against a wave of new bad data (an upstream format change, say);
    a known bad record that is extracted again was counted when it first appeared.
    """
    def quarantined(*where) -> set[tuple[str, str, str]]:
        rows = conn.execute(sa.select(raw_record.c.side, raw_record.c.record_key, raw_record.c.payload)
                            .join(quarantine, quarantine.c.raw_id == raw_record.c.id)
                            .where(quarantine.c.profile == ctx.profile.name, *where))
        return {(row.side, row.record_key, json.dumps(row.payload, sort_keys=True)) for row in rows}

    mine = quarantined(quarantine.c.run_id == ctx.run_id)
    if not mine:
        return 0
    earlier = quarantined(quarantine.c.run_id != ctx.run_id, raw_record.c.record_key.in_({k for _, k, _ in mine}))
    return len(mine - earlier)


def validate(ctx: RunContext) -> dict[str, Any]:
    eng = engine()
    with eng.connect() as conn:
        staged = pd.read_sql(sa.select(staging_contact).where(
            staging_contact.c.profile == ctx.profile.name, staging_contact.c.run_id == ctx.run_id), conn)
        extracted = conn.execute(sa.select(sa.func.count()).select_from(raw_record).where(
            raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id)).scalar_one()
    failures: list[tuple[int, Broken]] = []
    if not staged.empty:
        staged["record_key"] = staged["side"] + ":" + staged["source_id"].astype(str)
        staged["updated_epoch"] = pd.to_datetime(staged["updated_at"], utc=True).map(
            lambda t: t.timestamp() if pd.notna(t) else None)
        failures = run_expectations(staged)
    bad_rows = {index for index, _ in failures}
    with eng.begin() as conn:
        insert_ignore(conn, quarantine, [
            quarantine_row(ctx, staged.at[i, "side"], int(staged.at[i, "raw_id"]), staged.at[i, "source_id"], broken)
            for i, broken in failures], keys=["profile", "run_id", "raw_id", "rule"])
        for index in bad_rows:
            conn.execute(sa.delete(staging_contact).where(
                staging_contact.c.profile == ctx.profile.name, staging_contact.c.side == staged.at[index, "side"],
                staging_contact.c.source_id == staged.at[index, "source_id"]))
        bad = _newly_bad(conn, ctx)
        share = bad / extracted if extracted else 0.0
        passed = extracted < MIN_ROWS_FOR_THRESHOLD or share <= ctx.profile.quality_threshold
        stats = {"validated": len(staged), "failed": len(bad_rows), "newly_bad": bad, "bad_share": round(share, 4),
                 "threshold": ctx.profile.quality_threshold, "passed": passed}
        log_step(conn, ctx, "validate", stats)
    if not passed:
        raise DataQualityError(f"{bad} of {extracted} rows ({share:.1%}) newly failed validation, over the "
                               f"profile's threshold of {ctx.profile.quality_threshold:.0%}; nothing will be written")
    return stats
