"""The broker's server reads raw UTF-8 request targets (curl, address bars) as their percent-encoding.

Requests are written byte for byte on a socket: aiohttp's client, like browsers, would encode them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import http_parser, web, web_protocol

from broker.api import build_app
from broker.http_server import bound_port, percent_encode_target, start_server
from connectors import HttpClient
from tests.conftest import SandboxedConsortium

Exchange = tuple[int, bytes]  # status, body


async def send_raw(port: int, data: bytes, answers: int = 1) -> list[Exchange]:
    """Write `data` as it is; read `answers` HTTP/1.1 responses (Content-Length framed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        exchanges = []
        for _ in range(answers):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            status = int(head.split(b" ", 2)[1])
            length = next(
                (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
                0,
            )
            exchanges.append((status, await asyncio.wait_for(reader.readexactly(length), 30)))
        return exchanges
    finally:
        writer.close()


def get(target: bytes, *, close: bool = True) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"


@pytest.fixture
def restore_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """start_server swaps aiohttp's request parser process-wide (an earlier test may have served through
    it): use aiohttp's own strict parser for this test, and put back whatever was there afterwards."""
    monkeypatch.setattr(web_protocol, "HttpRequestParser", http_parser.HttpRequestParser)


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {"path": request.path, "raw_path": request.raw_path, "query": dict(request.query), "body": body.decode("utf-8")}
    )


def echo_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


Server = Callable[[web.Application], Awaitable[int]]


@pytest.fixture
async def serve(restore_parser: None) -> AsyncIterator[Server]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> int:
        runner = await start_server(app, "127.0.0.1", 0)
        runners.append(runner)
        return bound_port(runner)

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_readme_search_with_raw_utf8_answers_as_the_encoded_one(
    serve: Server, okayama_sandbox: SandboxedConsortium
) -> None:
    async with HttpClient() as http:
        port = await serve(build_app(okayama_sandbox.consortium, http=http))
        [(raw_status, raw_body)] = await send_raw(port, get("/api/v1/search?q=夏目漱石".encode()))
        [(enc_status, enc_body)] = await send_raw(port, get(b"/api/v1/search?q=%E5%A4%8F%E7%9B%AE%E6%BC%B1%E7%9F%B3"))
    assert (raw_status, enc_status) == (200, 200), raw_body[:300]
    raw, encoded = orjson.loads(raw_body), orjson.loads(enc_body)
    titles = [w["title"] for w in raw["works"]]
    assert titles and titles == [w["title"] for w in encoded["works"]]
    assert any("夏目" in author for w in raw["works"] for author in w["authors"])
    assert {t["state"] for t in raw["targets"]} == {"ok"} and len(raw["targets"]) == 13


async def test_the_strict_parser_alone_refuses_raw_utf8(restore_parser: None) -> None:
    """What the swap fixes (if aiohttp's C parser ever accepts these, broker/http_server.py can go)."""
    runner = web.AppRunner(echo_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        [(status, body)] = await send_raw(bound_port(runner), get("/s?q=夏目漱石".encode()))
    finally:
        await runner.cleanup()
    assert status == 400 and b"Invalid char in url" in body


async def test_raw_bytes_become_their_percent_encoding(serve: Server) -> None:
    port = await serve(echo_app())
    [(status, body)] = await send_raw(port, get("/本/棚?q=夏目 漱石".replace(" ", "+").encode()))
    answer = orjson.loads(body)
    assert status == 200
    assert answer["path"] == "/本/棚" and answer["query"] == {"q": "夏目 漱石"}
    assert answer["raw_path"] == "/%E6%9C%AC/%E6%A3%9A?q=%E5%A4%8F%E7%9B%AE+%E6%BC%B1%E7%9F%B3"


async def test_invalid_utf8_behaves_as_its_percent_encoding(serve: Server) -> None:
    port = await serve(echo_app())
    [(raw_status, raw_body)] = await send_raw(port, get(b"/s?q=\xff\xfe\xe5\xa4"))
    [(enc_status, enc_body)] = await send_raw(port, get(b"/s?q=%FF%FE%E5%A4"))
    assert raw_status == enc_status == 200
    assert orjson.loads(raw_body) == orjson.loads(enc_body)
    assert orjson.loads(raw_body)["query"]["q"] == "\ufffd\ufffd\ufffd"  # never a lone surrogate


async def test_pipelined_requests_keep_their_framing_and_bodies(serve: Server) -> None:
    port = await serve(echo_app())
    body = "予約: 夏目漱石".encode()
    post = (
        b"POST /holds?q=\xe7\x8c\xab HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    first, second = await send_raw(port, post + get("/s?q=こころ".encode()), answers=2)
    assert first[0] == second[0] == 200
    assert orjson.loads(first[1])["body"] == "予約: 夏目漱石"  # body bytes are not percent-encoded
    assert orjson.loads(first[1])["query"] == {"q": "猫"}
    assert orjson.loads(second[1])["query"] == {"q": "こころ"}


async def test_control_characters_in_the_target_are_still_refused(serve: Server) -> None:
    port = await serve(echo_app())
    [(status, _)] = await send_raw(port, get(b"/s?q=a\x01b"))
    assert status == 400


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"GET /s?q=cat HTTP/1.1", b"GET /s?q=cat HTTP/1.1"),
        (b"GET /s?q=%E7%8C%AB HTTP/1.1", b"GET /s?q=%E7%8C%AB HTTP/1.1"),
        ("GET /s?q=猫 HTTP/1.1".encode(), b"GET /s?q=%E7%8C%AB HTTP/1.1"),
        ("GËT /s HTTP/1.1".encode(), "GËT /s HTTP/1.1".encode()),  # only the target: a bad method stays bad
        ("GET /s?q=猫".encode(), "GET /s?q=猫".encode()),  # no version: left for the parser to refuse
    ],
)
def test_percent_encode_target(line: bytes, expected: bytes) -> None:
    assert percent_encode_target(line) == expected


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    await asyncio.wait_for(reader.readexactly(length), 10)
    return int(head.split(b" ", 2)[1])


async def test_an_idle_client_connection_is_closed_after_the_keepalive(restore_parser: None) -> None:
    """aiohttp alone keeps an idle connection (its descriptor and buffers) for an hour; the broker's
    server closes it `keepalive_s` after its last answer, and not while it is in use."""
    runner = await start_server(echo_app(), "127.0.0.1", 0, keepalive_s=0.6)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bound_port(runner))
        loop = asyncio.get_running_loop()
        writer.write(get(b"/one", close=False))
        assert await _read_response(reader) == 200
        await asyncio.sleep(0.3)  # within the keep-alive: the same connection answers again
        writer.write(get(b"/two", close=False))
        assert await _read_response(reader) == 200
        answered = loop.time()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed it
        idle_s = loop.time() - answered
        writer.close()
    finally:
        await runner.cleanup()
    assert 0.5 <= idle_s < 2.5, idle_s


async def test_aiohttp_alone_keeps_an_idle_connection_open(restore_parser: None) -> None:
    """What the keep-alive setting changes (aiohttp's own default: 3630 s)."""
    runner = web.AppRunner(echo_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bound_port(runner))
        writer.write(get(b"/one", close=False))
        assert await _read_response(reader) == 200
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(), 1.5)
        writer.close()
    finally:
        await runner.cleanup()


def test_keepalive_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keepalive_s"):
        asyncio.run(start_server(echo_app(), "127.0.0.1", 0, keepalive_s=0))
