"""The app's resources open and close in cleanup_ctx; a stream that fails after it began ends with an error line;
large member answers are parsed off the loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from broker.api import HTTP_KEY, SEARCH_KEY, build_app
from broker.merge import Clusterer, default_clusterer
from connectors import HttpClient
from connectors.offload import OFF_LOOP_PARSE_BYTES, parse_off_loop
from connectors.settings import TargetSettings
from connectors.sru import SRUConnector
from index.store import UnionIndex, UnionIndexError
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from tests.index_stores import IndexStore, engine, store  # noqa: F401  (fixtures)
from yokodan import Record, SearchQuery

DATA = Path(__file__).parent / "data"


async def _started(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def _lines(url: str, **params: str) -> tuple[int, list[dict]]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        return response.status, [orjson.loads(line) async for line in response.content if line.strip()]


async def test_cleanup_closes_the_client_and_the_index(okayama_sandbox: SandboxedConsortium, store: IndexStore) -> None:
    path, options = store.location("index")  # each engine: a whoosh directory, a PostgreSQL schema
    app = build_app(okayama_sandbox.consortium, open_index=partial(UnionIndex.open, path, batch_delay_s=60, **options))
    runner, url = await _started(app)
    index = app[SEARCH_KEY].index
    assert index is not None, "startup opened the union index and handed it to search"
    session = app[HTTP_KEY]._session
    assert session is not None and not session.closed, "startup started the client explicitly"
    status, lines = await _lines(f"{url}/api/v1/search/stream", author="夏目漱石")
    assert status == 200 and lines[-1]["type"] == "final" and lines[-1]["works"]
    await runner.cleanup()
    assert session.closed
    assert app[SEARCH_KEY].index is None, "no search can reach a closing index"
    with pytest.raises(UnionIndexError, match="closed"):
        index.search(SearchQuery(author="夏目漱石"))
    # The index lock is free again and the queued works were committed on close (batch_delay_s=60
    # means nothing would have been committed before it).
    with UnionIndex.open(path, lock_timeout_s=0.2, **options) as reopened:
        assert reopened.stats().doc_count == len(lines[-1]["works"])


async def test_a_given_client_is_started_but_not_closed(okayama_sandbox: SandboxedConsortium) -> None:
    async with HttpClient() as http:
        runner, url = await _started(build_app(okayama_sandbox.consortium, http=http))
        await runner.cleanup()
        session = http._session
        assert session is not None and not session.closed, "the caller owns a client it passed in"


async def test_opening_the_index_never_blocks_the_loop(okayama_sandbox: SandboxedConsortium, tmp_path: Path) -> None:
    """An index whose lock takes 1 s to come free: the loop keeps ticking meanwhile."""

    def slow_open() -> UnionIndex:
        time.sleep(1.0)  # as a stale lock held by a dying process would
        return UnionIndex.open(tmp_path / "index")

    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    runner, _ = await _started(build_app(okayama_sandbox.consortium, open_index=slow_open))
    opened_in = time.perf_counter() - started
    ticking.cancel()
    await runner.cleanup()
    assert opened_in >= 1.0
    # Opened on the loop, one gap would be the whole second; the margin is for a loaded machine.
    assert max(gaps) < 0.5, f"the loop stalled {max(gaps):.2f} s while the index opened"


async def test_a_failed_startup_still_closes_the_client(okayama_sandbox: SandboxedConsortium, tmp_path: Path) -> None:
    not_an_index = tmp_path / "index"
    not_an_index.write_text("a file, not a directory")
    app = build_app(okayama_sandbox.consortium, open_index=partial(UnionIndex.open, not_an_index))
    runner = web.AppRunner(app, access_log=None)
    with pytest.raises((UnionIndexError, OSError)):
        await runner.setup()
    session = app[HTTP_KEY]._session
    await runner.cleanup()
    assert session is None or session.closed


def _failing_after(adds: int) -> Callable[[], Clusterer]:
    """A clusterer that breaks on its (adds+1)-th batch, as a merge bug would mid-search."""

    def factory() -> Clusterer:
        clusterer = default_clusterer()
        real_add = clusterer.add
        calls = 0

        def add(records: list[Record]) -> list[str]:
            nonlocal calls
            calls += 1
            if calls > adds:
                raise RuntimeError("merge bug")
            return real_add(records)

        clusterer.add = add  # type: ignore[method-assign]
        return clusterer

    return factory


async def test_a_stream_that_fails_after_its_first_line_ends_with_an_error_line(
    okayama_sandbox: SandboxedConsortium, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(okayama_sandbox.consortium)
    app[SEARCH_KEY].clusterer_factory = _failing_after(1)
    runner, url = await _started(app)
    try:
        with caplog.at_level(logging.ERROR):
            status, lines = await _lines(f"{url}/api/v1/search/stream", author="夏目漱石")
        assert status == 200, "the status line was sent before the failure"
        assert [line["type"] for line in lines] == ["member", "error"]
        assert lines[-1]["status"] == 500 and "incomplete" in lines[-1]["detail"]
        assert "merge bug" in caplog.text, "the error is logged"
        assert "夏目漱石" not in caplog.text, "without the query"
        # The broker is fine afterwards: the next stream is whole.
        app[SEARCH_KEY].clusterer_factory = default_clusterer
        status, lines = await _lines(f"{url}/api/v1/search/stream", author="夏目漱石")
        assert [line["type"] for line in lines] == ["member"] * 13 + ["final"]
    finally:
        await runner.cleanup()


async def test_a_caller_that_leaves_a_stream_stops_the_members(okayama_sandbox: SandboxedConsortium) -> None:
    """aclosing: when the caller hangs up, the remaining members' requests are cancelled, not left running."""
    okayama_sandbox.host.set_faults("okayama-pref", FaultConfig(hang=True))
    app = build_app(okayama_sandbox.consortium)
    runner, url = await _started(app)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/api/v1/search/stream", params={"author": "夏目漱石"}) as response:
                await response.content.readline()
        # The next write into the closed connection fails; the stream is closed and its tasks cancelled
        # long before the hanging member's 2 s deadline.
        left_at = time.perf_counter()
        while [t for t in asyncio.all_tasks() if t.get_name().startswith("search:")]:
            await asyncio.sleep(0.02)
        assert time.perf_counter() - left_at < 1.0, "the hanging member was not left to its 2 s deadline"
    finally:
        await runner.cleanup()


