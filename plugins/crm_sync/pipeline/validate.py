"""Validate: Great Expectations checks this run's staged records before anything is written.

Contacts: ids present and unique, email and E.164 formats, updated-at not in the future.
Tasks, notes and appointments: ids present and unique, a contact named, appointment
statuses in GHL's set, updated-at not in the future.

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
from crm_sync.warehouse.tables import quarantine, raw_record, staging_contact, staging_record

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
E164_RE = r"^\+[1-9]\d{6,14}$"
CLOCK_SKEW = timedelta(minutes=5)
MIN_ROWS_FOR_THRESHOLD = 20


class DataQualityError(NoRetryError):
    """Too large a share of the run's rows failed validation; nothing is written."""


APPOINTMENT_STATUSES = ["new", "confirmed", "cancelled", "showed", "noshow", "invalid"]


def _suite(now_epoch: float, table: str):
    import great_expectations as gx

    ex = gx.expectations
    common = [ex.ExpectColumnValuesToNotBeNull(column="source_id"),
              ex.ExpectColumnValuesToBeUnique(column="record_key"),
              ex.ExpectColumnValuesToBeBetween(column="updated_epoch", max_value=now_epoch)]
    if table == "staging_contact":
        specific = [ex.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_RE),
                    ex.ExpectColumnValuesToMatchRegex(column="phone", regex=E164_RE)]
    else:
        specific = [ex.ExpectColumnValuesToNotBeNull(column="contact_id"),
                    ex.ExpectColumnValuesToBeInSet(column="status", value_set=APPOINTMENT_STATUSES)]
    suite = gx.ExpectationSuite(name=table)
    for expectation in common + specific:
        suite.add_expectation(expectation)
    return suite


def run_expectations(frame: pd.DataFrame, table: str = "staging_contact") -> list[tuple[int, Broken]]:
    """(row position, broken rule) for every failed expectation, from GX's own results."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("staging").add_dataframe_asset(table)
    batch = asset.add_batch_definition_whole_dataframe("run").get_batch(batch_parameters={"dataframe": frame})
    limit = (utcnow() + CLOCK_SKEW).timestamp()
    result = batch.validate(_suite(limit, table), result_format={"result_format": "COMPLETE"})
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


def _frames(conn: sa.Connection, ctx: RunContext) -> dict[str, pd.DataFrame]:
    """This run's staged rows per staging table, with the columns the suites check."""
    frames = {}
    for table in (staging_contact, staging_record):
        frame = pd.read_sql(sa.select(table).where(table.c.profile == ctx.profile.name,
                                                   table.c.run_id == ctx.run_id), conn)
        if frame.empty:
            continue
        frame["entity"] = frame.get("entity", "contact")
        frame["record_key"] = frame["entity"] + ":" + frame["side"] + ":" + frame["source_id"].astype(str)
        frame["updated_epoch"] = pd.to_datetime(frame["updated_at"], utc=True).map(
            lambda t: t.timestamp() if pd.notna(t) else None)
        if table is staging_record:
            frame["status"] = [f.get("status") if e == "appointment" else None
                               for e, f in zip(frame["entity"], frame["fields"], strict=True)]
        frames[table.name] = frame
    return frames


def _withdraw(conn: sa.Connection, ctx: RunContext, table: str, row: pd.Series) -> None:
    """A row that failed validation leaves staging, so reconcile never sees it."""
    target = staging_contact if table == "staging_contact" else staging_record
    where = [target.c.profile == ctx.profile.name, target.c.side == row["side"], target.c.source_id == row["source_id"]]
    if target is staging_record:
        where.append(target.c.entity == row["entity"])
    conn.execute(sa.delete(target).where(*where))


def validate(ctx: RunContext) -> dict[str, Any]:
    eng = engine()
    with eng.connect() as conn:
        frames = _frames(conn, ctx)
        extracted = conn.execute(sa.select(sa.func.count()).select_from(raw_record).where(
            raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id)).scalar_one()
    failures = {table: run_expectations(frame, table) for table, frame in frames.items()}
    failed_rows = 0
    with eng.begin() as conn:
        for table, broken_rows in failures.items():
            frame = frames[table]
            insert_ignore(conn, quarantine, [
                quarantine_row(ctx, frame.at[i, "side"], int(frame.at[i, "raw_id"]), frame.at[i, "source_id"], broken,
                               frame.at[i, "entity"])
                for i, broken in broken_rows], keys=["profile", "run_id", "raw_id", "rule"])
            bad_rows = {index for index, _ in broken_rows}
            failed_rows += len(bad_rows)
            for index in bad_rows:
                _withdraw(conn, ctx, table, frame.loc[index])
        bad = _newly_bad(conn, ctx)
        share = bad / extracted if extracted else 0.0
        passed = extracted < MIN_ROWS_FOR_THRESHOLD or share <= ctx.profile.quality_threshold
        stats = {"validated": sum(len(f) for f in frames.values()), "failed": failed_rows, "newly_bad": bad,
                 "bad_share": round(share, 4), "threshold": ctx.profile.quality_threshold, "passed": passed}
        log_step(conn, ctx, "validate", stats)
    if not passed:
        raise DataQualityError(f"{bad} of {extracted} rows ({share:.1%}) newly failed validation, over the "
                               f"profile's threshold of {ctx.profile.quality_threshold:.0%}; nothing will be written")
    return stats
