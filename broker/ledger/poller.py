"""The background poller: follows every open hold at its member, gently.

It claims due holds in batches under a lease (so pollers on two nodes, or a restarted one, never
record a transition twice), asks each member at most `per_member` at a time, skips members the
registry says are unavailable (maintenance window, open circuit) without contacting them, and
backs off a hold whose member fails. In the app the gateway is the registry's guarded connector
(broker.member_operations): each call also takes one of the member's slots, which searches share,
so `per_member` is the poller's share of them, and its outcomes feed the member's breaker. A hold becoming ready produces a notice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from connectors.errors import ConnectorError
from yokodan import Hold, HoldState, PatronCredentials

from broker.ledger.accounts import Accounts
from broker.ledger.holds_repo import HoldLedger
from broker.ledger.lifecycle import may_move
from broker.ledger.notices import Notices
from broker.ledger.records import HoldRow

log = logging.getLogger(__name__)


class StatusGateway(Protocol):
    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold: ...


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """How often to ask, by state: a waiting hold changes slowly, a ready one matters daily."""

    waiting_s: float = 6 * 3600
    secured_s: float = 3600
    ready_s: float = 6 * 3600
    failure_s: float = 300
    max_failure_s: float = 6 * 3600
    lease_s: float = 120
    batch: int = 200
    per_member: int = 4

    def interval(self, state: HoldState | None) -> float:
        if state in (HoldState.SECURED, HoldState.IN_TRANSIT):
            return self.secured_s
        if state is HoldState.READY:
            return self.ready_s
        return self.waiting_s

    def backoff(self, failures: int) -> float:
        return min(self.failure_s * 2 ** min(failures, 10), self.max_failure_s)


@dataclass
class PollReport:
    claimed: int = 0
    advanced: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    refused_moves: int = 0


class Poller:
    def __init__(
        self,
        ledger: HoldLedger,
        accounts: Accounts,
        notices: Notices,
        gateway_for: Callable[[str], StatusGateway],
        *,
        node: str,
        unavailable: Callable[[str], str | None] = lambda member: None,
        schedule: PollSchedule = PollSchedule(),
        clock: Callable[[], float] = time.time,
        after_ready: Callable[[HoldRow], Awaitable[object]] | None = None,
    ) -> None:
        self.ledger = ledger
        self.accounts = accounts
        self.notices = notices
        self.gateway_for = gateway_for
        self.node = node
        self.unavailable = unavailable
        self.schedule = schedule
        self.clock = clock
        self.after_ready = after_ready  # e.g. place the next volume of a series

    async def run_once(self) -> PollReport:
        """One pass over the due holds (a batch); the caller's loop decides how often."""
        rows = await self.ledger.claim_due(
            node=self.node, lease_s=self.schedule.lease_s, now=self.clock(), limit=self.schedule.batch
        )
        report = PollReport(claimed=len(rows))
        limits: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(self.schedule.per_member))
        patrons: dict[str, PatronCredentials | None] = {}  # one unsealing per card and pass
        answers = await asyncio.gather(*(self._ask(row, limits[row.member], patrons, report) for row in rows))
        await self._record([(row, hold) for row, hold in zip(rows, answers) if hold is not None], report)
        return report

    async def _patron(self, row: HoldRow, patrons: dict[str, PatronCredentials | None]) -> PatronCredentials | None:
        if row.card_id not in patrons:
            card = await self.accounts.card(row.account_id, row.card_id)
            patrons[row.card_id] = PatronCredentials(card_number=card.card_number, pin=card.pin) if card else None
        return patrons[row.card_id]

    async def run_forever(self, every_s: float = 30.0, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a poller that dies silently strands every hold: log and go on
                log.exception("hold poller pass failed")
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass

    async def _ask(
        self, row: HoldRow, limit: asyncio.Semaphore, patrons: dict[str, PatronCredentials | None], report: PollReport
    ) -> Hold | None:
        """The member's current view of one hold, or None (skipped or failed: released for later)."""
        if (why := self.unavailable(row.member)) is not None:
            report.skipped += 1
            log.debug("hold %s: member %s skipped (%s)", row.id, row.member, why)
            await self.ledger.release(row, node=self.node, next_check_at=self.clock() + self.schedule.failure_s, failed=False)
            return None
        async with limit:
            try:
                patron = await self._patron(row, patrons)
                if patron is None or row.member_hold_id is None:
                    raise LookupError("hold without card or member hold id")
                return await self.gateway_for(row.member).hold_status(patron, row.member_hold_id)
            except ConnectorError as exc:
                report.failed += 1
                log.info("hold %s at %s: status check failed (%s)", row.id, row.member, exc.reason)
                await self.ledger.release(
                    row, node=self.node, next_check_at=self.clock() + self.schedule.backoff(row.check_failures), failed=True
                )
                return None

    async def _record(self, answers: list[tuple[HoldRow, Hold]], report: PollReport) -> None:
        followed = []
        for row, hold in answers:
            if may_move(row.state, hold.state):
                followed.append((row, hold, self.clock() + self.schedule.interval(hold.state)))
                continue
            report.refused_moves += 1
            log.warning("hold %s at %s: member reports %s after %s; not followed", row.id, row.member, hold.state, row.state)
            await self.ledger.release(row, node=self.node, next_check_at=self.clock() + self.schedule.interval(row.state), failed=False)
        landed = await self.ledger.advance_many(followed, node=self.node)
        for (row, hold, _), ok in zip(followed, landed):
            if not ok:
                continue
            if hold.state is row.state:
                report.unchanged += 1
                continue
            report.advanced += 1
            if hold.state is HoldState.READY:
                await self.notices.hold_ready(row, hold)
                if self.after_ready is not None:
                    await self.after_ready(row)
