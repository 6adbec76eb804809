"""Second-stage look-ups (issue 11 item 2): what to ask a member that came back empty, and what to keep.

An ISBN query misses every copy whose record carries no ISBN, and a kana reading query
misses every member whose records carry no reading, although the same copies are found by
title. So when such a query found works (live at some members, or in the union index), each
member that answered "ok, nothing" is asked once more by the found work's title (+ author,
year for an ISBN; the kanji title for a reading). Of that answer only the records that dedup
(`index.dedup.WorkClusterer`) places into one of the works already found are kept: a title
look-up also finds other volumes, editions and namesakes, and those must not be merged or
added. The search orchestration (`broker.search`) decides when and under which deadline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from index.dedup import WorkClusterer
from index.text import key
from index.titles import split_subtitle
from yokodan import Record, SearchQuery, TargetState, TargetStatus, Work

__all__ = [
    "SECOND_STAGE_REASON",
    "FollowUp",
    "Marks",
    "came_back_empty",
    "follow_up",
    "query_kind",
    "work_from_cached",
]

SECOND_STAGE_REASON = "second_stage:title"
# The union index's cached works join the dedup probe as records of this pseudo member.
_UNION_INDEX = "union-index"
# Life dates and other digits in a name heading ('夏目, 漱石, 1867-1916'): members that
# catalogued the name without them must still match the author words.
_KANA = re.compile("[\u3041-\u3096\u30a1-\u30fa\uff66-\uff9d]")
_KANJI = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f\u3005\u3007]")
_LIFE_DATES = re.compile(r"[,\s]*\d{3,4}\s*-\s*(?:\d{3,4})?|\d+")


def query_kind(query: SearchQuery) -> str | None:
    """'isbn' or 'reading' when a member's empty answer may be a cataloguing gap; else None.

    A reading is kana without kanji; digits, Latin letters and punctuation may stand in it
    (NDL writes 'シーエヌエヌ ニュース リスニング. 2019-ハル ナツ').
    """
    if query.isbn:
        return "isbn"
    words = query.title or query.text
    if words and not query.author and _KANA.search(words) and not _KANJI.search(words):
        return "reading"
    return None


def came_back_empty(status: TargetStatus) -> bool:
    """Answered, with nothing: the only members worth asking again (a failure is not a gap)."""
    return status.state is TargetState.OK and status.returned == 0 and not status.hits


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The one extra query for this search's empty members, and the works its answers must join."""

    query: SearchQuery
    by: str  # what the member is asked by, for TargetStatus.second_stage.by
    anchors: tuple[Work, ...]  # every work the first stage found

    def accepted(self, records: Sequence[Record]) -> list[Record]:
        """The records dedup places into one of the anchor works, in their order; the rest dropped.

        One probe clusterer per answer: a record that founds its own work (another volume,
        another edition, a namesake) is not the manifestation that was found.
        """
        if not records:
            return []
        probe = WorkClusterer()
        anchor_ids = set(probe.add(r for work in self.anchors for r in work.records))
        return [record for record in records if probe.add([record])[0] in anchor_ids]


def _author_words(work: Work) -> str | None:
    if not work.authors:
        return None
    words = _LIFE_DATES.sub(" ", work.authors[0]).strip(" ,")
    return words or None


def follow_up(kind: str, query: SearchQuery, live: Sequence[Work], cached: Sequence[Work]) -> FollowUp | None:
    """What to ask the empty members, from the works found so far (None: nothing to go on yet)."""
    if kind == "isbn":
        assert query.isbn is not None
        found = [w for w in live if query.isbn in w.isbns]  # only a live member's answer names the copy
        if not found:
            return None
        anchor = max(found, key=lambda w: len(w.members))  # the most widely held reading of it
        title = _main_title(anchor.title)
        by = "title" + ("+author" if anchor.authors else "") + ("+year" if anchor.year is not None else "")
        follow = SearchQuery(title=title, author=_author_words(anchor), year=anchor.year, page_size=query.page_size)
        return FollowUp(follow, by, tuple(found))
    found = [*live, *cached]
    asked = key(query.title or query.text or "")
    # Only a title written otherwise than the reading (kanji, Latin letters) says something new.
    titles = [_main_title(w.title) for w in found]
    titles = [t for t in titles if key(t) and key(t) != asked]
    if not titles:
        return None
    # The shortest main title: the works a reading finds are often one series or report
    # ('電子書籍ビジネス調査報告書' and '… = eBook marketing report'); the fewest words find them all.
    title = min(titles, key=lambda t: len(key(t)))
    return FollowUp(SearchQuery(title=title, year=query.year, page_size=query.page_size), "title", tuple(found))


def _main_title(title: str) -> str:
    """The title without subtitle or parallel title ('X = Y', 'X : Z')."""
    main = split_subtitle(title)[0] or title
    return main.split(" = ", 1)[0].strip() or main


def work_from_cached(blob: dict[str, Any]) -> Work:
    """A union-index result line as a one-record Work, so dedup can compare member records with it."""
    record = Record(
        member=_UNION_INDEX,
        local_id=str(blob["work_id"]),
        title=blob["title"],
        title_reading=blob.get("title_reading"),
        authors=list(blob.get("authors") or []),
        publisher=blob.get("publisher"),
        year=blob.get("year"),
        isbns=list(blob.get("isbns") or []),
        volume=blob.get("volume"),
    )
    return Work(work_id=str(blob["work_id"]), title=record.title, title_reading=record.title_reading,
                authors=record.authors, year=record.year, isbns=record.isbns, volume=record.volume,
                records=[record])  # fmt: skip


@dataclass(slots=True)
class Marks:
    """Which member records came from a second-stage look-up; applied to the works shown."""

    members_by_record: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            self.members_by_record[(record.member, record.local_id)] = record.member

    def apply(self, works: list[Work]) -> list[Work]:
        if not self.members_by_record:
            return works
        return [self._mark(work) for work in works]

    def _mark(self, work: Work) -> Work:
        members = [
            m for m in dict.fromkeys(self.members_by_record.get((r.member, r.local_id)) for r in work.records) if m
        ]
        if not members:
            return work
        reasons = work.match_reasons if SECOND_STAGE_REASON in work.match_reasons else [*work.match_reasons, SECOND_STAGE_REASON]
        return work.model_copy(update={"match_reasons": reasons, "matched_by_title": members})
