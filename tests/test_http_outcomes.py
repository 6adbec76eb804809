""""Sent or not" over real sockets: what the HTTP layer says when a request fails, and what a
hold ledger can then rely on (the sandbox members' own ledgers are the ground truth)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from pydantic import SecretStr

from yokodan import HoldRequest, PatronCredentials, TargetState
from yokodan.holds import HoldIntent, Unknown
from connectors import HttpClient
from connectors.errors import (
    AnswerLost,
    ConnectError,
    ConnectTimeout,
    OutcomeUnknown,
    ReadTimeout,
    RequestNotSent,
    TargetHTTPError,
    TargetTimeout,
    TargetUnreachable,
)
from connectors.http import ClientNotStarted
from connectors.ils_rest import ILSRestConnector
from connectors.ncip import NCIPConnector
from sandbox import FaultConfig, SandboxHost
from sandbox.ils_rest_server import ACCESS_LOG as REST_LOG
from sandbox.member import MemberSystem
from sandbox.ncip_server import ACCESS_LOG as NCIP_LOG
from sandbox.sru_server import MEMBERS
from tests.test_ils_rest import holdable, rest_member, settings_for as rest_settings
from tests.test_ncip import ncip_member, settings_for as ncip_settings

PATRON = PatronCredentials(card_number="10000001", pin=SecretStr("1234"))


@dataclass
class Members:
    host: SandboxHost
    http: HttpClient

    def system(self, member_id: str) -> MemberSystem:
        return self.host.app[MEMBERS][member_id]

    def rest(self, member_id: str, timeout_s: float = 1.0) -> ILSRestConnector:
        return ILSRestConnector(rest_settings(self.host, member_id, timeout_s=timeout_s), self.http)

    def ncip(self, member_id: str, timeout_s: float = 1.0) -> NCIPConnector:
        return NCIPConnector(ncip_settings(self.host.base_url, member_id, timeout_s=timeout_s), self.http)

    def request(self, member_id: str, key: str, pickup: str) -> HoldRequest:
        record_id = holdable(self.system(member_id))
        return HoldRequest(member=member_id, record_id=record_id, pickup_branch_id=f"{member_id}/{pickup}", idempotency_key=key)

    def posts(self, path: str) -> int:
        lines = list(self.host.app[REST_LOG]) + list(self.host.app[NCIP_LOG])
        return sum(line == f"POST {path}" for line in lines)


@pytest.fixture
async def members(http: HttpClient) -> AsyncIterator[Members]:
    specs = [
        rest_member("rest-ok"),
        rest_member("rest-drops", lose_hold_answer="drop"),
        rest_member("rest-hangs", lose_hold_answer="hang"),
        ncip_member("ncip-drops", lose_hold_answer="drop"),
        ncip_member("ncip-hangs", lose_hold_answer="hang"),
    ]
    async with SandboxHost(specs, catalogue_size=120) as host:
        yield Members(host, http)


@pytest.fixture
def refused_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further SYNs, so connecting hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


# --- not sent ------------------------------------------------------------------------------


async def test_a_refused_connection_is_not_sent_for_a_post(members: Members, refused_port: int) -> None:
    with pytest.raises(ConnectError) as failed:
        await members.http.request("POST", f"http://127.0.0.1:{refused_port}/holds", member="m", timeout_s=2, json={})
    assert isinstance(failed.value, RequestNotSent) and not isinstance(failed.value, OutcomeUnknown)
    assert (failed.value.reason, failed.value.state) == ("unreachable", TargetState.ERROR)  # as search reports it
    # A placement at a member that is down: certainly not placed, so `place` raises rather than say Unknown.
    settings = rest_settings(members.host, "rest-ok").model_copy(update={"endpoint": f"http://127.0.0.1:{refused_port}/api/v1"})
    connector = ILSRestConnector(settings, members.http)
    request = members.request("rest-ok", "key-refused-01", "kita")
    with pytest.raises(ConnectError):
        await connector.place_hold(PatronCredentials(card_number="10000001"), request)
    with pytest.raises(ConnectError):
        await connector.place(PatronCredentials(card_number="10000001"), HoldIntent(request=request))


async def test_a_connect_timeout_is_not_sent_even_for_a_post(http: HttpClient, unanswered_port: int) -> None:
    with pytest.raises(ConnectTimeout) as failed:
        await http.request("POST", f"http://127.0.0.1:{unanswered_port}/holds", member="m", timeout_s=0.4, json={})
    assert isinstance(failed.value, RequestNotSent) and isinstance(failed.value, TargetTimeout)
    assert (failed.value.reason, failed.value.state) == ("timeout", TargetState.TIMEOUT)


async def test_waiting_for_a_member_slot_is_not_sent(members: Members) -> None:
    members.host.set_faults("rest-ok", FaultConfig(hang=True))
    base = f"{members.host.base_url}/rest-ok/api/v1"
    async with HttpClient(member_concurrency=1) as capped:
        occupying = asyncio.ensure_future(capped.get(f"{base}/biblios", member="rest-ok", timeout_s=0.8, attempts=1))
        await asyncio.sleep(0.1)
        with pytest.raises(ConnectTimeout):  # never left the queue: safe to send later
            await capped.request("POST", f"{base}/holds", member="rest-ok", timeout_s=0.3, json={})
        with pytest.raises(ReadTimeout):
            await occupying
    assert members.posts("/rest-ok/api/v1/holds") == 0


# --- sent, answer lost ---------------------------------------------------------------------


@pytest.mark.parametrize(("member", "cause"), [("rest-drops", AnswerLost), ("rest-hangs", ReadTimeout)])
async def test_a_lost_placement_answer_is_outcome_unknown_and_found_once(members: Members, member: str, cause: type) -> None:
    connector = members.rest(member)
    request = members.request(member, "key-lost-rest1", "kita")
    with pytest.raises(OutcomeUnknown) as unknown:
        await connector.place_hold(PATRON, request)
    assert type(unknown.value.cause) is cause
    assert unknown.value.state is unknown.value.cause.state
    ledger = members.system(member).ledger
    found = await connector.find_hold(PATRON, HoldIntent(request=request))
    assert found is not None and found.record_id == request.record_id
    assert [(h.record_id, h.idempotency_key) for h in ledger.holds.values()] == [(request.record_id, request.idempotency_key)]
    assert members.posts(f"/{member}/api/v1/holds") == 1, "sent once"


@pytest.mark.parametrize(("member", "cause"), [("ncip-drops", AnswerLost), ("ncip-hangs", ReadTimeout)])
async def test_ncip_lost_placement_answer_is_outcome_unknown_and_found_once(members: Members, member: str, cause: type) -> None:
    connector = members.ncip(member)
    request = members.request(member, "key-lost-ncip1", "east")
    with pytest.raises(OutcomeUnknown) as unknown:
        await connector.place_hold(PATRON, request)
    assert type(unknown.value.cause) is cause
    found = await connector.find_hold(PATRON, HoldIntent(request=request))
    ledger = members.system(member).ledger
    assert found is not None and [h.hold_id for h in ledger.holds.values()] == [found.hold_id]
    assert members.posts(f"/{member}/ncip") == 1 + 1, "RequestItem once, then the one LookupRequest"


async def test_a_read_timeout_before_the_member_acted_is_unknown_and_then_not_found(members: Members) -> None:
    members.host.set_faults("rest-ok", FaultConfig(hang=True))  # hangs before doing anything
    request = members.request("rest-ok", "key-hang-00001", "kita")
    body = {"patron_id": 1, "biblio_id": int(request.record_id), "pickup_library_id": "KITA"}
    with pytest.raises(OutcomeUnknown) as unknown:
        await members.http.request(
            "POST", f"{members.host.base_url}/rest-ok/api/v1/holds", member="rest-ok", timeout_s=0.4, json=body,
            headers={"Idempotency-Key": request.idempotency_key},
        )
    assert isinstance(unknown.value.cause, ReadTimeout) and unknown.value.state is TargetState.TIMEOUT
    members.host.set_faults("rest-ok", FaultConfig())
    connector = members.rest("rest-ok")
    assert await connector.find_hold(PATRON, HoldIntent(request=request)) is None, "not there: safe to place"
    assert not members.system("rest-ok").ledger.holds
    placed = await connector.place(PATRON, HoldIntent(request=request))  # what the ledger then does
    assert placed.outcome == "placed" and len(members.system("rest-ok").ledger.holds) == 1


async def test_a_lost_answer_is_an_unknown_placement_result(members: Members) -> None:
    request = members.request("rest-drops", "key-typed-lost", "kita")
    result = await members.rest("rest-drops").place(PATRON, HoldIntent(request=request))
    assert result == Unknown(idempotency_key="key-typed-lost", message=result.message)
    assert len(members.system("rest-drops").ledger.holds) == 1


async def test_a_read_timeout_on_a_get_is_a_read_timeout_not_unknown(members: Members) -> None:
    members.host.set_faults("rest-ok", FaultConfig(hang=True))
    url = f"{members.host.base_url}/rest-ok/api/v1/biblios"
    with pytest.raises(ReadTimeout) as failed:
        await members.http.get(url, member="rest-ok", timeout_s=0.3)
    # What a search reports, as before the split.
    assert (failed.value.reason, failed.value.state) == ("timeout", TargetState.TIMEOUT)


# --- what an answer with an error status means for a request with effects -------------------


@pytest.mark.parametrize(("status", "unknown"), [(504, True), (502, True), (500, True), (503, False), (400, False)])
async def test_error_statuses_on_a_post(members: Members, status: int, unknown: bool) -> None:
    members.host.set_faults("rest-ok", FaultConfig(http_status=status))
    url = f"{members.host.base_url}/rest-ok/api/v1/holds"
    with pytest.raises((OutcomeUnknown, TargetHTTPError)) as failed:
        await members.http.request("POST", url, member="rest-ok", timeout_s=1, json={})
    assert isinstance(failed.value, OutcomeUnknown) is unknown
    with pytest.raises(TargetHTTPError):  # a read with the same answer is just an HTTP error
        await members.http.request("GET", url, member="rest-ok", timeout_s=1, attempts=1)


# --- retries and the client's lifecycle ------------------------------------------------------


async def test_a_lost_answer_to_a_read_is_retried_but_a_post_is_sent_once(http: HttpClient) -> None:
    seen: list[str] = []

    async def drop(request: web.Request) -> web.Response:
        seen.append(request.method)
        assert request.transport is not None
        request.transport.abort()  # the client sees the connection cut before any answer
        return web.Response()  # goes nowhere

    app = web.Application()
    app.router.add_route("*", "/x", drop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/x"
    try:
        with pytest.raises(AnswerLost):
            await http.get(url, member="m", timeout_s=3, attempts=3)
        # aiohttp may itself try a GET again on a broken connection; our retries add to that.
        assert seen.count("GET") >= 3
        for method in ("POST", "DELETE", "PUT"):  # aiohttp would re-send a DELETE or PUT by itself
            with pytest.raises(OutcomeUnknown) as unknown:
                await http.request(method, url, member="m", timeout_s=3, json={})
            assert isinstance(unknown.value.cause, AnswerLost) and isinstance(unknown.value.cause, TargetUnreachable)
            assert seen.count(method) == 1, method
        with pytest.raises(ValueError, match="must not be retried"):
            await http.request("POST", url, member="m", timeout_s=3, attempts=2)
    finally:
        await runner.cleanup()


async def test_the_client_must_be_started(members: Members) -> None:
    client = HttpClient()
    with pytest.raises(ClientNotStarted):
        await client.get(f"{members.host.base_url}/rest-ok/api/v1/biblios", member="m", timeout_s=1)
    async with client:
        await client.get(f"{members.host.base_url}/rest-ok/api/v1/patrons?cardnumber=1", member="m", timeout_s=1)
    with pytest.raises(ClientNotStarted):
        await client.get(f"{members.host.base_url}/rest-ok/api/v1/biblios", member="m", timeout_s=1)
