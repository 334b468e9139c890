"""Each paging style asks for the right next page and knows when the list is done, fed plain answers;
one loop and one guard end every read, however the server misbehaves."""

from __future__ import annotations

import pytest
from crm_sync.hooks.app import paginator
from crm_sync.http import ApiError
from crm_sync.paging import (CursorPaginator, NextLinkPaginator, OffsetPaginator, PageGuard, PageNumberPaginator,
                             PageRequest, PagingRunaway, SearchAfterPaginator, SinglePagePaginator,
                             SkipLimitPaginator, pages)
from crm_sync.profile_app import Pagination


def rows(*ids: int) -> list[dict]:
    return [{"id": n} for n in ids]


def guard(**limits: int) -> PageGuard:
    return PageGuard("the app's contacts (/contacts)", "app.entities.contact.pagination",
                     lambda record: record.get("id"), **limits)


def walk(pager, request: PageRequest, answers: dict, records_of=lambda body: body["data"], **limits: int):
    """Every call the read makes against canned answers (keyed by path and sorted params), and its records."""
    calls: list[PageRequest] = []

    def fetch(call: PageRequest):
        calls.append(call)
        body = answers[call.path, tuple(sorted((call.params or {}).items()))]
        return body, records_of(body)

    read = [record["id"] for page in pages(pager, request, fetch, guard(**limits)) for record in page]
    return calls, read


def test_page_numbers_start_at_one_and_end_on_a_short_page_when_the_app_has_no_more_flag():
    pager = PageNumberPaginator("page", size=2)
    first = pager.first(PageRequest("/m", {"per_page": 2}))
    assert first == PageRequest("/m", {"per_page": 2, "page": 1})
    assert pager.next(first, {}, rows(1, 2)) == PageRequest("/m", {"per_page": 2, "page": 2})
    assert pager.next(first, {}, rows(1)) is None


def test_page_numbers_follow_the_apps_has_more_flag_over_the_page_length():
    pager = PageNumberPaginator("page", size=2, has_more=lambda body: body["meta"]["has_more"])
    first = pager.first(PageRequest("/m", {}))
    assert pager.next(first, {"meta": {"has_more": True}}, rows(1)) == PageRequest("/m", {"page": 2})
    assert pager.next(first, {"meta": {"has_more": False}}, rows(1, 2)) is None


def test_an_offset_moves_by_the_records_read():
    pager = OffsetPaginator("offset", size=3, has_more=lambda body: body["more"])
    first = pager.first(PageRequest("/c", {"limit": 3}))
    assert first.params == {"limit": 3, "offset": 0}
    second = pager.next(first, {"more": True}, rows(1, 2))
    assert second.params == {"limit": 3, "offset": 2}
    assert pager.next(second, {"more": True}, rows(3, 4, 5)).params == {"limit": 3, "offset": 5}
    assert pager.next(second, {"more": False}, rows(3, 4, 5)) is None


def test_ghl_skip_moves_by_the_limit_asked_even_when_nested_tasks_count_more():
    pager = SkipLimitPaginator(2)
    first = pager.first(PageRequest("/locations/L/tasks/search", {"limit": 2, "skip": 0, "completed": False}))
    assert list(first.params) == ["limit", "skip", "completed"]  # the body keeps its shape
    assert pager.next(first, {}, rows(1, 2, 3)).params == {"limit": 2, "skip": 2, "completed": False}
    assert pager.next(first, {}, rows(1)) is None


def test_a_cursor_is_sent_back_until_the_answer_names_none():
    pager = CursorPaginator("cursor", lambda body: body.get("next_cursor"))
    first = pager.first(PageRequest("/c", {"limit": 2}))
    assert first == PageRequest("/c", {"limit": 2})  # the first page has no cursor
    second = pager.next(first, {"next_cursor": "abc"}, rows(1))
    assert second == PageRequest("/c", {"limit": 2, "cursor": "abc"})
    assert pager.next(second, {"next_cursor": "def"}, rows(2)).params == {"limit": 2, "cursor": "def"}
    assert pager.next(second, {"next_cursor": None}, rows(2)) is None


def test_a_next_link_becomes_a_path_on_our_base_url_carrying_its_own_query():
    pager = NextLinkPaginator(lambda body: body["pages"]["next"])
    first = PageRequest("/contacts", {"per_page": 50})
    link = {"pages": {"next": "https://elsewhere.example/contacts?per_page=50&page=2"}}
    assert pager.next(first, link, rows(1)) == PageRequest("/contacts?per_page=50&page=2", None)
    assert pager.next(first, {"pages": {"next": "https://api.example/contacts"}}, rows(1)) == PageRequest("/contacts")
    assert pager.next(first, {"pages": {"next": None}}, rows(1)) is None


