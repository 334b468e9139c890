"""Validate: Great Expectations checks this run's staged records before anything is written.

Contacts: ids present and unique, email and E.164 formats, updated-at not in the future, no
duplicate person (same side, email, first and last name under another id). Tasks, notes and
appointments: ids present and unique, a contact named and known on that side, a task's
`completed` a boolean, appointment statuses in GHL's set, note dates and updated-at not in
the future.

Each expectation carries a short rule name (its ``meta``). Rows failing one are quarantined
under that rule and withdrawn from staging, so reconcile never sees them; a child whose
contact is not staged yet is not bad, it waits (reconcile reconsiders it every run) and is
only reported. When the share of newly bad rows passes the profile's threshold, the run
fails here and load writes nothing. The validation results go into run_log, so the run
report's data-quality section exists for failed runs too.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync import alerts
from crm_sync.errors import NoRetryError
from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.matching import name_keys
from crm_sync.pipeline.stage import quarantine_row
from crm_sync.records import Broken
from crm_sync.warehouse import staging
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import quarantine, raw_record, staging_contact, staging_record

log = logging.getLogger(__name__)
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
E164_RE = r"^\+[1-9]\d{6,14}$"
CLOCK_SKEW = timedelta(minutes=5)
MIN_ROWS_FOR_THRESHOLD = 20
SAMPLES = 5
WAITING = "waiting_for_contact"
APPOINTMENT_STATUSES = ["new", "confirmed", "cancelled", "showed", "noshow", "invalid"]


class DataQualityError(NoRetryError):
    """Too large a share of the run's rows failed validation; nothing is written."""


