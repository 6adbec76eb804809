"""Shared fixtures: real servers on real sockets (Zebra, the sandbox members, the broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from broker.consortium import Consortium, load_consortium
from broker.demo import sandbox_members
from connectors import HttpClient
from sandbox.host import SandboxHost
from tests.zebra_server import zebra, zebra_ndl  # noqa: F401  (session fixtures)


def with_member_timeouts(consortium: Consortium, timeout_s: float) -> Consortium:
    """The same consortium with every member's deadline set to `timeout_s`."""
    data = consortium.model_dump()
    for member in data["members"]:
        member["connector"]["timeout_s"] = timeout_s
    return Consortium.model_validate(data)


@dataclass
class SandboxedConsortium:
    host: SandboxHost
    consortium: Consortium


@pytest.fixture
async def okayama_sandbox() -> AsyncIterator[SandboxedConsortium]:
    """The shipped Okayama consortium, every member simulated on one local port (5 ms latency)."""
    consortium = with_member_timeouts(load_consortium(), 2.0)
    host = SandboxHost(sandbox_members(consortium, latency_ms=5))
    base_url = await host.start()
    try:
        yield SandboxedConsortium(host, consortium.with_base_url(base_url))
    finally:
        await host.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient() as client:
        yield client
