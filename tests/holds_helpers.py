"""Shared builders for the hold-planner tests: shipped consortia, copies, patrons, live views."""

from __future__ import annotations

from datetime import date
from typing import Any

from broker.consortium import CONSORTIA_DIR, Consortium, load_consortium
from broker.holds.patron import Card, Patron
from yokodan import Availability, Holding, MaterialType, PatronStatus, Record


def shipped(name: str) -> Consortium:
    return load_consortium(CONSORTIA_DIR / f"{name}.toml")


def with_changes(consortium: Consortium, change: Any) -> Consortium:
    """A re-validated copy after `change(data)` edits the dumped file data in place."""
    data = consortium.model_dump()
    change(data)
    return Consortium.model_validate(data)


def member_data(data: dict[str, Any], member_id: str) -> dict[str, Any]:
    return next(m for m in data["members"] if m["id"] == member_id)


def branch_data(data: dict[str, Any], branch_id: str) -> dict[str, Any]:
    return next(b for m in data["members"] for b in m["branches"] if b["id"] == branch_id)


def copy(
    member: str,
    branch: str | None,
    availability: Availability = Availability.AVAILABLE,
    *,
    record_id: str = "R1",
    item_id: str | None = None,
    status_text: str = "",
    due: date | None = None,
    queue: int | None = None,
    material: MaterialType = MaterialType.BOOK,
    volume: str | None = None,
) -> Record:
    holding = Holding(
        member=member, branch_id=branch, availability=availability, status_text=status_text,
        due_date=due, queue_length=queue, item_id=item_id or f"{branch or member}#1",
    )
    return Record(member=member, local_id=record_id, title="こころ", material_type=material, volume=volume, holdings=[holding])


def patron(*members: str, **fields: Any) -> Patron:
    return Patron(cards=[Card(member=m, card_number=f"1000000{i + 1}") for i, m in enumerate(members)], **fields)


def clean(*members: str, **fields: Any) -> dict[str, PatronStatus]:
    return {m: PatronStatus(member=m, **fields) for m in members}
