"""Does a record belong to a cluster? The match cascade and its thresholds.

Order of the cascade (first decisive rule wins):
1. volumes conflict (上 vs 下, 1 vs 2, a volume vs the whole set) -> never the same;
2. a shared ISBN-13 -> same ('isbn'); a shared JP number -> same ('jpno');
3. manifestation level (default): both sides carry ISBNs and share none (single-volume
   books only: a volume may carry the set's ISBN or its own), or JP numbers and share
   none, or the years are more than `YEAR_TOLERANCE` apart, or edition/format hints
   conflict, or the publishers differ -> different manifestations;
   with group_editions=True these only demand an (almost) exact title and the authors;
4. fuzzy: titles (and readings) must agree, with no differing number or volume word
   hidden in the difference, then the authors; without authors on one side only an
   exact title with an agreeing year or publisher, or a long exact title, is enough.

A record is compared with a cluster's *aggregate* (every distinct key its records
have), not with each record: one cluster may hold 60 copies of one book.

Thresholds are rapidfuzz scores (0-100) on folded keys, tuned on bench/dedup.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from index.editions import NO_HINTS, EditionHints
from index.features import RecordFeatures, TitleKeys
from index.numerals import KANJI_NUMERAL_CHARS
from index.volume import Volume, volumes_compatible

# Fuzzy title: keys are already folded, so real cataloguing variants are usually *equal*;
# what is left is a typo or an unmapped variant kanji. rapidfuzz's ratio is Indel-based:
# at 94 one dropped character passes from 9 characters on, one changed character from 17
# (a substitution counts twice), but the two characters that make '米国電子書籍ビジネス調査報告書'
# another book than '電子書籍ビジネス調査報告書' (92.9) do not: a kanji carries more than a letter.
TITLE_MATCH_MIN = 94
# Equal readings with different written titles (old/new kanji beyond our table, kana vs
# kanji) count when the written titles still share this much: 化学 and 科学 both read カガク.
READING_TITLE_FLOOR = 50
READING_MATCH_SCORE = 96
# Two subtitles, both present, must be nearly the same ('秘密の国のアリス' vs a typo of it).
SUBTITLE_MATCH_MIN = 85
# Author keys: 'frank h netter' vs 'frank henry netter' scores 92 (token_set), '柳亭種彦1世' vs '2世' 83.
AUTHOR_MATCH_MIN = 85
AUTHOR_PREFIX_SCORE = 90  # '結城' (family name only) vs '結城浩'
# Publishers: partial_ratio, so '日経bp社' ~ '日経bp' and '講談社' ~ '講談社文庫' (100); '小学館' vs
# '日本点字図書館' scores 50 — the braille edition of a print book is another manifestation.
PUBLISHER_MATCH_MIN = 80
# Copyright year vs printing year, 2008.12 catalogued as 2009: one year apart is the same book.
YEAR_TOLERANCE = 1
# Titles this short ('化学', 'アメリカ法') only match exactly: one character is a different word.
SHORT_TITLE_LEN = 4
# With no names and no year on either side, an exact title this long (folded characters,
# subtitle included) is specific enough on its own; shorter ones ('ちかこ集 10') are not.
LONG_TITLE_LEN = 20

# Characters whose change makes another book, not a typo: numbers, volume and part words,
# seasons of periodical issues ('2018秋冬' vs '2018春夏').
_DESIGNATORS = frozenset("0123456789" + KANJI_NUMERAL_CHARS + "上中下前後乾坤初続正春夏秋冬")

# Match ranks: identifiers beat fuzzy evidence.
RANK_ISBN = 3
RANK_JPNO = 2
RANK_FUZZY = 1


class Match(NamedTuple):
    # compared with max(): (class, title or overlap score, author score, exact year, exact volume)
    rank: tuple[int, float, float, bool, bool]
    reason: str


@dataclass(slots=True)
class ClusterProfile:
    """Everything the cascade looks at, aggregated over a cluster's records."""

    isbns: set[str] = field(default_factory=set)
    jpnos: set[str] = field(default_factory=set)
    volumes: list[Volume | None] = field(default_factory=list)
    years: set[int] = field(default_factory=set)
    hints: list[EditionHints] = field(default_factory=list)
    publishers: set[str] = field(default_factory=set)
    titles: list[TitleKeys] = field(default_factory=list)
    authors: set[str] = field(default_factory=set)
    author_alts: set[str] = field(default_factory=set)
    author_readings: set[str] = field(default_factory=set)

    def add(self, f: RecordFeatures) -> None:
        self.isbns.update(f.isbns)
        if f.jpno:
            self.jpnos.add(f.jpno)
        if f.volume not in self.volumes:
            self.volumes.append(f.volume)
        if f.year is not None:
            self.years.add(f.year)
        if f.hints is not NO_HINTS and f.hints not in self.hints:
            self.hints.append(f.hints)
        if f.publisher:
            self.publishers.add(f.publisher)
        if f.title not in self.titles:
            self.titles.append(f.title)
        self.authors.update(f.authors)
        self.author_alts.update(f.author_alts)
        self.author_readings.update(f.author_readings)


