"""Search orchestration: plan the targets, fan out in parallel, merge as members answer.

Each member runs under its own deadline (its `timeout_s`), so a slow, hung or
broken member costs only its own status line: the others' records are merged
the moment they arrive, and `stream()` hands each step to the caller
(progressive results for the API). A member failure never raises out of here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from broker.consortium import Consortium
from broker.merge import Clusterer, default_clusterer
from broker.ranking import rank_works
from yokodan import Record, SearchQuery, TargetState, TargetStatus, Work
from yokodan.errors import BadRequest
from connectors import Capability, Connector, HttpClient, connector_for
from connectors.circuit import CircuitBreaker
from connectors.errors import ConnectorError, ProtocolDiagnostic
from index.store import CachedResult, UnionIndex, UnionIndexError

# Failures that say nothing about the member's health: the query did not fit it.
_NOT_HEALTH_FAILURES = frozenset({"diagnostic", "unsupported_query", "not_supported"})

log = logging.getLogger(__name__)


class UnknownMembers(BadRequest):
    """The caller named members the consortium does not have."""

    def __init__(self, unknown: Sequence[str]) -> None:
        super().__init__(f"unknown member ids: {', '.join(unknown)}")
        self.unknown = list(unknown)


@dataclass(slots=True)
class MemberAnswer:
    status: TargetStatus
    records: list[Record] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """Who is asked, and who is skipped without being contacted (with the reason)."""

    ask: list[Connector]
    skipped: list[TargetStatus]


@dataclass(slots=True)
class SearchOutcome:
    query: SearchQuery
    works: list[Work]
    statuses: list[TargetStatus]
    elapsed_ms: float


class SearchEvent:
    """One step of a progressive search: a member answered (or all did, when `final`).

    `works` holds only the works that member's records created or changed, built
    on first access: a caller that waits for the final answer never pays for
    rebuilding popular works sixty times over.
    """

    def __init__(
        self,
        answer: MemberAnswer | None,
        statuses: list[TargetStatus],
        *,
        clusterer: Clusterer,
        query: SearchQuery,
        changed: list[str] | None = None,
        final: bool = False,
        near: tuple[float, float] | None = None,
        coordinates: dict[str, tuple[float, float]] | None = None,
        cached: CachedResult | None = None,
    ) -> None:
        self.answer = answer
        self.cached = cached  # set on the first event only: what the union index already knew
        self.query = query
        self.near = near
        self.coordinates = coordinates
        self.statuses = statuses
        self.final = final
        self._clusterer = clusterer
        self._changed = changed
        self._works: list[Work] | None = None

    @property
    def works(self) -> list[Work]:
        if self._works is None:
            if self.final:
                self._works = rank_works(
                    self._clusterer.works(), self.query, near=self.near, coordinates=self.coordinates
                )
            else:
                self._works = [self._clusterer.work(w) for w in self._changed or []]
        return self._works


class SearchService:
    """Fans one query out to a consortium's members; one instance per process."""

    def __init__(
        self,
        consortium: Consortium,
        http: HttpClient,
        *,
        clusterer_factory: Callable[[], Clusterer] = default_clusterer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        index: UnionIndex | None = None,
    ) -> None:
        self.consortium = consortium
        self.index = index
        self.members = {m.id: m for m in consortium.members}
        self.municipalities = {m.id: m.municipality for m in consortium.members}
        self.http = http
        self.clusterer_factory = clusterer_factory
        self.clock = clock
        self.timezone = ZoneInfo(consortium.timezone)
        self.connectors: dict[str, Connector] = {
            member.id: connector_for(consortium.target_settings(member.id), http) for member in consortium.members
        }
        self.coordinates = {b.id: (b.lat, b.lon) for b in consortium.branches() if b.lat is not None and b.lon is not None}
        self.breakers: dict[str, CircuitBreaker] = {
            member.id: CircuitBreaker(member.connector.circuit_failures, member.connector.circuit_reset_s)
            for member in consortium.members
        }

    def chosen(self, members: Sequence[str] | None) -> list[str]:
        """The member ids a request names (all when none); unknown names are an error."""
        if not members:
            return list(self.connectors)
        unknown = [m for m in members if m not in self.connectors]
        if unknown:
            raise UnknownMembers(unknown)
        return list(dict.fromkeys(members))

    def plan(self, members: Sequence[str] | None) -> Plan:
        """Ask the chosen members, except those in maintenance, with an open circuit, or unable to search."""
        now = self.clock().astimezone(self.timezone)
        plan = Plan([], [])
        for member_id in self.chosen(members):
            connector = self.connectors[member_id]
            breaker = self.breakers[member_id]

            def skip(reason: str, message: str) -> None:
                plan.skipped.append(
                    TargetStatus(
                        member=member_id, state=TargetState.SKIPPED, reason=reason, message=message,
                        circuit=breaker.state.value,
                    )
                )

            window = self.members[member_id].maintenance_at(now)
            if not connector.supports(Capability.SEARCH):
                skip("not_supported", "this member's system offers no catalogue search")
            elif window is not None:
                skip("maintenance", f"scheduled maintenance {window.describe()}; not contacted")
            elif not breaker.allow():
                skip(
                    "circuit_open",
                    f"{breaker.consecutive_failures} failures in a row; next try in {breaker.retry_in_s():.0f} s",
                )
            else:
                plan.ask.append(connector)
        return plan

    async def search(
        self, query: SearchQuery, members: Sequence[str] | None = None, *, near: tuple[float, float] | None = None
    ) -> SearchOutcome:
        started = time.perf_counter()
        last: SearchEvent | None = None
        async for event in self.stream(query, members, near=near):
            last = event
        assert last is not None and last.final
        return SearchOutcome(query, last.works, last.statuses, (time.perf_counter() - started) * 1000)

    async def stream(
        self, query: SearchQuery, members: Sequence[str] | None = None, *, near: tuple[float, float] | None = None
    ) -> AsyncIterator[SearchEvent]:
        """Yield an event as each member answers, then a final one with the ranked works.

        `near` (lat, lon) ranks works with a copy on the shelf nearby higher.
        """
        plan = self.plan(members)
        statuses = {c.member: TargetStatus(member=c.member) for c in plan.ask}
        statuses.update({s.member: s for s in plan.skipped})
        clusterer = self.clusterer_factory()
        tasks = [asyncio.create_task(self._ask(c, query), name=f"search:{c.member}") for c in plan.ask]
        try:
            if self.index is not None:
                cached = await self._cached(query, members)
                if cached is not None:
                    yield SearchEvent(None, list(statuses.values()), clusterer=clusterer, query=query, changed=[], cached=cached)
            for next_done in asyncio.as_completed(tasks):
                answer = await next_done
                statuses[answer.status.member] = answer.status
                changed = clusterer.add(answer.records) if answer.records else []
                yield SearchEvent(answer, list(statuses.values()), clusterer=clusterer, query=query, changed=changed)
        finally:
            for task in tasks:  # a caller that stops listening must not leave members running
                task.cancel()
        final = SearchEvent(
            None, list(statuses.values()), clusterer=clusterer, query=query, final=True,
            near=near, coordinates=self.coordinates,
        )
        if self.index is not None and final.works:
            try:
                self.index.submit(final.works, self.municipalities)  # enqueues only
            except UnionIndexError:
                log.warning("union index closed; search results not cached")
        yield final

    async def _cached(self, query: SearchQuery, members: Sequence[str] | None) -> CachedResult | None:
        """What the union index knows, searched off the event loop (whoosh is pure Python)."""
        assert self.index is not None
        try:
            return await asyncio.to_thread(
                self.index.search, query, members=list(members) if members else None, limit=query.page_size
            )
        except UnionIndexError:
            log.exception("union index search failed; answering live only")
            return None

    async def _ask(self, connector: Connector, query: SearchQuery) -> MemberAnswer:
        answer = await self._answer(connector, query)
        breaker = self.breakers[connector.member]
        status = answer.status
        if status.state in (TargetState.ERROR, TargetState.TIMEOUT) and status.reason not in _NOT_HEALTH_FAILURES:
            breaker.record_failure()
        elif status.state is TargetState.OK:
            breaker.record_success()
        status.circuit = breaker.state.value
        return answer

    async def _answer(self, connector: Connector, query: SearchQuery) -> MemberAnswer:
        member = connector.member
        started = time.perf_counter()

        def status(**fields: object) -> TargetStatus:
            return TargetStatus(member=member, elapsed_ms=round((time.perf_counter() - started) * 1000, 1), **fields)

        try:
            # The connector's HTTP layer has the same deadline; this one also bounds parsing.
            async with asyncio.timeout(connector.settings.timeout_s):
                result = await connector.search(query)
        except TimeoutError:
            return MemberAnswer(
                status(state=TargetState.TIMEOUT, reason="timeout", message=f"no answer within {connector.settings.timeout_s:g} s")
            )
        except ProtocolDiagnostic as exc:
            return MemberAnswer(status(state=exc.state, reason=exc.reason, message=exc.message, diagnostics=exc.diagnostics))
        except ConnectorError as exc:
            return MemberAnswer(status(state=exc.state, reason=exc.reason, message=exc.message))
        except Exception:  # a connector bug must cost one member, not the search
            log.exception("connector failure for member %s", member)
            return MemberAnswer(status(state=TargetState.ERROR, reason="internal", message="internal connector error"))
        return MemberAnswer(
            status(state=TargetState.OK, hits=result.hits, returned=len(result.records), diagnostics=result.diagnostics),
            result.records,
        )
