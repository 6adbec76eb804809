"""Member answers parsed in worker processes (connectors/ingest_pool.py): same Records, named
errors, a dead worker costs no answer, and nothing is left running after cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from broker.members import MemberRegistry
from broker.search import SearchService
from connectors import HttpClient, IngestPool, IngestSettings
from connectors.errors import HostileDocument, MalformedResponse
from connectors.settings import TargetSettings
from connectors.sru import SRUConnector
from tests.conftest import SandboxedConsortium
from tests.zebra_server import ZebraServer
from yokodan import SearchQuery, TargetState

INDEXES = {"text": "cql.anywhere", "title": "dc.title", "author": "dc.creator", "isbn": "bath.isbn"}
BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
    b'<searchRetrieveResponse xmlns="http://www.loc.gov/zing/srw/"><numberOfRecords>&lol2;</numberOfRecords>'
    b"</searchRetrieveResponse>" + b" " * 20_000
)


@pytest.fixture
async def pool() -> AsyncIterator[IngestPool]:
    async with IngestPool(IngestSettings(workers=2, min_bytes=0, cache_bytes=0)) as pool:
        yield pool


def ndl_connector(zebra: ZebraServer, http: HttpClient, ingest: IngestPool | None, member: str = "ndl") -> SRUConnector:
    settings = TargetSettings(
        member=member, kind="sru", endpoint=zebra.sru_url, timeout_s=10, max_records=100,
        options={"cql_indexes": INDEXES}, branch_codes={"NDL": f"{member}/main"},
    )  # fmt: skip
    return SRUConnector(settings, http, ingest=ingest)


async def ndl_pages(zebra: ZebraServer, http: HttpClient) -> list[tuple[int, bytes]]:
    """Every NDL record of the real JAPAN/MARC sample, as the raw SRU answers Zebra gives (100 a page)."""
    probe = ndl_connector(zebra, http, None)
    pages = []
    for start in (1, 101, 201):
        from connectors.sru import _query_string

        url = probe.request_url(_query_string(probe._dialect, None, "cql.allRecords=1", start, 100))
        pages.append((start, (await http.get(url, member="ndl", timeout_s=10)).body))
    return pages


@pytest.mark.shared_data("data/bibliographic/ndl_jpmarc21_enju_233.mrc")
async def test_pool_gives_the_same_records_as_inline_on_the_ndl_data(
    zebra_ndl: ZebraServer, http: HttpClient, pool: IngestPool
) -> None:
    inline = ndl_connector(zebra_ndl, http, None)
    pooled = ndl_connector(zebra_ndl, http, pool)
    pids_before = set(await pool.warm())
    assert len(pids_before) == 2
    total = 0
    for start, body in await ndl_pages(zebra_ndl, http):
        expected = inline.parse_response(body, start=start)
        got = await pooled._ingest(body, start)
        assert got.records == expected.records  # whole lists: order, holdings, readings, ISBNs
        assert (got.hits, got.diagnostics) == (expected.hits, expected.diagnostics)
        total += len(got.records)
    assert total == 233
    assert set(pool.worker_pids()) == pids_before
    assert (pool.parsed_in_workers, pool.inline_fallbacks) == (3, 0), "each page parsed in a worker"


async def test_a_hostile_document_is_still_named_in_a_worker(http: HttpClient, pool: IngestPool) -> None:
    connector = SRUConnector(TargetSettings(member="m", kind="sru", endpoint="http://127.0.0.1:9/sru"), http, ingest=pool)
    with pytest.raises(HostileDocument) as refused:
        await connector._ingest(BOMB, 1)
    assert refused.value.member == "m" and refused.value.reason == "hostile_document"
    with pytest.raises(MalformedResponse):
        await connector._ingest(b"<not-sru/>" + b" " * 10_000, 1)
    assert (pool.parsed_in_workers, pool.inline_fallbacks) == (2, 0)


async def test_the_cache_parses_an_answer_once_per_mapping(zebra_ndl: ZebraServer, http: HttpClient) -> None:
    async with IngestPool(IngestSettings(workers=0, min_bytes=0, cache_bytes=8 * 1024 * 1024)) as pool:
        a = ndl_connector(zebra_ndl, http, pool, member="city-a")
        twin = ndl_connector(zebra_ndl, http, pool, member="city-a")  # a second registry's connector
        b = ndl_connector(zebra_ndl, http, pool, member="city-b")  # same source, its own branch table
        first = await a.search_cql("cql.allRecords=1", start=1, maximum=20)
        again = await twin.search_cql("cql.allRecords=1", start=1, maximum=20)
        assert (pool.cache.misses, pool.cache.hits) == (1, 1)
        assert again.records == first.records and again.records is not first.records
        other = await b.search_cql("cql.allRecords=1", start=1, maximum=20)
        assert (pool.cache.misses, pool.cache.hits) == (2, 1), "another member's branch table is another mapping"
        assert {r.member for r in other.records} == {"city-b"}
        body = (await http.get(b.request_url(_qs(b, 1, 20)), member="b", timeout_s=10)).body
        assert other.records == b.parse_response(body).records
        assert again.records == a.parse_response(body).records, "a cache hit is exactly what parsing gives"


def _qs(connector: SRUConnector, start: int, maximum: int) -> str:
    from connectors.sru import _query_string

    return _query_string(connector._dialect, None, "cql.allRecords=1", start, maximum)


async def test_the_cache_is_bounded_by_bytes() -> None:
    from connectors.ingest_pool import RecordCache

    cache = RecordCache(max_bytes=100)
    for n in range(5):
        cache.put(n, 40, ("ok", n))
    assert len(cache) == 2 and cache.size == 80 and cache.get(4) == ("ok", 4) and cache.get(0) is None
    cache.put("big", 101, ("ok",))
    assert cache.get("big") is None, "an entry over the whole bound is not kept"


async def test_a_killed_worker_degrades_to_inline_and_the_pool_restarts(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    async with IngestPool(IngestSettings(workers=1, min_bytes=0, cache_bytes=0)) as pool:
        service = SearchService(MemberRegistry(okayama_sandbox.consortium, http, ingest=pool))
        [pid] = await pool.warm()
        query = SearchQuery(text="の")
        baseline = await service.search(query)
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        outcome = await asyncio.wait_for(service.search(query), 30)  # never hangs
        assert [(s.member, s.state, s.returned) for s in outcome.statuses] == [
            (s.member, s.state, s.returned) for s in baseline.statuses
        ]
        assert all(s.state is TargetState.OK for s in outcome.statuses)
        assert pool.restarts == 1 and pool.inline_fallbacks >= 1
        await asyncio.sleep(1.1)  # past the restart pause: the next burst gets a fresh worker
        await service.search(query)
        assert pool.worker_pids() and pid not in pool.worker_pids()


async def test_app_cleanup_leaves_no_worker_behind(okayama_sandbox: SandboxedConsortium) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from broker.api import INGEST_KEY, build_app

    consortium = okayama_sandbox.consortium
    consortium = consortium.model_copy(
        update={"search": consortium.search.model_copy(update={"ingest": IngestSettings(workers=2, min_bytes=0)})}
    )
    app = build_app(consortium)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/v1/search", params={"q": "の"})
        assert response.status == 200
        pids = app[INGEST_KEY].worker_pids()
        assert len(pids) == 2, "a burst started the workers"
    assert [pid for pid in pids if _running(pid)] == []


def _running(pid: int) -> bool:
    """A live (not zombie) process: /proc/PID/stat's state field."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ingest_settings_come_from_the_consortium_file(tmp_path) -> None:
    from pathlib import Path

    from broker.consortium import ConsortiumFileError, load_consortium

    shipped = (Path(__file__).resolve().parents[1] / "consortia" / "okayama.toml").read_text()
    assert load_consortium(Path(__file__).resolve().parents[1] / "consortia" / "okayama.toml").search.ingest == IngestSettings()
    good = tmp_path / "ok.toml"
    good.write_text(shipped + "\n[search.ingest]\nworkers = 2\nmin_bytes = 4096\ncache_bytes = 0\n")
    assert load_consortium(good).search.ingest == IngestSettings(workers=2, min_bytes=4096, cache_bytes=0)
    bad = tmp_path / "bad.toml"
    bad.write_text(shipped + "\n[search.ingest]\nworkers = -1\n")
    with pytest.raises(ConsortiumFileError) as refused:
        load_consortium(bad)
    assert "search.ingest.workers" in str(refused.value)
