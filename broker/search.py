"""Search orchestration: plan the targets, fan out in parallel, merge as members answer.

Each member runs under its own deadline (its `timeout_s`), so a slow, hung or
broken member costs only its own status line: the others' records are merged
the moment they arrive, and `stream()` hands each step to the caller
(progressive results for the API). A member failure never raises out of here.

An ISBN or kana reading query that found works asks each member that came back empty
once more by title (`broker.second_stage`: what to ask, what dedup keeps), within what is
left of the search's deadline; those answers are further member events before the final one.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from broker.member_slots import MEMBER_BUSY_REASON, MemberBusy
from broker.members import BROKER_BUSY_REASON, SEARCH_DEADLINE_REASON, MemberRegistry, Plan, UnknownMembers
from broker.merge import Clusterer, default_clusterer
from broker.launch import Launch
from broker.outbound import OutboundGate
from broker.querytext import query_is_clean
from broker.ranking import rank_works
from broker.second_stage import FollowUp, Marks, came_back_empty, follow_up, query_kind, work_from_cached
from yokodan import Diagnostic, Record, SearchQuery, SecondStage, TargetState, TargetStatus, Work, trusted
from connectors import Capability, Connector, ReadAnswer, SearchResult
from connectors.errors import ConnectorError, ProtocolDiagnostic
from connectors.http import CallerDeadline
from index.store import CachedResult, UnionIndex, UnionIndexError

log = logging.getLogger(__name__)

# Statuses that say nothing about a member's pace (it was not asked, or was cut by the search).
_NOT_PACE = frozenset({BROKER_BUSY_REASON, MEMBER_BUSY_REASON, SEARCH_DEADLINE_REASON})

__all__ = ["MemberAnswer", "Plan", "SearchEvent", "SearchOutcome", "SearchService", "UnknownMembers"]


def target_status(
    member: str,
    state: TargetState = TargetState.PENDING,
    *,
    reason: str | None = None,
    hits: int | None = None,
    returned: int = 0,
    elapsed_ms: float | None = None,
    message: str | None = None,
    diagnostics: list[Diagnostic] | None = None,
) -> TargetStatus:
    """A TargetStatus from the broker's own, already typed values, without validation.

    Every member of every search gets two (pending, then its outcome): validating them cost
    ~10 µs each of the ~150 µs per-target budget (bench/fanout.py, 0 hits).
    """
    return trusted(
        TargetStatus,
        {
            "member": member, "state": state, "reason": reason, "hits": hits, "returned": returned,
            "elapsed_ms": elapsed_ms, "message": message, "diagnostics": diagnostics or [],
            "circuit": None, "second_stage": None,
        },
    )  # fmt: skip


@dataclass(slots=True)
class MemberAnswer:
    status: TargetStatus
    records: list[Record] = field(default_factory=list)
    # Set on an answer read but not parsed yet (connectors.base.ReadAnswer; `status` is the member's
    # pending one): the search calls it when it takes the answer and uses the answer it returns.
    # It parses once (`_ParseOnce`), whoever calls it first: the search, or the loop two turns later.
    finish: Callable[[], MemberAnswer] | None = None


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
    rebuilding popular works sixty times over. Answers that finished in the same
    event-loop turn are yielded one after another without a pause; the last of them
    carries `turn_changed`, the works all of them changed (else None), so that a caller
    sending whole works (the NDJSON stream) sends a popular work once per turn, not
    once per member of it.
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
        marks: Marks | None = None,
        turn_changed: list[str] | None = None,
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
        self._marks = marks
        self._works: list[Work] | None = None
        self.turn_changed = turn_changed

    @property
    def works(self) -> list[Work]:
        if self._works is None:
            if self.final:
                self._works = rank_works(
                    self._clusterer.works(), self.query, near=self.near, coordinates=self.coordinates
                )
            else:
                self._works = [self._clusterer.work(w) for w in self._changed or []]
            if self._marks is not None:
                self._works = self._marks.apply(self._works)
        return self._works

    @property
    def turn_works(self) -> list[Work]:
        """The works this turn's answers changed, as they are now (the turn's last event only)."""
        assert self.turn_changed is not None, "only the last answer of a turn knows the turn's works"
        works = [self._clusterer.work(w) for w in self.turn_changed]
        return self._marks.apply(works) if self._marks is not None else works


class SearchService:
    """Fans one query out to a consortium's members; one instance per app.

    The members' connectors, breakers, windows and slots belong to `registry`
    (shared with holds and the poller); this class owns only the fan-out and merge.
    """

    def __init__(
        self,
        registry: MemberRegistry,
        *,
        clusterer_factory: Callable[[], Clusterer] = default_clusterer,
        index: UnionIndex | None = None,
        gate: OutboundGate | None = None,
    ) -> None:
        self.registry = registry
        # The process-wide cap on member requests in flight, fair between searches (broker/outbound.py);
        # None: every member is asked at once (a consortium of a few dozen members needs no queue).
        self.gate = gate
        # Each member's last answer time (ms): known-fast members are asked first, so that the first
        # results come at the fastest member's pace even when hundreds of requests are still to start.
        self._latency_ms: dict[str, float] = {}
        self._pending_statuses: dict[str, TargetStatus] = {}
        # The members that answered fastest in the last search of every member: the next such search
        # plans and sends them before it plans the rest (`_fastest_plan`).
        self._fastest: list[str] = []
        consortium = registry.consortium
        self._member_count = len(consortium.members)
        self._longest_all: tuple[float, float] | None = None  # see `_longest`
        self.index = index  # set and cleared by the app's lifecycle (broker.api) when it owns the index
        self.municipalities = {m.id: m.municipality for m in consortium.members}
        self.clusterer_factory = clusterer_factory
        self.coordinates = {b.id: (b.lat, b.lon) for b in consortium.branches() if b.lat is not None and b.lon is not None}

    def chosen(self, members: Sequence[str] | None) -> list[str]:
        """The member ids a request names (all when none); unknown names are an error."""
        return self.registry.chosen(members)

    def plan(self, members: Sequence[str] | None) -> Plan:
        """Ask the chosen members, except those in maintenance, with an open circuit, or unable to search."""
        return self.registry.plan(Capability.SEARCH, members)

    async def search(
        self, query: SearchQuery, members: Sequence[str] | None = None, *, near: tuple[float, float] | None = None
    ) -> SearchOutcome:
        started = time.perf_counter()
        last: SearchEvent | None = None
        async with aclosing(self._events(query, members, near, progressive=False)) as events:
            async for event in events:
                last = event
        assert last is not None and last.final
        return SearchOutcome(query, last.works, last.statuses, (time.perf_counter() - started) * 1000)

    def stream(
        self, query: SearchQuery, members: Sequence[str] | None = None, *, near: tuple[float, float] | None = None
    ) -> AsyncIterator[SearchEvent]:
        """Yield an event as each member answers, then a final one with the ranked works.

        `near` (lat, lon) ranks works with a copy on the shelf nearby higher.
        """
        return self._events(query, members, near, progressive=True)

    async def _events(
        self, query: SearchQuery, members: Sequence[str] | None, near: tuple[float, float] | None, *, progressive: bool
    ) -> AsyncIterator[SearchEvent]:
        """The fan-out; `progressive=False` (the blocking search) yields the final event only: the
        member events, and the cached one, would be built for a caller that drops them."""
        # The members that answered fastest last time are planned and sent on their own first; the
        # plan of the rest (~2 ms at 1,700 members) is made while their requests are out.
        head = self._fastest_plan(members)
        plan = head or self.plan(members)
        index = self.index  # once: the app's lifecycle may detach it while this search runs
        started = time.perf_counter()
        # A member's own timeout starts when its request is sent (broker.member_slots): the first
        # requests end at the latest after their longest wait for a slot plus that timeout. A
        # second-stage request gets what is left of the slowest member's timeout from the start,
        # never more (it must not make the search longer). The head's requests are bounded as a
        # plan of them alone would be; `first_deadline` is rebound to the whole plan's below.
        longest_timeout_s, longest_s = self._longest(plan.ask)
        deadline = started + longest_timeout_s
        first_deadline = started + longest_s
        clusterer = self.clusterer_factory()
        marks = Marks()
        kind = query_kind(query) if self.second_stage else None
        # A garbled answer to a query that carried control characters is the query's fault, not the
        # member's; judged once per search, not per member.
        clean = query_is_clean(query)
        # Known-fast first (never-seen members count as fastest, to learn their pace); one sort per search.
        launch = sorted(plan.ask, key=lambda c: self._latency_ms.get(c.member, 0.0)) if self.gate else plan.ask
        probes = set(plan.probes)  # the head's, then the rest's: Launch reads this set as members are submitted
        launched: Launch[MemberAnswer] = Launch(
            lambda connector: self._ask(connector, query, clean, first_deadline),
            lambda connector, waited_s: self._broker_busy(connector, waited_s, clean),
            probes=probes, no_verdict=self.registry.record_no_verdict,
        )  # fmt: skip
        finished, order = launched.finished, launched.order
        extra: dict[asyncio.Task[MemberAnswer], FollowUp] = {}  # second-stage task -> what it asked
        cached_works: list[Work] = []
        empty: list[str] = []  # members that came back empty and were not asked again yet
        follow: FollowUp | None = None
        try:
            if self.gate is None:
                launched.start_all(launch)
            else:
                # The gate's wait is bounded by the member's timeout and the search's deadline.
                await launched.submit_all(self.gate, launch, lambda c: min(c.settings.timeout_s, first_deadline - started))
                if head is not None:  # the rest, planned now that the head's requests are out
                    others = self._rest_of(head)
                    rest = self.plan(others) if others else Plan()  # (no members named means every member)
                    probes.update(rest.probes)
                    plan = Plan([*head.ask, *rest.ask], [*head.skipped, *rest.skipped], probes)
                    longest_timeout_s, longest_s = self._longest(plan.ask)
                    deadline = started + longest_timeout_s
                    first_deadline = started + longest_s
                    first = len(launch)
                    launch = [*launch, *sorted(rest.ask, key=lambda c: self._latency_ms.get(c.member, 0.0))]
                    await launched.submit_all(
                        self.gate, launch[first:], lambda c: min(c.settings.timeout_s, first_deadline - started), first=first
                    )  # fmt: skip
            # Built once the first requests are out (a national search's take ~0.3 ms); no answer is
            # taken before this. Asked members in the consortium's order, then the skipped ones.
            if head is None:
                statuses = {c.member: self._pending(c.member) for c in plan.ask}
                statuses.update({s.member: s for s in plan.skipped})
            else:
                statuses = self._in_order_statuses(plan)
            connectors = {c.member: c for c in plan.ask}
            if index is not None and (progressive or kind is not None):
                cached = await self._cached(index, query, members)
                if cached is not None:
                    if kind is not None:
                        cached_works = [work_from_cached(c.work) for c in cached.works]
                    if progressive:
                        yield SearchEvent(None, list(statuses.values()), clusterer=clusterer, query=query, changed=[], cached=cached)
            outstanding = len(launch)
            while outstanding:
                done = [await finished.get()]
                while not finished.empty():  # all that finished meanwhile, handled in plan order
                    done.append(finished.get_nowait())
                outstanding -= len(done)
                turn: dict[str, None] = {}  # works changed by this turn's answers, in first-change order
                for position, task in enumerate(sorted(done, key=order.__getitem__), start=1):
                    # Parsed here, one at a time in plan order, not in its own task: of many answers
                    # read in one loop turn, the first is merged and published before the rest are
                    # parsed (unless the caller paused meanwhile, and the loop parsed them: `_parse_soon`).
                    answer = _taken(task.result())
                    asked = extra.get(task)
                    if asked is None:
                        statuses[answer.status.member] = answer.status
                        records = answer.records
                        if kind is not None and came_back_empty(answer.status):
                            empty.append(answer.status.member)
                    else:
                        answer, records = self._second_answer(statuses[answer.status.member], answer, asked)
                        statuses[answer.status.member] = answer.status
                        marks.add(records)
                    changed = clusterer.add(records) if records else []
                    if progressive:
                        turn.update(dict.fromkeys(changed))
                        yield SearchEvent(
                            answer, list(statuses.values()), clusterer=clusterer, query=query, changed=changed, marks=marks,
                            turn_changed=list(turn) if position == len(done) else None,
                        )  # fmt: skip
                if kind is not None and empty:
                    follow = follow or follow_up(kind, query, clusterer.works(), cached_works)
                    if follow is not None:  # one round: each empty member is asked once, by this query
                        for member in empty:
                            # Shown as pending in the member's status until its answer comes.
                            statuses[member] = statuses[member].model_copy(update={"second_stage": SecondStage(by=follow.by)})
                            task = self._ask_again(connectors[member], follow, deadline)
                            extra[task] = follow
                            launched.add(task)
                            outstanding += 1
                        empty.clear()
        finally:
            await launched.close(list(extra))
        final = SearchEvent(
            None, list(statuses.values()), clusterer=clusterer, query=query, final=True,
            near=near, coordinates=self.coordinates, marks=marks,
        )
        if self.gate is not None and not members:  # for the next search of every member (`_fastest_plan`)
            self._fastest = heapq.nsmallest(self.gate.settings.burst, self._latency_ms, key=self._latency_ms.__getitem__)
        if index is not None and final.works:
            try:
                index.submit(final.works, self.municipalities)  # enqueues only
            except UnionIndexError:
                log.warning("union index closed; search results not cached")
        yield final

    def _fastest_plan(self, members: Sequence[str] | None) -> Plan | None:
        """A plan of the members that answered fastest in the last search of every member (a gate's
        first burst of them), for a search of every member through the gate; else None."""
        if self.gate is None or members or not self._fastest:
            return None
        return self.plan(self._fastest)

    def _rest_of(self, head: Plan) -> list[str]:
        """Every member but the head's (asked or skipped)."""
        planned = {c.member for c in head.ask} | {s.member for s in head.skipped}
        return [m for m in self.registry.member_ids if m not in planned]

    def _in_order_statuses(self, plan: Plan) -> dict[str, TargetStatus]:
        """Pending statuses of the asked, then the skipped ones, each in the consortium's order, as
        one plan of every member lists them."""
        skipped = {s.member: s for s in plan.skipped}
        statuses = {m: self._pending(m) for m in self.registry.member_ids if m not in skipped}
        statuses.update((m, skipped[m]) for m in self.registry.member_ids if m in skipped)
        return statuses

    def _longest(self, ask: list[Connector]) -> tuple[float, float]:
        """The longest member timeout, and the longest slot wait plus timeout, of the members asked.

        Both are fixed for the registry's life (frozen settings, slot limits): a plan that asks every
        member, as a national search does, reuses the last such plan's instead of 1,700 look-ups
        (~1 ms before its first request could go out).
        """
        everyone = len(ask) == self._member_count  # a plan asks each member at most once
        if everyone and self._longest_all is not None:
            return self._longest_all
        longest = (
            max((c.settings.timeout_s for c in ask), default=0.0),
            max((self._longest_s(c) for c in ask), default=0.0),
        )
        if everyone:
            self._longest_all = longest
        return longest

    def _longest_s(self, connector: Connector) -> float:
        """How long one member may take: its longest wait in the slot queue, then its own deadline."""
        return self.registry.slots(connector.member).limits.max_wait_s + connector.settings.timeout_s

    @property
    def second_stage(self) -> bool:
        return self.registry.consortium.search.second_stage

    def _ask_again(self, connector: Connector, follow: FollowUp, deadline: float) -> asyncio.Task[MemberAnswer]:
        """The member's one second-stage request, bounded by what is left of the search's deadline."""
        left_s = min(connector.settings.timeout_s, deadline - time.perf_counter())
        name = f"search-second-stage:{connector.member}"
        if left_s <= 0:
            return asyncio.create_task(_too_late(connector.member), name=name)
        # Not through _ask: the breaker judged the member by its first answer, and a timeout
        # under this shortened deadline says nothing about its health.
        return asyncio.create_task(self._answer_again(connector, follow.query, left_s, deadline), name=name)

    async def _answer_again(self, connector: Connector, query: SearchQuery, left_s: float, deadline: float) -> MemberAnswer:
        return _parse_soon(await self._answer(connector, query, left_s, until=deadline))

    @staticmethod
    def _second_answer(first: TargetStatus, answer: MemberAnswer, follow: FollowUp) -> tuple[MemberAnswer, list[Record]]:
        """The member's status with its second-stage outcome beside the first, and the records kept."""
        extra = answer.status
        kept = follow.accepted(answer.records)
        second = SecondStage(
            by=follow.by, state=extra.state, reason=extra.reason, hits=extra.hits, returned=extra.returned,
            merged=len(kept), elapsed_ms=extra.elapsed_ms, message=extra.message,
        )  # fmt: skip
        status = first.model_copy(update={"second_stage": second})
        return MemberAnswer(status, kept), kept

    async def _cached(self, index: UnionIndex, query: SearchQuery, members: Sequence[str] | None) -> CachedResult | None:
        """What the union index knows, searched off the event loop (whoosh is pure Python)."""
        try:
            return await asyncio.to_thread(
                index.search, query, members=list(members) if members else None, limit=query.page_size
            )
        except UnionIndexError:
            log.exception("union index search failed; answering live only")
            return None

    def _pending(self, member: str) -> TargetStatus:
        """The member's pending status, built once per service: nothing mutates a pending status
        (answers get their own), and 1,700 of them cost ~3 ms per national search."""
        status = self._pending_statuses.get(member)
        if status is None:
            status = self._pending_statuses[member] = target_status(member)
        return status

    async def _ask(self, connector: Connector, query: SearchQuery, clean: bool, until: float | None = None) -> MemberAnswer:
        answer = await self._answer(connector, query, until=until)
        if answer.finish is not None:  # judged once parsed
            answer.finish = partial(self._judged, connector.member, clean, answer.finish)
            return _parse_soon(answer)
        return self._judge(connector.member, clean, answer)

    def _judged(self, member: str, clean: bool, finish: Callable[[], MemberAnswer]) -> MemberAnswer:
        return self._judge(member, clean, finish())

    def _judge(self, member: str, clean: bool, answer: MemberAnswer) -> MemberAnswer:
        """The member's pace learnt and its breaker fed from its (parsed) answer."""
        status = answer.status
        if status.reason not in _NOT_PACE and status.elapsed_ms is not None:
            self._latency_ms[member] = status.elapsed_ms
        status.circuit = self.registry.record(member, status.state, status.reason, request_clean=clean).value
        return answer

    def _broker_busy(self, connector: Connector, waited_s: float, clean: bool) -> MemberAnswer:
        """No slot of the outbound gate within the member's timeout: the broker's own queue, not contacted."""
        assert self.gate is not None
        status = target_status(
            connector.member, TargetState.TIMEOUT, reason=BROKER_BUSY_REASON, elapsed_ms=round(waited_s * 1000, 1),
            message=f"{self.gate.settings.max_in_flight} member requests already in flight; "
            f"no slot within {waited_s:g} s; not contacted",
        )  # fmt: skip
        # Says nothing about the member's health; a probe it carried is given back (registry.record).
        status.circuit = self.registry.record(connector.member, status.state, status.reason, request_clean=clean).value
        return MemberAnswer(status)

    async def _answer(
        self, connector: Connector, query: SearchQuery, deadline_s: float | None = None, *, until: float | None = None
    ) -> MemberAnswer:
        """One request to the member: queued for one of its slots, then under its own deadline.

        `until` (perf_counter) is the search's total deadline: it bounds the queue wait and what
        is left for the request after it; the member's own `deadline_s` starts once it has a slot.
        """
        member = connector.member
        started = time.perf_counter()

        def status(state: TargetState, **fields: Any) -> TargetStatus:
            return target_status(member, state, elapsed_ms=_ms_since(started), **fields)

        if deadline_s is None:
            deadline_s = connector.settings.timeout_s
        budget_s = deadline_s
        queued_s = 0.0
        try:
            # A short FIFO wait for one of the member's slots (broker.member_slots); the member's
            # own deadline starts after it, within what is left of the search's.
            async with self.registry.slot(member, wait_s=None if until is None else until - time.perf_counter()) as queued_s:
                if until is not None:
                    budget_s = min(deadline_s, until - time.perf_counter())
                # One timer bounds the whole exchange, parsing in a worker or thread included (an
                # answer parsed on the loop comes back read only: no timer could cut that parse
                # anyway); the connector's HTTP layer, told of it, sets none of its own.
                async with asyncio.timeout(budget_s) as timer:
                    with CallerDeadline(timer.when()):
                        result = await connector.search_read(query)
        except MemberBusy as exc:  # our own queue: no word about the member's health, and not contacted
            return MemberAnswer(status(state=TargetState.SKIPPED, reason=exc.reason, message=exc.message))
        except TimeoutError:
            if queued_s > 0 and budget_s < deadline_s:  # the queue ate into it: the search's deadline ran out, not the member's
                return MemberAnswer(
                    status(
                        state=TargetState.TIMEOUT, reason=SEARCH_DEADLINE_REASON,
                        message=f"no answer in the {max(budget_s, 0):.3g} s the search's deadline left after queueing",
                    )
                )
            return MemberAnswer(status(state=TargetState.TIMEOUT, reason="timeout", message=f"no answer within {deadline_s:g} s"))
        except Exception as exc:
            return _failed(member, exc, _ms_since(started))
        if isinstance(result, ReadAnswer):  # parsed when the search takes it (`_taken`)
            return MemberAnswer(self._pending(member), finish=partial(_parsed, member, result, time.perf_counter() - started))
        return _answered(member, result, _ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _taken(answer: MemberAnswer) -> MemberAnswer:
    """The answer as the search uses it: parsed now if it came back read only (and not parsed since)."""
    return answer if answer.finish is None else answer.finish()


class _ParseOnce:
    """A read answer's parse (and its judgement), run once by whoever calls first."""

    __slots__ = ("_answer", "_finish")

    def __init__(self, finish: Callable[[], MemberAnswer]) -> None:
        self._finish: Callable[[], MemberAnswer] | None = finish
        self._answer: MemberAnswer | None = None

    def __call__(self) -> MemberAnswer:
        if self._finish is not None:
            finish, self._finish = self._finish, None
            self._answer = finish()
        assert self._answer is not None
        return self._answer


def _parse_soon(answer: MemberAnswer) -> MemberAnswer:
    """A read answer parsed when the search takes it, or by the loop two turns later at the latest.

    Two turns: the search's wake-up, queued when the answer's task ended, comes first, so a search
    that takes a whole turn's answers parses them in its own order. But a caller that pauses
    between events (an NDJSON stream waiting for its client to drain) must not leave the answers
    unparsed meanwhile: parsed in their tasks they overlapped that wait, and lost, the stream took
    1.14-1.19x the blocking search's time (bench/fanout.py --stream; 0.96-0.99x before). A caller
    that left gets each answer parsed and its member judged all the same (a half-open probe too).
    """
    if answer.finish is not None:
        once = answer.finish = _ParseOnce(answer.finish)
        _LATE.add(once)
    return answer


class _LateParses:
    """The read answers of a loop turn, parsed two turns later if no search took them meanwhile:
    two callbacks per turn that read answers, not two per answer (~1.5 µs each of 1,700)."""

    def __init__(self) -> None:
        self._pending: list[_ParseOnce] = []
        self._armed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, once: _ParseOnce) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # another loop (a test's, a restarted app's): the old one's schedule died with it
            self._loop, self._pending, self._armed = loop, [], False
        self._pending.append(once)
        if not self._armed:
            self._armed = True
            loop.call_soon(self._due)

    def _due(self) -> None:
        """The next turn: what was read in the turn before is parsed in the turn after this one."""
        due, self._pending, self._armed = self._pending, [], False
        asyncio.get_running_loop().call_soon(_parse_all, due)


