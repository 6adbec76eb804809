"""Circuit breaker, maintenance windows, retries (reads only) and the per-member cap, on real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from broker.consortium import Consortium
from yokodan import SearchQuery, TargetState
from broker.members import MemberRegistry
from broker.search import SearchService
from connectors import Capability, HttpClient
from connectors.circuit import CircuitBreaker, CircuitState
from connectors.errors import TargetHTTPError
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_probes_once_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=30, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.now += 29
    assert not breaker.allow() and breaker.retry_in_s() == pytest.approx(1)
    clock.now += 1
    assert breaker.allow(), "after the cool-off one probe goes through"
    assert breaker.state is CircuitState.HALF_OPEN and not breaker.allow(), "only one probe at a time"
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN, "a failed probe opens the circuit again"
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.consecutive_failures == 0


def test_an_abandoned_probe_gives_no_verdict() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=30, clock=clock)
    breaker.record_no_verdict()
    assert breaker.state is CircuitState.CLOSED, "no verdict on a closed circuit changes nothing"
    breaker.record_failure()
    clock.now += 30
    assert breaker.allow() and breaker.state is CircuitState.HALF_OPEN
    breaker.record_no_verdict()
    assert breaker.state is CircuitState.OPEN and breaker.consecutive_failures == 1
    assert breaker.retry_in_s() == 0.0 and breaker.allow(), "the cool-off is still over: the next caller probes"
    assert not breaker.allow(), "and only that one"


def _with(consortium: Consortium, member_id: str, **changes: object) -> Consortium:
    data = consortium.model_dump()
    member = next(m for m in data["members"] if m["id"] == member_id)
    for key, value in changes.items():
        if key == "maintenance":
            member["maintenance"] = value
        else:
            member["connector"][key] = value
    return Consortium.model_validate(data)


async def test_failing_member_is_skipped_once_its_circuit_opens(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    consortium = _with(okayama_sandbox.consortium, "setouchi-city", circuit_failures=2, circuit_reset_s=0.5, timeout_s=0.3)
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))
    service = SearchService(MemberRegistry(consortium, http))
    query = SearchQuery(author="夏目漱石")
    members = ["setouchi-city", "okayama-city"]
    for _ in range(2):
        status = {s.member: s for s in (await service.search(query, members)).statuses}["setouchi-city"]
        assert status.state is TargetState.TIMEOUT
    assert status.circuit == "open"
    started = time.perf_counter()
    outcome = await service.search(query, members)
    statuses = {s.member: s for s in outcome.statuses}
    assert (statuses["setouchi-city"].state, statuses["setouchi-city"].reason) == (TargetState.SKIPPED, "circuit_open")
    assert time.perf_counter() - started < 0.25, "an open circuit costs no timeout"
    assert statuses["okayama-city"].state is TargetState.OK
    # The member recovers; after the cool-off one probe closes the circuit.
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig())
    await asyncio.sleep(0.55)
    statuses = {s.member: s for s in (await service.search(query, members)).statuses}
    assert (statuses["setouchi-city"].state, statuses["setouchi-city"].circuit) == (TargetState.OK, "closed")


async def test_query_problems_do_not_open_the_circuit(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    consortium = _with(okayama_sandbox.consortium, "misaki-town", circuit_failures=1)
    service = SearchService(MemberRegistry(consortium, http))
    connector = service.registry.connector("misaki-town", Capability.SEARCH)
    connector.indexes = {**connector.indexes, "title": "nosuchindex"}  # diagnostic 16 every time
    for _ in range(2):
        status = (await service.search(SearchQuery(title="猫"), ["misaki-town"])).statuses[0]
        assert (status.reason, status.circuit) == ("diagnostic", "closed")


@pytest.mark.parametrize(
    ("utc_time", "skipped"),
    [
        ("2026-11-22T19:29:59", False),  # 04:29:59 JST
        ("2026-11-22T19:30:00", True),  # 04:30 JST: maintenance starts
        ("2026-11-22T19:59:59", True),
        ("2026-11-22T20:00:00", False),  # 05:00 JST: back
    ],
)
async def test_member_in_maintenance_is_skipped_without_contact(
    okayama_sandbox: SandboxedConsortium, http: HttpClient, utc_time: str, skipped: bool
) -> None:
    window = [{"start": "04:30", "end": "05:00", "note": "daily system maintenance"}]
    consortium = _with(okayama_sandbox.consortium, "okayama-pref", maintenance=window)
    # A hanging member would cost its whole timeout if it were contacted.
    okayama_sandbox.host.set_faults("okayama-pref", FaultConfig(hang=skipped))
    clock = lambda: datetime.fromisoformat(utc_time).replace(tzinfo=UTC)  # noqa: E731
    service = SearchService(MemberRegistry(consortium, http, clock=clock))
    started = time.perf_counter()
    status = (await service.search(SearchQuery(author="夏目漱石"), ["okayama-pref"])).statuses[0]
    if skipped:
        assert (status.state, status.reason) == (TargetState.SKIPPED, "maintenance")
        assert "04:30–05:00" in (status.message or "")
        assert time.perf_counter() - started < 0.2
    else:
        assert status.state is TargetState.OK


def test_overnight_window() -> None:
    from broker.consortium import MaintenanceWindow

    window = MaintenanceWindow.model_validate({"start": "23:30", "end": "00:30", "weekdays": ["sun"]})
    assert window.active_at(datetime(2026, 11, 22, 23, 45))  # Sunday 23:45
    assert window.active_at(datetime(2026, 11, 23, 0, 15))  # Monday 00:15, the Sunday window's tail
    assert not window.active_at(datetime(2026, 11, 23, 23, 45))  # Monday evening


@pytest.fixture
async def flaky_server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Answers 503 twice per path, then 200; counts requests and peak concurrency."""
    counts: dict[str, int] = {"requests": 0, "in_flight": 0, "peak": 0}

    async def handler(request: web.Request) -> web.Response:
        counts["requests"] += 1
        counts["in_flight"] += 1
        counts["peak"] = max(counts["peak"], counts["in_flight"])
        try:
            if request.path == "/slow":
                await asyncio.sleep(0.1)
                return web.Response(text="ok")
            return web.Response(status=503) if counts["requests"] <= 2 else web.Response(text="ok")
        finally:
            counts["in_flight"] -= 1

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", counts
    await runner.cleanup()


