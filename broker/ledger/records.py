"""The ledger's rows as typed values (what the repositories answer; never raw dicts upstream)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from yokodan import HoldState


class Outcome(StrEnum):
    """Where a placement stands. Only `intent` and `unknown` are ever reconciled with a member."""

    INTENT = "intent"  # committed before the member was called; the call may or may not have happened
    UNKNOWN = "unknown"  # the request may have reached the member; the answer was lost
    PLACED = "placed"  # the member has it (its hold id is known)
    REFUSED = "refused"  # the member (or the broker's rules) said no, for a named reason
    DEFERRED = "deferred"  # a later volume of a series: placed when the one before it is ready


FINISHED_STATES = frozenset({HoldState.COLLECTED, HoldState.EXPIRED, HoldState.CANCELLED})


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: str
    account_id: str
    card_id: str
    client_key: str
    fingerprint: str
    member: str
    record_id: str
    item_id: str | None
    pickup_branch_id: str
    outcome: Outcome
    refusal_reason: str | None
    refusal_message: str | None
    state: HoldState | None
    member_hold_id: str | None
    status_text: str | None
    queue_position: int | None
    ready_until: date | None
    promised_ready: date | None
    promised_until: date | None
    series_id: str | None
    series_position: int | None
    version: int
    lease_owner: str | None
    lease_until: float | None
    next_check_at: float | None
    check_failures: int
    created_at: str
    updated_at: str
    finished_at: str | None
    intent: str | None  # the connector's HoldIntent as JSON, once prepared
    display_enc: str | None  # the title/author/volume the patron asked for, sealed (broker/ledger/display.py)

    @property
    def member_key(self) -> str:
        """The idempotency key the member sees: our row id, unique across patrons and nodes."""
        return self.id

    @property
    def is_final(self) -> bool:
        return self.outcome is Outcome.REFUSED or (self.outcome is Outcome.PLACED and self.state in FINISHED_STATES)

    @classmethod
    def of(cls, row: dict[str, Any]) -> HoldRow:
        values = dict(row)
        values["outcome"] = Outcome(values["outcome"])
        values["state"] = HoldState(values["state"]) if values["state"] else None
        for name in ("ready_until", "promised_ready", "promised_until"):
            values[name] = date.fromisoformat(values[name]) if values[name] else None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Transition:
    hold_id: str
    seq: int
    from_state: HoldState | None
    to_state: HoldState
    member_word: str | None
    at: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> Transition:
        return cls(
            hold_id=row["hold_id"],
            seq=row["seq"],
            from_state=HoldState(row["from_state"]) if row["from_state"] else None,
            to_state=HoldState(row["to_state"]),
            member_word=row["member_word"],
            at=row["at"],
        )
