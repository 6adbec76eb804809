"""Calil check API: real response shapes, polling against a replay server, and the sandbox on real sockets.

The fixtures (../shared/data/opac_fixtures/calil_api_fixtures) are real Calil answers,
some edited by their author (OPAC_BEHAVIOUR_NOTES.md): they are used for shape only.
They skip without ../shared/data and fail on CI (CI=true), where it is always present.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from yokodan import Availability, SearchQuery, TargetState
from connectors.settings import TargetSettings
from connectors import HttpClient
from connectors.calil import CalilConnector, parse_answer
from connectors.errors import (
    ConnectorError,
    MalformedResponse,
    TargetHTTPError,
    TargetTimeout,
    TargetUnreachable,
    UnsupportedQuery,
)
from sandbox import (
    FaultConfig,
    SandboxBranch,
    SandboxHost,
    SandboxMember,
    generate_catalogue,
)
from sandbox.calil_server import CALIL, libkey
from sandbox.holdings import HeldWork
from sandbox.sru_server import MEMBERS
from tests import conftest as shared  # the one "needs ../shared" helper

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CALIL_FIXTURES = SHARED_DATA / "opac_fixtures" / "calil_api_fixtures"
CATALOGUE_SIZE = 600
POLL_S = 0.05


def fixture(name: str) -> bytes:
    path = CALIL_FIXTURES / name
    shared.require_shared_data(path)
    return path.read_bytes()


def calil_settings(
    endpoint: str, systemid: str, *, timeout_s: float = 2.0, branch_codes: dict[str, str] | None = None
) -> TargetSettings:
    return TargetSettings(
        member=f"member-{systemid}",
        kind="calil",
        endpoint=endpoint,
        timeout_s=timeout_s,
        branch_codes=branch_codes or {},
        options={"systemid": systemid, "appkey": "test-key", "poll_interval_s": POLL_S},
    )


# --- real response shapes ------------------------------------------------------------------


@pytest.mark.shared_data
def test_fixture_shapes() -> None:
    running = parse_answer(fixture("book_continue.json"), "m")
    assert running.continues and running.session == "96e7898a61b49748fc536b7d7f5dde61"
    assert running.system("9784799316856", "Tokyo_Setagaya") == {"status": "Running", "reserveurl": ""}
    done = parse_answer(fixture("book_continue_finish.json"), "m")
    assert not done.continues
    entry = done.system("9784799316856", "Tokyo_Setagaya")  # Calil echoes the ISBN-10 it was sent
    assert entry is not None and entry["status"] == "Cache" and len(entry["libkey"]) == 17
    both = parse_answer(fixture("one_book_2lib.json"), "m")
    assert both.system("9784834000825", "Aomori_Pref") is not None
    assert both.system("9784834000825", "Okayama_Pref") is None
    partial = parse_answer(fixture("two_books1.json"), "m")  # one ISBN cached, the other still running
    assert partial.continues
    assert partial.system("9784334926946", "Aomori_Pref") == {"status": "Running", "reserveurl": ""}
    assert partial.system("9784834000825", "Aomori_Pref")["libkey"] == {"青県図": "貸出可"}  # type: ignore[index]


@pytest.mark.shared_data
def test_jsonp_wrapper_is_stripped_and_junk_refused() -> None:
    body = fixture("book_available.json")
    assert parse_answer(b"callback(" + body + b");\n", "m") == parse_answer(body, "m")
    for junk in (body[: len(body) // 2], b"<html>Service Unavailable</html>", b"alert(1);x(" + body + b")", b"[]"):
        with pytest.raises(MalformedResponse):
            parse_answer(junk, "m")


# --- polling against recorded answers ---------------------------------------------------------

Replay = Callable[[list[bytes]], Awaitable[tuple[str, list[dict[str, str]]]]]


@pytest.fixture
async def replay() -> AsyncIterator[Replay]:
    """Serve `/check` answers in order (the last one repeats); return the base URL and the requests seen."""
    runners: list[web.AppRunner] = []

    async def start(bodies: list[bytes]) -> tuple[str, list[dict[str, str]]]:
        seen: list[dict[str, str]] = []

        async def check(request: web.Request) -> web.Response:
            seen.append(dict(request.query))
            return web.Response(body=bodies[min(len(seen), len(bodies)) - 1], content_type="application/json")

        app = web.Application()
        app.router.add_get("/check", check)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}", seen

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.shared_data
async def test_polls_the_session_until_done(replay: Replay, http: HttpClient) -> None:
    base, seen = await replay([fixture("book_continue.json"), fixture("book_continue_finish.json")])
    branches = {"世田谷": "setagaya/chuo", "経堂": "setagaya/kyodo"}
    connector = CalilConnector(calil_settings(base, "Tokyo_Setagaya", branch_codes=branches), http)
    result = await connector.search(SearchQuery(isbn="4799316850"))
    assert [q.get("session") for q in seen] == [None, "96e7898a61b49748fc536b7d7f5dde61"]
    assert seen[0] == {
        "appkey": "test-key",
        "isbn": "9784799316856",
        "systemid": "Tokyo_Setagaya",
        "format": "json",
        "callback": "no",
    }
    assert seen[1]["appkey"] == "test-key" and seen[1]["callback"] == "no"
    (record,) = result.records
    assert (record.local_id, record.isbns, record.source_format, result.hits) == (
        "9784799316856",
        ["9784799316856"],
        "calil",
        1,
    )
    assert len(record.holdings) == 17
    assert {h.availability for h in record.holdings} == {Availability.ON_LOAN}
    mapped = {h.location: h.branch_id for h in record.holdings if h.branch_id}
    assert mapped == branches, "libkeys map through branch_codes; unknown ones keep only their label"


@pytest.mark.shared_data
async def test_check_many_returns_the_finished_isbns_at_the_deadline(replay: Replay, http: HttpClient) -> None:
    """two_books1.json: one ISBN answered from Calil's cache, the other still Running."""
    base, seen = await replay([fixture("two_books1.json")])
    connector = CalilConnector(
        calil_settings(base, "Aomori_Pref", timeout_s=0.4, branch_codes={"青県図": "aomori/pref"}), http
    )
    found = await connector.check_many(["9784834000825", "9784334926946"])
    assert seen[0]["isbn"] == "9784834000825,9784334926946" and len(seen) > 2
    assert list(found) == ["9784834000825"]
    (holding,) = found["9784834000825"]
    assert (holding.branch_id, holding.availability) == ("aomori/pref", Availability.AVAILABLE)
    with pytest.raises(TargetTimeout):  # the running one alone: nothing finished, so a timeout
        await connector.holdings("9784334926946")


