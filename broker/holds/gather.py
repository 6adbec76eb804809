"""The async half of planning: ask the members for live holdings and for their view of the patron.

Every member is asked in parallel, each under its own deadline (the member's `timeout_s`), and a
member that fails, hangs or cannot answer becomes a named `MemberUnreachable` for the planner rather
than an exception: one slow municipal system never costs the patron the whole plan. Members in their
maintenance window or with an open circuit are not contacted (Kumamoto, 04:30–05:00): the member
registry decides, as it does for search and the ledger.

Privacy: nothing here logs; the PIN goes to the member inside `PatronCredentials` and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.holds.patron import Card, Patron
from broker.holds.planner import MemberUnreachable
from broker.search import SearchService
from broker.members import MemberRegistry
from connectors import Capability
from connectors.errors import ConnectorError
from yokodan import Holding, PatronStatus, Record, SearchQuery, TargetStatus, Work, trusted

__all__ = ["Gathered", "HoldsGatherer", "find_work"]


@dataclass(slots=True)
class Gathered:
    records: list[Record]  # the work's records, holdings refreshed where the member could be asked
    statuses: dict[str, PatronStatus | MemberUnreachable]
    stale_holdings: dict[str, str] = field(default_factory=dict)  # member -> why its search holdings were kept
    elapsed_ms: float = 0.0


class HoldsGatherer:
    """Asks members for what a plan needs; `gather` is safe to run concurrently.

    The connectors, maintenance windows and circuit breakers are the registry's (the same ones
    search and the hold ledger use): a member's `[members.holds]` face answers patron lookups
    and live holdings where it has one.
    """

    def __init__(self, registry: MemberRegistry) -> None:
        self.registry = registry
        self.consortium = registry.consortium

    def _deadline_s(self, member_id: str) -> float:
        return self.consortium.member(member_id).connector.timeout_s

    async def _lookup(self, card: Card) -> PatronStatus | MemberUnreachable:
        # Each call is one member operation (broker.member_operations): skipped without contact in
        # maintenance or behind an open circuit, in one of the member's slots, its outcome (the
        # half-open probe's too) fed to the member's breaker.
        deadline_s = self._deadline_s(card.member)
        try:
            async with self.registry.operation(card.member, Capability.LOOKUP_PATRON, wait_s=deadline_s) as connector:
                return await asyncio.wait_for(connector.lookup_patron(card.credentials()), deadline_s)
        except TimeoutError:
            return MemberUnreachable("timeout", "the member did not answer in time")
        except ConnectorError as exc:  # authentication_failed, patron_not_found, maintenance, circuit_open …
            return MemberUnreachable(exc.reason, exc.message)

    async def _holdings(self, record: Record) -> tuple[Record, str | None]:
        deadline_s = self._deadline_s(record.member)
        try:
            async with self.registry.operation(record.member, Capability.HOLDINGS, wait_s=deadline_s) as connector:
                live: list[Holding] = await asyncio.wait_for(connector.holdings(record.local_id), deadline_s)
        except TimeoutError:
            return record, "timeout"
        except ConnectorError as exc:
            return record, exc.reason
        return trusted(Record, {**record.__dict__, "holdings": live}), None

    async def gather(self, patron: Patron, records: Sequence[Record]) -> Gathered:
        started = asyncio.get_running_loop().time()
        known = {m.id for m in self.consortium.members}
        cards = [c for c in patron.cards if c.member in known]
        lookups = asyncio.gather(*(self._lookup(c) for c in cards))
        refreshes = asyncio.gather(*(self._holdings(r) for r in records if r.member in known))
        statuses, refreshed = await asyncio.gather(lookups, refreshes)
        stale = {r.member: why for r, why in refreshed if why is not None}
        return Gathered(
            records=[r for r, _ in refreshed],
            statuses={c.member: s for c, s in zip(cards, statuses)},
            stale_holdings=stale,
            elapsed_ms=(asyncio.get_running_loop().time() - started) * 1000,
        )



async def find_work(search: SearchService, query: SearchQuery, work_id: str | None = None) -> tuple[Work | None, list[TargetStatus]]:
    """The work a plan is for: searched across the members, then picked by work id or ISBN (else the first)."""
    outcome = await search.search(query)
    works = outcome.works
    if work_id is not None:
        works = [w for w in works if w.work_id == work_id]
    elif query.isbn is not None:
        works = [w for w in works if query.isbn in w.isbns or any(query.isbn in r.isbns for r in w.records)]
    return (works[0] if works else None), outcome.statuses
