"""The broker's edges over real sockets: query cleaning, breaker accounting, oversized heads,
stream disconnects, HEAD, security headers, and the sandbox's admin routes behind a flag."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import aiohttp
import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from broker.api import LAG_KEY, REGISTRY_KEY, SearchParams, build_app
from broker.consortium import load_consortium
from broker.http_server import bound_port, start_server
from broker.members import counts_against_member
from connectors import Capability
from connectors.errors import ConnectorError
from sandbox.host import AdminRoutesExposed, SandboxHost
from sandbox.spec import FaultConfig
from sandbox.sru_server import MEMBERS
from tests.edge_helpers import Broker, circuits, get_json, raw_exchange, running_broker
from yokodan import SearchQuery, TargetState

SEARCH_MEMBERS = "okayama-city,setouchi-city,misaki-town,bizen-city,okayama-pref"  # the three SRU members and two others


@pytest.fixture
async def broker() -> Broker:
    async with running_broker() as started:
        yield started


# --- 1. queries cleaned before they leave ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("夏目\x00漱石", "夏目 漱石"), ("abc\x1b[31mdef", "abc [31mdef"), ("猫\x85\x9f犬", "猫 犬"), ("\t夏目漱石\n", "夏目漱石")],
    ids=["nul", "escape", "c1", "tab-newline"],
)
def test_control_characters_become_spaces(raw: str, cleaned: str) -> None:
    assert SearchParams.model_validate({"q": raw}).q == cleaned


@pytest.mark.parametrize("raw", ["夏目\ufffd漱石", "夏目\ud800漱石", "\udc80"], ids=["fffd", "high-surrogate", "low-surrogate"])
def test_lost_text_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SearchParams.model_validate({"title": raw})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("title",), "undecodable_text")]


async def test_control_character_queries_never_open_a_breaker() -> None:
    """The issue's attack: NUL and friends in q. The SRU members here pass them through to their
    server (their term rules keep them), which echoes them into XML no parser accepts: sent on
    uncleaned, five such requests open all three SRU members' breakers."""
    # Generous deadlines: on a loaded machine a timeout would hide what this test is about.
    async with running_broker(sru_keeps="\x00\x01\x02\x7f\x9b", timeout_s=10) as broker, aiohttp.ClientSession() as session:
        for raw in ["abc\x00def", "夏目\x00漱石", "\x01\x02猫", "x\x7fy", "吾輩\x9bは猫"] * 3:
            status, _, body = await get_json(session, f"{broker.url}/api/v1/search", {"q": raw, "members": SEARCH_MEMBERS})
            assert status == 200
            assert [(t["member"], t["state"]) for t in body["targets"]] == [(m, "ok") for m in SEARCH_MEMBERS.split(",")]
        after = await circuits(session, broker)
    assert {m: (c["state"], c["consecutive_failures"]) for m, c in after.items()} == {m: ("closed", 0) for m in after}


async def test_undecodable_query_bytes_get_400_naming_the_parameter(broker: Broker) -> None:
    async with aiohttp.ClientSession() as session:
        # %82%C8 is Shift_JIS for な: not UTF-8, so the server reads U+FFFD
        async with session.get(aiohttp.client.URL(f"{broker.url}/api/v1/search?q=%82%C8", encoded=True)) as response:
            assert (response.status, response.content_type) == (400, "application/problem+json")
            body = orjson.loads(await response.read())
    assert [e["parameter"] for e in body["errors"]] == ["q"]
    assert broker.sandbox_requests.paths == []  # refused at the edge: no member was asked


async def test_garbled_answer_counts_against_the_member_only_for_a_clean_request(broker: Broker) -> None:
    """A member's unreadable answer (real socket, malformed_xml) is its fault unless our request was dirty."""
    broker.sandbox.set_faults("bizen-city", FaultConfig(malformed_xml=True))
    registry = broker.app[REGISTRY_KEY]
    connector = registry.connector("bizen-city", Capability.SEARCH)
    with pytest.raises(ConnectorError) as caught:
        await connector.search(SearchQuery(text="夏目漱石"))
    assert caught.value.reason == "malformed"
    registry.record("bizen-city", caught.value.state, caught.value.reason, request_clean=False)
    assert registry.breaker("bizen-city").consecutive_failures == 0
    registry.record("bizen-city", caught.value.state, caught.value.reason)
    assert registry.breaker("bizen-city").consecutive_failures == 1