def _answer(libkey: dict[str, str], systemid: str = "Okayama_Pref") -> bytes:
    entry = {"status": "OK", "reserveurl": "", "libkey": libkey}
    return orjson.dumps({"session": "s", "continue": 0, "books": {"9784834000825": {systemid: entry}}})


async def test_every_calil_word(replay: Replay, http: HttpClient) -> None:
    words = ["貸出可", "蔵書あり", "館内のみ", "貸出中", "予約中", "準備中", "休館中", "蔵書なし", "謎の状態"]
    base, _ = await replay([_answer({f"b{i}": word for i, word in enumerate(words)})])
    holdings = await CalilConnector(calil_settings(base, "Okayama_Pref"), http).holdings("4-8340-0082-6")
    assert {h.status_text: h.availability for h in holdings} == {
        "貸出可": Availability.AVAILABLE,
        "蔵書あり": Availability.AVAILABLE,
        "館内のみ": Availability.LIBRARY_USE_ONLY,
        "貸出中": Availability.ON_LOAN,
        "予約中": Availability.RESERVED,
        "準備中": Availability.ON_ORDER,
        "休館中": Availability.CLOSED,
        "謎の状態": Availability.UNKNOWN,  # kept raw, counted by StatusMapper
    }, "蔵書なし is no copy at all"