def designator_differs(a: str, b: str) -> bool:
    """True when the edits turning `a` into `b` touch a number, volume or season character."""
    for op in Levenshtein.opcodes(a, b):
        if op.tag != "equal" and not _DESIGNATORS.isdisjoint(
            a[op.src_start : op.src_end] + b[op.dest_start : op.dest_end]
        ):
            return True
    return False


VETO = -1.0  # title_score: the titles name different things (another part, another subtitle)


def _dropped_middle(short: TitleKeys, full: TitleKeys) -> bool:
    """'CNNニュース・リスニング 2017秋冬' is '… : CD&電子書籍版付き : … 2017秋冬' without its subtitle."""
    rest: str = short.main[len(full.main) :]
    return (
        len(full.main) > SHORT_TITLE_LEN
        and short.main.startswith(full.main)
        and bool(rest)
        and full.full.endswith(rest)
    )


def title_score(a: TitleKeys, b: TitleKeys) -> float:
    """0-100 similarity of two titles, or VETO when a part or subtitle says they differ.

    Cheap tests first: equality, then rapidfuzz ratios; the Levenshtein opcodes behind
    `designator_differs` only run for pairs that are otherwise close enough to match.
    """
    if a.part != b.part:  # '… 報告書. 2010 ケータイ・PC編' vs '… 新プラットフォーム編', or one has a part
        return VETO
    if (
        a.subtitle
        and b.subtitle
        and a.subtitle != b.subtitle
        and (fuzz.ratio(a.subtitle, b.subtitle) < SUBTITLE_MATCH_MIN or designator_differs(a.subtitle, b.subtitle))
    ):
        return VETO
    if a.main and (a.main == b.main or a.full == b.full):
        return 100.0
    if not a.main or not b.main:
        return 0.0
    if _dropped_middle(a, b) or _dropped_middle(b, a):
        return 100.0
    if (
        a.reading_main
        and a.reading_main == b.reading_main
        and fuzz.ratio(a.main, b.main) >= READING_TITLE_FLOOR
        and not designator_differs(a.main, b.main)
    ):
        return float(READING_MATCH_SCORE)
    if min(len(a.main), len(b.main)) <= SHORT_TITLE_LEN:
        return 0.0
    score = max(fuzz.ratio(a.main, b.main), fuzz.ratio(a.full, b.full))
    if score >= TITLE_MATCH_MIN and designator_differs(a.main, b.main):
        return 0.0
    return score


def cluster_title_score(f: TitleKeys, titles: list[TitleKeys]) -> float:
    """Best score against the cluster's title forms; VETO if any form vetoes.

    Checking every form stops a record that lacks a subtitle from bridging two editions:
    once it joined the 2013 edition, the 2012 edition's subtitle still conflicts with the
    2013 subtitle in the same cluster.
    """
    best = 0.0
    for t in titles:
        score = title_score(f, t)
        if score == VETO:
            return VETO
        best = max(best, score)
    return best


def _name_similarity(a: str, b: str) -> float:
    if " " in a or " " in b:  # Latin keys are space-joined sorted tokens
        return fuzz.token_set_ratio(a, b)
    score = fuzz.ratio(a, b)
    if min(len(a), len(b)) >= 2 and (a.startswith(b) or b.startswith(a)):
        score = max(score, AUTHOR_PREFIX_SCORE)
    return score


