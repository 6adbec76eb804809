"""The hold half of the shared vocabulary: patrons, hold requests, holds, states, refusal reasons.

Connectors report holds in these words, the planner and the ledger decide with them and the
API serialises them. `RefusalReason` is the one closed list of reason codes (cf. Koha's hold
rules): every refusal anywhere in the project names one, so a caller can act on it.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

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
    NOT_CHANGEABLE = "not_changeable"  # the member will not move the pickup any more (being processed, on the shelf)
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
    NOT_CHANGEABLE_ONLINE = "not_changeable_online"  # pickup changes by phone or at the counter only (with the phone)


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




# --- what the hold operations answer (connectors -> planner, ledger, API) ------------------------


class PickupOption(BaseModel):
    """One branch as a pickup choice for one patron and record, as the member sees it.

    `excluded_reason` set: the member names this branch but will not deliver there for this
    request (not a pickup point, closed); the planner explains it instead of hiding it.
    """

    model_config = ConfigDict(frozen=True)

    branch_id: str  # the consortium's branch id
    label: str  # the member's name for it, as it would show it to the patron
    is_default: bool = False  # the member's own preselection (the patron's home library)
    excluded_reason: RefusalReason | None = None
    message: str = ""  # the member's words for the exclusion, where it gave any

    @property
    def allowed(self) -> bool:
        return self.excluded_reason is None


class HoldCheck(BaseModel):
    """A pre-check of one hold request (cf. VuFind's checkRequestIsValid): nothing is placed.

    Empty `reasons`: nothing the member reports stands in the way (the member may still refuse).
    """

    model_config = ConfigDict(frozen=True)

    reasons: list[RefusalReason] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.reasons


class HoldIntent(BaseModel):
    """What the ledger records *before* a placement is sent, and passes back to look it up.

    Protocols that carry the idempotency key (REST, NCIP) find the hold by `request`'s key; an
    HTML OPAC carries none, so it recognises the new hold on the patron's "my holds" page by
    record and pickup among holds that were not there before (`holds_before`). The caller owns
    this value (it is plain data, JSON-serialisable), so lookup survives a restart.
    """

    model_config = ConfigDict(frozen=True)

    request: HoldRequest
    holds_before: frozenset[str] = frozenset()  # the member's hold ids of this patron before sending

    @property
    def idempotency_key(self) -> str:
        return self.request.idempotency_key


class Placed(BaseModel):
    """The member placed the hold (or already had it under this idempotency key)."""

    model_config = ConfigDict(frozen=True)

    outcome: Literal["placed"] = "placed"
    hold: Hold


class Refused(BaseModel):
    """The member decided: no hold. Nothing was placed."""

    model_config = ConfigDict(frozen=True)

    outcome: Literal["refused"] = "refused"
    reason: RefusalReason
    message: str = ""


class Unknown(BaseModel):
    """The request may have reached the member and no answer says what it did.

    The ledger keeps the intent and reconciles later with `find_hold(patron, intent)`.
    """

    model_config = ConfigDict(frozen=True)

    outcome: Literal["unknown"] = "unknown"
    idempotency_key: str
    message: str = ""


PlacementResult = Annotated[Placed | Refused | Unknown, Field(discriminator="outcome")]


class CancelOutcome(StrEnum):
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the member said no (`reason`): e.g. not_cancellable once secured
    UNKNOWN = "unknown"  # sent, answer lost: look the hold up before saying anything
    FAILED = "failed"  # certainly not done (not sent, or the member answered an error): may be retried


class CancelResult(BaseModel):
    """The result for one hold id of a batch cancel."""

    model_config = ConfigDict(frozen=True)

    hold_id: str
    outcome: CancelOutcome
    hold: Hold | None = None  # the hold as cancelled (CANCELLED)
    reason: RefusalReason | None = None  # REFUSED
    error: str | None = None  # FAILED / UNKNOWN: the connector error's reason code
    message: str = ""
