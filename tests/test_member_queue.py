"""Per-member operation slots with a short FIFO queue (broker/member_slots.py), over real sockets.

A member's SRU endpoint here is a local server that holds every answer for `HOLD_S` and records the
order and the peak of the requests it gets; the member's deadline is shorter than the time the last
queued search waits, so a deadline that started while queued would time the member out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from broker.consortium import Consortium
from broker.member_slots import MemberBusy, MemberSlots, SlotLimits
from broker.members import MemberRegistry
from broker.search import SearchService
from connectors import HttpClient
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from tests.edge_helpers import get_json, running_broker
from yokodan import SearchQuery, TargetState

DATA = Path(__file__).parent / "data"
HOLD_S = 0.3
MEMBER = "okayama-city"


@dataclass
class SlowMember:
    url: str
    queries: list[str] = field(default_factory=list)  # in the order the requests arrived
    in_flight: int = 0
    peak: int = 0


@pytest.fixture
async def slow_member() -> AsyncIterator[SlowMember]:
    body = (DATA / "sru-marcxml-ndl.xml").read_bytes()
    member = SlowMember("")

    async def sru(request: web.Request) -> web.Response:
        member.queries.append(request.query.get("query", ""))
        member.in_flight += 1
        member.peak = max(member.peak, member.in_flight)
        try:
            await asyncio.sleep(HOLD_S)
            return web.Response(body=body, content_type="text/xml")
        finally:
            member.in_flight -= 1

    app = web.Application()
    app.router.add_get("/sru", sru)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    member.url = f"http://127.0.0.1:{runner.addresses[0][1]}/sru"
    try:
        yield member
    finally:
        await runner.cleanup()


def _member_table(consortium: Consortium, **changes: object) -> Consortium:
    data = consortium.model_dump()
    next(m for m in data["members"] if m["id"] == MEMBER)["connector"].update(changes)
    return Consortium.model_validate(data)


async def _staggered(service: SearchService, titles: list[str]) -> list[TargetState | tuple]:
    """One search per title, started 20 ms apart (so they reach the queue in this order)."""

    async def one(n: int, title: str):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.02 * n)
        return (await service.search(SearchQuery(title=title), [MEMBER])).statuses[0]

    return list(await asyncio.gather(*(one(n, t) for n, t in enumerate(titles))))


async def test_two_slots_and_six_concurrent_searches_are_all_answered_in_arrival_order(
    okayama_sandbox: SandboxedConsortium, slow_member: SlowMember, http: HttpClient
) -> None:
    # 0.5 s deadline; the last two searches queue ~0.6 s before they are sent, then take 0.3 s.
    consortium = _member_table(
        okayama_sandbox.consortium, endpoint=slow_member.url, timeout_s=0.5, max_operations=2, circuit_failures=1
    )
    registry = MemberRegistry(consortium, http)
    titles = ["一", "二", "三", "四", "五", "六"]
    started = time.perf_counter()
    statuses = await _staggered(SearchService(registry), titles)
    took = time.perf_counter() - started
    assert [(s.state, s.reason) for s in statuses] == [(TargetState.OK, None)] * 6
    assert slow_member.peak == 2
    assert [next(t for t in titles if t in q) for q in slow_member.queries] == titles, "FIFO: sent in arrival order"
    assert took >= 3 * HOLD_S  # three rounds of two: the queue, not parallel requests, answered them
    assert registry.breaker(MEMBER).consecutive_failures == 0
    slots = registry.slots(MEMBER)
    assert (slots.in_use, slots.waiting, slots.queued_total, slots.refused_total) == (0, 0, 4, 0)


async def test_beyond_the_queue_the_member_is_skipped_as_member_busy_not_a_failure(
    okayama_sandbox: SandboxedConsortium, slow_member: SlowMember, http: HttpClient
) -> None:
    consortium = _member_table(
        okayama_sandbox.consortium, endpoint=slow_member.url, max_operations=1, queue_length=1, circuit_failures=1
    )
    registry = MemberRegistry(consortium, http)
    statuses = await _staggered(SearchService(registry), ["一", "二", "三"])
    assert [(s.state, s.reason) for s in statuses] == [
        (TargetState.OK, None), (TargetState.OK, None), (TargetState.SKIPPED, "member_busy"),
    ]  # fmt: skip
    assert "not contacted" in (statuses[2].message or "") and statuses[2].circuit == "closed"
    assert len(slow_member.queries) == 2, "the refused search never reached the member"
    assert registry.breaker(MEMBER).consecutive_failures == 0
    assert registry.slots(MEMBER).refused_total == 1


async def test_a_wait_longer_than_queue_wait_s_is_member_busy_at_the_queue_wait(
    okayama_sandbox: SandboxedConsortium, slow_member: SlowMember, http: HttpClient
) -> None:
    consortium = _member_table(
        okayama_sandbox.consortium, endpoint=slow_member.url, max_operations=1, queue_wait_s=0.1, timeout_s=5
    )
    statuses = await _staggered(SearchService(MemberRegistry(consortium, http)), ["一", "二"])
    assert [(s.state, s.reason) for s in statuses] == [(TargetState.OK, None), (TargetState.SKIPPED, "member_busy")]
    assert statuses[1].elapsed_ms is not None and 80 <= statuses[1].elapsed_ms < 250  # the queue's wait, not 5 s
    assert "within 0.1 s" in (statuses[1].message or "")


async def test_over_the_api_a_member_beyond_its_queue_is_skipped_as_member_busy_and_the_others_answer() -> None:
    changes = {MEMBER: {"max_operations": 1, "queue_length": 0, "circuit_failures": 1}}
    async with running_broker(timeout_s=2.0, connector_changes=changes) as broker, aiohttp.ClientSession() as session:
        broker.sandbox.set_faults(MEMBER, FaultConfig(delay_ms=600))
        url = f"{broker.url}/api/v1/search"
        first, second = await asyncio.gather(
            get_json(session, url, {"q": "夏目漱石"}), _after(0.1, get_json(session, url, {"q": "宮沢賢治"}))
        )
        assert (first[0], second[0]) == (200, 200)
        states = [{t["member"]: (t["state"], t["reason"]) for t in body["targets"]} for _, _, body in (first, second)]
        assert states[0][MEMBER] == ("ok", None)
        assert states[1].pop(MEMBER) == ("skipped", "member_busy")
        assert set(states[1].values()) == {("ok", None)}
        assert broker.sandbox_requests.paths.count(f"/{MEMBER}/sru") == 1, "the member was asked once"
        _, _, members = await get_json(session, f"{broker.url}/api/v1/members")
        assert next(m for m in members["members"] if m["id"] == MEMBER)["circuit"]["state"] == "closed"


async def _after(delay_s: float, awaitable):  # type: ignore[no-untyped-def]
    await asyncio.sleep(delay_s)
    return await awaitable


async def test_slots_hand_over_in_order_and_a_cancelled_waiter_leaves_the_queue() -> None:
    slots = MemberSlots("m", SlotLimits(capacity=1, max_waiting=3, max_wait_s=5))
    order: list[str] = []

    async def use(name: str, hold_s: float) -> None:
        async with slots.acquire():
            order.append(name)
            await asyncio.sleep(hold_s)

    first = asyncio.create_task(use("a", 0.05))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(use(n, 0)) for n in "bcd"]
    await asyncio.sleep(0.01)
    assert (slots.in_use, slots.waiting) == (1, 3)
    with pytest.raises(MemberBusy, match="waiting"):
        async with slots.acquire():
            pass
    waiting[1].cancel()  # c goes away while queued
    await asyncio.gather(first, *waiting, return_exceptions=True)
    assert order == ["a", "b", "d"]
    assert (slots.in_use, slots.waiting, slots.refused_total) == (0, 0, 1)
