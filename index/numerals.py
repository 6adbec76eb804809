"""Numbers as catalogues write them: kanji numerals and roman numerals.

Shared by volume parsing (巻之三, 第十二編, Vol. III) and year parsing (昭和二十五年).
Arabic digits need no help: callers NFKC-normalise first, which turns full-width
digits into ASCII.
"""

from __future__ import annotations

import re

# Both the everyday digits and the "formal" forms used in old imprints (壱, 弐, 参).
_KANJI_DIGITS: dict[str, int] = {
    "〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5,
    "六": 6, "七": 7, "八": 8, "九": 9, "壱": 1, "壹": 1, "弐": 2, "貳": 2, "参": 3, "參": 3,
}  # fmt: skip
_KANJI_UNITS: dict[str, int] = {"十": 10, "拾": 10, "百": 100, "千": 1000}
_KANJI_TENS: dict[str, int] = {"廿": 20, "卅": 30}  # 廿日, 卅年: old shorthand for 20 and 30

KANJI_NUMERAL_CHARS = "".join([*_KANJI_DIGITS, *_KANJI_UNITS, *_KANJI_TENS])
"""Every character `kanji_to_int` understands (for building regex classes)."""

_ROMAN = re.compile(r"(?=[mdclxvi])m{0,3}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})", re.IGNORECASE)
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}


def kanji_to_int(text: str) -> int | None:
    """'二十五' -> 25, '百二十' -> 120, '二〇一九' -> 2019, '元' -> 1 (元年); None if not a numeral."""
    if not text:
        return None
    if text == "元":  # 元年: the first year of an era
        return 1
    if all(ch in _KANJI_DIGITS for ch in text):
        # Positional form (二〇一九) as used for years in vertical text.
        value = 0
        for ch in text:
            value = value * 10 + _KANJI_DIGITS[ch]
        return value
    total = 0
    current = 0
    for ch in text:
        if ch in _KANJI_DIGITS:
            current = _KANJI_DIGITS[ch]
        elif ch in _KANJI_UNITS:
            total += (current or 1) * _KANJI_UNITS[ch]
            current = 0
        elif ch in _KANJI_TENS:
            total += _KANJI_TENS[ch]
            current = 0
        else:
            return None
    return total + current


def roman_to_int(text: str) -> int | None:
    """'III' -> 3, 'xiv' -> 14; None unless the whole string is a well-formed roman numeral."""
    if not text or _ROMAN.fullmatch(text) is None:
        return None
    lowered = text.lower()
    total = 0
    for i, ch in enumerate(lowered):
        value = _ROMAN_VALUES[ch]
        if i + 1 < len(lowered) and _ROMAN_VALUES[lowered[i + 1]] > value:
            total -= value
        else:
            total += value
    return total


def to_int(text: str) -> int | None:
    """Arabic, kanji or roman numeral -> int (the caller has NFKC-normalised `text`)."""
    if text.isdigit() and text.isascii():
        return int(text)
    value = kanji_to_int(text)
    if value is not None:
        return value
    return roman_to_int(text)
