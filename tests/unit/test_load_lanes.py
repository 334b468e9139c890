"""The load's lanes: each side's writes apart (each paced at its own limit), and every write of one
contact in one lane, in outbox order (a contact's create before its children; one record's writes
never reordered)."""

from __future__ import annotations

from types import SimpleNamespace

from crm_sync.pipeline.load import lanes


def row(row_id: int, side: str, xref_id: int, contact_xref_id: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=row_id, side=side, xref_id=xref_id, contact_xref_id=contact_xref_id)


def test_lanes_keep_sides_apart_and_each_contacts_writes_together_in_order():
    rows = [row(1, "ghl", 10), row(2, "app", 11), row(3, "ghl", 0, 10), row(4, "ghl", 20, 10),
            row(5, "app", 21, 11), row(6, "ghl", 10), row(7, "ghl", 12), row(8, "app", 13), row(9, "ghl", 14)]

    split = lanes(rows, per_side=2)

    assert all(len({r.side for r in lane}) == 1 for lane in split)
    for lane in split:
        assert [r.id for r in lane] == sorted(r.id for r in lane)
    home = {(r.side, r.contact_xref_id or r.xref_id): n for n, lane in enumerate(split) for r in lane}
    assert sorted(r.id for r in split[home[("ghl", 10)]] if (r.contact_xref_id or r.xref_id) == 10) == [1, 3, 4, 6]
    assert {len(lane) for lane in split} != {len(rows)}  # the work is spread, not one queue
    assert sum(len(lane) for lane in split) == len(rows)
