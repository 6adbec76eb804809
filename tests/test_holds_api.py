"""POST /api/v1/holds/plan and `yokodan holds plan` against the sandbox members of the shipped Okayama file.

The prefectural library speaks Koha-style REST here, so its live view of the patron (blocks, overdue,
expiry) comes over a real socket; the municipal members speak SRU and HTML OPACs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date

import aiohttp
import orjson
import pytest
from aiohttp import web

from broker.api import build_app
from broker.cli import main
from broker.holds.gather import HoldsGatherer, find_work
from broker.holds.patron import Card, Patron
from broker.members import MemberRegistry
from broker.search import SearchService
from sandbox.ils_rest_server import ACCESS_LOG
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from yokodan import SearchQuery

KOKORO = "9784101010137"  # こころ (新潮文庫): held by all 13 members in the sandbox


@pytest.fixture
async def broker_url(okayama_sandbox: SandboxedConsortium) -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(okayama_sandbox.consortium), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def post(url: str, body: object, *, raw: bytes | None = None) -> tuple[int, str, dict]:
    data = raw if raw is not None else orjson.dumps(body)
    async with aiohttp.ClientSession() as session, session.post(f"{url}/api/v1/holds/plan", data=data) as response:
        return response.status, response.content_type, orjson.loads(await response.read())


def card(number: str, member: str = "okayama-pref", pin: str | None = "1234") -> dict:
    return {"member": member, "card_number": number, **({"pin": pin} if pin else {})}


async def test_plan_chooses_the_prefectural_counter_and_advises_municipal_cards(broker_url: str) -> None:
    status, content_type, body = await post(broker_url, {
        "isbn": KOKORO, "today": "2026-12-01",
        "patron": {"cards": [card("10000001")], "home_municipality": "津山市"},
    })
    assert (status, content_type) == (200, "application/json")
    choice = body["plan"]["choice"]
    # On the prefectural shelf (sandbox): requested Tue 12-01 → pulled Wed 12-02 → email Thu 12-03 → ready Thu 12-03,
    # 7 opening days excluding Mondays → Thu 12-10.
    assert (choice["member"], choice["pickup_branch"], choice["ready"], choice["deadline"]) == (
        "okayama-pref", "okayama-pref/honkan", "2026-12-03", "2026-12-10",
    )
    # Every other pickup library gets the weekly run: packed Sun 12-06, window Fri 12-11..Thu 12-17.
    weekly = [a for a in body["plan"]["alternatives"] if a["route"] == "to_pickup"]
    assert weekly and {(a["ready"], a["deadline"], a["lost_because"], a["days_later"]) for a in weekly} == {
        ("2026-12-11", "2026-12-17", "later_ready", 8)
    }
    refusals = {(r["reason"], r["member"]) for r in body["plan"]["refusals"]}
    assert ("no_card", "tsuyama-city") in refusals and len(refusals) == 12  # every municipal member: no card
    # The municipal copies on their own shelves would be ready the next day (Wed 12-02): one day earlier.
    advice = body["plan"]["advice"]
    assert advice and all(a["gain_days"] == 1 and a["ready"] == "2026-12-02" for a in advice)
    assert [a["message_ja"] for a in advice] == [f"{a['member_name']}の利用カードがあれば、1日早く受け取れます（{a['phone']}）" for a in advice]
    assert [a["message_en"] for a in advice] == [f"With a library card of {a['member_name']}, you could collect it 1 day sooner (phone {a['phone']})" for a in advice]
    assert [a["message"] for a in advice] == [a["message_ja"] for a in advice]  # Japanese unless asked
    assert "10000001" not in orjson.dumps(body).decode() and "1234" not in orjson.dumps(body).decode()


async def test_live_blocks_from_the_member(broker_url: str, okayama_sandbox: SandboxedConsortium) -> None:
    # Sandbox patrons: 10000009 has an overdue loan, 10000010 an expired card.
    cases = {"10000009": "overdue_block", "10000010": "card_expired"}
    for number, reason in cases.items():
        _, _, body = await post(broker_url, {"isbn": KOKORO, "today": "2026-12-01", "patron": {"cards": [card(number)]}})
        assert body["plan"]["choice"] is None
        pref = [r for r in body["plan"]["refusals"] if r["member"] == "okayama-pref"]
        assert [(r["reason"], r["phone"]) for r in pref] == [(reason, "086-224-1287")]
    _, _, body = await post(broker_url, {"isbn": KOKORO, "patron": {"cards": [card("10000001", pin="9999")]}})
    assert [r["reason"] for r in body["plan"]["refusals"] if r["member"] == "okayama-pref"] == ["authentication_failed"]
    # The PIN went in a request body, never in a URL.
    assert not any("9999" in line or "1234" in line for line in okayama_sandbox.host.app[ACCESS_LOG])


async def test_unknown_card_at_a_member_is_named_not_fatal(broker_url: str) -> None:
    # 岡山市 searches over SRU and takes holds over NCIP ([members.holds]): the NCIP face does not know the card.
    _, _, body = await post(broker_url, {"isbn": KOKORO, "today": "2026-12-01",
                                         "patron": {"cards": [card("10000001"), card("29999999", member="okayama-city", pin=None)]}})
    city = [r for r in body["plan"]["refusals"] if r["member"] == "okayama-city"]
    assert [r["reason"] for r in city] == ["patron_not_found"]
    assert body["plan"]["choice"]["member"] == "okayama-pref"


async def test_member_without_patron_lookup_is_unreachable(okayama_sandbox: SandboxedConsortium, http) -> None:
    from tests.holds_helpers import member_data, with_changes

    def no_holds_face(data) -> None:
        member_data(data, "okayama-city")["holds"] = None  # SRU only: it cannot look a patron up

    consortium = with_changes(okayama_sandbox.consortium, no_holds_face)
    gathered = await HoldsGatherer(MemberRegistry(consortium, http)).gather(
        Patron(cards=[Card(member="okayama-city", card_number="1")]), []
    )
    assert gathered.statuses["okayama-city"].reason == "not_supported"


async def test_hanging_member_is_cut_at_its_deadline(okayama_sandbox: SandboxedConsortium, http) -> None:
    consortium = okayama_sandbox.consortium
    work, _ = await find_work(SearchService(MemberRegistry(consortium, http)), SearchQuery(isbn=KOKORO))
    assert work is not None
    okayama_sandbox.host.set_faults("okayama-pref", FaultConfig(hang=True))
    started = time.perf_counter()
    gathered = await HoldsGatherer(MemberRegistry(consortium, http)).gather(
        Patron(cards=[Card(member="okayama-pref", card_number="10000001")]), work.records
    )
    elapsed = time.perf_counter() - started
    assert gathered.statuses["okayama-pref"].reason == "timeout"
    assert gathered.stale_holdings["okayama-pref"] == "timeout"
    assert elapsed < consortium.member("okayama-pref").connector.timeout_s + 1.5


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"isbn": KOKORO, "patron": {"cards": []}, "colour": "red"}, "colour"),
        ({"isbn": "9784101010130", "patron": {"cards": []}}, "isbn"),  # bad check digit
        ({"patron": {"cards": []}}, "(body)"),
        ({"isbn": KOKORO, "patron": {"cards": [{"member": "okayama-pref"}]}}, "patron.cards.0.card_number"),
        ({"isbn": KOKORO, "patron": {"cards": [], "location": [123, 0]}}, "patron.location"),
        ({"isbn": KOKORO, "patron": {"cards": [card("1", member="osaka-city")]}}, "patron.cards.0.member"),
        ({"isbn": KOKORO, "patron": {"cards": [], "preferred_pickups": ["nowhere/x"]}}, "patron.preferred_pickups.0"),
        ({"isbn": KOKORO, "patron": {"cards": []}, "today": "2026-13-01"}, "today"),
    ],
)
async def test_bad_requests_get_problem_json(broker_url: str, body: dict, parameter: str) -> None:
    status, content_type, answer = await post(broker_url, body)
    assert (status, content_type) == (400, "application/problem+json")
    assert parameter in [e["parameter"] for e in answer["errors"]]


async def test_not_json_and_unknown_work(broker_url: str) -> None:
    status, content_type, answer = await post(broker_url, None, raw=b"{not json")
    assert (status, content_type, answer["title"]) == (400, "application/problem+json", "Invalid request")
    status, content_type, answer = await post(broker_url, {"isbn": "9780000000002", "patron": {"cards": []}})
    assert (status, content_type, answer["title"]) == (404, "application/problem+json", "Work not found")
    assert len(answer["targets"]) == 13


async def test_volumes_are_sequenced_in_order(broker_url: str, okayama_sandbox: SandboxedConsortium, http) -> None:
    outcome = await SearchService(MemberRegistry(okayama_sandbox.consortium, http)).search(SearchQuery(title="ノルウェイの森"))
    by_volume = {w.volume: w.isbns[0] for w in outcome.works if w.volume in ("上", "下") and w.isbns}
    assert set(by_volume) == {"上", "下"}
    status, _, body = await post(broker_url, {
        "isbns": [by_volume["下"], by_volume["上"]], "today": "2026-12-01",  # given out of order on purpose
        "patron": {"cards": [card("10000001")]},
    })
    assert status == 200
    steps = body["series"]["steps"]
    assert [s["volume"] for s in steps] == ["上", "下"]
    assert body["series"]["in_order"] is True
    ready = [s["plan"]["choice"]["ready"] for s in steps if s["plan"]["choice"]]
    assert ready == sorted(ready)


async def test_cli_plan_in_japanese(okayama_sandbox: SandboxedConsortium, capsys, monkeypatch) -> None:
    import asyncio

    monkeypatch.setenv("YOKODAN_PIN", "1234")
    args = ["holds", "plan", "--isbn", KOKORO, "--card", "okayama-pref:10000001", "--home", "津山市",
            "--today", "2026-12-01", "--base-url", okayama_sandbox.consortium.base_url]
    code = await asyncio.to_thread(main, args)
    out = capsys.readouterr().out
    assert code == 0
    assert "おすすめ: 岡山県立図書館の資料を岡山県立図書館で受取" in out
    assert "受取可能: 12月3日(木)　取置期限: 12月10日(木)" in out
    assert "利用カードがあれば、1日早く受け取れます" in out
    assert "10000001" not in out and "1234" not in out
    bad = await asyncio.to_thread(main, ["holds", "plan", "--card", "okayama-pref:1", "--base-url", "http://127.0.0.1:1"])
    assert bad == 2


async def test_member_in_maintenance_is_not_contacted(http) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tests.holds_helpers import shipped

    # Kumamoto: 毎日午前4時30分から午前5時まで… ご利用いただけません. Pointed at a closed port: contacting it would
    # fail as an error, so "maintenance" proves it was skipped without a request.
    kumamoto = shipped("kumamoto").with_base_url("http://127.0.0.1:9")
    at_0445 = lambda: datetime(2026, 12, 1, 4, 45, tzinfo=ZoneInfo("Asia/Tokyo"))  # noqa: E731
    gatherer = HoldsGatherer(MemberRegistry(kumamoto, http, clock=at_0445))
    gathered = await gatherer.gather(Patron(cards=[Card(member="kumamoto-pref", card_number="1")]), [])
    assert gathered.statuses["kumamoto-pref"].reason == "maintenance"


async def test_plan_sentences_follow_lang_or_accept_language(broker_url: str) -> None:
    body = orjson.dumps({"isbn": KOKORO, "today": "2026-12-01", "patron": {"cards": [card("10000001")], "home_municipality": "津山市"}})
    async with aiohttp.ClientSession() as session:
        for query, headers, language in [("?lang=en", {}, "en"), ("", {"Accept-Language": "en-US,en;q=0.9,ja;q=0.5"}, "en"),
                                         ("?lang=ja", {"Accept-Language": "en"}, "ja")]:  # fmt: skip
            async with session.post(f"{broker_url}/api/v1/holds/plan{query}", data=body, headers=headers) as response:
                assert response.status == 200 and response.headers["Content-Language"] == language
                plan = orjson.loads(await response.read())["plan"]
            assert plan["advice"] and [a["message"] for a in plan["advice"]] == [a[f"message_{language}"] for a in plan["advice"]]
            assert [r["message"] for r in plan["refusals"]] == [r[f"message_{language}"] for r in plan["refusals"]]
        async with session.post(f"{broker_url}/api/v1/holds/plan?lang=de", data=body) as response:
            problem = orjson.loads(await response.read())
            assert response.status == 400 and [e["parameter"] for e in problem["errors"]] == ["lang"]
