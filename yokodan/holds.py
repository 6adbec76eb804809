"""The hold half of the shared vocabulary: patrons, hold requests, holds, states, refusal reasons.

Connectors report holds in these words, the planner and the ledger decide with them and the
API serialises them. `RefusalReason` is the one closed list of reason codes (cf. Koha's hold
rules): every refusal anywhere in the project names one, so a caller can act on it.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class HoldState(StrEnum):
    """Hold lifecycle (DOMAIN.md, Aomori's words)."""

    SUBMITTED = "submitted"  # 予約申込
    WAITING = "waiting"  # 確保待ち / 予約中
    SECURED = "secured"  # 確保済み / 準備中
    IN_TRANSIT = "in_transit"  # 配送中
    READY = "ready"  # 貸出可能 at the pickup branch
    COLLECTED = "collected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class RefusalReason(StrEnum):
    """Why a hold cannot be (or was not) placed, planned or changed. Callers branch on these."""

    # --- the member's own verdicts (connectors) -------------------------------------
    AUTHENTICATION_FAILED = "authentication_failed"  # wrong card number or PIN
    PATRON_NOT_FOUND = "patron_not_found"
    PATRON_BLOCKED = "patron_blocked"  # overdue items, expired card, fines (member's word)
    TOO_MANY_HOLDS = "too_many_holds"  # the member's own limit check
    ALREADY_HELD = "already_held"  # one hold per title per patron
    ALREADY_ON_LOAN = "already_on_loan"  # a hold on what the patron has is invalid
    NOT_HOLDABLE = "not_holdable"  # reference copy, in-person-only loan, material type
    RECORD_NOT_FOUND = "record_not_found"
    INVALID_PICKUP = "invalid_pickup"
    HOLD_NOT_FOUND = "hold_not_found"
    NOT_CANCELLABLE = "not_cancellable"  # secured / in transit / ready: by phone or at the counter only
    # --- the broker's own verdicts from the consortium's rules (planner, ledger) -------
    LIMIT_REACHED = "limit_reached"
    DUPLICATE = "duplicate"
    OVERDUE_BLOCK = "overdue_block"
    CARD_EXPIRED = "card_expired"
    CARD_INACTIVE = "card_inactive"
    NO_CARD = "no_card"
    PICKUP_NOT_ALLOWED = "pickup_not_allowed"
    BRANCH_CLOSED = "branch_closed"
    MEMBER_UNREACHABLE = "member_unreachable"
    NOT_RESERVABLE_ONLINE = "not_reservable_online"
    NOT_CANCELLABLE_ONLINE = "not_cancellable_online"


class PatronCredentials(BaseModel):
    """What a member system needs to act for a patron. The PIN never prints or logs."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    card_number: str = Field(min_length=1, max_length=32)
    pin: SecretStr | None = None


class PatronStatus(BaseModel):
    """A member system's view of one patron: enough to decide eligibility, nothing more."""

    member: str
    blocked: bool = False
    block_reasons: list[str] = Field(default_factory=list)  # named codes: overdue, card_expired, fines, inactive
    holds_count: int = Field(default=0, ge=0)
    loans_count: int = Field(default=0, ge=0)
    overdue_count: int = Field(default=0, ge=0)
    loan_record_ids: list[str] = Field(default_factory=list)  # a hold on what one already has is invalid
    hold_record_ids: list[str] = Field(default_factory=list)  # one hold per title per patron
    # What the consortium's rules need beyond the counts (None / empty: the member did not say).
    card_expires: date | None = None  # Takarazuka: renewal every 3 years
    last_used: date | None = None  # Okayama pref: a card unused for 2 years stops working online
    holds_by_material: dict[str, int] = Field(default_factory=dict)  # MaterialType value -> active holds
    loans_by_material: dict[str, int] = Field(default_factory=dict)
    requests_count: int = Field(default=0, ge=0)  # purchase / ILL requests (Takarazuka counts them as holds)
    phone_holds_count: int = Field(default=0, ge=0)
    secured_record_ids: list[str] = Field(default_factory=list)  # secured for the patron: a hold on them is invalid


class HoldRequest(BaseModel):
    """One hold the broker asks one member to place."""

    model_config = ConfigDict(frozen=True)

    member: str
    record_id: str  # the member's own record id (Record.local_id)
    item_id: str | None = None  # a specific copy, where the member allows item-level holds
    pickup_branch_id: str  # the consortium's branch id; the connector maps it to the member's code
    # The broker ledger's key: sent where the protocol carries one, so that after a
    # lost answer the broker looks the hold up instead of placing it twice.
    idempotency_key: str = Field(min_length=8, max_length=64)


class Hold(BaseModel):
    """A hold as the member reports it."""

    member: str
    hold_id: str
    record_id: str
    item_id: str | None = None
    pickup_branch_id: str | None = None
    state: HoldState
    status_text: str = ""  # the member's own word (予約中, 準備中 …)
    queue_position: int | None = Field(default=None, ge=0)
    ready_until: date | None = None
    idempotency_key: str | None = None


