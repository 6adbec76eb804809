"""Placing a hold exactly once through any fault.

The rule, in the order it runs:
1. The intent is committed (with the client's Idempotency-Key and a fingerprint of the body)
   *before* the member is called; the member sees our row id as its idempotency key.
2. The member's answer is committed after: placed (with its hold id) or refused (named reason).
3. An answer that may have been lost (read timeout, connection dropped after sending, a 5xx or
   a garbled body after a POST) is *unknown*: the hold is looked up with `find_hold(key)` before
   anything else, now and then on a schedule. A hold is re-sent only when the member says it
   has none and the first request is certainly dead (older than `resend_after_s`).
4. A request that never left the machine (connect refused, connect timeout) is safe: the
   placement is refused as `member_unreachable` and the patron may try again.
A lease on the row says which node may talk to the member about it; a crashed node's lease
runs out and a restarted node (or another) reconciles.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson

from connectors.errors import ConnectorError, RequestNotSent, TargetHTTPError

from broker.member_operations import MemberNotContacted
from yokodan import Hold, HoldRequest, PatronCredentials, RefusalReason
from yokodan.holds import HoldIntent, Placed, PlacementResult, Refused

from broker.ledger.accounts import Accounts
from broker.ledger.holds_repo import HoldLedger, NewHold
from broker.ledger.records import HoldRow, Outcome

log = logging.getLogger(__name__)


class HoldGateway(Protocol):
    """The connector contract's hold calls that placement needs (connectors.base.Connector)."""

    async def prepare_hold(self, patron: PatronCredentials, request: HoldRequest) -> HoldIntent: ...

    async def place(self, patron: PatronCredentials, intent: HoldIntent) -> PlacementResult: ...

    async def find_hold(self, patron: PatronCredentials, intent: HoldIntent) -> Hold | None: ...


@dataclass(frozen=True, slots=True)
class PlacementTimings:
    lease_s: float = 60.0  # longer than any member's deadline: a live node finishes within it
    recheck_s: float = 5.0  # first look-up after a lost answer
    max_recheck_s: float = 3600.0
    resend_after_s: float = 120.0  # a first request older than this can no longer land
    poll_s: float = 900.0  # first status poll after placement