def test_a_single_page_list_is_read_in_one_call():
    pager = SinglePagePaginator()
    request = PageRequest("/all", {"x": 1})
    assert pager.first(request) == request and pager.next(request, {}, rows(1, 2)) is None


def test_ghl_search_after_comes_from_a_full_pages_last_contact():
    pager = SearchAfterPaginator(2)
    first = PageRequest("/contacts/search", {"locationId": "L", "pageLimit": 2})
    full = [{"id": "a", "searchAfter": [1, "a"]}, {"id": "b", "searchAfter": [2, "b"]}]
    assert pager.next(first, {}, full).params == {"locationId": "L", "pageLimit": 2, "searchAfter": [2, "b"]}
    assert pager.next(first, {}, full[:1]) is None
    with pytest.raises(ApiError, match="POST /contacts/search .* a full page whose last contact has no searchAfter"):
        pager.next(first, {}, [{"id": "a"}, {"id": "b"}])


def test_the_profile_names_the_paginator_and_where_the_answer_holds_its_position():
    assert isinstance(paginator(Pagination(style="none")), SinglePagePaginator)
    flagged = paginator(Pagination(style="page", size=2, has_more="meta.has_more"))
    assert flagged.next(PageRequest("/m", {"page": 1}), {"meta": {"has_more": True}}, rows(1)).params == {"page": 2}
    offset = paginator(Pagination(style="offset", offset_param="skip", size=2))
    assert offset.first(PageRequest("/c", {})).params == {"skip": 0}
    cursor = paginator(Pagination(style="cursor", cursor_param="after", next_cursor="paging.next"))
    assert cursor.next(PageRequest("/c", {}), {"paging": {"next": "n2"}}, rows(1)).params == {"after": "n2"}
    link = paginator(Pagination(style="next_link", next_link="links.next"))
    assert link.next(PageRequest("/c", {}), {"links": {"next": "https://a.example/c?p=2"}}, rows(1)).path == "/c?p=2"
    # an app whose base URL has a path of its own (https://a.example/v1) repeats it in its links
    under = paginator(Pagination(style="next_link", next_link="links.next"), "/v1/")
    answer = {"links": {"next": "https://a.example/v1/c?p=2"}}
    assert under.next(PageRequest("/c", {}), answer, rows(1)).path == "/c?p=2"
    assert under.next(PageRequest("/c", {}), {"links": {"next": "/v10/c"}}, rows(1)).path == "/v10/c"


def test_the_loop_sends_each_call_only_when_the_next_page_is_wanted_and_stops_on_an_empty_page():
    answers = {("/m", (("page", 1),)): {"data": rows(1, 2)}, ("/m", (("page", 2),)): {"data": []}}
    calls, read = walk(PageNumberPaginator("page", size=2), PageRequest("/m", {}), answers)
    assert [c.params for c in calls] == [{"page": 1}, {"page": 2}] and read == [1, 2]

    sent: list[PageRequest] = []
    reader = pages(PageNumberPaginator("page", size=2), PageRequest("/m", {}),
                   lambda call: sent.append(call) or (answers["/m", (("page", 1),)], rows(1, 2)), guard())
    assert next(reader) == rows(1, 2) and len(sent) == 1  # the second call waits for the caller


def test_a_cursor_pointing_back_is_stopped_by_the_guard_at_the_repeated_page():
    answers = {("/c", ()): {"data": rows(1, 2), "next": "c2"},
               ("/c", (("cursor", "c2"),)): {"data": rows(3, 4), "next": "c2"}}
    with pytest.raises(PagingRunaway, match=r"page 3 brought no record not already seen .* "
                                            r"app\.entities\.contact\.pagination \(its paging settings\)"):
        walk(CursorPaginator("cursor", lambda body: body["next"]), PageRequest("/c", {}), answers)


def test_the_guard_ends_a_read_past_the_profiles_page_or_record_limit():
    answers = {("/o", (("offset", n),)): {"data": rows(n, n + 1)} for n in range(0, 20, 2)}
    with pytest.raises(PagingRunaway, match=r"more than 3 pages .*app\.entities\.contact\.pagination\.max_pages"):
        walk(OffsetPaginator("offset", size=2), PageRequest("/o", {}), answers, max_pages=3)
    with pytest.raises(PagingRunaway, match=r"more than 5 records .*app\.entities\.contact\.pagination\.max_records"):
        walk(OffsetPaginator("offset", size=2), PageRequest("/o", {}), answers, max_records=5)
