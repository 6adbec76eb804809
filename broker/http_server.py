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

Requests the parser refuses never reach the app, and aiohttp would answer them with a plain-text
400 and log a traceback quoting the first 100 bytes of the offending line (the patron's query)
beside the client address. The parser here also answers those: a request line over
`max_line_size` is 414, a header line over `max_field_size` or too many headers is 431, any
other malformed head is 400, each as RFC 9457 problem+json with the security headers, and each
logged as one line naming the status and the client, never the bytes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from aiohttp import web, web_protocol, web_server
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.http_parser import HttpRequestParserPy, RawRequestMessage

log = logging.getLogger(__name__)

_NON_ASCII = re.compile(rb"[\x80-\xff]")
PROBLEM_JSON = "application/problem+json"
# Pages may load only their own scripts and styles; JSON answers nothing at all. Neither is framed.
# Pages (broker/pages): their own script, styles and stream only; no inline script, no framing.
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
SERVER_NAME = "Yokodan"  # no aiohttp or Python version for a scanner to match against


def add_security_headers(headers: Any, *, html: bool) -> None:
    """The headers every broker response carries (the app's through broker.api, the parser's here)."""
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Content-Security-Policy"] = HTML_CSP if html else API_CSP
    headers["Server"] = SERVER_NAME


class _RequestHeadRefused(BadHttpMessage):
    """A request head the parser refuses; carries the status to answer and no request bytes."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def _refused(exc: HttpProcessingError, request_line_done: bool) -> _RequestHeadRefused:
    if isinstance(exc, LineTooLong):
        if not request_line_done:
            return _RequestHeadRefused(414, "URI Too Long", "the request line is too long; send long queries shorter")
        return _RequestHeadRefused(431, "Request Header Fields Too Large", "a request header line is too long")
    if "Too many headers" in str(exc):  # aiohttp names no class for it
        return _RequestHeadRefused(431, "Request Header Fields Too Large", "too many request headers")
    return _RequestHeadRefused(400, "Bad Request", "the request line or headers are malformed")


def _problem_response(refused: _RequestHeadRefused) -> web.Response:
    body = {"type": "about:blank", "title": refused.title, "status": refused.status, "detail": refused.detail}
    response = web.Response(body=orjson.dumps(body), status=refused.status, content_type=PROBLEM_JSON)
    add_security_headers(response.headers, html=False)
    response.force_close()  # the rest of what this client sent cannot be framed
    return response


class ProblemRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering the parser's refusals as problem+json in one log line."""

    __slots__ = ()

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if not isinstance(exc, _RequestHeadRefused):
            return super().handle_error(request, status, exc, message)
        log.info("refused a request head from %s: %d %s", request.remote, exc.status, exc.title)  # never the bytes
        return _problem_response(exc)


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
    """aiohttp's pure-Python request parser, with non-ASCII target bytes percent-encoded first.

    Its refusals are answered as problem+json with 414/431/400 (see the module doc).
    """

    def feed_data(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().feed_data(data, *args, **kwargs)
        except _RequestHeadRefused:
            raise
        except HttpProcessingError as exc:
            # The parser still holds the lines of the head it was reading: none means the
            # request line itself was the one too long.
            raise _refused(exc, request_line_done=bool(self._lines)) from None

    def parse_message(self, lines: list[bytes]) -> RawRequestMessage:
        line = lines[0]
        encoded = percent_encode_target(line)
        return super().parse_message(lines if encoded is line else [encoded, *lines[1:]])


def accept_utf8_request_targets() -> None:
    """Make aiohttp servers in this process read request targets with raw UTF-8 (see the module doc)."""
    if not hasattr(web_protocol, "HttpRequestParser"):  # pragma: no cover - guards an aiohttp upgrade
        raise RuntimeError("aiohttp.web_protocol.HttpRequestParser is gone: revisit broker/http_server.py")
    web_protocol.HttpRequestParser = Utf8TargetRequestParser  # type: ignore[misc]
    # The connection handler is built from this module-global name, likewise with no setting.
    if not hasattr(web_server, "RequestHandler"):  # pragma: no cover - guards an aiohttp upgrade
        raise RuntimeError("aiohttp.web_server.RequestHandler is gone: revisit broker/http_server.py")
    web_server.RequestHandler = ProblemRequestHandler  # type: ignore[misc]


# Seconds an idle client connection is kept open. aiohttp's own default is 3630 s: every portal
# and browser that once searched would hold a descriptor and its connection's buffers for an
# hour (bench/soak.py: ~300 idle client connections still open 60 s after the load ended, and the
# memory they held handed back only then). 15 s keeps a portal's run of requests on one
# connection (uvicorn keeps 5 s, nginx 75 s with far smaller per-connection state).
DEFAULT_KEEPALIVE_S = 15.0


async def start_server(
    app: web.Application, host: str, port: int, *, keepalive_s: float = DEFAULT_KEEPALIVE_S
) -> web.AppRunner:
    """Serve `app` on host:port (0 picks a free port; see `bound_port`) until runner.cleanup().

    An idle client connection is closed after `keepalive_s`."""
    if keepalive_s <= 0:
        raise ValueError("keepalive_s must be > 0")
    accept_utf8_request_targets()
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive_s)
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