def test_which_failures_count_against_a_member() -> None:
    counted = [
        (state, reason, clean, saturated)
        for state, reason in [
            (TargetState.ERROR, "unreachable"), (TargetState.ERROR, "http_503"), (TargetState.TIMEOUT, "timeout"),
            (TargetState.ERROR, "malformed"), (TargetState.ERROR, "diagnostic"), (TargetState.SKIPPED, "member_busy"),
            (TargetState.TIMEOUT, "search_deadline"),
            (TargetState.OK, None),
        ]
        for clean in (True, False)
        for saturated in (False, True)
        if counts_against_member(state, reason, request_clean=clean, broker_saturated=saturated)
    ]  # fmt: skip
    assert counted == [
        (TargetState.ERROR, "unreachable", True, False), (TargetState.ERROR, "unreachable", True, True),
        (TargetState.ERROR, "unreachable", False, False), (TargetState.ERROR, "unreachable", False, True),
        (TargetState.ERROR, "http_503", True, False), (TargetState.ERROR, "http_503", True, True),
        (TargetState.ERROR, "http_503", False, False), (TargetState.ERROR, "http_503", False, True),
        (TargetState.TIMEOUT, "timeout", True, False), (TargetState.TIMEOUT, "timeout", False, False),
        (TargetState.ERROR, "malformed", True, False), (TargetState.ERROR, "malformed", True, True),
    ]  # fmt: skip


async def test_timeouts_while_the_broker_is_saturated_do_not_count() -> None:
    async with running_broker(timeout_s=0.5) as broker, aiohttp.ClientSession() as session:
        broker.sandbox.set_faults("bizen-city", FaultConfig(hang=True))
        url = f"{broker.url}/api/v1/search"
        broker.app[LAG_KEY].observe(5.0)  # as the monitor does after a 5 s stall
        _, _, body = await get_json(session, url, {"q": "猫", "members": "bizen-city"})
        assert [(t["state"], t["reason"]) for t in body["targets"]] == [("timeout", "timeout")]
        assert (await circuits(session, broker))["bizen-city"]["consecutive_failures"] == 0
        broker.app[LAG_KEY]._saturated_until = 0.0  # the stall is over
        _, _, body = await get_json(session, url, {"q": "犬", "members": "bizen-city"})
        assert [(t["state"], t["reason"]) for t in body["targets"]] == [("timeout", "timeout")]
        assert (await circuits(session, broker))["bizen-city"]["consecutive_failures"] == 1


# --- 4. edges ------------------------------------------------------------------------------------

