"""How names and phones are folded for the people search, shared by the writer (people_models.refresh
fills person.search_name / search_phone) and the readers (the console's search, insights): both sides of
a LIKE must be folded the same way, so there is one definition.
"""

from __future__ import annotations

import re

import phonenumbers
from anyascii import anyascii

_SPACES = re.compile(r"\s+")
_NOT_DIGIT = re.compile(r"\D+")
MIN_DIGITS = 4  # fewer digits than this match too many people to be a phone query


def fold_name(text: str | None) -> str:
    """A name as a search compares it: transliterated (anyascii: José -> Jose, Дмитрий -> Dmitrii) and
    case-folded, runs of spaces collapsed to one, spaces kept so "jose garcia" finds "José García"."""
    if not text:
        return ""
    return _SPACES.sub(" ", anyascii(str(text)).casefold()).strip()


def phone_digits(text: str | None, region: str = "US") -> str | None:
    """A phone typed any way ("(555) 010-2030", "+1 555.010.2030") as its E.164 digits without "+"
    when it is a valid number in the profile's region; otherwise its digits alone, so a partial number
    still matches as a substring; None when fewer than MIN_DIGITS digits remain (not a phone)."""
    if not text:
        return None
    raw = str(text)
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None and phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
    digits = _NOT_DIGIT.sub("", raw)
    return digits if len(digits) >= MIN_DIGITS else None
