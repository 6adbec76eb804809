"""The outbound gate: a global cap on member requests, fair between searches, paced per loop turn."""

from __future__ import annotations

import asyncio

import pytest

from broker.outbound import FanoutSettings, FanoutSettingsError, OutboundGate


async def _run(gate: OutboundGate, flows: dict[str, int], hold_s: float = 0.0) -> list[str]:
    """Start every flow's requests at once; return the order in which they got a slot."""
    order: list[str] = []

    async def request(flow: str) -> None:
        async with gate.slot(flow):
            order.append(flow)
            await asyncio.sleep(hold_s)

    await asyncio.gather(*(request(flow) for flow, n in flows.items() for _ in range(n)))
    return order


async def test_in_flight_never_exceeds_the_cap() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=5, burst=100))
    await _run(gate, {"a": 40}, hold_s=0.002)
    assert gate.peak_in_flight == 5 and gate.in_flight == 0 and gate.queued == 0


async def test_a_small_search_is_not_queued_behind_a_national_one() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=2, burst=100))
    order = await _run(gate, {"national": 20, "city": 3}, hold_s=0.001)
    # The first two take the free slots; from then on the searches alternate until the city is done.
    assert order[:8] == ["national", "national", "national", "city", "national", "city", "national", "city"]
    assert order.count("national") == 20 and order.count("city") == 3


async def test_starts_are_paced_per_loop_turn() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=100, burst=4))
    turns: list[int] = []
    turn = 0

    async def ticker() -> None:
        nonlocal turn
        while True:
            await asyncio.sleep(0)
            turn += 1

    tick = asyncio.create_task(ticker())

    async def request() -> None:
        async with gate.slot("a"):
            turns.append(turn)
            await asyncio.sleep(0.05)

    await asyncio.gather(*(request() for _ in range(12)))
    tick.cancel()
    # Twelve requests, four per turn: three different turns, four starts each.
    assert sorted(turns.count(t) for t in set(turns)) == [4, 4, 4]


async def test_a_cancelled_waiter_gives_up_its_place_and_a_granted_one_its_slot() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=1, burst=100))
    await gate.acquire("a")
    waiter = asyncio.create_task(gate.acquire("b"))
    await asyncio.sleep(0)
    assert gate.queued == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.queued == 0
    gate.release()
    assert gate.in_flight == 0
    await asyncio.wait_for(gate.acquire("c"), 1)  # the slot is free again
    assert gate.in_flight == 1


def test_bad_settings_are_named_errors() -> None:
    with pytest.raises(FanoutSettingsError):
        FanoutSettings(max_in_flight=0)
    with pytest.raises(FanoutSettingsError):
        FanoutSettings(burst=0)
