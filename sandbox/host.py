"""Run every simulated member in this process, on one local port."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from datetime import date
from types import TracebackType

from aiohttp import web

from sandbox.catalogue import DEFAULT_SIZE, Catalogue, generate_catalogue
from sandbox.patrons import enrol_cards
from sandbox.spec import FaultConfig, SandboxMember
from sandbox.sru_server import MEMBERS, build_app
from yokodan.errors import ConfigError

# Seconds a stopping host waits for in-flight requests (a hung member never finishes).
_SHUTDOWN_GRACE_S = 0.25
_SERVER_LOG = logging.getLogger("sandbox.server")


class AdminRoutesExposed(ConfigError):
    """The sandbox's unauthenticated admin routes were asked for on an address others can reach."""


def is_loopback(host: str) -> bool:
    """'127.0.0.1', '::1', 'localhost' -> True; '0.0.0.0', '' (every interface), other names -> False."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SandboxHost:
    """`async with SandboxHost(members) as host:` serves every member at `host.endpoint(id)`."""

    def __init__(
        self,
        members: Sequence[SandboxMember],
        *,
        seed: int = 0,
        catalogue_size: int = DEFAULT_SIZE,
        catalogue: Catalogue | None = None,
        as_of: date | None = None,
        admin: bool = False,
    ) -> None:
        self.catalogue = catalogue or generate_catalogue(catalogue_size, seed)
        self.admin = admin  # serve /_admin/... (fault injection, no authentication): loopback only
        self.app = build_app(list(members), self.catalogue, as_of=as_of, admin=admin)
        for spec in members:
            if spec.patrons:  # the test patrons' cards, beside every ledger's default cards
                system = self.app[MEMBERS][spec.id]
                enrol_cards(system.ledger, system.held, spec.patrons)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        # Client (address, port) pairs seen per member: how many connections a broker opened
        # (keep-alive checks; a set per member, as big as the connections made, not the requests).
        self.peers: dict[str, set[tuple[str, int]]] = {}
        self.app.on_response_prepare.append(self._note_peer)

    async def _note_peer(self, request: web.Request, response: web.StreamResponse) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer is not None:
            member = request.path.split("/", 2)[1]
            self.peers.setdefault(member, set()).add((peer[0], peer[1]))

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("SandboxHost is not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 picks a free port); returns the base URL.

        With admin routes, only a loopback address: anyone who reaches them can break members.
        """
        if self.admin and not is_loopback(host):
            raise AdminRoutesExposed(f"sandbox admin routes are served on loopback addresses only, not on {host!r}")
        # handler_cancellation: a client that gives up on a hung member frees its handler.
        # Its own logger: in one process with the broker (demo, tests), a member's errors are the member's.
        runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_GRACE_S, logger=_SERVER_LOG
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._base_url = f"http://{bound_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._base_url = None

    def endpoint(self, member_id: str) -> str:
        return f"{self.base_url}/{member_id}/sru"

    def set_faults(self, member_id: str, faults: FaultConfig) -> None:
        self.app[MEMBERS][member_id].set_faults(faults)

    async def __aenter__(self) -> SandboxHost:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
