"""`/api/v1/check` over real sockets: Calil's polling shape, answered from the sandbox members, read
back by our own Calil connector (Yokodan answering as Calil, Yokodan reading it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from lxml import etree

from broker.admission import AdmissionSettings
from broker.calil_check import CHECK_SETTINGS_KEY
from broker.calil_sessions import CALIL_WORDS, CheckSettings
from connectors import HttpClient
from connectors.calil import CalilConnector
from connectors.errors import TargetHTTPError
from connectors.settings import TargetSettings
from connectors.status_words import StatusMapper
from sandbox.spec import FaultConfig
from tests.edge_helpers import Broker, get_json, running_broker, wrong_key
from tests.test_portal_keys import create

ISBN13 = "9784101010045"  # 三四郎: held by okayama-city and others, not by every sandbox member
ISBN10 = "4101010048"
PREFERENCE = ["貸出可", "館内のみ", "蔵書あり", "貸出中", "予約中", "準備中", "休館中"]  # one on the shelf wins


async def expected_libkeys(
    session: aiohttp.ClientSession, broker: Broker, isbn: str, headers: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Per member, what the check must say: the broker's own search, in Calil's words per branch."""
    async with session.get(f"{broker.url}/api/v1/search", params={"isbn": isbn}, headers=headers) as response:
        assert response.status == 200
        body = await response.json()
    libkeys = {b.id: b.calil_libkey or b.name for b in broker.consortium.branches()}
    words: dict[str, dict[str, list[str]]] = {t["member"]: {} for t in body["targets"] if t["state"] == "ok"}
    for work in body["works"]:
        for holding in work["holdings"]:
            for branch in holding["branches"]:
                name = libkeys.get(branch["branch_id"], branch["branch_name"])
                for copy in branch["copies"]:
                    words[holding["member"]].setdefault(name, []).append(CALIL_WORDS[copy["availability"]])
    return {m: {b: min(w, key=PREFERENCE.index) for b, w in branches.items()} for m, branches in words.items()}


def isbn13(first12: str) -> str:
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12)) % 10) % 10
    return first12 + str(check)


async def poll(session: aiohttp.ClientSession, url: str, first: dict, *, limit: int = 60) -> list[dict]:
    answers = [first]
    while answers[-1]["continue"] == 1 and len(answers) < limit:
        await asyncio.sleep(0.1)
        status, _, body = await get_json(session, url, {"session": first["session"], "callback": "no"})
        assert status == 200
        answers.append(body)
    return answers


async def test_check_answers_in_calils_shape_and_polls_until_continue_is_0() -> None:
    async with running_broker(timeout_s=5) as broker, aiohttp.ClientSession() as session:
        expected = await expected_libkeys(session, broker, ISBN13)
        holding = sorted(m for m, libkey in expected.items() if libkey)
        empty = sorted(m for m, libkey in expected.items() if not libkey)
        assert "okayama-city" in expected and holding and empty
        systems = ["Okayama_Okayama", holding[0], empty[0]]
        broker.sandbox.set_faults("okayama-city", FaultConfig(delay_ms=1500))  # still running at the first answer
        url = f"{broker.url}/api/v1/check"
        status, headers, first = await get_json(
            session, url, {"appkey": "a-calil-appkey", "isbn": ISBN10, "systemid": ",".join(systems), "format": "json", "callback": "no"}
        )
        assert (status, headers["Content-Type"]) == (200, "application/json")
        assert len(first["session"]) == 32 and first["continue"] == 1
        assert list(first["books"]) == [ISBN10]  # echoed as sent
        assert list(first["books"][ISBN10]) == systems
        assert first["books"][ISBN10]["Okayama_Okayama"] == {"status": "Running", "reserveurl": ""}
        answers = await poll(session, url, first)
        last = answers[-1]
        assert last["continue"] == 0 and last["session"] == first["session"]
        for system, member in zip(systems, ["okayama-city", holding[0], empty[0]]):
            entry = last["books"][ISBN10][system]
            held = bool(expected[member])
            assert entry == {
                "status": "OK",
                "reserveurl": f"{broker.url}/work?isbn={ISBN13}" if held else "",
                "libkey": expected[member],
            }, system
        # 'Running' only ever turns into a final status, never back
        seen = [a["books"][ISBN10]["Okayama_Okayama"]["status"] for a in answers]
        assert seen[0] == "Running" and seen[-1] == "OK" and seen == sorted(seen, key=lambda s: s != "Running")


