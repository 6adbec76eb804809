"""Title structure: ISBD punctuation, subtitle, parallel title, part, volume, edition words.

MARC/ISBD titles come as 'Title = Parallel title : other title. Part / responsibility',
e.g. '電子書籍ビジネス調査報告書 = eBook Marketing Report. 2018' or
'The little boat / written by Kathy Henderson ; illustrated by Patrick Benson.'.
Members that re-key a record drop or keep pieces of that, so dedup compares the
pieces separately (`parse_title`): the main title always, the subtitle only when
both records have one, the part and the volume always.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from index.editions import NO_HINTS, EditionHints, edition_hints
from index.volume import Volume, normalise, split_volume

# ISBD separators. A subtitle starts at ' : ' or a full-width '：' (Japanese catalogues write
# '暗号技術入門：秘密の国のアリス'); an unspaced ASCII ':' is part of titles such as 'Re:ゼロ…'.
_SUBTITLE = re.compile(r"\s+:\s*|：\s*")  # parse_title turns '：' into ' : ' before NFKC
_PARALLEL = re.compile(r"\s+=\s+")
_RESPONSIBILITY = re.compile(r"\s+/\s+|\s+/$")
_TRAILING_ISBD = re.compile(r"(?:\s+[/:;=,]|\s*[.,](?<!\.\.\.))+\s*$|\s+$")
# The part designation follows the last '. ' (ISBD): '地のはてから. 上', '… 報告書. 2018'.
# An ellipsis ('...') is not a separator, nor is '. ' before a lower-case word ('Amazon. com').
_PART = re.compile(r"(?<!\.)\.\s+(?P<part>(?![a-z])[^.]{1,40})$")
# A bracketed series or edition at the end: '(講談社文庫)', '〔新装版〕'.
_TRAILING_BRACKET = re.compile(r"\s*[(（〔\[［]([^()（）〔〕\[\]［］]{1,30})[)）〕\]］]\s*$")
_TRAILING_EDITION = re.compile(
    r"\s+(?:(?:改訂|増補|新装|新|決定|完全|愛蔵|普及|復刻|ワイド|文庫|新書)+版|第\s*\d{1,2}\s*版|\d{1,2}\s*版|文庫|新書)\s*$"
)
_CLOSING = frozenset(")）〕]］")
_LEADING_ARTICLE = re.compile(r"^(?:the|an?|l'|le|la|les|der|die|das|el)\s+", re.IGNORECASE)


class ParsedTitle(NamedTuple):
    """A title cut into the pieces dedup compares. Strings are as written (not folded)."""

    main: str
    subtitle: str  # '' when none; several ' : ' pieces are kept together
    part: str  # part designation that is not a volume ('2010 ケータイ・PC編'), or ''
    volume: Volume | None
    volume_text: str | None  # the designation as written ('上', '第1巻')
    hints: EditionHints  # edition/format words found in the title


_ISBD_END = frozenset(" \t/:;=,.")


# Each helper tests a character or substring before running its regex: on the hot path a
# regex that has to try every position of a title costs 1-5 µs, a substring test ~0.05.
def strip_isbd(title: str) -> str:
    """Drop trailing ISBD punctuation: 'Title /' 'Title :' 'Title ;' 'Title.' -> 'Title'."""
    if not title or title[-1] not in _ISBD_END:
        return title
    return _TRAILING_ISBD.sub("", title).strip()


def strip_responsibility(title: str) -> str:
    """'The little boat / written by Kathy Henderson ; …' -> 'The little boat'."""
    if " /" not in title:
        return title
    match = _RESPONSIBILITY.search(title)
    return title[: match.start()] if match else title


def split_subtitle(title: str) -> tuple[str, str]:
    """('暗号技術入門', '秘密の国のアリス') for both ' : ' and '：' forms; subtitle '' when none."""
    if ":" not in title and "：" not in title:
        return title.strip(), ""
    pieces = _SUBTITLE.split(title, maxsplit=1)
    if len(pieces) == 1:
        return title.strip(), ""
    return pieces[0].strip(), pieces[1].strip()


def strip_leading_article(title: str) -> str:
    """'The little boat' -> 'little boat' for Latin-script titles only (MARC non-filing characters)."""
    title = unicodedata.normalize("NFKC", title)  # full-width 'Ｔｈｅ' too
    if not title.isascii():
        return title
    return _LEADING_ARTICLE.sub("", title, count=1)


@lru_cache(maxsize=1 << 13)
def parse_title(title: str, *, with_hints: bool = True) -> ParsedTitle:
    """Cut a title into main / subtitle / part / volume / edition hints.

    `with_hints=False` skips the edition/format words (readings carry none worth having).
    """
    # NFKC first ('．' is an ISBD '.'), but a full-width colon is kept as a subtitle mark and
    # Ⅰ…Ⅻ as digits (NFKC would turn Ⅰ into a letter 'I').
    if "：" in title:
        title = title.replace("：", " : ")
    text = strip_isbd(strip_responsibility(normalise(title)))
    hints = edition_hints(text) if with_hints else NO_HINTS
    # A trailing '(講談社文庫)' or ' 新装版' is an edition/series remark, not part of the title;
    # it may sit before or after the volume ('X 上 (講談社文庫)', 'X 新装版 上').
    if hints is not NO_HINTS and text[-1:] in _CLOSING:
        bracket = _TRAILING_BRACKET.search(text)
        if bracket is not None and edition_hints(bracket.group(1)) is not NO_HINTS:
            text = strip_isbd(text[: bracket.start()])
    text, volume, volume_text = split_volume(text)
    if hints is not NO_HINTS:
        edition = _TRAILING_EDITION.search(text)
        if edition is not None and edition.start() > 0:
            text = strip_isbd(text[: edition.start()])
            if volume is None:
                text, volume, volume_text = split_volume(text)
    text = strip_isbd(text)
    part = ""
    match = _PART.search(text) if ". " in text else None
    if match is not None and not _SUBTITLE.search(match.group("part")):
        part = match.group("part").strip()
        text = strip_isbd(text[: match.start()])
        if volume is None:  # '… = eBook Marketing Report. 2018': the volume hid behind the part separator
            _, volume, volume_text = split_volume(f"x {part}")
            if volume is not None:
                part = ""
    parallel = _PARALLEL.search(text) if " = " in text else None
    if parallel is not None:
        # 'Main = Parallel title : other title information': the parallel title is a translation
        # and is dropped, but ISBD puts other title information after it, and that can be the
        # only thing telling two issues apart ('… = e-bookstore survey : OnDeck 2012年9月調査版').
        main, subtitle = split_subtitle(text[: parallel.start()])
        if not subtitle:
            subtitle = split_subtitle(text[parallel.end() :])[1]
    else:
        main, subtitle = split_subtitle(text)
    return ParsedTitle(strip_isbd(main), strip_isbd(subtitle), part, volume, volume_text, hints)
