"""A search through the outbound gate, on the sandbox over real sockets: who waits, who is not contacted."""

from __future__ import annotations

import asyncio
import time

import pytest

from yokodan import SearchQuery, TargetState
from broker.members import MemberRegistry
from broker.outbound import FanoutSettings, OutboundGate
from broker.search import SearchService
from connectors import Capability, HttpClient
from connectors.circuit import CircuitState
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium, with_member_timeouts

TIMEOUT_S = 0.5


async def test_a_member_left_waiting_in_a_full_gate_is_reported_broker_busy_and_not_blamed(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    consortium = with_member_timeouts(okayama_sandbox.consortium, TIMEOUT_S)
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))
    gate = OutboundGate(FanoutSettings(max_in_flight=1, burst=16))
    registry = MemberRegistry(consortium, http)
    service = SearchService(registry, gate=gate)
    started = time.perf_counter()
    # Never-seen members keep the order asked: the hanging member takes the one slot.
    outcome = await service.search(SearchQuery(author="夏目漱石"), ["setouchi-city", "okayama-city"])
    elapsed = time.perf_counter() - started
    assert [(s.member, s.state, s.reason) for s in outcome.statuses] == [
        ("setouchi-city", TargetState.TIMEOUT, "timeout"),
        ("okayama-city", TargetState.TIMEOUT, "broker_busy"),
    ]
    busy = outcome.statuses[1]
    assert busy.message is not None and "not contacted" in busy.message
    assert busy.elapsed_ms is not None and busy.elapsed_ms >= TIMEOUT_S * 1000 * 0.9
    assert elapsed < TIMEOUT_S * 2 + 0.5, "the waiting member expired at its own deadline, not after the slot freed"
    assert gate.in_flight == 0 and gate.queued == 0
    # The broker's own queue says nothing about the member: its breaker saw no failure.
    assert registry.breaker("okayama-city").consecutive_failures == 0
    assert registry.breaker("okayama-city").state is CircuitState.CLOSED


async def test_a_national_sized_wait_starts_every_member_through_the_gate(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    consortium = okayama_sandbox.consortium
    gate = OutboundGate(FanoutSettings(max_in_flight=2, burst=1))
    service = SearchService(MemberRegistry(consortium, http), gate=gate)
    statuses = [s async for e in service.stream(SearchQuery(author="夏目漱石")) if e.final for s in e.statuses]
    assert sorted(s.member for s in statuses) == sorted(m.id for m in consortium.members)
    assert {s.state for s in statuses} == {TargetState.OK}
    assert gate.peak_in_flight == 2 and gate.in_flight == 0 and gate.queued == 0


async def test_a_caller_that_stops_listening_withdraws_its_waiting_members(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    gate = OutboundGate(FanoutSettings(max_in_flight=1, burst=1))
    service = SearchService(MemberRegistry(okayama_sandbox.consortium, http), gate=gate)
    events = service.stream(SearchQuery(author="夏目漱石"))
    first = await anext(events)
    assert first.answer is not None
    await events.aclose()
    assert gate.queued == 0 and gate.in_flight == 0


async def test_a_probe_still_waiting_in_the_gate_when_the_caller_leaves_gives_no_verdict(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    data = okayama_sandbox.consortium.model_dump()
    for member in data["members"]:
        member["connector"].update(circuit_failures=1, circuit_reset_s=0.05)
    consortium = type(okayama_sandbox.consortium).model_validate(data)
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))
    registry = MemberRegistry(consortium, http)
    registry.breaker("okayama-city").record_failure()  # open; after the cool-off the next search carries the probe
    await asyncio.sleep(0.1)
    service = SearchService(registry, gate=OutboundGate(FanoutSettings(max_in_flight=1, burst=16)))
    events = service.stream(SearchQuery(author="夏目漱石"), ["setouchi-city", "okayama-city"])
    # The hanging member holds the one slot: the probe waits in the gate when the caller gives up.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(events), 0.2)
    await events.aclose()
    assert registry.breaker("okayama-city").state is CircuitState.OPEN  # given back, not left half-open
    assert registry.admit("okayama-city", Capability.SEARCH).probe, "the next caller carries the probe"