def fingerprint(body: dict[str, object]) -> str:
    """The body's identity for the IETF Idempotency-Key rule (same key + other body = 422)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Placement:
    def __init__(
        self,
        ledger: HoldLedger,
        accounts: Accounts,
        gateway_for: Callable[[str], HoldGateway],
        *,
        node: str,
        timings: PlacementTimings = PlacementTimings(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.accounts = accounts
        self.gateway_for = gateway_for
        self.node = node
        self.timings = timings
        self.clock = clock

    async def place(self, new: NewHold) -> HoldRow:
        """Place `new` once; a repeated key answers the stored row (possibly still unsettled)."""
        row, created = await self.ledger.begin(new, node=self.node, lease_s=self.timings.lease_s, now=self.clock())
        if created:
            return await self._send(row)
        if row.outcome in (Outcome.PLACED, Outcome.REFUSED):
            return row
        leased = await self.ledger.take_lease(row.id, node=self.node, lease_s=self.timings.lease_s, now=self.clock())
        if leased is None:
            return row  # another node is talking to the member about it right now
        return await self.reconcile(leased)

    async def place_series(self, volumes: list[NewHold]) -> list[HoldRow]:
        """A set's volumes in the planner's order: the first now, each next one when the one before is ready.

        Reserved together, volumes do not arrive in order (DOMAIN.md); placing each one when its
        predecessor is on the hold shelf is the spacing the seeds ask patrons to do by hand.
        """
        first, *rest = volumes
        rows = [await self.place(first)]
        for later in rest:
            row, _ = await self.ledger.begin(later, node=self.node, lease_s=self.timings.lease_s, now=self.clock(), deferred=True)
            rows.append(row)
        return rows

    async def place_next_in_series(self, series_id: str) -> HoldRow | None:
        """Called when a series volume becomes ready: place the next deferred one (once, whoever calls)."""
        waiting = await self.ledger.deferred_in_series(series_id)
        if not waiting:
            return None
        row = await self.ledger.release_deferred(waiting[0].id, node=self.node, lease_s=self.timings.lease_s, now=self.clock())
        return await self._send(row) if row else None

    async def reconcile_due(self, limit: int = 50) -> int:
        """Settle what crashed nodes and lost answers left unsettled; answers how many were looked at."""
        rows = await self.ledger.claim_unsettled(
            node=self.node, lease_s=self.timings.lease_s, now=self.clock(), limit=limit
        )
        for row in rows:
            await self.reconcile(row)
        return len(rows)

    async def reconcile(self, row: HoldRow) -> HoldRow:
        """A leased, unsettled row: ask the member first; re-send only when it is certainly not there."""
        card, gateway = await self._card(row), self.gateway_for(row.member)
        try:
            found = await gateway.find_hold(card, _intent_of(row))
        except ConnectorError as exc:
            log.info("hold %s at %s: look-up failed (%s); retrying later", row.id, row.member, exc.reason)
            return await self._unknown(row)
        if found is not None:
            await self.ledger.settle_placed(row.id, found, node=self.node, next_check_at=self._poll_at())
            return await self._reload(row)
        age_s = self.clock() - _epoch(row.created_at)
        if age_s >= self.timings.resend_after_s:
            log.info("hold %s at %s: not at the member after %.0f s; sending again", row.id, row.member, age_s)
            return await self._send(row)
        return await self._unknown(row)

    async def _send(self, row: HoldRow) -> HoldRow:
        card, gateway = await self._card(row), self.gateway_for(row.member)
        try:
            intent = await self._prepared(row, card, gateway)
            result = await gateway.place(card, intent)
        except RequestNotSent as exc:
            # Never reached the member: nothing to reconcile, the patron may simply try again.
            if isinstance(exc, MemberNotContacted):  # not asked at all: maintenance, an open circuit, no free slot
                return await self._refuse(row, RefusalReason.MEMBER_UNREACHABLE, f"the library's system was not asked ({exc.reason}): {exc.message}")
            return await self._refuse(row, RefusalReason.MEMBER_UNREACHABLE, f"the library's system did not answer ({exc.reason})")
        except TargetHTTPError as exc:
            # The member answered with an error status (4xx, 503): it did not place the hold.
            return await self._refuse(row, RefusalReason.MEMBER_UNREACHABLE, f"the library's system answered {exc.status}")
        except ConnectorError as exc:
            log.info("hold %s at %s: outcome unknown (%s)", row.id, row.member, exc.reason)
            return await self._after_lost_answer(row)
        if isinstance(result, Placed):
            await self.ledger.settle_placed(row.id, result.hold, node=self.node, next_check_at=self._poll_at())
            return await self._reload(row)
        if isinstance(result, Refused):
            return await self._refuse(row, result.reason, result.message)
        log.info("hold %s at %s: outcome unknown (answer lost)", row.id, row.member)
        return await self._after_lost_answer(row)

    async def _prepared(self, row: HoldRow, card: PatronCredentials, gateway: HoldGateway) -> HoldIntent:
        """The intent, recorded before anything is sent (an HTML OPAC needs it to find the hold later)."""
        if row.intent is not None:
            return HoldIntent.model_validate_json(row.intent)
        intent = await gateway.prepare_hold(card, _request_of(row))
        await self.ledger.save_intent(row.id, intent.model_dump_json(), node=self.node)
        return intent

    async def _refuse(self, row: HoldRow, reason: str, message: str) -> HoldRow:
        await self.ledger.settle_refused(row.id, str(reason), message, node=self.node)
        return await self._reload(row)

    async def _after_lost_answer(self, row: HoldRow) -> HoldRow:
        """Sent, answer lost or unreadable: the member may have it. Look it up at once, then on a schedule."""
        await self.ledger.mark_unknown(row.id, node=self.node, next_check_at=self.clock() + self.timings.recheck_s)
        leased = await self.ledger.take_lease(row.id, node=self.node, lease_s=self.timings.lease_s, now=self.clock())
        return await self._lookup_once(leased) if leased else await self._reload(row)

    async def _lookup_once(self, row: HoldRow) -> HoldRow:
        """Right after a lost answer: found settles it; anything else waits for the schedule (no re-send yet)."""
        try:
            found = await self.gateway_for(row.member).find_hold(await self._card(row), _intent_of(row))
        except ConnectorError:
            found = None
        if found is not None:
            await self.ledger.settle_placed(row.id, found, node=self.node, next_check_at=self._poll_at())
            return await self._reload(row)
        return await self._unknown(row)

    async def _unknown(self, row: HoldRow) -> HoldRow:
        backoff = min(self.timings.recheck_s * 2 ** min(row.check_failures, 12), self.timings.max_recheck_s)
        await self.ledger.mark_unknown(row.id, node=self.node, next_check_at=self.clock() + backoff)
        return await self._reload(row)

    async def _card(self, row: HoldRow) -> PatronCredentials:
        card = await self.accounts.card(row.account_id, row.card_id)
        if card is None:  # cards cascade with their holds: a missing one is a broken database
            raise LookupError(f"hold {row.id}: its card is gone")
        return PatronCredentials(card_number=card.card_number, pin=card.pin)

    async def _reload(self, row: HoldRow) -> HoldRow:
        fresh = await self.ledger.by_id(row.id)
        assert fresh is not None
        return fresh

    def _poll_at(self) -> float:
        return self.clock() + self.timings.poll_s


def _request_of(row: HoldRow) -> HoldRequest:
    return HoldRequest(
        member=row.member,
        record_id=row.record_id,
        item_id=row.item_id,
        pickup_branch_id=row.pickup_branch_id,
        idempotency_key=row.member_key,
    )


def _intent_of(row: HoldRow) -> HoldIntent:
    """The recorded intent; a crash before it was recorded means nothing was sent: the bare request."""
    return HoldIntent.model_validate_json(row.intent) if row.intent else HoldIntent(request=_request_of(row))


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
