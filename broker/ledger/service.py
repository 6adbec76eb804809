"""What a patron does with holds, in one place: log in, place, list, show, cancel, change pickup.

The API and the CLI call this; it owns the rules that are the broker's, not the member's:
a patron acts on their own holds only (another's id is simply not found), cancel online only
while submitted or waiting (the seeds), otherwise the library's name and phone number.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from connectors.base import Capability
from connectors.errors import AuthenticationFailed, ConnectorError, HoldRefused, OutcomeUnknown
from yokodan import Hold, PatronCredentials, RefusalReason
from yokodan.errors import YokodanError

from broker.consortium import Consortium
from broker.ledger.accounts import Accounts
from broker.ledger.display import HoldDisplay
from broker.ledger.holds_repo import HoldLedger, IdempotencyKeyReused, NewHold
from broker.ledger.lifecycle import CANCELLABLE_ONLINE
from broker.ledger.placement import Placement, fingerprint
from broker.ledger.records import HoldRow, Outcome, Transition

log = logging.getLogger(__name__)

# Families that act with the patron's own log-in on every later call (an OPAC web session):
# only for these is the PIN kept, sealed. The others use an agency credential.
_FAMILIES_NEEDING_PATRON_SECRET = frozenset({"html_opac"})


class HoldServiceError(YokodanError):
    status = 400

    def __init__(self, reason: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.params = params


class LoginFailed(HoldServiceError):
    status = 401


class HoldNotFound(HoldServiceError):
    status = 404


class HoldConflict(HoldServiceError):
    status = 409


class HoldRefusedByRule(HoldServiceError):
    status = 422


class MemberUnavailable(HoldServiceError):
    status = 503


@dataclass(frozen=True, slots=True)
class PlaceBody:
    member: str
    record_id: str
    pickup_branch_id: str
    item_id: str | None = None
    card_id: str | None = None
    promised_ready: str | None = None
    promised_until: str | None = None
    # What the patron asked for, for My holds; not part of the hold's identity (a replay with another
    # spelling of the title is the same hold).
    title: str | None = None
    author: str | None = None
    volume: str | None = None

    def identity(self) -> dict[str, object]:
        return {
            "member": self.member, "record_id": self.record_id, "item_id": self.item_id,
            "pickup_branch_id": self.pickup_branch_id, "card_id": self.card_id,
        }  # fmt: skip


class HoldService:
    def __init__(
        self,
        consortium: Consortium,
        ledger: HoldLedger,
        accounts: Accounts,
        placement: Placement,
        gateway_for: Callable[[str], Any],
        *,
        node: str,
        lease_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consortium = consortium
        self.ledger = ledger
        self.accounts = accounts
        self.placement = placement
        self.gateway_for = gateway_for
        self.node = node
        self.lease_s = lease_s
        self.clock = clock

    # --- log-in -------------------------------------------------------------------------

    async def login(self, member: str, card_number: str, pin: str | None, *, account_id: str | None = None) -> tuple[str, str]:
        """Verify a card with its member, attach it to the (new or given) account; answers (account, token)."""
        if member not in {m.id for m in self.consortium.members}:
            raise LoginFailed("unknown_member", f"no member {member!r} in this consortium")
        gateway = self.gateway_for(member)
        try:
            await gateway.lookup_patron(PatronCredentials(card_number=card_number, pin=pin))
        except AuthenticationFailed as exc:
            raise LoginFailed(exc.reason, "the card number or PIN was not accepted by the library") from None
        except ConnectorError as exc:
            raise MemberUnavailable(RefusalReason.MEMBER_UNREACHABLE.value, f"the library's system did not answer ({exc.reason})") from None
        keep_pin = getattr(gateway, "kind", None) in _FAMILIES_NEEDING_PATRON_SECRET
        card = await self.accounts.add_card(member, card_number, pin=pin, keep_pin=keep_pin, account_id=account_id)
        token = await self.accounts.issue_token(card.account_id)
        return card.account_id, token

    # --- holds --------------------------------------------------------------------------

    async def place(self, account_id: str, body: PlaceBody, idempotency_key: str | None) -> tuple[HoldRow, bool]:
        """Answers (row, created): a replayed key answers the stored row with created False."""
        card = await self._card_for(account_id, body)
        identity = body.identity() | {"card_id": card.id}
        # No key from the client: derive one from the body, so a double-clicked form places once.
        key = idempotency_key or "derived-" + hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:40]
        existing = {row.client_key for row in await self.ledger.list_for(account_id)}
        new = NewHold(
            account_id=account_id, card_id=card.id, client_key=key, fingerprint=fingerprint(identity),
            member=body.member, record_id=body.record_id, item_id=body.item_id, pickup_branch_id=body.pickup_branch_id,
            promised_ready=_date(body.promised_ready), promised_until=_date(body.promised_until),
            display_enc=self._sealed_display(body.title, body.author, body.volume),
        )  # fmt: skip
        row = await self.placement.place(new)
        return row, key not in existing

    async def place_series(
        self, account_id: str, volumes: list[PlaceBody], idempotency_key: str, request_identity: dict[str, object]
    ) -> tuple[list[HoldRow], bool]:
        """Volumes in reading order: the first placed now, each next one when the one before is ready.

        One key for the whole series: volume n is the ledger row `<key>#n`, so a replay (same key, same
        request) answers the series already made, without planning again — even if a fresh plan would now
        choose other copies. The same key with another request is refused (IdempotencyKeyReused).
        Answers (rows, created).
        """
        made = await self.series_by_key(account_id, idempotency_key)
        if made:
            if made[0].fingerprint != fingerprint(request_identity | {"position": 1}):
                raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
            return made, False
        series_id = "s-" + hashlib.sha256(f"{account_id}\x00{idempotency_key}".encode()).hexdigest()[:30]
        news = []
        for position, body in enumerate(volumes, start=1):
            card = await self._card_for(account_id, body)
            news.append(NewHold(
                account_id=account_id, card_id=card.id, client_key=f"{idempotency_key}#{position}",
                fingerprint=fingerprint(request_identity | {"position": position}),
                member=body.member, record_id=body.record_id, item_id=body.item_id, pickup_branch_id=body.pickup_branch_id,
                promised_ready=_date(body.promised_ready), promised_until=_date(body.promised_until),
                series_id=series_id, series_position=position,
                display_enc=self._sealed_display(body.title, body.author, body.volume),
            ))  # fmt: skip
        return await self.placement.place_series(news), True

    async def series_by_key(self, account_id: str, idempotency_key: str) -> list[HoldRow]:
        """The volumes a series placement under this key made, in reading order (empty: none yet)."""
        pattern = re.compile(re.escape(idempotency_key) + r"#\d+")
        rows = [r for r in await self.ledger.list_for(account_id) if r.series_id and pattern.fullmatch(r.client_key)]
        return sorted(rows, key=lambda r: r.series_position or 0)

    async def get(self, account_id: str, hold_id: str) -> tuple[HoldRow, list[Transition]]:
        row = await self.ledger.get(account_id, hold_id)
        if row is None:
            raise HoldNotFound(RefusalReason.HOLD_NOT_FOUND.value, "no such hold")
        return row, await self.ledger.transitions(row.id)

    async def list(self, account_id: str) -> list[HoldRow]:
        return await self.ledger.list_for(account_id)

    def member_name(self, member_id: str) -> str | None:
        """The library's name (None for a member the consortium file no longer lists)."""
        try:
            return self.consortium.member(member_id).name
        except KeyError:
            return None

    def branch_name(self, branch_id: str) -> str | None:
        try:
            return self.consortium.branch(branch_id).name
        except KeyError:
            return None

    def display(self, row: HoldRow) -> HoldDisplay | None:
        """What the patron asked for (title, author, volume), opened from its seal; None if not kept."""
        return HoldDisplay.open(self.accounts.vault, row.display_enc)

    def _sealed_display(self, title: str | None, author: str | None, volume: str | None) -> str | None:
        shown = HoldDisplay.of(title, author, volume)
        return shown.seal(self.accounts.vault) if shown else None

    async def cancel(self, account_id: str, hold_id: str) -> HoldRow:
        row, _ = await self.get(account_id, hold_id)
        if row.outcome is Outcome.DEFERRED and row.series_id:
            await self.ledger.drop_deferred(row.series_id, "cancelled")
            return (await self.get(account_id, hold_id))[0]
        if row.outcome is not Outcome.PLACED:
            raise HoldConflict("not_placed", "this hold is not placed (refused, or its placement is still being settled)")
        if row.state not in CANCELLABLE_ONLINE:
            raise self._not_cancellable(row)
        try:
            await self._at_member(row, lambda gateway, patron, member_hold_id: gateway.cancel_hold(patron, member_hold_id))
        except HoldRefusedByRule as refused:
            if refused.reason == RefusalReason.NOT_CANCELLABLE:
                raise self._not_cancellable(row) from None
            raise
        if row.series_id:
            await self.ledger.drop_deferred(row.series_id, "cancelled")
        return (await self.get(account_id, hold_id))[0]

    async def change_pickup(self, account_id: str, hold_id: str, branch_id: str) -> HoldRow:
        """Move the pickup branch at the member while the hold is still queued (submitted / waiting).

        Members that cannot take the change online (no CHANGE_PICKUP), and holds the member is already
        processing, get `not_changeable_online` with the library's name and phone, as cancel does.
        A lost answer is reconciled by reading the hold back: the change landed or it did not (a pickup
        set twice is harmless, so the patron may simply try again).
        """
        row, _ = await self.get(account_id, hold_id)
        try:
            branch = self.consortium.branch(branch_id)
        except KeyError:
            raise HoldRefusedByRule(RefusalReason.PICKUP_NOT_ALLOWED.value, f"no branch {branch_id!r}") from None
        if not branch.pickup_point:
            raise HoldRefusedByRule(RefusalReason.PICKUP_NOT_ALLOWED.value, f"{branch.name} is not a pickup point")
        if row.outcome is not Outcome.PLACED:
            raise HoldConflict("not_placed", "this hold is not placed (refused, or its placement is still being settled)")
        if branch_id == row.pickup_branch_id:
            return row  # already there: nothing to ask the member
        if row.state not in CANCELLABLE_ONLINE:
            raise self._not_changeable(row, f"once a hold is {row.state}, its pickup can be changed only by phone or at the counter")
        gateway = self.gateway_for(row.member)
        if not gateway.supports(Capability.CHANGE_PICKUP):
            raise self._not_changeable(row, "this library does not take pickup changes online: please call")
        try:
            await self._at_member(
                row,
                lambda gateway, patron, member_hold_id: gateway.change_pickup(patron, member_hold_id, branch_id),
                read_back=lambda hold: hold.pickup_branch_id == branch_id,
            )
        except HoldRefusedByRule as refused:
            if refused.reason == RefusalReason.NOT_CHANGEABLE:
                raise self._not_changeable(row, "the library is already preparing this hold: please call to change the pickup") from None
            raise
        return (await self.get(account_id, hold_id))[0]

    async def _at_member(
        self,
        row: HoldRow,
        act: Callable[[Any, PatronCredentials, str], Awaitable[Hold]],
        *,
        read_back: Callable[[Hold], bool] | None = None,
    ) -> None:
        """A patron's own change at the member (cancel, new pickup), under the hold's lease.

        The member's answer is recorded as the poller would; a refusal keeps its reason. After a lost
        answer (OutcomeUnknown) with `read_back`, the hold is read back at once: what the member now
        says is recorded, and `read_back(hold)` says whether the change landed (if not: MemberUnavailable,
        nothing changed). Without it, or when the read fails too, the poller's next look settles it.
        """
        leased = await self.ledger.lease_placed(row.id, node=self.node, lease_s=self.lease_s, now=self.clock())
        if leased is None:
            raise HoldConflict("busy", "this hold is being updated; try again in a moment")
        card = await self.accounts.card(row.account_id, row.card_id)
        assert card is not None and row.member_hold_id is not None
        try:
            hold = await act(self.gateway_for(row.member), PatronCredentials(card_number=card.card_number, pin=card.pin), row.member_hold_id)
        except HoldRefused as exc:
            await self.ledger.release(leased, node=self.node, next_check_at=self.clock(), failed=False)
            raise HoldRefusedByRule(exc.reason, exc.message) from None
        except OutcomeUnknown as exc:
            if read_back is None:
                await self.ledger.release(leased, node=self.node, next_check_at=self.clock(), failed=True)
                raise MemberUnavailable(RefusalReason.MEMBER_UNREACHABLE.value, f"the library's system did not answer ({exc.reason})") from None
            await self._read_back(leased, card, read_back)
            return
        except ConnectorError as exc:
            await self.ledger.release(leased, node=self.node, next_check_at=self.clock(), failed=True)
            raise MemberUnavailable(RefusalReason.MEMBER_UNREACHABLE.value, f"the library's system did not answer ({exc.reason})") from None
        await self.ledger.advance(leased, hold, node=self.node, next_check_at=self.clock())

    async def _read_back(self, leased: HoldRow, card: Any, landed: Callable[[Hold], bool]) -> None:
        """After a lost answer to a change: ask the member how the hold stands, record it, and say."""
        assert leased.member_hold_id is not None
        patron = PatronCredentials(card_number=card.card_number, pin=card.pin)
        try:
            hold = await self.gateway_for(leased.member).hold_status(patron, leased.member_hold_id)
        except ConnectorError as exc:
            await self.ledger.release(leased, node=self.node, next_check_at=self.clock(), failed=True)
            raise MemberUnavailable(
                RefusalReason.MEMBER_UNREACHABLE.value,
                f"the library's system did not confirm the change ({exc.reason}); the hold is checked again shortly",
            ) from None
        await self.ledger.advance(leased, hold, node=self.node, next_check_at=self.clock())
        log.info("hold %s at %s: change answer lost, read back (%s)", leased.id, leased.member, "landed" if landed(hold) else "not landed")
        if not landed(hold):
            raise MemberUnavailable(
                RefusalReason.MEMBER_UNREACHABLE.value, "the library's system lost the answer and has not made the change: please try again"
            )

    def _not_changeable(self, row: HoldRow, why: str) -> HoldRefusedByRule:
        member = self.consortium.member(row.member)
        return HoldRefusedByRule(
            RefusalReason.NOT_CHANGEABLE_ONLINE.value, f"{member.name}: {why}",
            library=member.name, phone=member.phone, state=str(row.state),
        )  # fmt: skip

    def _not_cancellable(self, row: HoldRow) -> HoldRefusedByRule:
        member = self.consortium.member(row.member)
        return HoldRefusedByRule(
            RefusalReason.NOT_CANCELLABLE_ONLINE.value,
            f"{member.name}: once a hold is {row.state}, it can be cancelled only by phone or at the counter",
            library=member.name,
            phone=member.phone,
            state=str(row.state),
        )

    async def _card_for(self, account_id: str, body: PlaceBody):  # type: ignore[no-untyped-def]
        cards = await self.accounts.cards(account_id)
        if body.card_id is not None:
            chosen = [c for c in cards if c.id == body.card_id]
        else:
            chosen = [c for c in cards if c.member == body.member]
        if not chosen:
            raise HoldRefusedByRule(RefusalReason.NO_CARD.value, f"no card of {body.member} on this account")
        return chosen[0]


def _date(value: str | None):  # type: ignore[no-untyped-def]
    from datetime import date

    return date.fromisoformat(value) if value else None
