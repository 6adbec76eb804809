"""Second-stage look-ups (issue 11 items 2 and 3) over real sockets: the sandbox Okayama members.

Three members catalogue their own way: setouchi-city (SRU) records no ISBN at all,
misaki-town (SRU) and kumenan-town (tos HTML OPAC) record no title readings. An ISBN or
reading query finds nothing there at first; the second stage asks them again by title.
Requests are counted at the sandbox (an aiohttp response hook), per path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from broker.api import build_app
from broker.consortium import Consortium, ConsortiumFileError, load_consortium
from broker.demo import sandbox_members
from broker.members import MemberRegistry
from broker.search import SearchService
from broker.second_stage import SECOND_STAGE_REASON
from connectors import HttpClient
from sandbox.host import SandboxHost
from sandbox.spec import FaultConfig
from sandbox.sru_server import MEMBERS
from tests.conftest import with_member_timeouts
from tests.index_stores import IndexStore, engine, store  # noqa: F401  (fixtures: the index tests on whoosh and PostgreSQL)
from yokodan import Holding, Record, SearchQuery, TargetState, Work

NO_ISBN = "setouchi-city"
NO_READINGS = ("misaki-town", "kumenan-town")
NORWAY = ("murakami-norway-1", "murakami-norway-2")
TIMEOUT_S = 5.0  # every member's deadline: generous, so a loaded machine does not turn answers into timeouts  # ノルウェイの森 上 / 下 (the sandbox's core works)


@dataclass
class Site:
    host: SandboxHost
    consortium: Consortium
    requests: Counter[str]

    def with_second_stage(self, on: bool, timeout_s: float = TIMEOUT_S) -> Consortium:
        consortium = with_member_timeouts(self.consortium, timeout_s)
        return Consortium.model_validate({**consortium.model_dump(), "search": {"second_stage": on}})

    def local_id(self, member: str, work_id: str) -> str:
        return next(h.local_id for h in self.host.app[MEMBERS][member].held if h.work.work_id == work_id)

    def isbn(self, work_id: str) -> str:
        isbn13 = self.host.catalogue.get(work_id).isbn13
        assert isbn13 is not None
        return isbn13

    def sru_requests(self, member: str) -> int:
        return self.requests[f"/{member}/sru"]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    consortium = with_member_timeouts(load_consortium(), TIMEOUT_S)
    specs = []
    for spec in sandbox_members(consortium, latency_ms=2):
        if spec.id == NO_ISBN:
            spec = spec.model_copy(update={"isbn_style": "none"})
        elif spec.id in NO_READINGS:
            spec = spec.model_copy(update={"readings": False})
        specs.append(spec)
    host = SandboxHost(specs)
    requests: Counter[str] = Counter()

    async def count(request: web.Request, response: web.StreamResponse) -> None:
        requests[request.path] += 1

    host.app.on_response_prepare.append(count)
    base_url = await host.start()
    try:
        site = Site(host, consortium.with_base_url(base_url), requests)
        for member in (NO_ISBN, *NO_READINGS):  # the cases below need these members to hold the set
            held = {h.work.work_id for h in host.app[MEMBERS][member].held}
            assert set(NORWAY) <= held, member
        yield site
    finally:
        await host.stop()


async def _search(site: Site, http: HttpClient, query: SearchQuery, *, on: bool = True, timeout_s: float = TIMEOUT_S):
    site.requests.clear()
    service = SearchService(MemberRegistry(site.with_second_stage(on, timeout_s), http))
    outcome = await service.search(query)
    return outcome, Counter(site.requests)


def _status(outcome, member: str):  # type: ignore[no-untyped-def]
    return next(s for s in outcome.statuses if s.member == member)


async def test_isbn_query_finds_the_copy_catalogued_without_isbn_in_one_work(site: Site, http: HttpClient) -> None:
    query = SearchQuery(isbn=site.isbn("soseki-kokoro"))
    outcome, on = await _search(site, http, query)
    [work] = outcome.works
    assert NO_ISBN in work.members
    no_isbn_records = [r for r in work.records if r.member == NO_ISBN]
    assert [r.local_id for r in no_isbn_records] == [site.local_id(NO_ISBN, "soseki-kokoro")]
    assert no_isbn_records[0].isbns == [] and no_isbn_records[0].holdings, "its copies, without an ISBN on the record"
    assert work.matched_by_title == [NO_ISBN]
    assert work.match_reasons[-1] == SECOND_STAGE_REASON and "isbn" in work.match_reasons
    status = _status(outcome, NO_ISBN)
    assert (status.state, status.returned) == (TargetState.OK, 0), "the first answer stays as the member gave it"
    assert status.second_stage is not None
    assert (status.second_stage.by, status.second_stage.state) == ("title+author+year", TargetState.OK)
    assert (status.second_stage.returned, status.second_stage.merged) == (1, 1)
    others = [s for s in outcome.statuses if s.member != NO_ISBN]
    assert all(s.second_stage is None for s in others), "members that found it are not asked again"

    off_outcome, off = await _search(site, http, query, on=False)
    [off_work] = off_outcome.works
    assert NO_ISBN not in off_work.members and off_work.matched_by_title == []
    assert SECOND_STAGE_REASON not in off_work.match_reasons
    assert _status(off_outcome, NO_ISBN).second_stage is None
    assert sorted(off_work.members) == sorted(m for m in work.members if m != NO_ISBN)
    # Exactly one extra request, to the member that came back empty; every other path the same.
    assert on - off == Counter({f"/{NO_ISBN}/sru": 1}) and off - on == Counter()


async def test_title_look_up_never_merges_another_volume_or_edition(site: Site, http: HttpClient) -> None:
    upper, lower = NORWAY
    outcome, _ = await _search(site, http, SearchQuery(isbn=site.isbn(upper)))
    [work] = outcome.works  # 下 is not added as a work of its own either
    assert work.volume == "上"
    assert [r.local_id for r in work.records if r.member == NO_ISBN] == [site.local_id(NO_ISBN, upper)]
    second = _status(outcome, NO_ISBN).second_stage
    assert second is not None and (second.returned, second.merged) == (2, 1), "both volumes came back, 上 was kept"
    # An older edition with the same title and author (1955, no ISBN) stays out of the 2003 work.
    outcome, _ = await _search(site, http, SearchQuery(isbn=site.isbn("soseki-botchan")))
    old = {site.local_id(m, "soseki-botchan-1955") for m in (NO_ISBN,) if _holds(site, m, "soseki-botchan-1955")}
    [work] = outcome.works
    assert work.year == 2003 and not old & {r.local_id for r in work.records}
    assert NO_ISBN in work.members


def _holds(site: Site, member: str, work_id: str) -> bool:
    return any(h.work.work_id == work_id for h in site.host.app[MEMBERS][member].held)


async def test_reading_query_finds_members_without_readings_by_the_kanji_title(site: Site, http: HttpClient) -> None:
    query = SearchQuery(title="ノルウェイ ノ モリ")
    outcome, on = await _search(site, http, query)
    by_volume = {w.volume: w for w in outcome.works}
    assert sorted(by_volume) == ["上", "下"] and len(outcome.works) == 2
    for volume, work_id in zip(("上", "下"), NORWAY):
        work = by_volume[volume]
        for member in NO_READINGS:
            assert [r.local_id for r in work.records if r.member == member] == [site.local_id(member, work_id)]
        assert sorted(work.matched_by_title) == sorted(NO_READINGS)
    for member in NO_READINGS:
        second = _status(outcome, member).second_stage
        assert second is not None and (second.by, second.state, second.merged) == ("title", TargetState.OK, 2)
    off_outcome, off = await _search(site, http, query, on=False)
    assert {m for w in off_outcome.works for m in w.members} & set(NO_READINGS) == set()
    assert (on - off)["/misaki-town/sru"] == 1 and off - on == Counter()
    assert {path.split("/")[1] for path in on - off} == set(NO_READINGS), "only the empty members were asked again"


async def test_failed_members_are_not_asked_again_and_nothing_found_asks_nobody(site: Site, http: HttpClient) -> None:
    site.host.set_faults(NO_ISBN, FaultConfig(http_status=500))
    outcome, counts = await _search(site, http, SearchQuery(isbn=site.isbn("soseki-kokoro")))
    status = _status(outcome, NO_ISBN)
    assert (status.state, status.second_stage) == (TargetState.ERROR, None)
    _, off = await _search(site, http, SearchQuery(isbn=site.isbn("soseki-kokoro")), on=False)
    assert counts == off, "the failing member's retries are its HTTP client's, not a second stage"
    site.host.set_faults(NO_ISBN, FaultConfig())
    # An ISBN nobody holds: every member is empty, and there is no title to ask by.
    outcome, counts = await _search(site, http, SearchQuery(isbn="9784000000000"))
    assert outcome.works == [] and all(s.second_stage is None for s in outcome.statuses)
    _, off = await _search(site, http, SearchQuery(isbn="9784000000000"), on=False)
    assert counts == off


async def test_second_stage_keeps_to_the_search_deadline(site: Site, http: HttpClient) -> None:
    # Every deadline is 3 s: a member answering empty after 2.2 s has 0.8 s left, not another 3 s.
    site.host.set_faults(NO_ISBN, FaultConfig(delay_ms=2200))
    outcome, _ = await _search(site, http, SearchQuery(isbn=site.isbn("soseki-kokoro")), timeout_s=3.0)
    second = _status(outcome, NO_ISBN).second_stage
    assert second is not None and (second.state, second.reason) == (TargetState.TIMEOUT, "timeout")
    assert outcome.elapsed_ms < 3000 + 1000, "the search ends by its deadline, not 2.2 s after it"
    assert NO_ISBN not in outcome.works[0].members


async def test_stream_sends_second_stage_answers_as_member_events_before_final(site: Site, http: HttpClient) -> None:
    service = SearchService(MemberRegistry(site.consortium, http))
    events = [e async for e in service.stream(SearchQuery(isbn=site.isbn("soseki-kokoro")))]
    assert [e.final for e in events].count(True) == 1 and events[-1].final
    members = [e.answer.status.member for e in events if e.answer is not None]
    assert members.count(NO_ISBN) == 2, "its first (empty) answer, then its second stage"
    later = [e for e in events if e.answer is not None and e.answer.status.second_stage is not None]
    [event] = [e for e in later if e.answer is not None and e.answer.records]
    assert [w.matched_by_title for w in event.works] == [[NO_ISBN]]
    first_answer = next(e for e in events if e.answer is not None and e.answer.status.member == NO_ISBN)
    assert events.index(first_answer) < events.index(event) < len(events) - 1
    assert first_answer.answer is not None and first_answer.answer.records == []
    assert NO_ISBN in events[-1].works[0].members


async def test_union_index_answers_the_isbn_with_holdings_of_members_lacking_it(
    site: Site, http: HttpClient, store: IndexStore
) -> None:
    isbn = site.isbn("soseki-kokoro")
    with store.open("index") as index:
        service = SearchService(MemberRegistry(site.consortium, http), index=index)
        await service.search(SearchQuery(isbn=isbn))
        assert index.flush()
        cached = index.search(SearchQuery(isbn=isbn))
        [hit] = cached.works
        assert NO_ISBN in hit.work["holdings"] and NO_ISBN in hit.work["members"]
        assert SECOND_STAGE_REASON in hit.work["match_reasons"]


def _record(member: str, local_id: str, isbns: list[str]) -> Record:
    holding = Holding(member=member, location="中央図書館", status_text="貸出可")
    return Record(member=member, local_id=local_id, title="こころ", authors=["夏目, 漱石"], year=2004,
                  publisher="新潮社", isbns=isbns, holdings=[holding])  # fmt: skip


def test_a_work_seen_again_by_title_only_keeps_its_isbn(store: IndexStore) -> None:
    isbn = "9784101010137"
    first = Work(work_id="w1", title="こころ", isbns=[isbn], records=[_record("a", "1", [isbn]), _record("b", "2", [])])
    again = Work(work_id="w1", title="こころ", records=[_record("b", "2", [])])  # only the member without the ISBN
    with store.open("index") as index:
        index.submit([first])
        assert index.flush()
        index.submit([again])
        assert index.flush()
        [hit] = index.search(SearchQuery(isbn=isbn)).works
        assert sorted(hit.work["holdings"]) == ["a", "b"] and hit.work["isbns"] == [isbn]


def test_second_stage_is_switched_per_consortium_file(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "consortia" / "okayama.toml"
    text = shipped.read_text(encoding="utf-8")
    assert load_consortium(shipped).search.second_stage is True, "on unless a consortium turns it off"
    off = tmp_path / "off.toml"
    off.write_text(text + "\n[search]\nsecond_stage = false\n", encoding="utf-8")
    assert load_consortium(off).search.second_stage is False
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text + "\n[search]\nsecond_stages = false\n", encoding="utf-8")
    with pytest.raises(ConsortiumFileError, match=r"search\.second_stages"):
        load_consortium(wrong)


async def test_reading_query_asks_by_the_title_the_union_index_knows(site: Site, http: HttpClient, store: IndexStore) -> None:
    member = NO_READINGS[0]
    with store.open("index") as index:
        service = SearchService(MemberRegistry(site.consortium, http), index=index)
        await service.search(SearchQuery(title="ノルウェイの森"), ["okayama-city", member])
        assert index.flush()
        # Only the member without readings is asked: no live answer names a title, the index does.
        outcome = await service.search(SearchQuery(title="ノルウェイ ノ モリ"), [member])
        off = SearchService(MemberRegistry(site.with_second_stage(False), http), index=index)
        off_outcome = await off.search(SearchQuery(title="ノルウェイ ノ モリ"), [member])
    assert off_outcome.works == [], "without the second stage the member's records stay unfound"
    expected = sorted(site.local_id(member, work_id) for work_id in NORWAY)
    assert sorted(r.local_id for w in outcome.works for r in w.records) == expected
    second = _status(outcome, member).second_stage
    assert second is not None and (second.by, second.merged) == ("title", 2)
    assert all(w.matched_by_title == [member] for w in outcome.works)


async def test_api_shows_the_second_stage_in_search_and_stream(site: Site) -> None:
    runner = web.AppRunner(build_app(site.consortium), access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    host, port = runner.addresses[0][:2]
    params = {"isbn": site.isbn("soseki-kokoro")}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/api/v1/search", params=params) as response:
                body = orjson.loads(await response.read())
            async with session.get(f"http://{host}:{port}/api/v1/search/stream", params=params) as response:
                lines = [orjson.loads(line) async for line in response.content if line.strip()]
    finally:
        await runner.cleanup()
    [work] = body["works"]
    assert work["matched_by_title"] == [NO_ISBN] and SECOND_STAGE_REASON in work["match_reasons"]
    assert NO_ISBN in [m["member"] for m in work["holdings"]]
    [target] = [t for t in body["targets"] if t["member"] == NO_ISBN]
    assert (target["returned"], target["second_stage"]["by"], target["second_stage"]["merged"]) == (0, "title+author+year", 1)
    assert [line["type"] for line in lines] == ["member"] * 14 + ["final"], "13 first answers, one second stage"
    extra = [line for line in lines[:-1] if line["target"]["second_stage"] is not None]
    assert [line["target"]["member"] for line in extra] == [NO_ISBN]
    assert [w["matched_by_title"] for w in extra[0]["works"]] == [[NO_ISBN]]
    assert lines[-1]["works"][0]["matched_by_title"] == [NO_ISBN]