SECRET = "秘密の本の題名"


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for record in caplog.records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for secret in secrets:
            assert secret not in text, record


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (f"GET /api/v1/search?q={SECRET * 800} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (f"GET /api/v1/search?q=a HTTP/1.1\r\nHost: x\r\nX-Note: {SECRET * 800}\r\n\r\n", 431),
        ("GET /api/v1/search?q=a HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{i}: {i}\r\n" for i in range(200)) + "\r\n", 431),
        (f"GET /api/v1/search?q={SECRET} HTTP/1.1 trailing\r\nHost: x\r\n\r\n", 400),
    ],
    ids=["long-request-line", "long-header", "too-many-headers", "malformed-line"],
)
async def test_refused_heads_get_problem_json_and_no_query_in_logs(
    broker: Broker, caplog: pytest.LogCaptureFixture, head: str, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    port = int(broker.url.rsplit(":", 1)[1])
    got, headers, body = await raw_exchange(port, head.encode())
    assert (got, headers["content-type"]) == (status, "application/problem+json")
    assert orjson.loads(body)["status"] == status
    assert headers["x-content-type-options"] == "nosniff"
    assert_no_secret_logged(caplog, SECRET, SECRET.encode("utf-8").hex(), "%E7%A7%98")
    assert [r.levelname for r in caplog.records if "refused a request head" in r.getMessage()] == ["INFO"]
    assert broker.sandbox_requests.paths == []


async def test_stream_disconnects_are_one_debug_line_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_broker(timeout_s=10) as broker:
        for member in ("bizen-city", "tamano-city", "okayama-pref"):
            broker.sandbox.set_faults(member, FaultConfig(delay_ms=800))
        port = int(broker.url.rsplit(":", 1)[1])

        async def leave_early(n: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /api/v1/search/stream?q=%E7%8C%AB{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await reader.readuntil(b"\r\n\r\n")
            await reader.readline()  # the first chunk of the first line
            writer.transport.abort()  # a closed tab: RST, no goodbye

        await asyncio.gather(*(leave_early(n) for n in range(30)))
        # The broker notices a gone client when it next writes: after the slow members answer.
        async with asyncio.timeout(20):
            while sum("disconnected" in r.getMessage() for r in caplog.records) < 30:
                await asyncio.sleep(0.05)
    broker_records = [r for r in caplog.records if not r.name.startswith("sandbox")]  # members log their own
    assert [(r.name, r.getMessage()) for r in broker_records if r.levelno >= logging.WARNING] == []
    assert [(r.name, r.getMessage()) for r in broker_records if r.exc_info] == []
    disconnects = [r for r in broker_records if "disconnected" in r.getMessage()]
    assert len(disconnects) == 30 and {r.levelname for r in disconnects} == {"DEBUG"}


async def test_head_answers_without_a_fan_out(broker: Broker) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/api/v1/search", "/api/v1/search/stream"):
            async with session.head(f"{broker.url}{path}", params={"q": "夏目漱石"}) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith(
                    "application/x-ndjson" if path.endswith("stream") else "application/json"
                )
        async with session.head(f"{broker.url}/api/v1/search", params={"q": "猫", "colour": "red"}) as response:
            assert response.status == 400
        assert broker.sandbox_requests.paths == []
        await get_json(session, f"{broker.url}/api/v1/search", {"q": "夏目漱石", "members": "okayama-city"})
    assert broker.sandbox_requests.paths == ["/okayama-city/sru"]  # the counter does count a GET's fan-out


async def test_security_headers_on_every_response() -> None:
    async with running_broker() as broker:
        async with aiohttp.ClientSession() as session:
            answers = []
            for method, path in [
                ("GET", "/api/v1/search?q=%E7%8C%AB&members=bizen-city"), ("GET", "/api/v1/search?colour=red"),
                ("GET", "/api/v1/search/stream?q=%E7%8C%AB&members=bizen-city"), ("HEAD", "/api/v1/search?q=x"),
                ("GET", "/api/v1/members"), ("GET", "/healthz"), ("GET", "/nowhere"), ("POST", "/healthz"),
            ]:  # fmt: skip
                async with session.request(method, f"{broker.url}{path}") as response:
                    await response.read()
                    answers.append((method, path, response.status, dict(response.headers)))
    assert [a[2] for a in answers] == [200, 400, 200, 200, 200, 200, 404, 405]
    for method, path, _, headers in answers:
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'", path
        assert headers["Server"] == "Yokodan", path


async def test_html_pages_get_a_page_csp() -> None:
    app = build_app(load_consortium())  # no member is asked: the page is the app's own

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>横断</title>", content_type="text/html")

    app.router.add_get("/page", page)
    runner = await start_server(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{bound_port(runner)}/page") as response:
            csp = response.headers["Content-Security-Policy"]
    finally:
        await runner.cleanup()
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


async def test_sandbox_admin_routes_only_with_the_flag() -> None:
    async with aiohttp.ClientSession() as session:
        async with running_broker() as plain:
            for method, path in [("GET", "/_admin/health"), ("PUT", "/_admin/bizen-city/faults"), ("GET", "/_admin/bizen-city/opac")]:
                async with session.request(method, f"{plain.sandbox.base_url}{path}", json={"hang": True}) as response:
                    assert response.status in (404, 405), path
            assert plain.sandbox.app[MEMBERS]["bizen-city"].faults == FaultConfig()  # the PUT changed nothing
        async with running_broker(admin=True) as flagged:
            async with session.get(f"{flagged.sandbox.base_url}/_admin/health") as response:
                assert response.status == 200


async def test_sandbox_admin_routes_never_on_a_non_loopback_address() -> None:
    host = SandboxHost([], admin=True, catalogue_size=10)
    with pytest.raises(AdminRoutesExposed):
        await host.start("0.0.0.0")
    assert await host.start("127.0.0.1")
    await host.stop()


def test_sandbox_command_refuses_admin_on_every_interface(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "members.json"
    spec.write_text("[]")
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "--spec", str(spec), "--host", "0.0.0.0", "--admin", "--catalogue-size", "10"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "loopback" in done.stderr and "READY" not in done.stdout
