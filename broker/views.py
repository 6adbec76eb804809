"""Shapes the API returns: works with holdings grouped member -> branch -> copies.

Plain dicts (serialised with orjson): building them directly is several times
cheaper than pydantic dumps on a 60-member answer (MEASUREMENTS.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from broker.consortium import Consortium
from yokodan import Availability, Holding, TargetStatus, Work
from index.store import CachedResult, Facets


@dataclass(frozen=True, slots=True)
class DisplayNames:
    """Member and branch names, looked up once per process rather than per holding."""

    members: dict[str, str]
    branches: dict[str, str]

    @classmethod
    def of(cls, consortium: Consortium) -> DisplayNames:
        return cls(
            members={m.id: m.name for m in consortium.members},
            branches={b.id: b.name for b in consortium.branches()},
        )


def copy_view(holding: Holding) -> dict[str, Any]:
    return {
        "call_number": holding.call_number,
        "item_id": holding.item_id,
        "availability": holding.availability.value,
        "status_text": holding.status_text,
        "due_date": holding.due_date.isoformat() if holding.due_date else None,
        "collection": holding.collection,
    }


def work_view(work: Work, names: DisplayNames) -> dict[str, Any]:
    members: dict[str, dict[str, Any]] = {}
    for record in work.records:
        entry = members.get(record.member)
        if entry is None:
            entry = members[record.member] = {
                "member": record.member,
                "member_name": names.members.get(record.member, record.member),
                "local_ids": [],
                "branches": {},
            }
        entry["local_ids"].append(record.local_id)
        for holding in record.holdings:
            key = holding.branch_id or f"?{holding.location}"
            branch = entry["branches"].get(key)
            if branch is None:
                branch = entry["branches"][key] = {
                    "branch_id": holding.branch_id,
                    "branch_name": names.branches.get(holding.branch_id or "", holding.location),
                    "copies": [],
                }
            branch["copies"].append(copy_view(holding))
    counts = Counter(h.availability for h in work.holdings)
    return {
        "work_id": work.work_id,
        "title": work.title,
        "title_reading": work.title_reading,
        "authors": work.authors,
        "publisher": work.publisher,
        "year": work.year,
        "isbns": work.isbns,
        "volume": work.volume,
        "match_reasons": work.match_reasons,
        "member_count": len(members),
        "copies": len(work.holdings),
        "available_copies": counts.get(Availability.AVAILABLE, 0),
        "holdings": [{**m, "branches": list(m["branches"].values())} for m in members.values()],
    }


def status_view(status: TargetStatus, names: DisplayNames) -> dict[str, Any]:
    view = status.model_dump(mode="json")
    view["member_name"] = names.members.get(status.member, status.member)
    return view


def facets_view(works: list[Work], municipalities: dict[str, str]) -> dict[str, Any]:
    """Counts for narrowing a live answer: holding member, municipality, decade, NDC class, on the shelf."""
    members: Counter[str] = Counter()
    towns: Counter[str] = Counter()
    decades: Counter[int] = Counter()
    ndc: Counter[str] = Counter()
    available = 0
    for work in works:
        held_by = work.members
        members.update(held_by)
        towns.update({municipalities.get(m, m) for m in held_by})
        if work.year:
            decades[work.year // 10 * 10] += 1
        classes = {r.ndc[0] for r in work.records if r.ndc and r.ndc[0].isdigit()}
        ndc.update(classes)
        available += any(h.availability is Availability.AVAILABLE for h in work.holdings)
    return {
        "members": dict(members.most_common()),
        "municipalities": dict(towns.most_common()),
        "decades": {str(decade): n for decade, n in sorted(decades.items())},  # JSON keys are strings
        "ndc_classes": dict(sorted(ndc.items())),
        "available_now": available,
    }


def _index_facets(facets: Facets | None) -> dict[str, Any] | None:
    if facets is None:
        return None
    return {
        "members": facets.members,
        "municipalities": facets.municipalities,
        "decades": {str(decade): n for decade, n in sorted(facets.decades.items())},
        "ndc_classes": facets.ndc_classes,
        "available_now": facets.available_now,
    }


def cached_view(cached: CachedResult) -> dict[str, Any]:
    """The union index's instant answer: stored works, each with its age."""
    return {
        "total": cached.total,
        "works": [{**c.work, "work_id": c.work_id, "cached": True, "age_s": round(c.age_seconds)} for c in cached.works],
        "facets": _index_facets(cached.facets),
    }