async def test_unheld_and_unsupported(replay: Replay, http: HttpClient) -> None:
    base, _ = await replay([_answer({}, "Tokyo_Setagaya")])
    connector = CalilConnector(calil_settings(base, "Tokyo_Setagaya"), http)
    result = await connector.search(SearchQuery(text="4834000826"))  # an ISBN typed as the keyword
    assert (result.records, result.hits) == ([], 0)
    for query in (SearchQuery(title="ぐりとぐら"), SearchQuery(isbn="4834000826", author="中川李枝子")):
        with pytest.raises(UnsupportedQuery):
            await connector.search(query)
    with pytest.raises(UnsupportedQuery):
        await connector.holdings("not-an-isbn")


# --- the sandbox over real sockets --------------------------------------------------------------


def _member(member_id: str, systemid: str, **options: str) -> SandboxMember:
    return SandboxMember(
        id=member_id,
        name=f"{member_id} library",
        branches=[
            SandboxBranch(id=f"{member_id}/chuo", name=f"{member_id}中央図書館", code="CHUO"),
            SandboxBranch(id=f"{member_id}/kita", name=f"{member_id}北図書館", code="KITA"),
        ],
        catalogue_share=0.9,
        protocol="calil",
        protocol_options={"systemid": systemid, **options},
    )


MEMBERS_ = [
    _member("quick", "Sandbox_Quick", calil_running_s="0.1"),
    _member("cached", "Sandbox_Cached", calil_behaviour="cache"),
    _member("failing", "Sandbox_Failing", calil_behaviour="running_then_error", calil_running_s="0.2"),
    _member("stuck", "Sandbox_Stuck", calil_behaviour="running_forever"),
]


@pytest.fixture
async def host() -> AsyncIterator[SandboxHost]:
    async with SandboxHost(MEMBERS_, catalogue=generate_catalogue(CATALOGUE_SIZE)) as started:
        yield started


def sandbox_connector(host: SandboxHost, http: HttpClient, member_id: str, timeout_s: float = 2.0) -> CalilConnector:
    system = host.app[MEMBERS][member_id]
    settings = calil_settings(
        f"{host.base_url}/calil",
        system.spec.protocol_options["systemid"],
        timeout_s=timeout_s,
        branch_codes={b.name: b.id for b in system.spec.branches},
    )
    return CalilConnector(settings, http)


def held_with_copies(host: SandboxHost, member_id: str) -> HeldWork:
    held = host.app[MEMBERS][member_id].held
    return max((h for h in held if h.isbn_text), key=lambda h: (len({c.branch.id for c in h.copies}), -h.position))


async def test_sandbox_polls_until_ok(host: SandboxHost, http: HttpClient) -> None:
    held = held_with_copies(host, "quick")
    started = time.perf_counter()
    result = await sandbox_connector(host, http, "quick").search(SearchQuery(isbn=held.work.isbn13))
    assert time.perf_counter() - started >= 0.1, "the check stays Running for calil_running_s"
    (session,) = host.app[CALIL].sessions.values()
    assert session.polls >= 2
    (record,) = result.records
    words = libkey(held)
    assert {h.location: h.status_text for h in record.holdings} == words
    by_name = {b.name: b.id for b in host.app[MEMBERS]["quick"].spec.branches}
    assert {h.branch_id for h in record.holdings} == {by_name[name] for name in words}
    assert Availability.UNKNOWN not in {h.availability for h in record.holdings}
    shelved = {c.branch.name for c in held.copies if c.availability is Availability.AVAILABLE}
    assert {h.location for h in record.holdings if h.availability is Availability.AVAILABLE} == shelved


async def test_sandbox_cache_answers_at_once(host: SandboxHost, http: HttpClient) -> None:
    held = held_with_copies(host, "cached")
    holdings = await sandbox_connector(host, http, "cached").holdings(held.isbn_text or "")
    assert {h.location for h in holdings} == {c.branch.name for c in held.copies}
    (session,) = host.app[CALIL].sessions.values()
    assert session.polls == 0


