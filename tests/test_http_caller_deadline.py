"""A request inside a caller's own deadline (broker.search's per-member timer) sets no timer of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from connectors import HttpClient
from connectors.errors import ReadTimeout
from connectors.http import CallerDeadline
from tests.serving import served


@pytest.fixture
async def slow_url() -> AsyncIterator[str]:
    """A local server that answers after 0.3 s, and counts the timers the client's loop has pending then."""

    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", answer)
    async with served(app) as url:
        yield f"{url}/slow"


def _timers(loop: asyncio.AbstractEventLoop) -> int:
    """Live timer handles of the loop (CPython's base loop keeps them in `_scheduled`)."""
    return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]  # noqa: SLF001


async def _timers_during(http: HttpClient, url: str, caller_ends_by: float | None, timeout_s: float) -> int:
    loop = asyncio.get_running_loop()
    request = asyncio.create_task(_get(http, url, caller_ends_by, timeout_s))
    await asyncio.sleep(0.1)  # the request is out, waiting for the answer (the server's sleep is a timer too)
    during = _timers(loop)
    await request
    return during


async def _get(http: HttpClient, url: str, caller_ends_by: float | None, timeout_s: float) -> bytes:
    if caller_ends_by is None:
        return (await http.get(url, member="m", timeout_s=timeout_s)).body
    with CallerDeadline(caller_ends_by):
        return (await http.get(url, member="m", timeout_s=timeout_s)).body


async def test_a_request_within_an_earlier_caller_deadline_sets_no_timer_of_its_own(slow_url: str) -> None:
    loop = asyncio.get_running_loop()
    async with HttpClient() as http:
        await http.get(slow_url, member="m", timeout_s=5)  # a pooled connection from now on: the same timers each time
        alone = await _timers_during(http, slow_url, None, timeout_s=5)
        within = await _timers_during(http, slow_url, loop.time() + 2, timeout_s=5)
        alone_again = await _timers_during(http, slow_url, None, timeout_s=5)
    assert (within, alone_again) == (alone - 1, alone)


async def test_a_caller_deadline_later_than_the_request_keeps_the_requests_own_timeout(slow_url: str) -> None:
    loop = asyncio.get_running_loop()
    async with HttpClient() as http:
        with CallerDeadline(loop.time() + 60), pytest.raises(ReadTimeout):
            await http.get(slow_url, member="m", timeout_s=0.1)


async def test_the_callers_timer_bounds_a_request_that_set_none(slow_url: str) -> None:
    async with HttpClient() as http:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1) as timer:
                with CallerDeadline(timer.when()):
                    await http.get(slow_url, member="m", timeout_s=5)
        assert (await http.get(slow_url, member="m", timeout_s=5)).body == b"late"  # the client is still usable
