"""Serving the broker over HTTP/1.1, accepting raw UTF-8 in request targets.

`curl 'http://127.0.0.1:8400/api/v1/search?q=夏目漱石'` sends the query's UTF-8 bytes unencoded (so
do some browsers and scripts). RFC 9112 wants them percent-encoded, and aiohttp's C request parser
(llhttp, built strict) answers `400 Invalid char in url query`. llhttp has no lenient flag for URL
bytes (nodejs/llhttp#259 asks for one), while aiohttp's pure-Python request parser reads such a
line (aiohttp's own tests mark the C parser's rejection of UTF-8 request lines as a known gap).

So the broker's server uses the pure-Python request parser, and percent-encodes every non-ASCII
byte of the request *target* before the line is parsed: the handler then sees exactly the request
a careful client would have sent (`%E5%A4%8F…`), invalid UTF-8 becomes U+FFFD as its
percent-encoded form does, and every other check of the request line (method token, control
characters, version) stays as strict as before. Header and body bytes are left alone: the parser
frames messages, so only request lines are touched, pipelined requests included.

The cost is the pure-Python parser for request heads: about 20 µs per request head against 5 µs
for llhttp (best of 5 × 20,000 feeds of a curl-like GET, 2 shared cores), next to a search that
takes tens to hundreds of milliseconds; member answers are parsed by the client side, untouched. aiohttp builds its request parser from
the module-global name `aiohttp.web_protocol.HttpRequestParser` once per connection, and offers no
per-server setting, so the swap is process-wide: in `yokodan demo` the sandbox members, served in
the same process, accept raw UTF-8 too. tests/test_http_server.py fails if aiohttp moves that name.
"""

from __future__ import annotations

import re

from aiohttp import web, web_protocol
from aiohttp.http_parser import HttpRequestParserPy, RawRequestMessage

_NON_ASCII = re.compile(rb"[\x80-\xff]")


def percent_encode_target(request_line: bytes) -> bytes:
    """b'GET /s?q=\\xe5\\xa4\\x8f HTTP/1.1' -> b'GET /s?q=%E5%A4%8F HTTP/1.1'; ASCII lines unchanged."""
    if request_line.isascii():  # nearly every request: no work
        return request_line
    parts = request_line.split(b" ", 2)  # the same split as aiohttp's parser: method, target, version
    if len(parts) != 3 or not _NON_ASCII.search(parts[1]):
        return request_line
    parts[1] = _NON_ASCII.sub(lambda byte: b"%%%02X" % byte.group()[0], parts[1])
    return b" ".join(parts)


class Utf8TargetRequestParser(HttpRequestParserPy):
    """aiohttp's pure-Python request parser, with non-ASCII target bytes percent-encoded first."""

    def parse_message(self, lines: list[bytes]) -> RawRequestMessage:
        line = lines[0]
        encoded = percent_encode_target(line)
        return super().parse_message(lines if encoded is line else [encoded, *lines[1:]])


def accept_utf8_request_targets() -> None:
    """Make aiohttp servers in this process read request targets with raw UTF-8 (see the module doc)."""
    if not hasattr(web_protocol, "HttpRequestParser"):  # pragma: no cover - guards an aiohttp upgrade
        raise RuntimeError("aiohttp.web_protocol.HttpRequestParser is gone: revisit broker/http_server.py")
    web_protocol.HttpRequestParser = Utf8TargetRequestParser  # type: ignore[misc]


async def start_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port (0 picks a free port; see `bound_port`) until runner.cleanup()."""
    accept_utf8_request_targets()
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()  # closes what the app's startup already opened
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site listens on (useful after asking for port 0)."""
    return int(runner.addresses[0][1])