def _parse_all(due: list[_ParseOnce]) -> None:
    for once in due:
        once()  # a no-op for those a search took


# One per process: a loop-turn schedule, not state of any one search (each entry is its own answer).
_LATE = _LateParses()


def _parsed(member: str, read: ReadAnswer, read_s: float) -> MemberAnswer:
    """A read answer parsed. Its elapsed time is the member's: the read's plus the parse's, not its
    wait for its turn in the search (which would teach the launch order a false pace)."""
    began = time.perf_counter()
    try:
        result = read.parse()
    except Exception as exc:
        return _failed(member, exc, round((read_s + time.perf_counter() - began) * 1000, 1))
    return _answered(member, result, round((read_s + time.perf_counter() - began) * 1000, 1))


def _answered(member: str, result: SearchResult, elapsed_ms: float) -> MemberAnswer:
    status = target_status(
        member, TargetState.OK, hits=result.hits, returned=len(result.records), diagnostics=result.diagnostics,
        elapsed_ms=elapsed_ms,
    )  # fmt: skip
    return MemberAnswer(status, result.records)


def _failed(member: str, exc: Exception, elapsed_ms: float) -> MemberAnswer:
    """A connector's error as the member's status; called inside the `except` that caught it."""
    if isinstance(exc, ProtocolDiagnostic):
        return MemberAnswer(
            target_status(
                member, exc.state, reason=exc.reason, message=exc.message, diagnostics=exc.diagnostics, elapsed_ms=elapsed_ms
            )
        )
    if isinstance(exc, ConnectorError):
        return MemberAnswer(target_status(member, exc.state, reason=exc.reason, message=exc.message, elapsed_ms=elapsed_ms))
    # A connector bug must cost one member, not the search.
    log.exception("connector failure for member %s", member)
    return MemberAnswer(target_status(member, TargetState.ERROR, reason="internal", message="internal connector error", elapsed_ms=elapsed_ms))


async def _too_late(member: str) -> MemberAnswer:
    """A second stage the search's deadline left no time for: reported, never sent."""
    return MemberAnswer(target_status(member, TargetState.SKIPPED, reason="deadline"))
