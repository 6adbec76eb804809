"""Connections to a member are kept alive and reused: counted at the sandbox member itself."""

from __future__ import annotations

import asyncio

from broker.members import MemberRegistry
from broker.search import SearchService
from connectors import HttpClient
from tests.conftest import SandboxedConsortium
from yokodan import SearchQuery, TargetState


async def test_twenty_sequential_searches_to_one_member_reuse_one_connection(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    service = SearchService(MemberRegistry(okayama_sandbox.consortium, http))
    okayama_sandbox.host.peers.clear()
    for n in range(20):
        outcome = await service.search(SearchQuery(text=f"猫 {n}"), ["okayama-city"])
        assert [s.state for s in outcome.statuses] == [TargetState.OK]
    assert len(okayama_sandbox.host.peers["okayama-city"]) <= 2


async def test_under_load_each_member_gets_no_more_connections_than_requests_in_flight(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    service = SearchService(MemberRegistry(okayama_sandbox.consortium, http))
    sru_members = [m.id for m in okayama_sandbox.consortium.members if m.connector.kind == "sru"]
    okayama_sandbox.host.peers.clear()
    for round_ in range(5):  # 4 searches at once over every SRU member, 5 times
        outcomes = await asyncio.gather(*(service.search(SearchQuery(text=f"の {round_} {k}"), sru_members) for k in range(4)))
        assert all(s.state is TargetState.OK for o in outcomes for s in o.statuses)
    seen = {m: len(okayama_sandbox.host.peers[m]) for m in sru_members}
    assert seen == {m: min(n, 4) for m, n in seen.items()}, seen  # never more than 4 in flight
    assert sum(seen.values()) <= 4 * len(sru_members) < 20 * len(sru_members), "reused across the 5 rounds"
