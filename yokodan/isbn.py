"""ISBN-10/13 validation and conversion.

Lives beside `yokodan.models` because the models validate ISBNs and every room
(connectors, index, sandbox) needs the same answer to "is this an ISBN".
A string whose check digit is wrong is *not* an ISBN: callers keep it raw.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―－ー]")
# Full-width digits and X come from Japanese catalogues; translate before checking.
_FULLWIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789XX")
_CANDIDATE = re.compile(r"(?:97[89])?\d{9}[\dX]")
# Whitespace and qualifier punctuation separate ISBNs; hyphens do not.
_FIELD_BREAKS = re.compile(r"[\s,;:()（）：　]+")


def compact(raw: str) -> str:
    """Digits (and a final X) only: '978-4-10-101001-4' -> '9784101010014'."""
    if raw.isascii() and raw.isdigit():  # the common case needs no work
        return raw
    return _SEPARATORS.sub("", raw.translate(_FULLWIDTH)).upper()


# These run for every ISBN of every record on the search path: map/slices, not generators.
_ISBN10_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def _isbn10_check(first9: str) -> str:
    total = sum(map(int.__mul__, _ISBN10_WEIGHTS, map(int, first9)))
    digit = (11 - total % 11) % 11
    return "X" if digit == 10 else str(digit)


def _isbn13_check(first12: str) -> str:
    total = sum(map(int, first12[0::2])) + 3 * sum(map(int, first12[1::2]))
    return str((10 - total % 10) % 10)


def is_valid_isbn10(value: str) -> bool:
    return len(value) == 10 and value[:9].isdigit() and value[9] == _isbn10_check(value[:9])


def is_valid_isbn13(value: str) -> bool:
    return (
        len(value) == 13
        and value.isdigit()
        and value[:3] in ("978", "979")
        and value[12] == _isbn13_check(value[:12])
    )


def to_isbn13(raw: str) -> str | None:
    """The ISBN-13 for a 10- or 13-digit ISBN with a valid check digit, else None."""
    value = compact(raw)
    if is_valid_isbn13(value):
        return value
    if is_valid_isbn10(value):
        body = "978" + value[:9]
        return body + _isbn13_check(body)
    return None


def to_isbn10(isbn13: str) -> str | None:
    """ISBN-10 form of a 978- ISBN-13 (979- ISBNs have none)."""
    value = compact(isbn13)
    if not is_valid_isbn13(value) or not value.startswith("978"):
        return None
    return value[3:12] + _isbn10_check(value[3:12])


def find_isbns(text: str) -> tuple[list[str], list[str]]:
    """Split a catalogue's ISBN field into (valid ISBN-13s, raw invalid candidates).

    MARC 020$a often carries qualifiers ('4101010137 (pbk.)', '978-4-…: 590円');
    we take the first ISBN-shaped run of each field.
    """
    valid: list[str] = []
    invalid: list[str] = []
    for token in _FIELD_BREAKS.split(text):
        match = _CANDIDATE.search(compact(token))
        if match is None:
            continue
        candidate = match.group(0)
        isbn13 = to_isbn13(candidate)
        if isbn13 is None:
            invalid.append(candidate)
        elif isbn13 not in valid:
            valid.append(isbn13)
    return valid, invalid
