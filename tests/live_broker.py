"""A whole broker over a real socket for the API-contract tests: build_app (search, members, plan,
OpenAPI, a whoosh union index) with the hold ledger mounted (`add_hold_routes`, SQLite), the Okayama sandbox behind
search and a Koha-style REST sandbox member `alpha` behind holds.

`live_broker()` runs on the test's loop; `ThreadedBroker` runs the same broker on a loop of its
own thread, for callers that block (schemathesis's CLI, the sync client).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from aiohttp import web
from cryptography.fernet import Fernet

from broker.api import build_app
from broker.consortium import load_consortium
from broker.demo import sandbox_members
from broker.ledger.accounts import Accounts
from broker.ledger.db import SQLiteDatabase
from broker.ledger.holds_repo import HoldLedger
from broker.ledger.placement import Placement
from broker.ledger.routes import add_hold_routes
from broker.ledger.series_routes import add_series_hold_routes
from broker.ledger.schema import migrate
from broker.ledger.service import HoldService
from broker.ledger.vault import Vault
from connectors import HttpClient
from connectors.ils_rest import ILSRestConnector
from index.store import UnionIndex
from sandbox import SandboxHost
from sandbox.member import MemberSystem
from sandbox.sru_server import MEMBERS
from tests.conftest import with_member_timeouts
from tests.test_ils_rest import rest_member, settings_for
from tests.test_ledger_api import consortium_of


@dataclass
class LiveBroker:
    url: str
    holds_member: MemberSystem  # the REST sandbox member 'alpha' (cards 10000001, 10000002; PIN 1234)


@asynccontextmanager
async def live_broker(ledger_dir: Path) -> AsyncIterator[LiveBroker]:
    consortium = with_member_timeouts(load_consortium(), 2.0)
    async with HttpClient() as http, SandboxHost([rest_member("alpha")], catalogue_size=200) as holds_host:
        search_host = SandboxHost(sandbox_members(consortium, latency_ms=5))
        base_url = await search_host.start()
        db = await SQLiteDatabase.open(ledger_dir / "ledger.db")
        await migrate(db)
        connector = ILSRestConnector(settings_for(holds_host, "alpha", timeout_s=2.0), http)
        accounts, ledger = Accounts(db, Vault(Fernet.generate_key())), HoldLedger(db)
        gateway = {"alpha": connector}.__getitem__
        service = HoldService(consortium_of(["alpha"]), ledger, accounts, Placement(ledger, accounts, gateway, node="n"), gateway, node="n")
        app = build_app(consortium.with_base_url(base_url), http=http, open_index=partial(UnionIndex.open, ledger_dir / "index"))
        add_hold_routes(app, service)
        add_series_hold_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield LiveBroker(f"http://{host}:{port}", holds_host.app[MEMBERS]["alpha"])
        finally:
            await runner.cleanup()
            await db.close()
            await search_host.stop()


class ThreadedBroker:
    """`with ThreadedBroker(path) as broker:` — the live broker served from a thread of its own."""

    def __init__(self, ledger_dir: Path) -> None:
        self._ledger_dir = ledger_dir
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.broker: LiveBroker | None = None
        self._thread = threading.Thread(target=self._run, name="live-broker", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            try:
                async with live_broker(self._ledger_dir) as broker:
                    self.broker = broker
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:  # reported to the test thread in __enter__
                self._error = exc
                self._ready.set()

        asyncio.run(serve())

    def __enter__(self) -> LiveBroker:
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("the live broker did not start in 60 s")
        if self._error is not None:
            raise self._error
        assert self.broker is not None
        return self.broker

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
