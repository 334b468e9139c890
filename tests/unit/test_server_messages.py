"""A server's error message is kept on outbox rows and in reports: it is cut to a bounded length,
whatever shape the body has."""

from __future__ import annotations

import httpx
import pytest
from crm_sync.http import MAX_ERROR_CHARS, error_message


@pytest.mark.parametrize("body", [{"message": "x" * 100_000}, {"error": {"message": "y" * 100_000}},
                                  {"errors": ["z" * 50_000, "w" * 50_000]}, ["v" * 100_000]])
def test_a_huge_server_message_is_cut_and_says_how_long_it_was(body):
    message = error_message(httpx.Response(422, json=body))
    assert len(message) < MAX_ERROR_CHARS + 40 and "characters)" in message


def test_a_short_message_is_kept_whole_and_a_body_too_deep_to_read_is_cut_text():
    assert error_message(httpx.Response(422, json={"message": "email is invalid"})) == "email is invalid"
    deep = "[" * 100_000 + "]" * 100_000
    assert len(error_message(httpx.Response(500, text=deep))) < MAX_ERROR_CHARS + 40