async def test_our_calil_connector_reads_a_yokodan_answering_as_calil(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key = create(path, "calil site")
    async with running_broker(timeout_s=5, access={"anonymous_search": False}, portal_keys=path) as broker:
        async with aiohttp.ClientSession() as session:
            expected = await expected_libkeys(session, broker, ISBN13, {"X-Api-Key": key})
        member = broker.consortium.member("okayama-city")

        def connector(http: HttpClient, appkey: str) -> CalilConnector:
            settings = TargetSettings(
                member="okayama-city", kind="calil", endpoint=f"{broker.url}/api/v1", timeout_s=5,
                branch_codes=member.branch_labels(), options={"systemid": "Okayama_Okayama", "appkey": appkey, "poll_interval_s": 0.1},
            )  # fmt: skip
            return CalilConnector(settings, http)

        async with HttpClient() as http:
            holdings = await connector(http, key).check(ISBN13)
            mapper = StatusMapper("okayama-city", {})
            libkey_to_branch = member.branch_labels()
            assert sorted((h.branch_id, h.location, h.availability, h.status_text) for h in holdings) == sorted(
                (libkey_to_branch[name], name, mapper(word), word) for name, word in expected["okayama-city"].items()
            )
            assert holdings and all(h.branch_id for h in holdings)
            # a site's Calil appkey is not ours: with anonymous search off, refused
            with pytest.raises(TargetHTTPError) as refused:
                await connector(http, "a-calil-appkey").check(ISBN13)
            assert "401" in str(refused.value)


async def test_jsonp_callback_is_an_identifier_or_a_400() -> None:
    async with running_broker() as broker, aiohttp.ClientSession() as session:
        url = f"{broker.url}/api/v1/check"
        params = {"isbn": ISBN13, "systemid": "okayama-city"}
        async with session.get(url, params={**params, "callback": "app.calil_cb"}) as response:
            body = await response.read()
            assert response.headers["Content-Type"] == "application/javascript; charset=utf-8"
            assert body.startswith(b"/**/app.calil_cb(") and body.endswith(b");")
            wrapped = orjson.loads(body[len(b"/**/app.calil_cb(") : -2])
            assert set(wrapped) == {"session", "continue", "books"}
        async with session.get(url, params=params) as response:  # no callback: Calil's default name
            assert (await response.read()).startswith(b"/**/callback(")
        hostile = ["alert(1);x", "</script><script>alert(1)</script>", "a b", "x=1", "a..b", "1abc", "a" * 70, "cb\u2028x"]
        for callback in hostile:
            async with session.get(url, params={**params, "callback": callback}) as response:
                body = await response.read()
                assert response.status == 400 and response.headers["Content-Type"] == "application/problem+json"
                assert callback.encode() not in body
                assert orjson.loads(body)["errors"] == [{"parameter": "callback", "detail": "not an identifier"}]


async def test_xml_answer_has_calils_elements() -> None:
    async with running_broker() as broker, aiohttp.ClientSession() as session:
        url = f"{broker.url}/api/v1/check"
        _, _, first = await get_json(session, url, {"isbn": ISBN13, "systemid": "Okayama_Pref,okayama-city", "callback": "no"})
        await poll(session, url, first)
        async with session.get(url, params={"session": first["session"], "format": "xml"}) as response:
            assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
            root = etree.fromstring(await response.read())
        _, _, as_json = await get_json(session, url, {"session": first["session"], "callback": "no"})
        assert root.tag == "result" and root.findtext("session") == first["session"] and root.findtext("continue") == "0"
        (book,) = root.find("books")
        assert book.get("isbn") == ISBN13
        shown = {
            system.get("systemid"): {
                "status": system.findtext("status"),
                "reserveurl": system.findtext("reserveurl") or "",
                "libkey": {k.get("name"): k.text for k in system.find("libkeys")},
            }
            for system in book
        }
        assert shown == as_json["books"][ISBN13]


async def test_bad_check_requests_get_named_problems() -> None:
    async with running_broker() as broker, aiohttp.ClientSession() as session:
        url = f"{broker.url}/api/v1/check"
        cases = [
            ({"isbn": ISBN13, "systemid": "Tokyo_Setagaya,okayama-city"}, 400, [{"parameter": "systemid", "detail": "Tokyo_Setagaya"}]),
            ({"isbn": "9784101010138", "systemid": "okayama-city"}, 400, [{"parameter": "isbn", "detail": "9784101010138"}]),
            ({"systemid": "okayama-city"}, 400, [{"parameter": "isbn", "detail": "missing"}]),
            ({"isbn": ISBN13}, 400, [{"parameter": "systemid", "detail": "missing"}]),
            ({"isbn": ISBN13, "systemid": "okayama-city", "format": "csv"}, 400, [{"parameter": "format", "detail": "csv"}]),
            ({"session": "0" * 32}, 404, None),
        ]
        for params, status, errors in cases:
            got, headers, body = await get_json(session, url, {**params, "callback": "no"})
            assert (got, headers["Content-Type"]) == (status, "application/problem+json"), params
            assert body.get("errors") == errors, params
        assert body["reason"] == "unknown_session"
        many = ",".join(isbn13(f"978410101{n:03d}") for n in range(60))
        systems = "okayama-city,bizen-city"
        got, _, body = await get_json(session, url, {"isbn": many, "systemid": systems, "callback": "no"})
        assert got == 400 and "100" in body["detail"]


async def test_starting_a_check_costs_a_token_polling_does_not_and_sessions_are_capped() -> None:
    def setup(app: web.Application) -> None:
        app[CHECK_SETTINGS_KEY] = CheckSettings(max_sessions=1, busy_retry_after_s=7, first_answer_wait_s=0.0)

    async with running_broker(AdmissionSettings(client_burst=2, client_rate_per_s=0.01), setup=setup) as broker:
        broker.sandbox.set_faults("okayama-city", FaultConfig(delay_ms=800))
        async with aiohttp.ClientSession() as session:
            url = f"{broker.url}/api/v1/check"
            start = {"isbn": ISBN13, "systemid": "okayama-city", "callback": "no"}
            status, _, first = await get_json(session, url, start)
            assert status == 200 and first["continue"] == 1
            polls = [await get_json(session, url, {"session": first["session"], "callback": "no"}) for _ in range(4)]
            assert [p[0] for p in polls] == [200] * 4 and all("RateLimit" not in p[1] for p in polls)
            status, headers, body = await get_json(session, url, start)  # a second session: over the cap
            assert (status, headers["Retry-After"]) == (503, "7")
            status, headers, body = await get_json(session, url, start)  # the address's bucket is now empty
            assert (status, body["reason"]) == (429, "rate_limited")


async def test_a_key_for_some_members_checks_only_those(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key = create(path, "school", members="okayama-city")
    async with running_broker(portal_keys=path) as broker, aiohttp.ClientSession() as session:
        url = f"{broker.url}/api/v1/check"
        status, _, body = await get_json(session, url, {"appkey": key, "isbn": ISBN13, "systemid": "Okayama_Okayama,Okayama_Pref", "callback": "no"})
        assert (status, body["reason"], body["errors"]) == (403, "members_not_allowed", [{"parameter": "members", "detail": "okayama-pref"}])
        status, _, body = await get_json(session, url, {"appkey": wrong_key(key), "isbn": ISBN13, "systemid": "okayama-city", "callback": "no"})
        assert (status, body["reason"]) == (401, "invalid_api_key")
        status, _, body = await get_json(session, url, {"appkey": key, "isbn": ISBN13, "systemid": "Okayama_Okayama", "callback": "no"})
        assert status == 200 and list(body["books"][ISBN13]) == ["Okayama_Okayama"]
