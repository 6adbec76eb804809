"""Publication years from the date strings members send.

Western forms: '2008.12', 'c2019', '[2003]', '2014-2016, 2017.3', '1969-11', '20140408'.
Japanese eras: '平成20年', '昭和二十五年', '令和元年', abbreviated 'H31', 'S50', 'R2', '明39',
and the late-Edo eras seen in old-book records ('文政5', '嘉永7年').

Rules:
- A four-digit Western year wins when present: '文政1(1818)' -> 1818, '平成25(2013)' -> 2013.
- An uncertain year ('19--', '199-', '[江戸後期]') is *unknown* (None), not 1900 or 1990:
  dedup treats a known year as evidence, and a guessed one would veto true matches.
- An era year outside the era's span ('平成45年') is rejected rather than extrapolated.
"""

from __future__ import annotations

import re
import unicodedata

from index.numerals import KANJI_NUMERAL_CHARS, kanji_to_int

# era -> (first Western year, number of years in the era; None = still running)
_ERAS: dict[str, tuple[int, int | None]] = {
    "令和": (2019, None),
    "平成": (1989, 31),
    "昭和": (1926, 64),
    "大正": (1912, 15),
    "明治": (1868, 45),
    # Late Edo: NDL's old-book records (ndl_sru_edo_literature) date by these.
    "慶応": (1865, 4),
    "元治": (1864, 2),
    "文久": (1861, 4),
    "万延": (1860, 2),
    "安政": (1854, 7),
    "嘉永": (1848, 7),
    "弘化": (1844, 5),
    "天保": (1830, 15),
    "文政": (1818, 13),
    "文化": (1804, 15),
    "享和": (1801, 4),
    "寛政": (1789, 13),
    "天明": (1781, 9),
}
# One-letter and one-kanji abbreviations of the modern eras.
_ERA_ABBREVIATIONS: dict[str, str] = {
    "R": "令和", "H": "平成", "S": "昭和", "T": "大正", "M": "明治",
    "令": "令和", "平": "平成", "昭": "昭和", "大": "大正", "明": "明治",
}  # fmt: skip

_WESTERN = re.compile(r"(?<!\d)(1[0-9]{3}|20[0-9]{2})(?!\d)")
_COMPACT_DATE = re.compile(r"(?<!\d)((?:1[5-9]|20)\d{2})(?:0[1-9]|1[0-2])(?:[0-3]\d)?(?!\d)")  # 20140408
_ERA_NUMBER = rf"(?P<n>元|\d{{1,2}}|[{KANJI_NUMERAL_CHARS}]{{1,4}})"
_ERA = re.compile(rf"(?P<era>{'|'.join(_ERAS)})\s*{_ERA_NUMBER}")
_ERA_ABBREVIATED = re.compile(
    r"(?<![A-Za-z])(?P<era>[RHSTMrhstm])\.?\s*(?P<n>\d{1,2})(?!\d)|(?P<kera>[令平昭大明])\s*(?P<kn>元|\d{1,2})(?!\d)\s*(?:年|\.|$|\))"
)


def _era_year(era: str, number: str) -> int | None:
    start, length = _ERAS[era]
    value = 1 if number == "元" else (int(number) if number.isdigit() else kanji_to_int(number))
    if value is None or value < 1 or (length is not None and value > length):
        return None
    return start + value - 1


def parse_year(text: str | None) -> int | None:
    """The publication year in `text`, or None when there is none or it is uncertain."""
    if not text:
        return None
    text = unicodedata.normalize("NFKC", text)
    match = _WESTERN.search(text)
    if match is not None:
        return int(match.group(1))
    match = _COMPACT_DATE.search(text)
    if match is not None:
        return int(match.group(1))
    match = _ERA.search(text)
    if match is not None:
        return _era_year(match.group("era"), match.group("n"))
    match = _ERA_ABBREVIATED.search(text)
    if match is not None:
        if match.group("era") is not None:
            return _era_year(_ERA_ABBREVIATIONS[match.group("era").upper()], match.group("n"))
        return _era_year(_ERA_ABBREVIATIONS[match.group("kera")], match.group("kn"))
    return None
