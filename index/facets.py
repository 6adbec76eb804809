"""Facets: the counts a patron narrows an answer by, one definition for live and cached answers.

A live answer (works just merged from the members) and a cached one (the union index)
must count the same things under the same names, so both go through here:

- `work_facets(work, municipalities)` says which facet values one work has;
- `facet_keys` spells them as flat keys ('m<member>', 'u<municipality>', 'y<decade>',
  'n<ndc class>', 'a' for on the shelf, '*' for every work): the union index stores these
  keys per document and lets its engine count them over every match, and
- `facets_from_counts` turns key counts (from the engine, or from `facets_of` over live
  works) into `Facets`, in one deterministic order.

Every count is a number of works, never of copies or records.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from yokodan import Availability, Work

__all__ = [
    "ALL",
    "ON_SHELF",
    "Facets",
    "WorkFacets",
    "decade_of",
    "facet_keys",
    "facets_from_counts",
    "facets_of",
    "ndc_class",
    "work_facets",
    "work_ndc",
    "work_year",
]

# "Available now": a copy a patron could put their hands on today. 禁帯出 copies count
# (they are on the shelf and can be read there); per-branch availability tells them apart.
ON_SHELF = frozenset({Availability.AVAILABLE, Availability.LIBRARY_USE_ONLY})
_NDC = re.compile(r"\s*([0-9]{1,3}(?:\.[0-9]+)?|[A-Za-z])")
ALL = "*"  # the key every work has: its count is the number of works counted


@dataclass(slots=True)
class Facets:
    members: dict[str, int] = field(default_factory=dict)  # holding member -> works
    municipalities: dict[str, int] = field(default_factory=dict)
    decades: dict[int, int] = field(default_factory=dict)  # 1990 -> works published 1990-1999
    ndc_classes: dict[str, int] = field(default_factory=dict)  # '9' literature … 'E' picture books
    available_now: int = 0  # works with a copy on the shelf somewhere (ON_SHELF)


@dataclass(frozen=True, slots=True)
class WorkFacets:
    """The facet values of one work."""

    members: tuple[str, ...]
    municipalities: tuple[str, ...]  # of the holding members; members without one add nothing
    decade: int | None
    ndc_class: str | None
    on_shelf: bool


def work_year(work: Work) -> int | None:
    """The work's year, else the earliest year a record gives (order-free)."""
    if work.year is not None:
        return work.year
    return min((r.year for r in work.records if r.year is not None), default=None)


def work_ndc(work: Work) -> str | None:
    """The NDC number most records agree on (ties: the smallest), so arrival order does not matter."""
    found = Counter(m.group(1).upper() for r in work.records if r.ndc and (m := _NDC.match(r.ndc)))
    if not found:
        return None
    return min(found, key=lambda ndc: (-found[ndc], ndc))


def ndc_class(ndc: str | None) -> str | None:
    return ndc[0] if ndc else None


def decade_of(year: int | None) -> int | None:
    return None if year is None else year // 10 * 10


def work_facets(work: Work, municipalities: Mapping[str, str | None]) -> WorkFacets:
    members = tuple(work.members)
    return WorkFacets(
        members=members,
        municipalities=tuple(dict.fromkeys(m for m in (municipalities.get(member) for member in members) if m)),
        decade=decade_of(work_year(work)),
        ndc_class=ndc_class(work_ndc(work)),
        on_shelf=any(h.availability in ON_SHELF for h in work.holdings),
    )


def facet_keys(facets: WorkFacets) -> list[str]:
    keys = [ALL, *(f"m{m}" for m in facets.members), *(f"u{m}" for m in facets.municipalities)]
    if facets.decade is not None:
        keys.append(f"y{facets.decade}")
    if facets.ndc_class:
        keys.append(f"n{facets.ndc_class}")
    if facets.on_shelf:
        keys.append("a")
    return keys


def facets_from_counts(counts: Mapping[str, int]) -> Facets:
    """Facets from works-per-key counts; most held first (ties by name), decades and classes in order."""
    result = Facets()
    for name, count in counts.items():
        kind, value = name[:1], name[1:]
        if kind == "m":
            result.members[value] = count
        elif kind == "u":
            result.municipalities[value] = count
        elif kind == "y":
            result.decades[int(value)] = count
        elif kind == "n":
            result.ndc_classes[value] = count
        elif kind == "a":
            result.available_now = count
    result.members = dict(sorted(result.members.items(), key=lambda kv: (-kv[1], kv[0])))
    result.municipalities = dict(sorted(result.municipalities.items(), key=lambda kv: (-kv[1], kv[0])))
    result.decades = dict(sorted(result.decades.items()))
    result.ndc_classes = dict(sorted(result.ndc_classes.items()))
    return result


def facets_of(works: Iterable[Work], municipalities: Mapping[str, str | None]) -> Facets:
    """Facets of a live answer: the same keys the union index counts, counted here."""
    return facets_from_counts(Counter(k for work in works for k in facet_keys(work_facets(work, municipalities))))
