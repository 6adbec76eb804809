"""Fan-out over the sandbox Okayama members on real sockets: merging, statuses, faults."""

from __future__ import annotations

import time

import pytest

from yokodan import Availability, SearchQuery, TargetState
from broker.members import MemberRegistry
from broker.search import SearchService, UnknownMembers
from connectors import Capability, HttpClient
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium


async def test_search_merges_works_across_members(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    consortium = okayama_sandbox.consortium
    outcome = await SearchService(MemberRegistry(consortium, http)).search(SearchQuery(author="夏目漱石"))
    assert {s.state for s in outcome.statuses} == {TargetState.OK}
    assert len(outcome.statuses) == len(consortium.members)
    assert outcome.works, "夏目漱石 is in the sandbox core catalogue"
    widely_held = outcome.works[0]
    assert len(widely_held.members) >= 3, "popular titles are held by many members and merged into one work"
    assert widely_held.match_reasons, "a merged work says why its records were merged"
    assert any("漱石" in a for a in widely_held.authors)
    branch_ids = {b.id for b in consortium.branches()}
    holdings = [h for w in outcome.works for h in w.holdings]
    # Every copy carries the member's word, except where a tos OPAC shows an empty cell for "available".
    assert holdings and all(h.status_text or h.availability is Availability.AVAILABLE for h in holdings)
    assert any(h.status_text == "" and h.member == "tamano-city" for h in holdings), "the empty-cell member is in"
    mapped = [h for h in holdings if h.branch_id]
    assert len(mapped) == len(holdings), "every sandbox location maps to a consortium branch"
    assert {h.branch_id for h in mapped} <= branch_ids
    assert {h.availability for h in holdings} & {Availability.AVAILABLE, Availability.ON_LOAN}
    hits = {s.member: s.hits for s in outcome.statuses}
    assert all(h is not None for h in hits.values())


async def test_selected_members_only(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    service = SearchService(MemberRegistry(okayama_sandbox.consortium, http))
    outcome = await service.search(SearchQuery(author="夏目漱石"), ["okayama-city", "okayama-pref"])
    assert sorted(s.member for s in outcome.statuses) == ["okayama-city", "okayama-pref"]
    assert {r.member for w in outcome.works for r in w.records} <= {"okayama-city", "okayama-pref"}
    with pytest.raises(UnknownMembers, match="nowhere-town"):
        await service.search(SearchQuery(text="x"), ["okayama-city", "nowhere-town"])


@pytest.mark.parametrize(
    ("faults", "state", "reason"),
    [
        (FaultConfig(hang=True), TargetState.TIMEOUT, "timeout"),
        (FaultConfig(http_status=500), TargetState.ERROR, "http_500"),
        (FaultConfig(http_status=404), TargetState.ERROR, "http_404"),
        (FaultConfig(malformed_xml=True), TargetState.ERROR, "malformed"),
        (FaultConfig(entity_bomb=True), TargetState.ERROR, "hostile_document"),
        (FaultConfig(wrong_charset=True), TargetState.ERROR, "undecodable"),
        (FaultConfig(slow_drip_s=5.0), TargetState.TIMEOUT, "timeout"),
    ],
    ids=["hang", "http-500", "http-404", "malformed-xml", "entity-bomb", "wrong-charset", "slow-drip"],
)
async def test_a_failing_member_costs_only_its_own_status(
    okayama_sandbox: SandboxedConsortium, http: HttpClient, faults: FaultConfig, state: TargetState, reason: str
) -> None:
    consortium = okayama_sandbox.consortium
    okayama_sandbox.host.set_faults("setouchi-city", faults)
    service = SearchService(MemberRegistry(consortium, http))
    started = time.perf_counter()
    outcome = await service.search(SearchQuery(author="夏目漱石"))
    elapsed = time.perf_counter() - started
    statuses = {s.member: s for s in outcome.statuses}
    broken = statuses.pop("setouchi-city")
    assert (broken.state, broken.reason) == (state, reason)
    assert broken.message
    assert all(s.state is TargetState.OK for s in statuses.values()), statuses
    deadline = consortium.member("setouchi-city").connector.timeout_s
    # The healthy members answered long before the broken one's deadline, and the
    # whole search ended at that deadline (plus scheduling slack), not later.
    assert max(s.elapsed_ms for s in statuses.values()) < deadline * 1000 / 2
    assert elapsed < deadline + 1.0
    assert not any(r.member == "setouchi-city" for w in outcome.works for r in w.records)
    assert len({r.member for w in outcome.works for r in w.records}) >= 6


async def test_a_50_mb_body_is_cut_at_the_cap(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    """A 50 MB answer is refused at the default 8 MB cap while streaming, never buffered whole."""
    okayama_sandbox.host.set_faults("misaki-town", FaultConfig(huge_body_mb=50))
    outcome = await SearchService(MemberRegistry(okayama_sandbox.consortium, http)).search(SearchQuery(author="夏目漱石"))
    statuses = {s.member: s for s in outcome.statuses}
    assert (statuses["misaki-town"].state, statuses["misaki-town"].reason) == (TargetState.ERROR, "too_large")
    assert statuses["okayama-city"].state is TargetState.OK


async def test_unreachable_member(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    consortium = okayama_sandbox.consortium.with_base_url("http://127.0.0.1:9")  # discard port: nothing listens
    outcome = await SearchService(MemberRegistry(consortium, http)).search(SearchQuery(author="夏目漱石"), ["wake-town"])
    assert (outcome.statuses[0].state, outcome.statuses[0].reason) == (TargetState.ERROR, "unreachable")


async def test_bad_cql_diagnostic_reaches_status(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    service = SearchService(MemberRegistry(okayama_sandbox.consortium, http))
    connector = service.registry.connector("okayama-city", Capability.SEARCH)
    connector.indexes = {**connector.indexes, "title": "nosuchindex"}  # a mis-configured index map
    outcome = await service.search(SearchQuery(title="猫"), ["okayama-city", "misaki-town"])
    statuses = {s.member: s for s in outcome.statuses}
    assert statuses["okayama-city"].reason == "diagnostic"
    assert statuses["okayama-city"].diagnostics[0].code == "16"
    assert statuses["misaki-town"].state is TargetState.OK


async def test_stream_yields_one_event_per_member_then_final(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    okayama_sandbox.host.set_faults("okayama-pref", FaultConfig(delay_ms=400))
    service = SearchService(MemberRegistry(okayama_sandbox.consortium, http))
    events = [e async for e in service.stream(SearchQuery(author="夏目漱石"))]
    assert len(events) == len(okayama_sandbox.consortium.members) + 1
    assert events[-1].final and not any(e.final for e in events[:-1])
    assert events[-2].answer is not None and events[-2].answer.status.member == "okayama-pref", "slowest answers last"
    first_members = {e.answer.status.member for e in events[:-1] if e.answer}
    assert len(first_members) == len(okayama_sandbox.consortium.members)
    assert sum(len(e.works) for e in events[:-1]) >= len(events[-1].works)
