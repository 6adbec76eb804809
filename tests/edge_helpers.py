"""A broker on a real socket in front of the Okayama sandbox, with every sandbox request counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from broker.admission import AdmissionSettings
from broker.api import build_app
from broker.consortium import Consortium, load_consortium
from broker.demo import sandbox_members
from broker.http_server import bound_port, start_server
from sandbox.host import SandboxHost
from tests.conftest import with_member_timeouts


@dataclass
class Counter:
    paths: list[str] = field(default_factory=list)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.paths.append(request.path)
        return await handler(request)


@dataclass
class Broker:
    url: str
    app: web.Application
    sandbox: SandboxHost
    consortium: Consortium
    sandbox_requests: Counter


@asynccontextmanager
async def running_broker(
    admission: AdmissionSettings | None = None,
    *,
    latency_ms: float = 5,
    timeout_s: float = 2.0,
    admin: bool = False,
    sru_keeps: str = "",
    access: dict | None = None,
    portal_keys: Path | None = None,
    setup: Callable[[web.Application], None] | None = None,
    connector_changes: dict[str, dict[str, object]] | None = None,
) -> AsyncIterator[Broker]:
    """`sru_keeps`: characters the SRU members' query terms keep and send as they are (see
    connectors/query_terms.toml), as a member that passes raw text to its server would.
    `access`: the consortium's `[access]` table; `portal_keys`: the keys file; `setup(app)` adds
    routes before the app starts; `connector_changes`: member id -> fields of its connector table to change."""
    consortium = with_member_timeouts(load_consortium(), timeout_s)
    if access is not None:
        consortium = Consortium.model_validate({**consortium.model_dump(), "access": access})
    if sru_keeps or connector_changes:
        data = consortium.model_dump()
        for member in data["members"]:
            if sru_keeps and member["connector"]["kind"] == "sru":
                member["connector"]["options"]["query_terms"] = {"keep": sru_keeps}
            member["connector"].update((connector_changes or {}).get(member["id"], {}))
        consortium = Consortium.model_validate(data)
    sandbox = SandboxHost(sandbox_members(consortium, latency_ms=latency_ms), admin=admin)
    counter = Counter()
    sandbox.app.middlewares.append(counter.middleware)  # before start: the app freezes then
    base_url = await sandbox.start()
    consortium = consortium.with_base_url(base_url)
    app = build_app(consortium, admission=admission, portal_keys=portal_keys)
    if setup is not None:
        setup(app)
    runner = await start_server(app, "127.0.0.1", 0)
    try:
        yield Broker(f"http://127.0.0.1:{bound_port(runner)}", app, sandbox, consortium, counter)
    finally:
        await runner.cleanup()
        await sandbox.stop()


async def get_json(
    session: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None
) -> tuple[int, aiohttp.typedefs.LooseHeaders, dict]:
    async with session.get(url, params=params) as response:
        body = await response.read()
        return response.status, response.headers, orjson.loads(body) if body else {}


def wrong_key(key: str) -> str:
    """The key with its last character changed (never to itself: a fixed replacement was the key 1 time in 64)."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def session_from(local_address: str) -> aiohttp.ClientSession:
    """A client whose connections come from `local_address` (any 127.x.y.z on Linux loopback)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local_address, 0), force_close=True))


async def circuits(session: aiohttp.ClientSession, broker: Broker) -> dict[str, dict]:
    _, _, body = await get_json(session, f"{broker.url}/api/v1/members")
    return {m["id"]: m["circuit"] for m in body["members"]}


async def raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Write `data` as it is and read one response (Content-Length framed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 30)
        return status, headers, body
    finally:
        writer.close()
