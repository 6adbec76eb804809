"""Admission and fairness over real sockets: per-client rate limits, the search gate, coalescing,
the lag monitor, and what hostile clients and bursts leave behind for everyone else."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from broker.admission import AdmissionSettings, AdmissionSettingsError, ClientRateLimiter, LagMonitor
from broker.api import COALESCER_KEY, GATE_KEY, LAG_KEY
from sandbox.spec import FaultConfig
from tests.edge_helpers import circuits, get_json, running_broker, session_from

HOSTILE, PATRON = "127.0.0.1", "127.0.0.2"


def work_lines(body: dict) -> list[tuple[str, int]]:
    return [(w["title"], w["member_count"]) for w in body["works"]]


async def test_a_hostile_clients_100_bad_requests_leave_other_clients_results_unchanged() -> None:
    async with running_broker(sru_keeps="\x00\x1b") as broker:
        url = f"{broker.url}/api/v1/search"
        async with session_from(PATRON) as patron:
            status, _, before = await get_json(patron, url, {"q": "夏目漱石"})
            assert status == 200 and before["works"]
            bad = [
                {"q": "abc\x00def"}, {"q": "\x1b[2J"}, {"q": "猫", "colour": "red"}, {"q": "猫", "page_size": "9999"},
                {"q": "猫", "members": "atlantis"}, {"isbn": "9784101010015"}, {}, {"q": "猫", "near": "999,999"},
                {"q": "\ufffd"}, {"q": "x" * 600},
            ] * 10  # fmt: skip
            async with session_from(HOSTILE) as hostile:
                answers = await asyncio.gather(*(get_json(hostile, url, params) for params in bad))
            statuses = [status for status, _, _ in answers]
            assert len(statuses) == 100 and set(statuses) <= {200, 400, 429} and 429 in statuses
            status, headers, after = await get_json(patron, url, {"q": "夏目漱石"})
            assert status == 200
            assert work_lines(after) == work_lines(before)
            assert [(t["member"], t["state"]) for t in after["targets"]] == [(t["member"], t["state"]) for t in before["targets"]]
            assert {t["state"] for t in after["targets"]} == {"ok"}
            # the patron's own bucket: two searches taken (refilling meanwhile), none of the hostile 100
            assert int(headers["RateLimit-Remaining"]) >= AdmissionSettings().client_burst - 2
            assert {m: c["state"] for m, c in (await circuits(patron, broker)).items()} == {
                m.id: "closed" for m in broker.consortium.members
            }


async def test_rate_limit_is_per_client_with_retry_after_and_ratelimit_headers() -> None:
    settings = AdmissionSettings(client_burst=3, client_rate_per_s=0.5)
    async with running_broker(settings) as broker:
        url = f"{broker.url}/api/v1/search"
        params = {"q": "猫", "members": "okayama-city"}
        async with session_from(HOSTILE) as first, session_from(PATRON) as second:
            answers = [await get_json(first, url, params) for _ in range(4)]
            assert [a[0] for a in answers] == [200, 200, 200, 429]
            assert [a[1]["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
            status, headers, body = answers[3]
            assert headers["Content-Type"] == "application/problem+json" and body["status"] == 429
            assert headers["Retry-After"] == "2" and headers["RateLimit-Limit"] == "3"
            assert (await get_json(second, url, params))[0] == 200  # another address has its own bucket
        assert broker.sandbox_requests.paths.count("/okayama-city/sru") == 4  # the refusal asked no member


def test_token_bucket_refills_and_forgets_the_least_recent_client() -> None:
    now = [0.0]
    limiter = ClientRateLimiter(
        AdmissionSettings(client_burst=2, client_rate_per_s=1.0, max_tracked_clients=2), clock=lambda: now[0]
    )
    assert [limiter.take("a").allowed for _ in range(3)] == [True, True, False]
    now[0] = 1.0
    assert [limiter.take("a").allowed for _ in range(2)] == [True, False]
    limiter.take("b")
    limiter.take("c")  # a is the least recently seen of three: dropped
    assert limiter.tracked() == 2 and limiter.take("a").remaining == 1


def test_settings_refuse_unusable_numbers() -> None:
    with pytest.raises(AdmissionSettingsError):
        AdmissionSettings(max_searches=0)
    with pytest.raises(AdmissionSettingsError):
        AdmissionSettings(lag_threshold_s=0)


async def test_searches_beyond_the_cap_wait_briefly_then_get_503_with_retry_after() -> None:
    settings = AdmissionSettings(max_searches=1, queue_wait_s=1.0, busy_retry_after_s=3)
    async with running_broker(settings, timeout_s=5) as broker:
        broker.sandbox.set_faults("okayama-city", FaultConfig(delay_ms=2500))
        url = f"{broker.url}/api/v1/search"
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            slow, refused = await asyncio.gather(
                get_json(session, url, {"q": "猫", "members": "okayama-city"}),
                _after(0.1, get_json(session, url, {"q": "犬", "members": "okayama-city"})),
            )
            waited = time.perf_counter() - started
            assert slow[0] == 200
            assert (refused[0], refused[1]["Content-Type"], refused[1]["Retry-After"]) == (503, "application/problem+json", "3")
            assert refused[2]["status"] == 503 and waited < 4.5
            assert broker.app[GATE_KEY].refused == 1
            # A search that fits into the queue wait is served, not refused.
            broker.sandbox.set_faults("okayama-city", FaultConfig())
            both = await asyncio.gather(*(get_json(session, url, {"q": q, "members": "okayama-city"}) for q in ("本", "海")))
            assert [b[0] for b in both] == [200, 200]


async def _after(delay_s: float, awaitable):  # type: ignore[no-untyped-def]
    await asyncio.sleep(delay_s)
    return await awaitable


async def test_identical_concurrent_searches_share_one_fan_out() -> None:
    async with running_broker() as broker:
        broker.sandbox.set_faults("okayama-city", FaultConfig(delay_ms=300))
        url = f"{broker.url}/api/v1/search"
        members = "okayama-city,bizen-city"
        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(*(get_json(session, url, {"q": "夏目漱石", "members": members}) for _ in range(10)))
            other = await get_json(session, url, {"q": "夏目漱石", "members": "bizen-city,okayama-city"})
        assert [a[0] for a in answers] == [200] * 10
        assert all(work_lines(a[2]) == work_lines(answers[0][2]) and a[2]["works"] for a in answers)
        coalescer = broker.app[COALESCER_KEY]
        assert (coalescer.started, coalescer.joined, coalescer.in_flight()) == (2, 9, 0)
        # one fan-out for the ten, one for the differently ordered member list that followed
        assert broker.sandbox_requests.paths.count("/okayama-city/sru") == 2
        assert [t["member"] for t in other[2]["targets"]] == ["bizen-city", "okayama-city"]


async def test_a_caller_that_leaves_does_not_cancel_the_shared_search() -> None:
    async with running_broker() as broker:
        broker.sandbox.set_faults("okayama-city", FaultConfig(delay_ms=500))
        url = f"{broker.url}/api/v1/search"
        params = {"q": "夏目漱石", "members": "okayama-city"}
        async with aiohttp.ClientSession() as leaver, aiohttp.ClientSession() as stayer:
            leaving = asyncio.create_task(get_json(leaver, url, params))
            await asyncio.sleep(0.1)
            staying = asyncio.create_task(get_json(stayer, url, params))
            await asyncio.sleep(0.1)
            leaving.cancel()
            status, _, body = await staying
        assert status == 200 and [t["state"] for t in body["targets"]] == ["ok"]
        assert broker.app[COALESCER_KEY].started == 1


async def test_lag_monitor_sees_a_stalled_loop() -> None:
    monitor = LagMonitor(AdmissionSettings(lag_interval_s=0.02, lag_threshold_s=0.1, saturation_hold_s=0.5))
    monitor.start()
    try:
        await asyncio.sleep(0.1)
        assert not monitor.saturated()
        time.sleep(0.3)  # noqa: ASYNC251 - the point: the loop is blocked
        await asyncio.sleep(0.05)
        assert monitor.saturated() and monitor.max_lag_s >= 0.2
        await asyncio.sleep(0.6)
        assert not monitor.saturated()
    finally:
        await monitor.stop()


async def test_the_apps_lag_monitor_runs_in_its_cleanup_ctx() -> None:
    async with running_broker() as broker:
        monitor = broker.app[LAG_KEY]
        await asyncio.sleep(0.2)
        assert monitor._task is not None and not monitor._task.done()
    assert monitor._task is None


async def test_a_burst_of_200_concurrent_searches_opens_no_breaker_and_is_not_refused() -> None:
    """200 concurrent searches, distinct queries (no coalescing), against healthy members: the
    default search cap admits them all at once (a search mostly waits for members), so none is a 503."""
    statuses, health = await _burst(AdmissionSettings(client_burst=500))
    assert statuses == [200] * 200
    assert health["searches"] == {"running": 0, "queued": 0, "refused_busy": 0}


async def _burst(settings: AdmissionSettings) -> tuple[list[int], dict[str, Any]]:
    """The statuses of 200 concurrent searches, and /healthz after them."""
    async with running_broker(settings, latency_ms=50) as broker:
        url = f"{broker.url}/api/v1/search"
        words = ["夏目漱石", "猫", "森鴎外", "宮沢賢治", "芥川", "太宰治", "岡山", "桃太郎", "歴史", "料理"]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            started = time.perf_counter()
            answers = await asyncio.wait_for(
                asyncio.gather(*(get_json(session, url, {"q": f"{words[n % 10]} {n}"}) for n in range(200))), 120
            )
            elapsed = time.perf_counter() - started
            statuses = [a[0] for a in answers]
            print("burst:", statuses.count(200), "answered,", statuses.count(503), "refused in", round(elapsed, 1), "s")
            assert set(statuses) <= {200, 503}, statuses
            assert all(a[1]["Retry-After"] for a in answers if a[0] == 503)
            reasons = {t["reason"] for _, _, body in answers if body.get("targets") for t in body["targets"]}
            assert "circuit_open" not in reasons
            after = await circuits(session, broker)
            health = (await get_json(session, f"{broker.url}/healthz", {}))[2]
        assert {m: c["state"] for m, c in after.items()} == {m: "closed" for m in after}
        assert statuses.count(200) >= min(settings.max_searches, 200) and elapsed < 60
        return statuses, health
