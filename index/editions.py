"""Edition and format hints: 文庫, 新書, 新装版, 改訂版, 第2版, 増補, 愛蔵版, 復刻, 2019年版 …

`edition_hints(*texts)` reads an edition statement, a title, a series string and
returns `EditionHints`. Two manifestations of one work differ by exactly these
words (天地明察 2009 vs its 2012 文庫), so dedup uses `EditionHints.conflicts` as a veto
at manifestation level.

Conflict rule, chosen so that a member that simply did not record the edition is
never punished: hints conflict only when *both* sides state the same kind of thing
differently — two formats (文庫 vs 新書), two edition numbers (第2版 vs 第3版), two
dated editions (2019年版 vs 2020年版), or two non-overlapping sets of edition words
(新装版 vs 愛蔵版). 改訂版 vs 改訂増補版 is compatible (one is more specific).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from index.numerals import KANJI_NUMERAL_CHARS, to_int

# Physical/series formats and edition words, as (keyword, hint) pairs checked with `in`:
# a big regex alternation costs ~20 µs per title in Python's re, 30 substring tests ~1 µs.
_FORMAT_WORDS: tuple[tuple[str, str], ...] = (
    ("文庫", "bunko"),
    ("新書", "shinsho"),
    ("選書", "sensho"),
    ("ノベルス", "novels"),
    ("ノベルズ", "novels"),
    ("大活字", "large_print"),
    ("大きな活字", "large_print"),
    ("大きな字", "large_print"),
    ("点字", "braille"),
    ("ワイド版", "wide"),
    ("ポケット版", "pocket"),
)
# 改訂/改定/新訂 are one flag: catalogues use them interchangeably.
_FLAG_WORDS: tuple[tuple[str, str], ...] = (
    ("新装", "shinso"),
    ("改訂", "revised"),
    ("改定", "revised"),
    ("新訂", "revised"),
    ("増補", "enlarged"),
    ("愛蔵版", "deluxe"),
    ("豪華版", "deluxe"),
    ("特装版", "deluxe"),
    ("復刻", "facsimile"),
    ("復刊", "facsimile"),
    ("複製", "facsimile"),
    ("新版", "new"),
    ("決定版", "definitive"),
    ("完全版", "complete"),
    ("完本", "complete"),
    ("普及版", "popular"),
    ("限定版", "limited"),
)
_LATIN_FLAG_WORDS: tuple[tuple[str, str], ...] = (
    ("revised", "revised"),
    ("enlarged", "enlarged"),
    ("expanded", "enlarged"),
    ("facsimile", "facsimile"),
    ("reprint", "facsimile"),
    ("new edition", "new"),
    ("new ed.", "new"),
)
# Numbered and dated editions; run only when '版' (or 'ed') is present.
# Matched against the few characters before a '版' (a regex that has to try every position of
# the title costs ~4 µs; slicing around str.find costs ~0.5).
_NUMBER_BEFORE_HAN = re.compile(
    rf"(?:第\s*(\d{{1,2}}|[{KANJI_NUMERAL_CHARS}]{{1,3}})|(?<![\d年度])(\d{{1,2}}))\s*訂?\s*$"
)
_YEAR_BEFORE_HAN = re.compile(r"((?:1[89]|20)\d{2})\s*年?\s*度?\s*$")
_NUMBERED_LATIN = re.compile(r"(\d{1,2})\s*(?:st|nd|rd|th)\s+ed(?:ition|\.|\b)")
_HAN_WINDOW = 9  # '第十二版', '2019年度版', '改訂2版' all fit


class EditionHints(NamedTuple):
    """Normalised edition/format hints of one record (all fields optional).

    A NamedTuple (C-level equality and hashing: clusters compare these per record). An
    empty result is always the `NO_HINTS` singleton, so hot code tests `is NO_HINTS`.
    """

    format: str | None = None  # 'bunko', 'shinsho', 'large_print', 'braille' …
    number: int | None = None  # 第2版 -> 2
    dated: int | None = None  # 2019年版 -> 2019
    flags: frozenset[str] = frozenset()  # {'revised', 'enlarged'} …

    def __bool__(self) -> bool:
        return bool(self.format or self.number or self.dated or self.flags)

    @property
    def labels(self) -> list[str]:
        """Stable strings for display and debugging: ['bunko', 'edition:2', 'revised']."""
        out = [self.format] if self.format else []
        if self.number is not None:
            out.append(f"edition:{self.number}")
        if self.dated is not None:
            out.append(f"dated:{self.dated}")
        return out + sorted(self.flags)

    def conflicts(self, other: EditionHints) -> bool:
        """True when both state the same kind of hint and the values differ (see module doc)."""
        if self.format and other.format and self.format != other.format:
            return True
        if self.number is not None and other.number is not None and self.number != other.number:
            return True
        if self.dated is not None and other.dated is not None and self.dated != other.dated:
            return True
        return bool(self.flags and other.flags and self.flags.isdisjoint(other.flags))


NO_HINTS = EditionHints()


@lru_cache(maxsize=1 << 13)
def _hints_of(text: str) -> EditionHints:
    text = unicodedata.normalize("NFKC", text)
    fmt = next((name for word, name in _FORMAT_WORDS if word in text), None)
    flags = {name for word, name in _FLAG_WORDS if word in text}
    number: int | None = None
    dated: int | None = None
    position = text.find("版")
    while position >= 0:
        before = text[max(0, position - _HAN_WINDOW) : position]
        match = _YEAR_BEFORE_HAN.search(before)
        if match is not None:
            dated = dated or int(match.group(1))
        elif before.endswith("初"):
            number = number or 1
        else:
            match = _NUMBER_BEFORE_HAN.search(before)
            if match is not None:
                number = number or to_int(match.group(1) or match.group(2))
        position = text.find("版", position + 1)
    lowered = text.lower()
    if " ed" in lowered or "edition" in lowered or "reprint" in lowered or "facsimile" in lowered:
        flags.update(name for word, name in _LATIN_FLAG_WORDS if word in lowered)
        match = _NUMBERED_LATIN.search(lowered)
        if match is not None:
            number = number or int(match.group(1))
        elif "first ed" in lowered:
            number = number or 1
    if fmt is None and number is None and dated is None and not flags:
        return NO_HINTS
    return EditionHints(fmt, number, dated, frozenset(flags))


def edition_hints(*texts: str | None) -> EditionHints:
    """Merge the hints found in an edition statement, a title, a series …"""
    found = [h for h in (_hints_of(t) for t in texts if t) if h is not NO_HINTS]
    if not found:
        return NO_HINTS
    if len(found) == 1:
        return found[0]
    return EditionHints(
        format=next((h.format for h in found if h.format), None),
        number=next((h.number for h in found if h.number is not None), None),
        dated=next((h.dated for h in found if h.dated is not None), None),
        flags=frozenset().union(*(h.flags for h in found)),
    )
