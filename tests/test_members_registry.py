"""The member registry: connectors by capability, shared breakers, skip reasons, operation slots, unknown words."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

import broker.members
from broker.consortium import Consortium
from broker.members import CapabilityMissing, MemberRegistry, SkipReason, UnknownMembers
from broker.search import SearchService
from connectors import Capability, HttpClient
from connectors.settings import TargetSettings
from connectors.unknown_words import UnknownWords
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from yokodan import SearchQuery, TargetState

DATA = Path(__file__).parent / "data"
UNKNOWN_LINE = '<datafield tag="852" ind1=" " ind2=" "><subfield code="a">分室</subfield><subfield code="z">謎の状態</subfield></datafield>'


def _with_connector(consortium: Consortium, member_id: str, **changes: object) -> Consortium:
    data = consortium.model_dump()
    member = next(m for m in data["members"] if m["id"] == member_id)
    member["connector"].update(changes)
    return Consortium.model_validate(data)


def _with_maintenance(consortium: Consortium, member_id: str, windows: list[dict[str, str]]) -> Consortium:
    data = consortium.model_dump()
    next(m for m in data["members"] if m["id"] == member_id)["maintenance"] = windows
    return Consortium.model_validate(data)


@pytest.fixture
async def words_server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """An SRU endpoint answering a recorded MARCXML body whose copies carry five words no vocabulary knows.

    It counts searches in flight (and the peak), and holds each answer for 50 ms.
    """
    body = (DATA / "sru-marcxml-ndl.xml").read_text()
    assert UNKNOWN_LINE in body
    body = body.replace(UNKNOWN_LINE, "".join(UNKNOWN_LINE.replace("謎の状態", f"謎の状態{i}") for i in range(5)))
    counts = {"in_flight": 0, "peak": 0}

    async def sru(request: web.Request) -> web.Response:
        counts["in_flight"] += 1
        counts["peak"] = max(counts["peak"], counts["in_flight"])
        try:
            await asyncio.sleep(0.05)
            return web.Response(body=body.encode(), content_type="text/xml")
        finally:
            counts["in_flight"] -= 1

    app = web.Application()
    app.router.add_get("/sru", sru)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/sru", counts
    await runner.cleanup()


def test_connector_is_chosen_by_capability_across_a_members_connectors(okayama_sandbox: SandboxedConsortium) -> None:
    """A member searched over SRU and held over NCIP (okayama.toml's [members.holds]): each capability finds its own."""
    consortium = okayama_sandbox.consortium
    registry = MemberRegistry(consortium, HttpClient())
    assert [c.kind for c in registry.connectors("okayama-city")] == ["ncip", "sru"]
    assert registry.connector("okayama-city", Capability.SEARCH).kind == "sru"
    assert registry.connector("okayama-city", Capability.PLACE_HOLD).kind == "ncip"
    assert registry.connector("okayama-city", Capability.HOLDINGS).kind == "ncip", "SRU declares no live holdings"
    search_only = _without_holds(consortium, "setouchi-city")
    with pytest.raises(CapabilityMissing, match="setouchi-city: no connector offers place_hold") as missing:
        MemberRegistry(search_only, HttpClient()).connector("setouchi-city", Capability.PLACE_HOLD)  # SRU only
    assert (missing.value.member, missing.value.capability) == ("setouchi-city", Capability.PLACE_HOLD)
    with pytest.raises(UnknownMembers, match="atlantis"):
        registry.connector("atlantis", Capability.SEARCH)


def _without_holds(consortium: Consortium, member_id: str) -> Consortium:
    data = consortium.model_dump()
    for member in data["members"]:
        if member["id"] == member_id:
            member["holds"] = None
    return Consortium.model_validate(data)


def test_plan_says_why_each_member_is_skipped(okayama_sandbox: SandboxedConsortium) -> None:
    window = [{"start": "04:30", "end": "05:00"}]
    consortium = _with_maintenance(okayama_sandbox.consortium, "okayama-pref", window)
    consortium = _with_connector(consortium, "misaki-town", circuit_failures=2)
    at_0445_jst = datetime(2026, 11, 22, 19, 45, tzinfo=UTC)
    registry = MemberRegistry(consortium, HttpClient(), clock=lambda: at_0445_jst)
    for _ in range(2):
        registry.record("misaki-town", TargetState.TIMEOUT, "timeout")
    members = ["okayama-city", "okayama-pref", "misaki-town", "tsuyama-city"]

    search = registry.plan(Capability.SEARCH, members)
    assert [c.member for c in search.ask] == ["okayama-city", "tsuyama-city"]
    assert [(s.member, s.reason, s.circuit) for s in search.skipped] == [
        ("okayama-pref", "maintenance", "closed"),
        ("misaki-town", "circuit_open", "open"),
    ]
    assert all(s.state is TargetState.SKIPPED and s.message for s in search.skipped)

    consortium = _without_holds(consortium, "okayama-city")
    registry = MemberRegistry(consortium, HttpClient(), clock=lambda: at_0445_jst)
    for _ in range(2):
        registry.record("misaki-town", TargetState.TIMEOUT, "timeout")
    holds = registry.plan(Capability.PLACE_HOLD, members)
    assert [c.member for c in holds.ask] == ["tsuyama-city"], "okayama-city has no holds face here"
    assert [(s.member, s.reason) for s in holds.skipped] == [
        ("okayama-city", "not_supported"),  # no capability is checked before anything else
        ("okayama-pref", "maintenance"),
        ("misaki-town", "circuit_open"),  # one breaker per member, whichever face failed
    ]
    assert registry.admit("misaki-town", Capability.SEARCH).skip is SkipReason.CIRCUIT_OPEN


def test_query_problems_are_no_health_signal(okayama_sandbox: SandboxedConsortium) -> None:
    consortium = _with_connector(okayama_sandbox.consortium, "misaki-town", circuit_failures=1)
    registry = MemberRegistry(consortium, HttpClient())
    for reason in ("diagnostic", "unsupported_query", "not_supported", "member_busy", "search_deadline"):
        registry.record("misaki-town", TargetState.ERROR, reason)
    assert registry.admit("misaki-town", Capability.SEARCH).connector is not None
    registry.record("misaki-town", TargetState.ERROR, "http_500")
    assert registry.admit("misaki-town", Capability.SEARCH).skip is SkipReason.CIRCUIT_OPEN


async def test_searches_and_other_users_share_one_breaker(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    """Failures seen by search close the member to every other user of the registry (holds, the poller)."""
    consortium = _with_connector(okayama_sandbox.consortium, "okayama-pref", circuit_failures=1, timeout_s=0.3)
    okayama_sandbox.host.set_faults("okayama-pref", FaultConfig(http_status=503))
    registry = MemberRegistry(consortium, http)
    status = (await SearchService(registry).search(SearchQuery(author="夏目漱石"), ["okayama-pref"])).statuses[0]
    assert (status.state, status.circuit) == (TargetState.ERROR, "open")
    holds = registry.plan(Capability.PLACE_HOLD, ["okayama-pref"])
    assert holds.ask == [] and [s.reason for s in holds.skipped] == ["circuit_open"]


async def test_operations_against_one_member_are_capped(
    okayama_sandbox: SandboxedConsortium, words_server: tuple[str, dict[str, int]], http: HttpClient
) -> None:
    url, counts = words_server
    consortium = _with_connector(okayama_sandbox.consortium, "okayama-city", endpoint=url)
    service = SearchService(MemberRegistry(consortium, http, member_operations=2))
    outcomes = await asyncio.gather(*(service.search(SearchQuery(title="本"), ["okayama-city"]) for _ in range(6)))
    assert [o.statuses[0].state for o in outcomes] == [TargetState.OK] * 6
    assert counts["peak"] == 2
    with pytest.raises(ValueError, match="member_operations"):
        MemberRegistry(consortium, http, member_operations=0)


async def test_a_call_that_never_got_a_slot_is_busy_not_a_member_failure(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    """Another user of the registry (a poller's sweep, say) holds the member's only slot past the queue's wait."""
    consortium = _with_connector(
        okayama_sandbox.consortium, "setouchi-city", circuit_failures=1, timeout_s=0.3, queue_wait_s=0.2
    )
    registry = MemberRegistry(consortium, http, member_operations=1)
    service = SearchService(registry)
    async with registry.slot("setouchi-city"):
        busy = (await service.search(SearchQuery(author="夏目漱石"), ["setouchi-city"])).statuses[0]
    assert (busy.state, busy.reason, busy.circuit) == (TargetState.SKIPPED, "member_busy", "closed")
    assert "not contacted" in (busy.message or "")
    assert registry.breaker("setouchi-city").consecutive_failures == 0, "our own queue is no member failure"
    after = (await service.search(SearchQuery(author="夏目漱石"), ["setouchi-city"])).statuses[0]
    assert after.state is TargetState.OK


async def test_unknown_words_are_counted_per_registry_and_bounded(
    okayama_sandbox: SandboxedConsortium, words_server: tuple[str, dict[str, int]], http: HttpClient
) -> None:
    url, _ = words_server
    consortium = _with_connector(okayama_sandbox.consortium, "okayama-city", endpoint=url)
    bounded = MemberRegistry(consortium, http, unknown_words=UnknownWords(max_keys=3))
    other = MemberRegistry(consortium, http)
    for _ in range(2):
        await SearchService(bounded).search(SearchQuery(title="本"), ["okayama-city"])
    # Five distinct words, two sightings each: three are kept, the rest are counted as dropped.
    assert bounded.unknown_words.words_of("okayama-city") == {"謎の状態0": 2, "謎の状態1": 2, "謎の状態2": 2}
    assert bounded.unknown_words.overflow_of("okayama-city") == 4
    assert len(bounded.unknown_words) == 3
    assert other.unknown_words.words_of("okayama-city") == {}, "another app's registry saw none of it"


def test_unknown_words_cuts_long_words_and_rejects_a_zero_bound() -> None:
    words = UnknownWords(max_keys=2)
    words.record("m", "x" * 10_000)
    words.record("m", "x" * 9_000)  # the same first 80 characters: the same key
    assert words.words_of("m") == {"x" * 80: 2}
    with pytest.raises(ValueError):
        UnknownWords(max_keys=0)


async def test_the_members_listing_reads_the_apps_registry(
    okayama_sandbox: SandboxedConsortium, words_server: tuple[str, dict[str, int]]
) -> None:
    """Circuit state and unknown words in GET /api/v1/members are this app's, from its registry."""
    import aiohttp
    import orjson

    from broker.api import REGISTRY_KEY, build_app

    url, _ = words_server
    consortium = _with_connector(okayama_sandbox.consortium, "okayama-city", endpoint=url)
    consortium = _with_connector(consortium, "setouchi-city", circuit_failures=1)
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(http_status=404))
    app = build_app(consortium)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            params = {"title": "本", "members": "okayama-city,setouchi-city"}
            async with session.get(f"http://{host}:{port}/api/v1/search", params=params) as response:
                assert response.status == 200
            async with session.get(f"http://{host}:{port}/api/v1/members") as response:
                members = {m["id"]: m for m in orjson.loads(await response.read())["members"]}
    finally:
        await runner.cleanup()
    city = members["okayama-city"]
    assert city["unknown_status_words"] == {f"謎の状態{i}": 1 for i in range(5)}
    assert city["unknown_status_words_dropped"] == 0
    assert [c["kind"] for c in city["connectors"]] == ["ncip", "sru"]
    assert city["connectors"][1] == {"kind": "sru", "capabilities": ["search"]}
    assert (city["circuit"]["state"], city["in_maintenance"]) == ("closed", False)
    assert members["setouchi-city"]["circuit"]["state"] == "open"
    assert members["setouchi-city"]["unknown_status_words"] == {}
    assert app[REGISTRY_KEY].unknown_words.count("okayama-city", "謎の状態0") == 1
