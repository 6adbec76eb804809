"""A Work as the union index stores it: search fields, facet keys and the result-line blob.

Engine-neutral: the back end maps an `IndexDocument` onto its own fields.

A work seen again is merged, not just replaced: the new Work's members replace their own
holdings, members it lacks keep theirs (with their own `seen` time) until they age out.
A search that asked three members must not erase what forty others said an hour ago.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from index.facets import ON_SHELF, WorkFacets, decade_of, facet_keys, ndc_class, work_ndc, work_year
from index.names import normalize_author
from index.text import key
from index.titles import split_subtitle
from yokodan import Availability, Holding, Work
from yokodan import isbn as isbn_tools

__all__ = ["IndexDocument", "build_document"]

# Ranking of a branch's copies: the most useful one speaks for the branch.
_AVAILABILITY_RANK = {
    a: rank
    for rank, a in enumerate(
        (
            Availability.AVAILABLE,
            Availability.LIBRARY_USE_ONLY,
            Availability.IN_TRANSIT,
            Availability.RESERVED,
            Availability.ON_LOAN,
            Availability.ON_ORDER,
            Availability.NOT_FOR_LOAN,
            Availability.CLOSED,
            Availability.UNKNOWN,
        )
    )
}
_ON_SHELF_WORDS = frozenset(a.value for a in ON_SHELF)


@dataclass(frozen=True, slots=True)
class IndexDocument:
    """One work's document. Multi-valued text fields are lists; the back end joins them."""

    work_id: str
    titles: list[str]
    title_readings: list[str]
    exact: list[str]  # key() of each title, main title and reading: exact-title matches
    authors: list[str]
    author_readings: list[str]
    publishers: list[str]
    isbn_terms: list[str]  # every ISBN-13 and the ISBN-10 form of 978- ones
    year: int | None
    ndc: str | None
    ndc_class: str | None
    members: list[str]
    municipalities: list[str]
    on_shelf: bool
    updated: int  # epoch seconds of this write
    facet_keys: list[str]  # index.facets keys, counted by the engine over every match
    blob: dict[str, Any]  # what a result line shows, stored as is


def _distinct(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _branch_summary(holdings: Sequence[Holding]) -> list[dict[str, Any]]:
    """One line per branch: copies, how many on the shelf, the best copy's state and word."""
    by_branch: dict[str, list[Holding]] = {}
    for holding in holdings:
        by_branch.setdefault(holding.branch_id or holding.location or "", []).append(holding)
    lines = []
    for branch, copies in by_branch.items():
        best = min(copies, key=lambda h: _AVAILABILITY_RANK[h.availability])
        line: dict[str, Any] = {
            "branch": branch or None,
            "location": best.location,
            "copies": len(copies),
            "available": sum(h.availability == Availability.AVAILABLE for h in copies),
            "availability": best.availability.value,
            "status_text": best.status_text,
        }
        if best.call_number:
            line["call_number"] = best.call_number
        dues = [h.due_date for h in copies if h.due_date]
        if dues and best.availability != Availability.AVAILABLE:
            line["due_date"] = min(dues).isoformat()
        queue = [h.queue_length for h in copies if h.queue_length is not None]
        if queue:
            line["queue_length"] = max(queue)
        lines.append(line)
    return lines


def _merged_holdings(
    work: Work, now: int, municipalities: Mapping[str, str], previous: Mapping[str, Any] | None, oldest_kept: float
) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[Holding]] = {member: [] for member in work.members}
    for record in work.records:
        grouped[record.member].extend(record.holdings)
    holdings = {
        member: {"seen": now, "municipality": municipalities.get(member), "branches": _branch_summary(copies)}
        for member, copies in grouped.items()
    }
    if previous:
        # Members this answer did not include keep what they said last time, until they age out.
        for member, entry in previous.get("holdings", {}).items():
            if member not in holdings and entry.get("seen", 0) >= oldest_kept:
                holdings[member] = entry
    for member, entry in holdings.items():
        if entry.get("municipality") is None and member in municipalities:
            entry["municipality"] = municipalities[member]
    return holdings


def build_document(
    work: Work,
    now: int,
    municipalities: Mapping[str, str],
    previous: Mapping[str, Any] | None,
    oldest_kept: float,
) -> IndexDocument:
    """The document for `work`, merged with the `previous` blob stored under its id (if any)."""
    holdings = _merged_holdings(work, now, municipalities, previous, oldest_kept)
    titles = _distinct([work.title, *(r.title for r in work.records)])
    readings = _distinct([work.title_reading, *(r.title_reading for r in work.records)])
    authors = _distinct(normalize_author(a) or a for a in [*work.authors, *(a for r in work.records for a in r.authors)])
    author_readings = _distinct(normalize_author(a) or a for r in work.records for a in r.author_readings)
    # A work's ISBNs are those of every record it ever merged, whichever member had them: a later
    # answer that reached it by title only (records without the ISBN) must not unhook it from
    # the ISBN, or an ISBN query would lose the holdings learned from members lacking it.
    isbn13s = _distinct([*work.isbns, *(i for r in work.records for i in r.isbns), *((previous or {}).get("isbns") or [])])
    year = work_year(work)
    ndc = work_ndc(work)
    members = list(holdings)
    facets = WorkFacets(
        members=tuple(members),
        municipalities=tuple(_distinct(entry.get("municipality") for entry in holdings.values())),
        decade=decade_of(year),
        ndc_class=ndc_class(ndc),
        on_shelf=any(
            line["availability"] in _ON_SHELF_WORDS for entry in holdings.values() for line in entry["branches"]
        ),
    )
    blob = {
        "work_id": work.work_id,
        "title": work.title,
        "title_reading": work.title_reading or (readings[0] if readings else None),
        "authors": work.authors,
        "publisher": work.publisher,
        "year": year,
        "isbns": isbn13s,
        "volume": work.volume,
        "ndc": ndc,
        "members": members,
        "holdings": holdings,
        "match_reasons": work.match_reasons,
    }
    return IndexDocument(
        work_id=work.work_id,
        titles=titles,
        title_readings=readings,
        exact=[k for k in _distinct(key(t) for title in [*titles, *readings] for t in (title, split_subtitle(title)[0])) if k],
        authors=authors,
        author_readings=author_readings,
        publishers=_distinct([work.publisher, *(r.publisher for r in work.records)]),
        isbn_terms=_distinct([*isbn13s, *(isbn_tools.to_isbn10(i) for i in isbn13s)]),
        year=year,
        ndc=ndc,
        ndc_class=facets.ndc_class,
        members=members,
        municipalities=list(facets.municipalities),
        on_shelf=facets.on_shelf,
        updated=now,
        facet_keys=facet_keys(facets),
        blob=blob,
    )
