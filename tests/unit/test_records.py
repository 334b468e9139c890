"""Record keys are stored (raw_record, raw_landed): a warehouse written by an earlier version must
find its records under the same keys, or the next run lands and quarantines them again."""

from __future__ import annotations

from crm_sync.paging import PageGuard
from crm_sync.records import dig, record_key, typed_id


def test_a_record_with_an_id_is_keyed_by_the_id_as_text():
    assert record_key({"id": 42, "name": "Ann"}, 42) == "42"


def test_a_record_without_an_id_keeps_the_key_earlier_versions_stored():
    record = {"name": "Ann", "email": "ann@example.com"}
    assert record_key(record) == record_key(record, "") == "sha256:7b73cf485ae9097ef72d9189d1c64fd5a87e5023"


def test_a_malformed_record_keeps_the_key_earlier_versions_stored():
    assert record_key([1, 2], malformed=True) == "malformed:4cc90558dfa6dad906604f5de61b8a72bd583631"
    assert record_key([1, 2]) == record_key([1, 2], malformed=True)  # a list is no record, id or not


def test_a_record_nested_too_deep_for_json_still_gets_a_key():
    deep: dict = {"leaf": 1}
    for _ in range(5000):
        deep = {"deeper": deep}
    assert record_key(deep).startswith("malformed:")
    PageGuard("app contacts", "app.entities.contact.pagination", lambda r: r.get("id")).page([deep, {"id": 1}])


def test_dig_reads_a_dotted_path_and_none_where_it_leads_nowhere():
    record = {"contact": {"id": 7}, "tags": ["a"]}
    assert dig(record, "contact.id") == 7
    assert dig(record, "contact.name") is None and dig(record, "tags.name") is None and dig(record, None) is None


def test_integer_ids_go_back_to_the_app_as_integers():
    assert typed_id("123") == 123 and typed_id("abc-1") == "abc-1"
