"""A 500-member national fan-out on the sandbox (its own process, one port), bounded in time and memory.

Every member must get a status (the set of ids compared exactly), the broker's open descriptors
must stay under the socket cap it was given, and its memory under a stated bound.

The memory bound: measured on this kind of machine, the broker's RSS grows by 5.4 MB over the
first 500-member search and 6.3 MB after three (0.4 MB of it the registry: 500 connectors,
breakers and slots; the rest statuses, records, works, the 64 connections and allocator arenas);
the consortium itself is built before the measurement starts. The bound is 4 × 6 MB, since RSS
also moves with the allocator and with what earlier tests in the process left behind.
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from broker.fd_limit import open_descriptors, raise_nofile_limit
from broker.members import MemberRegistry
from broker.national_sandbox import DescriptorSampler, SandboxProcess, national_members, rss_bytes, sandbox_specs
from broker.outbound import FanoutSettings, OutboundGate
from broker.search import SearchService
from connectors import HttpClient
from yokodan import SearchQuery, TargetState

MEMBERS = 500
SOCKET_CAP = 64  # well below 500: the cap, not the member count, bounds the descriptors
RSS_BOUND_BYTES = 24 * 2**20
# Descriptors besides member sockets that may open during a search (the sampler's own listing,
# a thread pool's pipes, the loop's self-pipe): a few, never one per member.
OTHER_DESCRIPTORS = 16
TEST_DEADLINE_S = 60


@pytest.fixture(scope="module")
def sandbox() -> SandboxProcess:
    consortium, _ = national_members(MEMBERS)
    with SandboxProcess(sandbox_specs(consortium, 5, 60), catalogue_size=200) as process:
        yield process


async def test_a_500_member_fan_out_gives_every_member_a_status_within_the_descriptor_cap_and_memory_bound(
    sandbox: SandboxProcess,
) -> None:
    started = time.monotonic()
    raise_nofile_limit()
    consortium, real = national_members(MEMBERS, timeout_s=30)
    assert (len(consortium.members), real) == (500, 262)  # the 262 real members, 238 synthetic copies
    served = sandbox.consortium(consortium)
    gc.collect()
    rss_before = rss_bytes()
    fds_before = open_descriptors()
    async with HttpClient(total_connections=SOCKET_CAP) as http:
        gate = OutboundGate(FanoutSettings(max_in_flight=SOCKET_CAP, burst=16))
        service = SearchService(MemberRegistry(served, http), gate=gate)
        async with DescriptorSampler(interval_s=0.001) as fds:
            final = None
            async for event in service.stream(SearchQuery(text="こころ 夏目漱石", page_size=5)):
                final = event
        assert final is not None and final.final
        rss_growth = rss_bytes() - rss_before
    elapsed = time.monotonic() - started

    assert sorted(s.member for s in final.statuses) == sorted(m.id for m in consortium.members)
    assert [s.member for s in final.statuses if s.state is not TargetState.OK] == []
    assert fds.samples > 10, "the sampler ran during the search"
    assert fds.peak - fds_before <= SOCKET_CAP + OTHER_DESCRIPTORS, (fds.peak, fds_before)
    assert gate.peak_in_flight <= SOCKET_CAP
    assert rss_growth < RSS_BOUND_BYTES, f"RSS grew {rss_growth / 2**20:.1f} MB over one 500-member search"
    assert final.works, "こころ is held across the network"
    assert elapsed < TEST_DEADLINE_S


async def test_without_the_cap_the_descriptors_follow_the_member_count(sandbox: SandboxProcess) -> None:
    """The check above can fail: with no gate and a client cap of 512, a 500-member search opens far more."""
    consortium, _ = national_members(MEMBERS, timeout_s=30)
    served = sandbox.consortium(consortium)
    fds_before = open_descriptors()
    async with HttpClient(total_connections=512) as http:
        service = SearchService(MemberRegistry(served, http))
        async with DescriptorSampler(interval_s=0.001) as fds:
            outcome = await asyncio.wait_for(service.search(SearchQuery(text="こころ 夏目漱石", page_size=5)), TEST_DEADLINE_S)
    assert len(outcome.statuses) == MEMBERS
    assert fds.peak - fds_before > SOCKET_CAP + OTHER_DESCRIPTORS
