"""Shared fixtures: real servers on real sockets (Zebra, the sandbox members, the broker)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.consortium import Consortium, load_consortium
from broker.demo import sandbox_members
from connectors import HttpClient
from sandbox.host import SandboxHost
from tests.zebra_server import zebra, zebra_ndl  # noqa: F401  (session fixtures)

# The real NDL/CiNii/MLIT data and the seed documents live beside the repository, not in it.
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_shared_data(*relative: str | Path) -> None:
    """Skip (with a message naming what is missing) unless ../shared holds each path; fail under CI.

    Paths are relative to ../shared (default: `data`); an absolute path is taken as it is.

    CI always lays shared/ beside the clone, so a missing path there means a broken checkout or a
    moved file: a skip would hide it behind a green run.
    """
    wanted = [SHARED_DIR / r for r in (relative or ("data",))]
    missing = [path for path in wanted if not path.exists()]
    if not missing:
        return
    reason = f"needs ../shared beside the repository: {', '.join(str(p) for p in missing)} not found"
    if _ci():
        pytest.fail(f"{reason} (CI=true: tests that need shared data must not skip)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.shared_data` or `@pytest.mark.shared_data("seeds/x.txt", …)`: see require_shared_data."""
    for marker in item.iter_markers(name="shared_data"):
        require_shared_data(*marker.args)


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
