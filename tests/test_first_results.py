"""First results when many members answer at once (issue 14: national first results at the fastest
member + 10 ms): of the answers read in one event-loop turn, the first is parsed, merged and
published before the others are parsed; each answer is parsed when the search takes it, or by
the loop two turns later should the search's caller pause or leave.

The sandbox runs in its own process (as in bench/national.py), every member with the same latency.
To make the answers land together for certain, the test holds the broker's event loop for a while
once every request is out: meanwhile every member answers into its socket, and the loop then reads
them all in one turn, as it does at national scale when dozens of members answer within the same
few milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest

from broker.consortium import Consortium
from broker.members import MemberRegistry
from broker.national_sandbox import SandboxProcess, national_members, sandbox_specs
from broker.outbound import FanoutSettings, OutboundGate
from broker.search import SearchEvent, SearchService
from connectors import Capability, HttpClient, SRUConnector
from connectors.circuit import CircuitState
from yokodan import SearchQuery

MEMBERS = 24
LATENCY_MS = 30.0
HOLD_S = 0.5  # the loop is held this long after the requests are out: every member answers meanwhile
QUERY = SearchQuery(text="こころ 夏目漱石", page_size=5)  # one record at nearly every member


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    consortium, _ = national_members(MEMBERS)
    with SandboxProcess(sandbox_specs(consortium, LATENCY_MS, LATENCY_MS), catalogue_size=100) as process:
        yield process


@pytest.fixture
def served(sandbox: SandboxProcess) -> Consortium:
    consortium, _ = national_members(MEMBERS, timeout_s=10)
    return sandbox.consortium(consortium)


class Counts:
    """Answers read off their sockets and parsed so far, counted at the broker's HTTP client and parser."""

    def __init__(self, registry: MemberRegistry, http: HttpClient) -> None:
        self.read = 0
        self.parsed = 0
        self.members_read: set[str] = set()
        get = http.get

        async def counted_get(url: Any, *, member: str, **options: Any) -> Any:
            response = await get(url, member=member, **options)
            self.read += 1
            self.members_read.add(member)
            return response

        http.get = counted_get  # type: ignore[method-assign]
        for member in registry.member_ids:
            connector = registry.connector(member, Capability.SEARCH)
            assert isinstance(connector, SRUConnector)
            parse = connector.parse_response

            def counted_parse(body: bytes, *, start: int = 1, parse: Any = parse) -> Any:
                result = parse(body, start=start)
                self.parsed += 1
                return result

            connector.parse_response = counted_parse  # type: ignore[method-assign]


def hold_the_loop_once_the_requests_are_out() -> None:
    # call_later fires in the first loop turn after the one that started every member's request
    # (no outbound gate: all start at once), so every request is on its socket by then.
    asyncio.get_running_loop().call_later(0.005, time.sleep, HOLD_S)


async def first_with_works(events: AsyncIterator[SearchEvent]) -> SearchEvent:
    async for event in events:
        if event.answer is not None and event.answer.records:
            return event
    raise AssertionError("no member answered with works")


async def test_of_answers_read_in_one_turn_the_first_is_published_before_the_rest_are_parsed(served: Consortium) -> None:
    async with HttpClient() as http:
        registry = MemberRegistry(served, http)
        service = SearchService(registry)
        await service.search(QUERY)  # warm: connections open
        counts = Counts(registry, http)
        hold_the_loop_once_the_requests_are_out()
        async with aclosing(service.stream(QUERY)) as events:
            await first_with_works(events)
            read, parsed = counts.read, counts.parsed
            rest = [event async for event in events]

    assert read >= MEMBERS // 2, f"only {read} answers were read together: the loop was not held long enough"
    # Only the first answer's own parse came before its works were published (the zero-hit members
    # of the sandbox, if any came first in plan order, add theirs).
    assert parsed < read / 2, f"{parsed} of {read} answers read together were parsed before the first works were published"
    final = rest[-1]
    assert final.final and counts.parsed == counts.read == MEMBERS  # every answer parsed, each once
    assert sum(s.returned for s in final.statuses) >= MEMBERS // 2


async def test_answers_read_but_never_taken_when_the_caller_leaves_are_parsed_and_judged_all_the_same(
    served: Consortium,
) -> None:
    """A half-open probe among them too: its circuit closes on its good answer, not left half-open for good."""
    data = served.model_dump()
    for member in data["members"]:
        member["connector"].update(circuit_failures=1, circuit_reset_s=0.05)
    consortium = type(served).model_validate(data)
    last = consortium.members[-1].id  # last in plan order: its answer is taken last of the turn's
    async with HttpClient() as http:
        registry = MemberRegistry(consortium, http)
        service = SearchService(registry)
        await service.search(QUERY)  # warm
        registry.breaker(last).record_failure()  # open; after the cool-off the next search carries the probe
        await asyncio.sleep(0.1)
        counts = Counts(registry, http)
        hold_the_loop_once_the_requests_are_out()
        async with aclosing(service.stream(QUERY)) as events:
            await first_with_works(events)
            assert last in counts.members_read, "the probe's answer was read in the held turn"
            assert registry.breaker(last).state is CircuitState.HALF_OPEN  # read, not parsed yet
            parsed = counts.parsed
        await asyncio.sleep(0.05)  # a few loop turns
        assert parsed < MEMBERS // 2 and counts.parsed == MEMBERS, (parsed, counts.parsed)
        assert registry.breaker(last).state is CircuitState.CLOSED, "judged by its answer, not left half-open"


@pytest.mark.parametrize("burst", [8, 32])  # a head of 8 of the 24 members; a head of all of them (nothing left)
async def test_a_search_of_every_member_sends_the_known_fastest_before_it_plans_the_rest(served: Consortium, burst: int) -> None:
    """National scale: planning 1,700 members took ~2 ms before the first request could go out."""
    async with HttpClient() as http:
        registry = MemberRegistry(served, http)
        service = SearchService(registry, gate=OutboundGate(FanoutSettings(burst=burst)))
        await service.search(QUERY)  # learns each member's pace
        fastest = sorted(service._latency_ms, key=service._latency_ms.__getitem__)[: min(burst, MEMBERS)]
        log: list[tuple[str, Any]] = []
        plan, get = registry.plan, http.get

        def logged_plan(capability: Capability, members: Any = None) -> Any:
            log.append(("plan", len(members) if members else MEMBERS))
            return plan(capability, members)

        async def logged_get(url: Any, *, member: str, **options: Any) -> Any:
            log.append(("get", member))
            return await get(url, member=member, **options)

        registry.plan = logged_plan  # type: ignore[method-assign]
        http.get = logged_get  # type: ignore[method-assign]
        outcome = await service.search(QUERY)

    gets = [member for what, member in log if what == "get"]
    assert sorted(gets) == sorted(m.id for m in served.members), "every member asked once"
    assert [s.member for s in outcome.statuses] == [m.id for m in served.members], "statuses in the consortium's order"
    assert log[0] == ("plan", len(fastest)) and set(gets[: len(fastest)]) == set(fastest)
    if burst < MEMBERS:  # the rest planned once the head's requests were out
        assert log.index(("plan", MEMBERS - len(fastest))) > log.index(("get", gets[0]))
