"""The misbehaviour a member's `FaultConfig` asks for, shared by every protocol's server.

`before_answer` decides *whether* a member answers at all (delay, hang, forced
status, random 500s); `deliver` decides *how the body goes out*: replaced
(entity bomb), damaged (truncated, mis-encoded), inflated (huge, streamed) or
dripped slowly.
"""

from __future__ import annotations

import asyncio
import math
from http import HTTPStatus

from aiohttp import web

from typing import TYPE_CHECKING

from sandbox.spec import FaultConfig

if TYPE_CHECKING:
    from sandbox.member import MemberSystem

XML_CONTENT_TYPE = "text/xml"
_DRIP_INTERVAL_S = 0.05
_HUGE_CHUNK_BYTES = 64 * 1024

# Billion laughs: ten levels of ten-fold entity references, ~3 GB once expanded.
# A safe parser (resolve_entities=False) reads it as text; a naive one runs out of memory.
_ENTITIES = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, 10)]
ENTITY_BOMB = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f"<!DOCTYPE zs:searchRetrieveResponse [\n{chr(10).join(_ENTITIES)}\n]>\n"
    '<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:version>1.2</zs:version>'
    "<zs:numberOfRecords>1</zs:numberOfRecords><zs:records><zs:record>"
    "<zs:recordSchema>info:srw/schema/1/marcxml-v1.1</zs:recordSchema><zs:recordPacking>xml</zs:recordPacking>"
    '<zs:recordData><record xmlns="http://www.loc.gov/MARC21/slim">'
    '<datafield tag="245" ind1="0" ind2="0"><subfield code="a">&lol9;</subfield></datafield>'
    "</record></zs:recordData><zs:recordPosition>1</zs:recordPosition></zs:record></zs:records>"
    "</zs:searchRetrieveResponse>\n"
).encode()


def error_page(status: int) -> web.Response:
    """The HTML page a web server in front of a catalogue sends with an error status."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:  # a status code with no standard phrase
        reason = "Error"
    body = f"<html><head><title>{status} {reason}</title></head><body><h1>{reason}</h1></body></html>"
    return web.Response(status=status, text=body, content_type="text/html")


async def before_answer(system: MemberSystem) -> web.Response | None:
    """Apply the member's latency and request-level faults; an error page to send instead, or None."""
    if (delay := system.delay_s()) > 0:
        await asyncio.sleep(delay)
    faults = system.faults
    if faults.hang:
        await asyncio.Event().wait()  # never set: only the client giving up (or shutdown) ends this
    if faults.http_status is not None:
        return error_page(faults.http_status)
    if system.roll_error():
        return error_page(500)
    return None


def lost_answer_mode(system: MemberSystem, option: str) -> str | None:
    """How this answer is lost, if at all: `option` ("hang" | "drop") always, or, with
    `<option>_rate` = "0.2", a seeded dice picks drop or hang for that share of answers."""
    options = system.spec.protocol_options
    if (mode := options.get(option)) is not None:
        return mode
    rate = float(options.get(f"{option}_rate", 0) or 0)
    if rate > 0 and system.dice.random() < rate:
        return "drop" if system.dice.random() < 0.5 else "hang"
    return None


async def lose_answer(request: web.Request, mode: str | None) -> None:
    """A hold was placed; now lose the answer the way a proxy or a crashed worker would.

    `mode` is a member's `protocol_options["lose_hold_answer"]`: "hang" never answers,
    "drop" cuts the connection; anything else answers normally.
    """
    if mode not in ("hang", "drop"):
        return
    if mode == "drop" and request.transport is not None:
        request.transport.abort()  # the client sees the connection cut before any answer
    # Never set: the client giving up, the cut connection (handler cancellation) or shutdown ends this.
    await asyncio.Event().wait()


def _truncated(body: bytes) -> bytes:
    # Cut mid-document and leave a dangling tag: no parser can recover a record set from it.
    return body[: max(1, len(body) * 3 // 5)] + b"<zs:record><zs:recordData><rec"


def _shift_jis(body: bytes) -> bytes:
    # The XML declaration and Content-Type still say UTF-8; only the bytes change.
    return body.decode("utf-8", errors="ignore").encode("cp932", errors="xmlcharrefreplace")


def _xml_stream() -> web.StreamResponse:
    return web.StreamResponse(headers={"Content-Type": f"{XML_CONTENT_TYPE}; charset=utf-8"})


async def _drip(request: web.Request, body: bytes, seconds: float) -> web.StreamResponse:
    """The body a few bytes at a time, spread evenly over `seconds`."""
    steps = max(1, int(seconds / _DRIP_INTERVAL_S))
    size = max(1, math.ceil(len(body) / steps))
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    response = _xml_stream()
    await response.prepare(request)
    for piece in pieces:
        await response.write(piece)
        await asyncio.sleep(seconds / len(pieces))
    await response.write_eof()
    return response


async def _huge(request: web.Request, body: bytes, megabytes: float) -> web.StreamResponse:
    """The answer with its record list repeated until the body reaches `megabytes`, generated as it is sent."""
    start, end = body.find(b"<zs:records>"), body.find(b"</zs:records>")
    if start < 0:  # no records to repeat: pad with comments instead
        head, unit, tail = body[: body.rfind(b"</")], b"<!-- padding -->", body[body.rfind(b"</") :]
    else:
        start += len(b"<zs:records>")
        head, unit, tail = body[:start], body[start:end], body[end:]
    target = int(megabytes * 1024 * 1024)
    response = _xml_stream()
    await response.prepare(request)
    await response.write(head)
    sent = len(head) + len(tail)
    repeat = max(1, _HUGE_CHUNK_BYTES // len(unit))
    chunk = unit * repeat
    while sent < target:
        piece = chunk if target - sent >= len(chunk) else unit * math.ceil((target - sent) / len(unit))
        await response.write(piece)
        sent += len(piece)
    await response.write(tail)
    await response.write_eof()
    return response


async def deliver(request: web.Request, body: bytes, faults: FaultConfig) -> web.StreamResponse:
    """Send an SRU body (HTTP 200) with the faults that act on the body itself."""
    if faults.entity_bomb:
        body = ENTITY_BOMB
    if faults.huge_body_mb:
        return await _huge(request, body, faults.huge_body_mb)
    if faults.malformed_xml:
        body = _truncated(body)
    if faults.wrong_charset:
        body = _shift_jis(body)
    if faults.slow_drip_s:
        return await _drip(request, body, faults.slow_drip_s)
    return web.Response(body=body, content_type=XML_CONTENT_TYPE, charset="utf-8")
