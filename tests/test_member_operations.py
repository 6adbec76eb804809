"""Calls outside a search (hold planning, the hold ledger) share the member's slots and breaker.

Against the shipped Okayama file on the sandbox: the prefectural library speaks Koha-style REST, so
patron look-ups and hold status calls go over a real socket. The bug these guard against: the
planner and the hold poller took a half-open circuit's probe and never reported, so after one outage
every later search skipped the member as `circuit_open` until the broker restarted.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.holds.gather import HoldsGatherer
from broker.holds.patron import Card, Patron
from broker.member_operations import MemberNotContacted
from broker.members import MemberRegistry
from connectors import Capability, HttpClient
from connectors.circuit import CircuitState
from connectors.errors import HoldRefused, TargetHTTPError
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from tests.holds_helpers import member_data, with_changes
from yokodan import PatronCredentials, PatronStatus, TargetState

PREF = "okayama-pref"
COOL_OFF_S = 0.2
PATRON = PatronCredentials(card_number="10000001", pin="1234")


def registry_with_short_cool_off(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> MemberRegistry:
    def short(data) -> None:
        member_data(data, PREF)["connector"]["circuit_reset_s"] = COOL_OFF_S

    return MemberRegistry(with_changes(okayama_sandbox.consortium, short), http)


async def open_circuit_and_cool_off(registry: MemberRegistry) -> None:
    for _ in range(registry.breaker(PREF).failure_threshold):
        registry.record(PREF, TargetState.ERROR, "http_500")
    assert registry.breaker(PREF).state is CircuitState.OPEN
    await asyncio.sleep(COOL_OFF_S * 1.5)


def searched(registry: MemberRegistry) -> bool:
    plan = registry.plan(Capability.SEARCH, [PREF])
    return [c.settings.member for c in plan.ask] == [PREF]


async def test_a_hold_plan_that_carries_the_probe_reports_it_and_searches_ask_the_member_again(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    registry = registry_with_short_cool_off(okayama_sandbox, http)
    await open_circuit_and_cool_off(registry)
    gathered = await HoldsGatherer(registry).gather(Patron(cards=[Card(member=PREF, card_number="10000001", pin="1234")]), [])
    assert isinstance(gathered.statuses[PREF], PatronStatus)  # looked up, not MemberUnreachable
    assert registry.breaker(PREF).state is CircuitState.CLOSED  # the look-up was the probe, and it reported
    assert searched(registry)


async def test_the_pollers_look_ahead_takes_no_probe(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    registry = registry_with_short_cool_off(okayama_sandbox, http)
    for _ in range(registry.breaker(PREF).failure_threshold):
        registry.record(PREF, TargetState.ERROR, "http_500")
    assert registry.unavailable(PREF) == "circuit_open"  # cooling off
    await asyncio.sleep(COOL_OFF_S * 1.5)
    assert registry.unavailable(PREF) is None  # may try now …
    assert registry.breaker(PREF).state is CircuitState.OPEN  # … but the probe is still there for whoever calls
    plan = registry.plan(Capability.SEARCH, [PREF])
    assert plan.probes == {PREF}
    assert registry.unavailable(PREF) == "circuit_open"  # the probe is out now


async def test_hold_calls_feed_the_breaker_refusals_are_answers_and_an_open_circuit_is_not_contacted(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    registry = registry_with_short_cool_off(okayama_sandbox, http)
    gateway = registry.guarded(PREF, Capability.PLACE_HOLD)
    with pytest.raises(HoldRefused) as refused:
        await gateway.hold_status(PATRON, "no-such-hold")
    assert refused.value.reason == "hold_not_found"
    registry.record(PREF, TargetState.ERROR, "http_500")
    with pytest.raises(HoldRefused):
        await gateway.hold_status(PATRON, "no-such-hold")
    assert registry.breaker(PREF).consecutive_failures == 0  # a refusal is the member answering

    okayama_sandbox.host.set_faults(PREF, FaultConfig(http_status=500))
    try:
        for _ in range(registry.breaker(PREF).failure_threshold):
            with pytest.raises(TargetHTTPError):
                await gateway.hold_status(PATRON, "no-such-hold")
        assert registry.breaker(PREF).state is CircuitState.OPEN
        with pytest.raises(MemberNotContacted) as skipped:
            await gateway.hold_status(PATRON, "no-such-hold")
        assert (skipped.value.reason, skipped.value.state) == ("circuit_open", TargetState.SKIPPED)
    finally:
        okayama_sandbox.host.set_faults(PREF, FaultConfig())
    assert not searched(registry)  # the hold traffic's failures count for searches too


async def test_a_hold_call_holds_one_of_the_members_slots(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    registry = MemberRegistry(okayama_sandbox.consortium, http, member_operations=1)
    gateway = registry.guarded(PREF, Capability.PLACE_HOLD)
    okayama_sandbox.host.set_faults(PREF, FaultConfig(delay_ms=300))
    try:
        call = asyncio.create_task(gateway.hold_status(PATRON, "no-such-hold"))
        await asyncio.sleep(0.1)
        slots = registry.slots(PREF)
        assert slots.in_use == 1
        async with registry.slot(PREF, wait_s=2.0) as queued_s:  # a search's request waits for the hold call
            assert call.done() and queued_s > 0.1
        with pytest.raises(HoldRefused):
            await call
    finally:
        okayama_sandbox.host.set_faults(PREF, FaultConfig())
    assert registry.slots(PREF).in_use == 0


async def test_a_placement_during_the_members_maintenance_is_not_sent(http: HttpClient) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tests.holds_helpers import shipped
    from yokodan import HoldRequest
    from yokodan.holds import HoldIntent

    # Kumamoto's daily 04:30-05:00 maintenance; pointed at a closed port, so any request would fail as unreachable.
    kumamoto = shipped("kumamoto").with_base_url("http://127.0.0.1:9")
    at_0445 = lambda: datetime(2026, 12, 1, 4, 45, tzinfo=ZoneInfo("Asia/Tokyo"))  # noqa: E731
    registry = MemberRegistry(kumamoto, http, clock=at_0445)
    gateway = registry.guarded("kumamoto-pref", Capability.PLACE_HOLD)
    request = HoldRequest(member="kumamoto-pref", record_id="1", pickup_branch_id="kumamoto-pref/honkan", idempotency_key="k" * 16)
    with pytest.raises(MemberNotContacted) as skipped:
        await gateway.place(PATRON, HoldIntent(request=request))
    assert skipped.value.reason == "maintenance" and "04:30" in skipped.value.message
    assert registry.breaker("kumamoto-pref").consecutive_failures == 0  # skipping is no failure of the member