async def test_reads_are_retried_and_writes_are_not(flaky_server: tuple[str, dict[str, int]], http: HttpClient) -> None:
    url, counts = flaky_server
    response = await http.get(f"{url}/read", member="m", timeout_s=5)
    assert response.status == 200 and counts["requests"] == 3
    counts["requests"] = 0
    with pytest.raises(TargetHTTPError) as caught:
        await http.request("POST", f"{url}/hold", member="m", timeout_s=5, data={"x": "1"})
    assert caught.value.status == 503 and counts["requests"] == 1, "a hold placement is sent once"


async def test_per_member_concurrency_cap(flaky_server: tuple[str, dict[str, int]]) -> None:
    url, counts = flaky_server
    async with HttpClient(member_concurrency=2) as capped:
        await asyncio.gather(*(capped.get(f"{url}/slow", member="m", timeout_s=5) for _ in range(6)))
        assert counts["peak"] == 2
        counts["peak"] = 0
        await asyncio.gather(*(capped.get(f"{url}/slow", member=f"m{i}", timeout_s=5) for i in range(6)))
        assert counts["peak"] == 6, "the cap is per member, not per host"


async def test_an_abandoned_half_open_probe_leaves_the_circuit_probe_able(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    """Regression (issue 7.1): a caller that stops listening while the probe runs must not wedge the circuit."""
    consortium = _with(okayama_sandbox.consortium, "setouchi-city", circuit_failures=1, circuit_reset_s=0.3, timeout_s=0.3)
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))
    service = SearchService(MemberRegistry(consortium, http))
    query = SearchQuery(author="夏目漱石")
    members = ["setouchi-city", "okayama-city"]
    status = {s.member: s for s in (await service.search(query, members)).statuses}["setouchi-city"]
    assert (status.state, status.circuit) == (TargetState.TIMEOUT, "open")
    await asyncio.sleep(0.35)  # cool-off over: the next search sends setouchi-city the probe
    stream = service.stream(query, members)
    first = await anext(stream)
    assert first.answer is not None and first.answer.status.member == "okayama-city", "the probe is still hanging"
    await stream.aclose()  # the caller walks away with the probe in flight
    # The member recovers; the abandoned probe gave no verdict, so the very next search probes again.
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig())
    statuses = {s.member: s for s in (await service.search(query, members)).statuses}
    assert (statuses["setouchi-city"].state, statuses["setouchi-city"].circuit) == (TargetState.OK, "closed")
