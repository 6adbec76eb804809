"""The outbound gate's submissions: a search's members wait as queue entries, started when granted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from broker.outbound import FanoutSettings, OutboundGate

T = TypeVar("T")


def _recorder(log: list[T], name: T) -> Callable[[], None]:
    return lambda: log.append(name)


async def test_submissions_start_in_order_as_slots_free_and_share_turns_with_acquire() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=1, burst=100))
    loop = asyncio.get_running_loop()
    started: list[str] = []
    far = loop.time() + 60
    for name in ("n1", "n2", "n3"):
        gate.submit("national", _recorder(started, name), _recorder(started, f"expired {name}"), far)
    assert started == ["n1"] and gate.in_flight == 1 and gate.queued == 2  # the free slot at once, the rest wait
    city = asyncio.create_task(gate.acquire("city"))
    await asyncio.sleep(0)
    gate.release()  # n1 done: the national search's next turn
    assert started == ["n1", "n2"]
    gate.release()  # n2 done: the city's turn comes before n3 (round-robin between searches)
    await city
    assert started == ["n1", "n2"] and gate.in_flight == 1
    gate.release()
    assert started == ["n1", "n2", "n3"] and gate.queued == 0
    gate.release()
    assert gate.in_flight == 0


async def test_a_submission_waiting_past_its_deadline_expires_and_is_never_started() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=1, burst=100))
    loop = asyncio.get_running_loop()
    log: list[str] = []
    expired_at: list[float] = []
    began = loop.time()
    gate.submit("s", _recorder(log, "a"), _recorder(log, "expired a"), began + 60)  # takes the one slot
    gate.submit("s", _recorder(log, "b"), lambda: (log.append("expired b"), expired_at.append(loop.time())), began + 0.05)
    gate.submit("s", _recorder(log, "c"), _recorder(log, "expired c"), began + 60)
    await asyncio.sleep(0.15)
    assert log == ["a", "expired b"]
    assert 0.05 <= expired_at[0] - began < 0.14, "expired by the flow's one timer, at its deadline"
    gate.release()  # a done: c, still within its deadline, starts; b never does
    assert log == ["a", "expired b", "c"] and gate.queued == 0


async def test_withdrawn_submissions_are_neither_started_nor_expired() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=1, burst=100))
    loop = asyncio.get_running_loop()
    log: list[str] = []
    gate.submit("s", _recorder(log, "a"), _recorder(log, "expired a"), loop.time() + 60)
    waiting = [gate.submit("s", _recorder(log, n), _recorder(log, f"expired {n}"), loop.time() + 0.05) for n in "bc"]
    withdrawn = gate.withdraw("s")
    assert withdrawn == waiting and gate.queued == 0
    await asyncio.sleep(0.1)
    gate.release()
    assert log == ["a"] and gate.in_flight == 0


async def test_a_burst_of_submissions_starts_at_most_burst_per_loop_turn() -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=100, burst=4))
    loop = asyncio.get_running_loop()
    started: list[int] = []
    for n in range(10):
        gate.submit("s", _recorder(started, n), lambda: None, loop.time() + 60)
    seen = [len(started)]
    for _ in range(2):
        await asyncio.sleep(0)  # one loop turn: the gate's next tick runs before this task resumes
        seen.append(len(started))
    assert seen == [4, 8, 10] and started == list(range(10))
