"""The outbox CLI: failed writes can be listed, retried or discarded; sent ones never move."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from crm_sync import cli
from crm_sync.warehouse.tables import outbox


@pytest.fixture
def warehouse(sqlite_warehouse):
    eng = sqlite_warehouse
    rows = [{"profile": "gymdesk", "run_id": "r1", "entity": "contact", "side": "ghl", "op": "update",
             "xref_id": n, "target_id": f"c{n}", "payload": {"email": f"p{n}@x.com"}, "merged": {},
             "decisions": [], "idempotency_key": f"k{n}", "status": status, "attempts": 1,
             "last_error": "PUT /contacts/c1 -> 422: email must be an email" if status == "failed" else None,
             "created_at": datetime.now(UTC)}
            for n, status in ((1, "failed"), (2, "failed"), (3, "sent"))]
    with eng.begin() as conn:
        conn.execute(sa.insert(outbox), rows)
    return eng


def statuses(eng) -> dict[int, str]:
    with eng.connect() as conn:
        return {r.xref_id: r.status for r in conn.execute(sa.select(outbox.c.xref_id, outbox.c.status))}


def test_list_shows_failed_rows_with_the_server_message(warehouse, capsys):
    assert cli.main(["outbox", "list", "--profile", "gymdesk", "--status", "failed"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["target_id"] for r in listed] == ["c1", "c2"]
    assert "email must be an email" in listed[0]["last_error"]


def test_retry_all_failed_puts_them_back_in_line_and_leaves_sent_rows_alone(warehouse):
    cli.main(["outbox", "retry", "--profile", "gymdesk", "--all-failed"])
    assert statuses(warehouse) == {1: "pending", 2: "pending", 3: "sent"}


def test_discard_by_id_never_touches_a_sent_row(warehouse):
    with warehouse.connect() as conn:
        ids = {r.xref_id: r.id for r in conn.execute(sa.select(outbox.c.id, outbox.c.xref_id))}
    cli.main(["outbox", "discard", "--profile", "gymdesk", "--id", str(ids[2]), str(ids[3])])
    assert statuses(warehouse) == {1: "failed", 2: "discarded", 3: "sent"}


def test_retry_without_a_selection_is_refused(warehouse):
    with pytest.raises(SystemExit):
        cli.main(["outbox", "retry", "--profile", "gymdesk"])


def test_retry_never_resends_a_failed_row_that_a_newer_write_of_the_same_record_superseded(warehouse, capsys):
    newer = {"profile": "gymdesk", "run_id": "r2", "entity": "contact", "side": "ghl", "op": "update", "xref_id": 1,
             "target_id": "c1", "payload": {"email": "new@x.com"}, "merged": {}, "decisions": [],
             "idempotency_key": "k1-newer", "status": "sent", "attempts": 1, "created_at": datetime.now(UTC)}
    with warehouse.begin() as conn:
        conn.execute(sa.insert(outbox), [newer])
        ids = {r.idempotency_key: r.id for r in conn.execute(sa.select(outbox.c.id, outbox.c.idempotency_key))}
    assert cli.main(["outbox", "retry", "--profile", "gymdesk", "--all-failed"]) == 0
    with warehouse.connect() as conn:
        rows = conn.execute(sa.select(outbox.c.idempotency_key, outbox.c.status))
        status = {r.idempotency_key: r.status for r in rows}
    assert status == {"k1": "superseded", "k2": "pending", "k3": "sent", "k1-newer": "sent"}
    out = capsys.readouterr().out
    assert "1 outbox row(s) of gymdesk now pending" in out and "superseded by a newer write" in out
    assert str(ids["k1"]) in out.splitlines()[-1]
    with warehouse.begin() as conn:
        conn.execute(sa.update(outbox).where(outbox.c.id == ids["k1"]).values(status="failed"))
    cli.main(["outbox", "retry", "--profile", "gymdesk", "--id", str(ids["k1"])])  # by id neither
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(outbox.c.status).where(outbox.c.id == ids["k1"])) == "superseded"


@pytest.mark.parametrize("command", [["list"], ["retry", "--all-failed"], ["discard", "--id", "1"]])
def test_an_unknown_profile_is_an_error_not_zero_rows(warehouse, capsys, command):
    assert cli.main(["outbox", command[0], "--profile", "gymdeks", *command[1:]]) == 1
    assert "no profile 'gymdeks'" in capsys.readouterr().err
    assert cli.main(["outbox", "list", "--profile", "csv_import"]) == 0  # a profile with no rows yet is known
