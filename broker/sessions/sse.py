"""GET /api/v1/searches/{search_id}/events: the session's diffs as Server-Sent Events.

Each event is `event: diff`, `id: <version>`, `data: <SearchDiff JSON>`: an EventSource that
reconnects sends `Last-Event-ID`, and the first event it gets is the diff since exactly that
version (or the whole state with reset=true, when the session no longer keeps it). The stream ends
after the diff with done=true.

aiohttp-sse gives the response (headers, keep-alive pings, Last-Event-ID, a stalled client's
send timeout); the frames are written here as bytes rather than through its `send(str)`, because
a diff is the pre-serialised bytes every listener at that version shares (JSON from orjson has no
line break, so it is one `data:` line as it is).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from broker.api import InvalidRequest
from broker.sessions.routes import SESSIONS_KEY, SessionEventsQuery, parse_query, session_of

log = logging.getLogger(__name__)

__all__ = ["events_handler", "frame"]


def frame(version: int, diff: bytes) -> bytes:
    return b"id: %d\r\nevent: diff\r\ndata: %s\r\n\r\n" % (version, diff)


def _start_version(request: web.Request) -> int:
    params = parse_query(SessionEventsQuery, request)
    header = request.headers.get("Last-Event-ID")
    if header is None:
        return params.version
    text = header.strip()
    if not text.isdigit() or len(text) > 10:
        raise InvalidRequest("Last-Event-ID must be a version number", [{"parameter": "Last-Event-ID", "detail": header[:40]}])
    return int(text)


async def events_handler(request: web.Request) -> web.StreamResponse:
    since = _start_version(request)
    session = session_of(request)  # 404 before the stream begins
    settings = request.app[SESSIONS_KEY].settings
    response = EventSourceResponse(ping_interval=settings.sse_ping_s)
    await response.prepare(request)
    session.listeners += 1
    try:
        # The first event at once when there is news (or the session is done: a client that
        # reconnects after the end learns it is over); then one per version.
        first = True
        while not session.closed:
            if session.version != since or (first and session.done):
                version = session.version
                await _write(response, frame(version, session.diff(since)))
                since = version
                if session.done:
                    break
            first = False
            await session.wait_newer(since, settings.sse_ping_s)
    except (ConnectionResetError, TimeoutError):
        log.debug("search events: client went away")  # routine: a tab closed, a portal timed out
        return response
    finally:
        session.listeners -= 1
        session.touch()  # idle from the moment the last listener left
    await response.write_eof()
    return response


SEND_TIMEOUT_S = 60.0  # a client that reads nothing for this long is cut (aiohttp-sse's send() does the same)


async def _write(response: EventSourceResponse, data: bytes) -> None:
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await response.write(data)
    except TimeoutError:
        response.stop_streaming()
        raise
