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
from index.facets import Facets, facets_of
from index.store import CachedResult


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


def work_description(work: Work) -> dict[str, Any]:
    """What a work is, before its holdings: the first fields of a work's view (and its session bytes)."""
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
        "matched_by_title": work.matched_by_title,
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
        **work_description(work),
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
    """Counts for narrowing a live answer: the same definition the union index counts (index.facets)."""
    return facets_json(facets_of(works, municipalities))


def facets_json(facets: Facets) -> dict[str, Any]:
    return {
        "members": facets.members,
        "municipalities": facets.municipalities,
        "decades": {str(decade): n for decade, n in facets.decades.items()},  # JSON keys are strings
        "ndc_classes": facets.ndc_classes,
        "available_now": facets.available_now,
    }


def cached_view(cached: CachedResult) -> dict[str, Any]:
    """The union index's instant answer: stored works, each with its age."""
    return {
        "total": cached.total,
        "works": [{**c.work, "work_id": c.work_id, "cached": True, "age_s": round(c.age_seconds)} for c in cached.works],
        "facets": facets_json(cached.facets) if cached.facets is not None else None,
    }
