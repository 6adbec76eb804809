"""The async half of planning: ask the members for live holdings and for their view of the patron.

Every member is asked in parallel, each under its own deadline (the member's `timeout_s`), and a
member that fails, hangs or cannot answer becomes a named `MemberUnreachable` for the planner rather
than an exception: one slow municipal system never costs the patron the whole plan. Members in their
maintenance window are not contacted (Kumamoto, 04:30–05:00).

Privacy: nothing here logs; the PIN goes to the member inside `PatronCredentials` and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from broker.consortium import Consortium
from broker.holds.patron import Card, Patron
from broker.holds.planner import MemberUnreachable
from broker.search import SearchService
from connectors import Capability, Connector, HttpClient, connector_for
from connectors.errors import ConnectorError, HoldRefused
from yokodan import Holding, PatronStatus, Record, SearchQuery, TargetStatus, Work, trusted

__all__ = ["ConnectorFactory", "Gathered", "HoldsGatherer", "find_work"]

# member id -> the connector that answers patron lookups and holdings for it (None: none can).
ConnectorFactory = Callable[[str], Connector | None]


@dataclass(slots=True)
class Gathered:
    records: list[Record]  # the work's records, holdings refreshed where the member could be asked
    statuses: dict[str, PatronStatus | MemberUnreachable]
    stale_holdings: dict[str, str] = field(default_factory=dict)  # member -> why its search holdings were kept
    elapsed_ms: float = 0.0


class HoldsGatherer:
    """One per process (it keeps the connectors); `gather` is safe to run concurrently."""

    def __init__(
        self,
        consortium: Consortium,
        http: HttpClient,
        *,
        connector_factory: ConnectorFactory | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.consortium = consortium
        self.timezone = ZoneInfo(consortium.timezone)
        self.clock = clock or (lambda: datetime.now(self.timezone))
        if connector_factory is None:
            # The `[members.holds]` connector where a member has one (its catalogue protocol, e.g. SRU,
            # cannot look patrons up), else the catalogue connector.
            built = {
                m.id: connector_for(consortium.holds_settings(m.id) or consortium.target_settings(m.id), http)
                for m in consortium.members
            }
            connector_factory = built.get
        self.connector_for = connector_factory

    def _deadline_s(self, member_id: str) -> float:
        return self.consortium.member(member_id).connector.timeout_s

    def _skip_reason(self, member_id: str, capability: Capability) -> tuple[Connector | None, str | None]:
        member = self.consortium.member(member_id)
        if member.maintenance_at(self.clock().astimezone(self.timezone)) is not None:
            return None, "maintenance"
        connector = self.connector_for(member_id)
        if connector is None or not connector.supports(capability):
            return None, "not_supported"
        return connector, None

    async def _lookup(self, card: Card) -> PatronStatus | MemberUnreachable:
        connector, skipped = self._skip_reason(card.member, Capability.LOOKUP_PATRON)
        if connector is None:
            return MemberUnreachable(skipped or "not_supported")
        try:
            return await asyncio.wait_for(connector.lookup_patron(card.credentials()), self._deadline_s(card.member))
        except TimeoutError:
            return MemberUnreachable("timeout", "the member did not answer in time")
        except HoldRefused as exc:
            return MemberUnreachable(exc.reason, exc.message)  # authentication_failed, patron_not_found …
        except ConnectorError as exc:
            return MemberUnreachable(exc.reason, exc.message)

    async def _holdings(self, record: Record) -> tuple[Record, str | None]:
        connector, skipped = self._skip_reason(record.member, Capability.HOLDINGS)
        if connector is None:
            return record, skipped
        try:
            live: list[Holding] = await asyncio.wait_for(connector.holdings(record.local_id), self._deadline_s(record.member))
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
