"""Patrons and holds of one simulated member ILS, shared by every protocol that places holds.

The REST, NCIP and HTML OPAC sandboxes all answer from one `HoldLedger` per
member, so hold rules behave the same whichever protocol a member speaks.
Rules follow the seeds (DOMAIN.md): one hold per title per patron, none on what
the patron has on loan, any overdue item blocks new holds, a per-card limit,
and cancellation (or a pickup change) online only while a hold is submitted or waiting.

Patrons are deterministic: cards 10000001…10000010, PIN "1234"; 10000009 has an
overdue loan (blocked) and 10000010 an expired card.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

from yokodan import Availability, HoldState
from sandbox.holdings import HeldWork

PIN = "1234"
CARD_NUMBERS = tuple(str(10000001 + i) for i in range(10))
OVERDUE_CARD = "10000009"
EXPIRED_CARD = "10000010"
MAX_HOLDS = 10
HOLD_SHELF_DAYS = 7
# Words the simulated ILS shows for each state (Okayama / Aomori vocabulary).
HOLD_WORDS = {
    HoldState.SUBMITTED: "予約申込",
    HoldState.WAITING: "予約中",
    HoldState.SECURED: "準備中",
    HoldState.IN_TRANSIT: "配送中",
    HoldState.READY: "貸出可能",
    HoldState.COLLECTED: "貸出済",
    HoldState.EXPIRED: "取置期限切れ",
    HoldState.CANCELLED: "取消",
}
_CANCELLABLE = {HoldState.SUBMITTED, HoldState.WAITING}
_NOT_HOLDABLE = {Availability.LIBRARY_USE_ONLY, Availability.NOT_FOR_LOAN}


class Refusal(Exception):
    """A refused hold operation; `code` is one of the broker's named refusal reasons."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SandboxPatron:
    card_number: str
    pin: str
    loans: list[str] = field(default_factory=list)  # record ids on loan
    overdue: int = 0
    card_expired: bool = False
    inactive: bool = False  # unused for 2 years (Okayama): blocked online until renewed

    @property
    def block_reasons(self) -> list[str]:
        return [code for code, on in (("overdue", self.overdue), ("card_expired", self.card_expired), ("inactive", self.inactive)) if on]


@dataclass
class SandboxHold:
    hold_id: str
    card_number: str
    record_id: str
    item_id: str | None
    pickup_code: str
    state: HoldState
    queue_position: int | None
    idempotency_key: str | None
    ready_until: date | None = None

    @property
    def status_word(self) -> str:
        return HOLD_WORDS[self.state]