def _checks(now_epoch: float, table: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(rule, GX expectation class, its arguments) for one staging table."""
    common = [("id_missing", "ExpectColumnValuesToNotBeNull", {"column": "source_id"}),
              ("id_duplicate", "ExpectColumnValuesToBeUnique", {"column": "record_key"}),
              ("updated_in_future", "ExpectColumnValuesToBeBetween", {"column": "updated_epoch",
                                                                      "max_value": now_epoch})]
    if table == "staging_contact":
        return common + [
            ("email_format", "ExpectColumnValuesToMatchRegex", {"column": "email", "regex": EMAIL_RE}),
            ("phone_format", "ExpectColumnValuesToMatchRegex", {"column": "phone", "regex": E164_RE}),
            ("duplicate_person", "ExpectColumnValuesToBeNull", {"column": "same_person_as"})]
    return common + [
        ("contact_missing", "ExpectColumnValuesToNotBeNull", {"column": "contact_id"}),
        (WAITING, "ExpectColumnValuesToBeNull", {"column": "unknown_contact"}),
        ("completed_not_boolean", "ExpectColumnValuesToBeInSet", {"column": "completed", "value_set": [True, False]}),
        ("status_unknown", "ExpectColumnValuesToBeInSet", {"column": "status", "value_set": APPOINTMENT_STATUSES}),
        ("date_in_future", "ExpectColumnValuesToBeBetween", {"column": "date_epoch", "max_value": now_epoch})]


def _suite(now_epoch: float, table: str):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=table)
    for rule, kind, kwargs in _checks(now_epoch, table):
        suite.add_expectation(getattr(gx.expectations, kind)(meta={"rule": rule}, **kwargs))
    return suite


# Columns derived for a check, and the column a user knows the value by.
SHOWN_AS = {"updated_epoch": "updated_at", "date_epoch": "note_date"}


def _shown(frame: pd.DataFrame, index: int, column: str) -> tuple[str, str]:
    """(column, value) as a user reads them: source column, ISO time, cut so a 100 kB note does not fill the page."""
    column = SHOWN_AS.get(column, column)
    value = frame.at[index, column]
    if isinstance(value, datetime):
        value = value.isoformat()
    elif hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    shown = repr(value)
    return column, shown if len(shown) <= 120 else shown[:117] + "..."


def run_expectations(frame: pd.DataFrame, table: str = "staging_contact", lean: bool = False
                     ) -> tuple[list[tuple[int, Broken]], list[dict[str, Any]]]:
    """The verdict on one table: (row position, broken rule) for every failing row, and per
    expectation its outcome, unexpected count and up to five sample rows for the report. GX's, or
    with ``lean`` the same checks evaluated by pandas alone (crm_sync.pipeline.validate_lean)."""
    frame = frame.reset_index(drop=True)
    limit = (utcnow() + CLOCK_SKEW).timestamp()
    verdicts = _lean_verdicts(frame, table, limit) if lean else _gx_verdicts(frame, table, limit)
    failures, outcomes = [], []
    for rule, kind, column, bad in verdicts:
        outcomes.append({"table": table, "rule": rule, "expectation": kind, "column": column,
                         "success": not bad, "unexpected_count": len(bad),
                         "samples": [{"side": frame.at[i, "side"], "entity": frame.at[i, "entity"],
                                      "id": frame.at[i, "source_id"], "value": _shown(frame, i, column)[1]}
                                     for i in bad[:SAMPLES]]})
        for index in bad:
            shown_column, value = _shown(frame, index, column)
            record = f"{frame.at[index, 'entity']} {frame.at[index, 'side']}:{frame.at[index, 'source_id']}"
            failures.append((index, Broken(rule, f"{record}: {shown_column}={value} fails {kind}")))
    return failures, outcomes


def _lean_verdicts(frame: pd.DataFrame, table: str, limit: float) -> list[tuple[str, str, str | None, list[int]]]:
    from crm_sync.pipeline.validate_lean import evaluate

    return evaluate(frame, _checks(limit, table))


def _gx_verdicts(frame: pd.DataFrame, table: str, limit: float) -> list[tuple[str, str, str | None, list[int]]]:
    """(rule, expectation type, column, failing row positions) per expectation, by Great Expectations."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    # A clean run's log reads clean: GX logs a line per decorated function at import (INFO), and its
    # tqdm progress bars go to stderr, which the task log records at ERROR level.
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("staging").add_dataframe_asset(table)
    batch = asset.add_batch_definition_whole_dataframe("run").get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(_suite(limit, table), result_format={"result_format": "COMPLETE"})
    return [(outcome.expectation_config.meta["rule"], outcome.expectation_config.type,
             outcome.expectation_config.kwargs.get("column"),
             list(outcome.result.get("unexpected_index_list") or [])) for outcome in result.results]


def _epoch(moment: Any) -> float | None:
    """Seconds since the epoch, from a datetime or ISO text; years pandas cannot hold (9999) included."""
    if moment is None or (not isinstance(moment, str | datetime) and pd.isna(moment)):
        return None
    if isinstance(moment, str):  # canonical text: UTC, to the second or to the day
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _person_key(frame: pd.DataFrame) -> pd.Series:
    """side, email and names as people compare them (case, accents, transliterations: name_key):
    one person, whatever the record ids."""
    def folded(column: str) -> pd.Series:
        return name_keys(frame[column]).fillna("")

    return frame["side"] + "\0" + frame["email"].astype(str) + "\0" + folded("first_name") + "\0" + folded("last_name")


def _same_person(conn: sa.Connection, ctx: RunContext, frame: pd.DataFrame) -> list[str | None]:
    """For each of this run's contacts, the other ids on its side holding the same person, if any:
    one join against every staged contact, not a loop. A deleted record is no duplicate: the
    app's archive of one twin must go through."""
    c = staging_contact.c
    staged = pd.read_sql(sa.select(c.side, c.source_id, c.email, c.first_name, c.last_name).where(
        c.profile == ctx.profile.name, ~c.deleted, c.email.is_not(None)), conn)
    mine = frame[~frame["deleted"].astype(bool) & frame["email"].notna()]
    if mine.empty or staged.empty:
        return [None] * len(frame)
    joined = pd.DataFrame({"row": mine.index, "id": mine["source_id"].to_numpy(), "key": _person_key(mine).to_numpy()}
                          ).merge(pd.DataFrame({"key": _person_key(staged), "twin": staged["source_id"]}), on="key")
    joined = joined[joined["id"] != joined["twin"]]
    twins = joined.groupby("row")["twin"].agg(lambda ids: ", ".join(sorted(set(ids))))  # duplicates only: few
    return [twins.get(i) for i in frame.index]


def _frame(conn: sa.Connection, ctx: RunContext, table: sa.Table) -> pd.DataFrame:
    """This run's staged rows of one table, with the derived columns the suites check. A child's
    contact is looked up by a join in the warehouse, not by loading every staged contact."""
    query = sa.select(table).where(table.c.profile == ctx.profile.name, table.c.run_id == ctx.run_id)
    if table is staging_record:
        contact = staging_contact.alias("contact")
        query = query.add_columns(contact.c.source_id.label("known_contact")).outerjoin(contact, sa.and_(
            contact.c.profile == table.c.profile, contact.c.side == table.c.side,
            contact.c.source_id == table.c.contact_id))
    rows = conn.execute(query).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], dtype=object)
    if frame.empty:
        return frame
    if "entity" not in frame:
        frame["entity"] = "contact"
    frame["record_key"] = frame["entity"] + ":" + frame["side"] + ":" + frame["source_id"].astype(str)
    frame["updated_epoch"] = [_epoch(t) for t in frame["updated_at"]]
    if table is staging_contact:
        frame["same_person_as"] = _same_person(conn, ctx, frame)
        return frame
    frame["unknown_contact"] = frame["contact_id"].where(frame["known_contact"].isna(), None)
    frame["completed"] = [f.get("completed") if e == "task" else None
                          for e, f in zip(frame["entity"], frame["fields"], strict=True)]
    frame["status"] = [f.get("status") if e == "appointment" else None
                       for e, f in zip(frame["entity"], frame["fields"], strict=True)]
    frame["note_date"] = [f.get("date") if e == "note" else None
                          for e, f in zip(frame["entity"], frame["fields"], strict=True)]
    frame["date_epoch"] = [_epoch(d) for d in frame["note_date"]]
    return frame