def author_score(f: RecordFeatures, p: ClusterProfile) -> float | None:
    """Best name similarity, or None when either side has no names at all (unknown, not a mismatch)."""
    has_names = bool(f.authors) and bool(p.authors)
    has_readings = bool(f.author_readings) and bool(p.author_readings)
    if not has_names and not has_readings:
        return None
    if has_names and (not p.authors.isdisjoint(f.authors) or not p.author_alts.isdisjoint(f.author_alts)):
        return 100.0
    if has_readings and not p.author_readings.isdisjoint(f.author_readings):
        return 100.0
    best = 0.0
    if has_names:
        best = max(_name_similarity(a, b) for a in f.authors for b in p.authors)
    if has_readings and best < AUTHOR_MATCH_MIN:
        best = max(best, max(_name_similarity(a, b) for a in f.author_readings for b in p.author_readings))
    return best


def _publisher_conflict(f: RecordFeatures, p: ClusterProfile) -> bool:
    if not f.publisher or not p.publishers or f.publisher in p.publishers:
        return False
    return max(fuzz.partial_ratio(f.publisher, q) for q in p.publishers) < PUBLISHER_MATCH_MIN


def other_manifestation(f: RecordFeatures, p: ClusterProfile) -> bool:
    """Evidence that `f` is another edition/printing/format of the cluster's book."""
    if f.isbns and p.isbns and f.isbns.isdisjoint(p.isbns) and f.volume is None and p.volumes == [None]:
        # Only for single-volume books: a volume of a set is catalogued with its own ISBN by
        # one member and with the set's ISBN by another, so disjoint ISBNs prove nothing there.
        return True
    if f.jpno and p.jpnos and f.jpno not in p.jpnos:
        return True
    if f.year is not None and any(abs(f.year - y) > YEAR_TOLERANCE for y in p.years):
        return True
    if f.hints is not NO_HINTS and any(f.hints.conflicts(h) for h in p.hints):
        return True
    return _publisher_conflict(f, p)


def match(f: RecordFeatures, p: ClusterProfile, *, group_editions: bool = False) -> Match | None:
    """Run the cascade; a Match (rank, reason) when `f` belongs to the cluster, else None."""
    for volume in p.volumes:  # (a loop, not all(genexpr): this runs for every candidate)
        if volume != f.volume and not volumes_compatible(f.volume, volume):
            return None
    exact_volume = len(p.volumes) == 1 and p.volumes[0] == f.volume
    exact_year = f.year is not None and f.year in p.years
    shared = len(f.isbns & p.isbns) if f.isbns and p.isbns else 0
    if shared:
        return Match((RANK_ISBN, float(shared), 0.0, exact_year, exact_volume), "isbn")
    if f.jpno and f.jpno in p.jpnos:
        return Match((RANK_JPNO, 0.0, 0.0, exact_year, exact_volume), "jpno")
    other_edition = other_manifestation(f, p)
    if other_edition and not group_editions:
        return None
    title = cluster_title_score(f.title, p.titles)
    if title < TITLE_MATCH_MIN:
        return None
    authors = author_score(f, p)
    years_agree = f.year is not None and bool(p.years) and not other_edition
    if authors is not None:
        if authors < AUTHOR_MATCH_MIN:
            return None
        if other_edition:
            # group_editions: another edition of the same work — only on an (almost) exact title.
            if title < READING_MATCH_SCORE:
                return None
            reason = "title+author+edition"
        else:
            reason = "title+author+year" if years_agree else "title+author"
        return Match((RANK_FUZZY, title, authors, exact_year, exact_volume), reason)
    # No names to compare: an exact title plus an agreeing year or publisher, same edition only.
    if title < 100.0 or other_edition:
        return None
    if years_agree:
        return Match((RANK_FUZZY, title, 0.0, exact_year, exact_volume), "title+year")
    if f.publisher and f.publisher in p.publishers:
        return Match((RANK_FUZZY, title, 0.0, exact_year, exact_volume), "title+publisher")
    if len(f.title.full) >= LONG_TITLE_LEN and any(f.title.full == t.full for t in p.titles):
        return Match((RANK_FUZZY, title, 0.0, exact_year, exact_volume), "title")
    return None