def _loop_thread_spy(parse: Callable[..., object], seen: list[bool]) -> Callable[..., object]:
    def spy(body: bytes, **kwargs: object) -> object:
        seen.append(threading.current_thread() is threading.main_thread())
        return parse(body, **kwargs)

    return spy


async def test_parse_off_loop_moves_only_large_bodies_to_a_thread() -> None:
    seen: list[bool] = []
    spy = _loop_thread_spy(lambda body, **kw: (len(body), kw), seen)
    assert await parse_off_loop(spy, b"x" * (OFF_LOOP_PARSE_BYTES - 1), start=3) == (OFF_LOOP_PARSE_BYTES - 1, {"start": 3})
    assert await parse_off_loop(spy, b"x" * OFF_LOOP_PARSE_BYTES, start=3) == (OFF_LOOP_PARSE_BYTES, {"start": 3})
    assert seen == [True, False], "small on the loop, large in a worker thread"


@pytest.fixture
async def big_sru() -> AsyncIterator[str]:
    """An SRU endpoint whose answer is ~1 MB: the recorded record with 4,000 more copies."""
    body = (DATA / "sru-marcxml-ndl.xml").read_text()
    copy = '<datafield tag="852" ind1=" " ind2=" "><subfield code="a">中央図書館</subfield><subfield code="p">T{n:06d}</subfield><subfield code="z">貸出可</subfield></datafield>'
    body = body.replace("</record>", "".join(copy.format(n=n) for n in range(4000)) + "</record>", 1)
    payload = body.encode()
    assert len(payload) > 2 * OFF_LOOP_PARSE_BYTES

    async def sru(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="text/xml")

    app = web.Application()
    app.router.add_get("/sru", sru)
    runner, url = await _started(app)
    yield f"{url}/sru"
    await runner.cleanup()


async def test_a_large_sru_answer_is_parsed_off_the_loop(big_sru: str, http: HttpClient) -> None:
    connector = SRUConnector(TargetSettings(member="big", kind="sru", endpoint=big_sru), http)
    seen: list[bool] = []
    connector.parse_response = _loop_thread_spy(connector.parse_response, seen)  # type: ignore[method-assign]
    result = await connector.search(SearchQuery(title="本"))
    assert seen == [False], "parsed in a worker thread"
    first = result.records[0]
    assert len(first.holdings) == 4004 and first.holdings[-1].item_id == "T003999"