async def test_sandbox_not_held(host: SandboxHost, http: HttpClient) -> None:
    system = host.app[MEMBERS]["quick"]
    held_isbns = {h.work.isbn13 for h in system.held if h.isbn_text}
    other = next(w for w in generate_catalogue(CATALOGUE_SIZE).works if w.isbn13 and w.isbn13 not in held_isbns)
    result = await sandbox_connector(host, http, "quick").search(SearchQuery(isbn=other.isbn13))
    assert (result.records, result.hits) == ([], 0)


async def test_running_then_error_is_a_named_error(host: SandboxHost, http: HttpClient) -> None:
    held = held_with_copies(host, "failing")
    started = time.perf_counter()
    with pytest.raises(TargetUnreachable) as raised:
        await sandbox_connector(host, http, "failing").search(SearchQuery(isbn=held.work.isbn13))
    assert time.perf_counter() - started >= 0.2
    assert (raised.value.state, raised.value.reason) == (TargetState.ERROR, "unreachable")
    assert "Sandbox_Failing" in raised.value.message


async def test_never_finishing_check_times_out_within_the_deadline(host: SandboxHost, http: HttpClient) -> None:
    connector = sandbox_connector(host, http, "stuck", timeout_s=0.6)
    held = held_with_copies(host, "stuck")
    started = time.perf_counter()
    with pytest.raises(TargetTimeout) as raised:
        # The broker's own timer of the same length must not be the one that ends it.
        async with asyncio.timeout(connector.settings.timeout_s):
            await connector.search(SearchQuery(isbn=held.work.isbn13))
    elapsed = time.perf_counter() - started
    assert 0.4 < elapsed < 0.6
    assert (raised.value.state, raised.value.reason) == (TargetState.TIMEOUT, "timeout")
    (session,) = host.app[CALIL].sessions.values()
    assert session.polls >= 5


async def test_unknown_system_is_an_error(host: SandboxHost, http: HttpClient) -> None:
    settings = calil_settings(f"{host.base_url}/calil", "Nowhere_Town")
    with pytest.raises(TargetUnreachable):
        await CalilConnector(settings, http).search(SearchQuery(isbn="9784834000825"))


async def test_sandbox_jsonp_by_default(host: SandboxHost, http: HttpClient) -> None:
    url = f"{host.base_url}/calil/check"
    params = {"appkey": "k", "isbn": "9784834000825", "systemid": "Sandbox_Cached"}
    response = await http.get(url, member="t", timeout_s=2, params=params)
    assert response.body.startswith(b"callback(") and response.body.endswith(b");")
    assert parse_answer(response.body, "t").system("9784834000825", "Sandbox_Cached") is not None
    with pytest.raises(TargetHTTPError, match="400"):
        await http.get(url, member="t", timeout_s=2, params={**params, "callback": "alert(1)//"})


@pytest.mark.parametrize(
    ("faults", "error", "reason"),
    [
        (FaultConfig(http_status=503), TargetHTTPError, "http_503"),
        (FaultConfig(malformed_xml=True), MalformedResponse, "malformed"),
        (FaultConfig(hang=True), TargetTimeout, "timeout"),
    ],
    ids=["http-503", "truncated-json", "hang"],
)
async def test_sandbox_faults(
    host: SandboxHost, http: HttpClient, faults: FaultConfig, error: type[ConnectorError], reason: str
) -> None:
    host.set_faults("quick", faults)
    held = held_with_copies(host, "quick")
    with pytest.raises(error) as raised:
        await sandbox_connector(host, http, "quick", timeout_s=0.5).search(SearchQuery(isbn=held.work.isbn13))
    assert raised.value.reason == reason


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(ValueError, match="options.appkey: Field required"):
        TargetSettings(member="m", kind="calil", endpoint="http://calil.invalid", options={"systemid": "X"})


async def test_at_most_100_isbns_a_session() -> None:
    settings = calil_settings("http://calil.invalid", "X")
    isbns = [f"978400000{n:03d}" for n in range(101)]  # never sent: refused before any request
    with pytest.raises(ValueError, match="100"):
        await CalilConnector(settings, HttpClient()).check_many(isbns)
