"""What dedup needs to know about one record, computed once.

`RecordFeatures` holds folded keys, never raw strings, so that matching is only set
look-ups and a few rapidfuzz calls. `extract_features` is pure; the clusterer calls it
once per *distinct* record content (60 members sending the same NDL-derived record
cost one extraction).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from yokodan import Record
from index.editions import NO_HINTS, EditionHints, edition_hints
from index.names import (
    author_tokens_key,
    normalize_author,
    normalize_publisher,
    split_names,
)
from index.text import is_kana_key, keys
from index.titles import parse_title, strip_leading_article
from index.volume import Volume, combine_volumes, parse_volume

MAX_AUTHORS = 3  # the first few names decide; long contributor lists add noise, not evidence
# Members send the same title and names again and again: cache the assembled keys, not just
# the string steps (a cached title costs ~1 µs instead of ~10 µs of lookups and tuple building).
_FEATURE_CACHE_SIZE = 1 << 13
_JPNO_DIGITS = re.compile(r"\d+")


# NamedTuples, not frozen dataclasses: one is built per record on the hot path, and a frozen
# dataclass pays an object.__setattr__ per field (~3x slower to construct).
class TitleKeys(NamedTuple):
    """Folded keys of one title (and its reading). '' means absent."""

    main: str
    subtitle: str
    part: str
    full: str  # main + subtitle + part
    reading_main: str  # the reading's main title; a kana-only title stands in for a missing reading
    reading_full: str


class RecordFeatures(NamedTuple):
    isbns: frozenset[str]
    jpno: str
    title: TitleKeys
    volume: Volume | None
    volume_text: str | None
    year: int | None
    authors: tuple[str, ...]  # normalize_author keys
    author_alts: tuple[str, ...]  # order-free keys (katakana Western names in either order)
    author_readings: tuple[str, ...]
    publisher: str
    hints: EditionHints
    block_keys: tuple[str, ...]  # keys under which the record is indexed and looked up (see dedup)


@lru_cache(maxsize=_FEATURE_CACHE_SIZE)
def _block_keys(
    isbns: frozenset[str], jpno: str, title: TitleKeys, first_author: str, year: int | None, volume: Volume | None
) -> tuple[str, ...]:
    out = [f"i{isbn}" for isbn in isbns]
    if jpno:
        out.append(f"j{jpno}")
    if title.main:
        out.append(f"t{title.main}")
    if title.reading_main and title.reading_main != title.main:
        out.append(f"t{title.reading_main}")
    # Same first author and year: where a title with a typo or an unmapped variant kanji still
    # meets its original. (A title-prefix block was tried first: on an e-book search half the
    # page starts with '電子書籍' and every record was scored against a dozen clusters.)
    if first_author and year is not None:
        out.append(f"a{first_author}|{year}")
    # The composite key: exact duplicates meet here even when their titles are generic.
    out.append(f"c{title.reading_main or title.main}|{first_author}|{year or ''}|{volume.label if volume else ''}")
    return tuple(out)


def normalize_jpno(jpno: str | None) -> str:
    """'JP 21512298', '21512298' -> '21512298' (JP numbers are compared as digits)."""
    if not jpno:
        return ""
    return "".join(_JPNO_DIGITS.findall(jpno))


class _TitlePart(NamedTuple):
    main: str
    subtitle: str
    part: str
    volume: Volume | None
    volume_text: str | None
    hints: EditionHints


# The title and its reading are cached separately: members pair the same title with
# different readings (missing, hiragana, unspaced), so (title, reading) pairs rarely repeat.
@lru_cache(maxsize=_FEATURE_CACHE_SIZE)
def _title_part(title: str) -> _TitlePart:
    parsed = parse_title(title)
    main, subtitle, part = keys(strip_leading_article(parsed.main), parsed.subtitle, parsed.part)
    return _TitlePart(main, subtitle, part, parsed.volume, parsed.volume_text, parsed.hints)


@lru_cache(maxsize=_FEATURE_CACHE_SIZE)
def _reading_part(reading: str, title_has_volume: bool) -> tuple[str, str]:
    """(reading main key, reading full key).

    NDL readings sometimes spell the volume ('ジュウゴサイ デモ オレ ノ ヨメ. 2') and sometimes
    not: it is dropped when the title has one. A volume is never taken from a reading alone —
    'アーカイブ コレクション ヴォリューム 2' reads a title without a separable volume — so then
    it stays part of the reading key.
    """
    parsed = parse_title(reading, with_hints=False)
    head = parsed.main
    if parsed.volume is not None and not title_has_volume:
        head += parsed.volume_text or ""
    main, subtitle, part = keys(head, parsed.subtitle, parsed.part)
    return main, main + subtitle + part


def _title_keys(title: str, reading: str | None) -> tuple[TitleKeys, Volume | None, str | None, EditionHints]:
    t = _title_part(title)
    if reading:
        reading_main, reading_full = _reading_part(reading, t.volume is not None)
    elif is_kana_key(t.main):  # a title written in kana is its own reading
        reading_main, reading_full = t.main, t.main + t.subtitle + t.part
    else:
        reading_main = reading_full = ""
    title_keys = TitleKeys(t.main, t.subtitle, t.part, t.main + t.subtitle + t.part, reading_main, reading_full)
    return title_keys, t.volume, t.volume_text, t.hints


@lru_cache(maxsize=_FEATURE_CACHE_SIZE)
def _author_keys(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found: list[str] = []
    alts: list[str] = []
    for statement in names:
        for name in split_names(statement):
            normalized = normalize_author(name)
            if normalized and normalized not in found:
                found.append(normalized)
                alts.append(author_tokens_key(name))
            if len(found) >= MAX_AUTHORS:
                return tuple(found), tuple(alts)
    return tuple(found), tuple(alts)


def extract_features(record: Record) -> RecordFeatures:
    """All matching keys of one record."""
    title, volume, volume_text, hints = _title_keys(record.title, record.title_reading)
    if record.volume:
        field_volume = parse_volume(record.volume)
        if field_volume is not None:
            volume = combine_volumes(volume, field_volume)
            volume_text = f"{volume_text} {record.volume}" if volume_text else record.volume
    authors, alts = _author_keys(tuple(record.authors)) if record.authors else ((), ())
    readings = _author_keys(tuple(record.author_readings))[0] if record.author_readings else ()
    if record.edition:
        hints = edition_hints(record.edition, record.title) if hints is not NO_HINTS else edition_hints(record.edition)
    isbns = frozenset(record.isbns)
    jpno = normalize_jpno(record.jpno) if record.jpno else ""
    return RecordFeatures(
        isbns,
        jpno,
        title,
        volume,
        volume_text,
        record.year,
        authors,
        alts,
        readings,
        normalize_publisher(record.publisher),
        hints,
        _block_keys(isbns, jpno, title, authors[0] if authors else "", record.year, volume),
    )