def _withdraw(conn: sa.Connection, ctx: RunContext, table: str, row: pd.Series) -> None:
    """A row that failed validation leaves staging, so reconcile never sees it."""
    entity = "contact" if table == "staging_contact" else row["entity"]
    staging.withdraw(conn, ctx.profile.name, entity, row["side"], [row["source_id"]])


def _lean(ctx: RunContext) -> bool:
    """The fast lane checks its few rows without GX's seconds of start-up (the same checks, by pandas)."""
    return ctx.dag_id is not None and ctx.dag_id == ctx.profile.fast_dag_id


def _check_table(conn: sa.Connection, ctx: RunContext, table: sa.Table) -> tuple[int, int, list[dict[str, Any]]]:
    """Validate one staging table; quarantine and withdraw its bad rows. Returns (rows, bad rows, outcomes).

    Contacts go first, so a child whose contact was just withdrawn waits instead of linking to it."""
    frame = _frame(conn, ctx, table)
    if frame.empty:
        return 0, 0, []
    broken_rows, outcomes = run_expectations(frame, table.name, lean=_lean(ctx))
    bad = [(i, broken) for i, broken in broken_rows if broken.rule != WAITING]
    insert_ignore(conn, quarantine, [
        quarantine_row(ctx, frame.at[i, "side"], int(frame.at[i, "raw_id"]), frame.at[i, "source_id"], broken,
                       frame.at[i, "entity"]) for i, broken in bad], keys=["profile", "run_id", "raw_id", "rule"])
    bad_rows = {i for i, _ in bad}
    for index in bad_rows:
        _withdraw(conn, ctx, table.name, frame.loc[index])
    return len(frame), len(bad_rows), outcomes


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
    from crm_sync.console_urls import run_report_url
    from crm_sync.pipeline.report import report_path

    eng = engine()
    with eng.begin() as conn:
        extracted = conn.execute(sa.select(sa.func.count()).select_from(raw_record).where(
            raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id)).scalar_one()
        rows, failed, expectations = {}, 0, []
        for table in (staging_contact, staging_record):
            rows[table.name], bad_rows, outcomes = _check_table(conn, ctx, table)
            failed += bad_rows
            expectations += outcomes
        bad = _newly_bad(conn, ctx)
        share = bad / extracted if extracted else 0.0
        passed = extracted < MIN_ROWS_FOR_THRESHOLD or share <= ctx.profile.quality_threshold
        stats = {"validated": sum(rows.values()), "rows": rows, "failed": failed,
                 WAITING: sum(o["unexpected_count"] for o in expectations if o["rule"] == WAITING),
                 "newly_bad": bad, "bad_share": round(share, 4), "threshold": ctx.profile.quality_threshold,
                 "passed": passed, "expectations": expectations,
                 "checked_by": "pandas" if _lean(ctx) else "great_expectations"}
        log_step(conn, ctx, "validate", stats)
    log.info("data-quality report (written by the report task): %s#data-quality, and in the Airflow UI at %s",
             report_path(ctx).as_uri(), run_report_url(ctx.profile.dag_id, ctx.run_id))
    if not passed:
        alerts.send(alerts.Alert("quality_breach", profile=ctx.profile.name, dag_id=ctx.profile.dag_id,
                                 run_id=ctx.run_id, counts={"rows": extracted, "newly_bad": bad}))
        raise DataQualityError(f"{bad} of {extracted} rows ({share:.1%}) newly failed validation, over the "
                               f"profile's threshold of {ctx.profile.quality_threshold:.0%}; nothing will be written")
    return stats