class HoldLedger:
    """Holds at one member, keyed by hold id; deterministic ids per member."""

    def __init__(self, member_id: str, held: list[HeldWork], pickup_codes: set[str], today: date | None = None) -> None:
        self.member_id = member_id
        self.today = today or date.today()
        self.pickup_codes = pickup_codes
        self._works = {h.local_id: h for h in held}
        first_loan = held[0].local_id if held else ""
        self.patrons = {card: SandboxPatron(card, PIN) for card in CARD_NUMBERS}
        self.patrons[OVERDUE_CARD].loans.append(first_loan)
        self.patrons[OVERDUE_CARD].overdue = 1
        self.patrons[EXPIRED_CARD].card_expired = True
        self.holds: dict[str, SandboxHold] = {}
        self._ids = itertools.count(1)
        # Chaos settings (protocol_options): a member that does not de-duplicate idempotency keys
        # shows a hold sent twice as two holds; the hold limit can be lifted for load tests.
        self.dedupe_keys = True
        self.max_holds = MAX_HOLDS

    def enrol(self, patron: SandboxPatron) -> None:
        """Issue one more card (the test patrons of `sandbox.patrons`); a card number is issued once."""
        if patron.card_number in self.patrons:
            raise ValueError(f"{self.member_id}: card {patron.card_number} is already issued")
        self.patrons[patron.card_number] = patron

    def authenticate(self, card_number: str, pin: str | None) -> SandboxPatron:
        patron = self.patrons.get(card_number)
        if patron is None:
            raise Refusal("patron_not_found", "no such card")
        if pin is not None and pin != patron.pin:
            raise Refusal("authentication_failed", "wrong PIN")
        return patron

    def holds_of(self, card_number: str) -> list[SandboxHold]:
        return [h for h in self.holds.values() if h.card_number == card_number and h.state is not HoldState.CANCELLED]

    def find_by_key(self, card_number: str, key: str) -> SandboxHold | None:
        return next((h for h in self.holds.values() if h.card_number == card_number and h.idempotency_key == key), None)

    def place(self, card_number: str, record_id: str, item_id: str | None, pickup_code: str, key: str | None) -> SandboxHold:
        patron = self.authenticate(card_number, None)
        if self.dedupe_keys and key is not None and (existing := self.find_by_key(card_number, key)) is not None:
            return existing  # the same request again: answer it, never place a second hold
        held = self._works.get(record_id)
        if held is None:
            raise Refusal("record_not_found", f"no record {record_id}")
        if pickup_code not in self.pickup_codes:
            raise Refusal("invalid_pickup", f"{pickup_code} is not a pickup point")
        if patron.block_reasons:
            raise Refusal("patron_blocked", ", ".join(patron.block_reasons))
        active = self.holds_of(card_number)
        if len(active) >= self.max_holds:
            raise Refusal("too_many_holds", f"limit of {self.max_holds} holds reached")
        if any(h.record_id == record_id for h in active):
            raise Refusal("already_held", "this title is already on hold for this card")
        if record_id in patron.loans:
            raise Refusal("already_on_loan", "this title is on loan to this card")
        copies = [c for c in held.copies if item_id is None or c.barcode == item_id]
        if item_id is not None and not copies:
            raise Refusal("record_not_found", f"no item {item_id}")
        if copies and all(c.availability in _NOT_HOLDABLE for c in copies):
            raise Refusal("not_holdable", "reference copies only")
        waiting_before = sum(1 for h in self.holds.values() if h.record_id == record_id and h.state in _CANCELLABLE)
        hold = SandboxHold(
            hold_id=f"{self.member_id}-H{next(self._ids):05d}",
            card_number=card_number,
            record_id=record_id,
            item_id=item_id,
            pickup_code=pickup_code,
            state=HoldState.WAITING,
            queue_position=waiting_before + 1,
            idempotency_key=key,
        )
        self.holds[hold.hold_id] = hold
        return hold

    def get(self, card_number: str, hold_id: str) -> SandboxHold:
        hold = self.holds.get(hold_id)
        if hold is None or hold.card_number != card_number:
            raise Refusal("hold_not_found", f"no hold {hold_id} for this card")
        return hold

    def cancel(self, card_number: str, hold_id: str) -> SandboxHold:
        hold = self.get(card_number, hold_id)
        if hold.state not in _CANCELLABLE:
            raise Refusal("not_cancellable", f"hold is {hold.status_word}: cancel by phone or at the counter")
        hold.state = HoldState.CANCELLED
        return hold

    def change_pickup(self, card_number: str, hold_id: str, pickup_code: str) -> SandboxHold:
        """Move a hold's pickup while it is still queued (as cancel: once processing starts, by phone)."""
        hold = self.get(card_number, hold_id)
        if hold.state not in _CANCELLABLE:
            raise Refusal("not_changeable", f"hold is {hold.status_word}: change the pickup by phone or at the counter")
        if pickup_code not in self.pickup_codes:
            raise Refusal("invalid_pickup", f"{pickup_code} is not a pickup point")
        hold.pickup_code = pickup_code
        return hold

    def advance(self, hold_id: str, state: HoldState, *, ready_until: date | None = None) -> SandboxHold:
        """Move a hold along its lifecycle on the member's clock (`today`; tests set it).

        A hold becoming ready is held until `ready_until` (the member's own pickup-by date) or,
        by default, `HOLD_SHELF_DAYS` from the member's today.
        """
        hold = self.holds[hold_id]
        hold.state = state
        if state is HoldState.READY:
            hold.ready_until = ready_until or self.today + timedelta(days=HOLD_SHELF_DAYS)
        return hold
