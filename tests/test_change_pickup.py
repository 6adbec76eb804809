"""Changing a hold's pickup branch reaches the member (issue 9 follow-up), over real sockets.

The Koha-style REST family moves it with Koha's `PUT /holds/{id}/pickup_location` (sandbox mirror);
a lost answer is reconciled by reading the hold back. A member whose protocol has no way to do it
online (NCIP here: its `UpdateRequestItem` is not implemented by this connector) and a hold the member
is already processing are refused as `not_changeable_online` with the library's name and phone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from broker.consortium import Consortium
from broker.ledger.accounts import Accounts
from broker.ledger.db import SQLiteDatabase
from broker.ledger.holds_repo import HoldLedger
from broker.ledger.placement import Placement
from broker.ledger.routes import add_hold_routes
from broker.ledger.schema import migrate
from broker.ledger.service import HoldService
from broker.ledger.vault import Vault
from connectors import HttpClient
from connectors.base import Capability
from connectors.errors import HoldRefused, NotSupported, OutcomeUnknown
from connectors.ils_rest import ILSRestConnector
from connectors.ncip import NCIPConnector
from sandbox import SandboxHost
from sandbox.ils_rest_server import ACCESS_LOG
from sandbox.member import MemberSystem
from sandbox.spec import FaultConfig
from sandbox.sru_server import MEMBERS
from tests.test_ils_rest import PATRON, OTHER_PATRON, PIN, holdable, rest_member, settings_for
from tests.test_ledger_api import consortium_of
from tests.test_ncip import CODES, ncip_member
from tests.test_ncip import settings_for as ncip_settings_for
from yokodan import HoldRequest, HoldState


@pytest.fixture
async def host() -> AsyncIterator[SandboxHost]:
    members = [rest_member("alpha"), rest_member("drops", lose_pickup_answer="drop"), rest_member("hangs", lose_pickup_answer="hang"),
               rest_member("narrow", pickup_codes="CHUO,KITA"), ncip_member("beta")]  # fmt: skip
    async with SandboxHost(members, catalogue_size=200) as running:
        yield running


def _request(system: MemberSystem, member: str, key: str, pickup: str = "kita", index: int = 0) -> HoldRequest:
    return HoldRequest(member=member, record_id=holdable(system, index), pickup_branch_id=f"{member}/{pickup}", idempotency_key=key)


# --- the connector -------------------------------------------------------------------------------


async def test_rest_moves_a_waiting_hold_and_refuses_once_it_is_processed(host: SandboxHost, http: HttpClient) -> None:
    connector = ILSRestConnector(settings_for(host, "alpha"), http)
    system = host.app[MEMBERS]["alpha"]
    assert connector.supports(Capability.CHANGE_PICKUP)
    placed = await connector.place_hold(PATRON, _request(system, "alpha", "key-move-0001"))
    moved = await connector.change_pickup(PATRON, placed.hold_id, "alpha/chuo")
    assert (moved.hold_id, moved.pickup_branch_id, moved.state) == (placed.hold_id, "alpha/chuo", HoldState.WAITING)
    assert system.ledger.holds["alpha-H00001"].pickup_code == "CHUO"
    assert (await connector.hold_status(PATRON, placed.hold_id)).pickup_branch_id == "alpha/chuo"
    assert f"PUT /alpha/api/v1/holds/{placed.hold_id}/pickup_location" in list(host.app[ACCESS_LOG])
    for state in (HoldState.SECURED, HoldState.IN_TRANSIT, HoldState.READY):
        system.ledger.advance("alpha-H00001", state)
        with pytest.raises(HoldRefused) as refused:
            await connector.change_pickup(PATRON, placed.hold_id, "alpha/kita")
        assert refused.value.reason == "not_changeable", state
    assert system.ledger.holds["alpha-H00001"].pickup_code == "CHUO"


async def test_rest_refuses_a_branch_that_is_no_pickup_point_and_anothers_hold(host: SandboxHost, http: HttpClient) -> None:
    connector = ILSRestConnector(settings_for(host, "narrow"), http)
    system = host.app[MEMBERS]["narrow"]
    placed = await connector.place_hold(PATRON, _request(system, "narrow", "key-move-0002"))
    # The member's own verdict: stock Koha answers 400 with an error text and no code.
    with pytest.raises(HoldRefused) as refused:
        await connector.change_pickup(PATRON, placed.hold_id, "narrow/minami")
    assert refused.value.reason == "invalid_pickup"
    with pytest.raises(HoldRefused) as refused:
        await connector.change_pickup(OTHER_PATRON, placed.hold_id, "narrow/chuo")
    assert refused.value.reason == "hold_not_found"
    with pytest.raises(HoldRefused) as refused:
        await connector.change_pickup(PATRON, placed.hold_id, "somewhere/else")  # no code at this member: never sent
    assert refused.value.reason == "invalid_pickup"
    assert [h.pickup_code for h in system.ledger.holds.values()] == ["KITA"]


@pytest.mark.parametrize("member", ["drops", "hangs"])
async def test_rest_a_lost_answer_is_unknown_and_the_hold_says_where_it_is(host: SandboxHost, http: HttpClient, member: str) -> None:
    connector = ILSRestConnector(settings_for(host, member, timeout_s=1.0), http)
    system = host.app[MEMBERS][member]
    placed = await connector.place_hold(PATRON, _request(system, member, f"key-lost-{member}"))
    with pytest.raises(OutcomeUnknown):
        await connector.change_pickup(PATRON, placed.hold_id, f"{member}/chuo")
    assert (await connector.hold_status(PATRON, placed.hold_id)).pickup_branch_id == f"{member}/chuo"


async def test_ncip_without_update_request_item_cannot_change_a_pickup(host: SandboxHost, http: HttpClient) -> None:
    connector = NCIPConnector(ncip_settings_for(host.base_url, "beta"), http)  # the option's default: not offered
    assert not connector.supports(Capability.CHANGE_PICKUP)
    with pytest.raises(NotSupported):
        await connector.change_pickup(PATRON, "1", "beta/east")


async def test_ncip_update_request_item_moves_a_queued_hold_and_refuses_once_it_is_processed(
    host: SandboxHost, http: HttpClient
) -> None:
    connector = NCIPConnector(ncip_settings_for(host.base_url, "beta", update_request_item=True), http)
    system = host.app[MEMBERS]["beta"]
    assert connector.supports(Capability.CHANGE_PICKUP)
    placed = await connector.place_hold(PATRON, _request(system, "beta", "key-ncip-move-1", pickup="east"))
    [member_hold] = system.ledger.holds.values()
    assert member_hold.pickup_code == "EAST"
    moved = await connector.change_pickup(PATRON, placed.hold_id, "beta/main")
    assert (moved.hold_id, moved.pickup_branch_id) == (placed.hold_id, "beta/main")
    assert member_hold.pickup_code == "MAIN"
    assert (await connector.hold_status(PATRON, placed.hold_id)).pickup_branch_id == "beta/main"  # the member's own word
    with pytest.raises(HoldRefused) as refused:  # a branch the member does not take pickups at: its own Problem
        await connector.change_pickup(PATRON, placed.hold_id, "beta/west")
    assert refused.value.reason == "invalid_pickup"
    with pytest.raises(HoldRefused) as refused:
        await connector.change_pickup(OTHER_PATRON, placed.hold_id, "beta/east")
    assert refused.value.reason == "hold_not_found"
    system.ledger.advance(member_hold.hold_id, HoldState.SECURED)
    with pytest.raises(HoldRefused) as refused:
        await connector.change_pickup(PATRON, placed.hold_id, "beta/east")
    assert refused.value.reason == "not_changeable"
    assert member_hold.pickup_code == "MAIN"


# --- the API -------------------------------------------------------------------------------------


def _consortium() -> Consortium:
    data = consortium_of(["alpha", "drops", "hangs"]).model_dump(mode="json", exclude_unset=True)
    data["members"].append({
        "id": "beta", "name": "ベータ市立図書館", "municipality": "beta", "phone": "086-111-1111",
        "connector": {"kind": "ncip", "endpoint": "http://127.0.0.1:1/beta/ncip"},
        "branches": [{"id": f"beta/{code.lower()}", "name": name, "municipality": "beta", "coordinates_note": "test",
                      "codes": [code], "pickup_point": code != "WEST", "accepts_returns": True} for code, name in CODES.items()],
    })  # fmt: skip
    return Consortium.model_validate(data)


@dataclass
class Api:
    url: str
    session: aiohttp.ClientSession
    host: SandboxHost

    def system(self, member: str) -> MemberSystem:
        return self.host.app[MEMBERS][member]

    async def patron(self, member: str) -> dict[str, str]:
        async with self.session.post(f"{self.url}/api/v1/auth/login", json={"member": member, "card_number": "10000001", "pin": PIN}) as r:
            assert r.status == 200, await r.text()
            return {"Authorization": f"Bearer {(await r.json())['token']}"}

    async def place(self, auth: dict[str, str], member: str, pickup: str) -> dict[str, object]:
        body = {"member": member, "record_id": holdable(self.system(member)), "pickup_branch_id": pickup}
        async with self.session.post(f"{self.url}/api/v1/holds", json=body, headers=auth) as r:
            assert r.status == 201, await r.text()
            return await r.json()

    async def move(self, auth: dict[str, str], hold_id: object, branch: str) -> tuple[int, dict[str, object]]:
        async with self.session.patch(f"{self.url}/api/v1/holds/{hold_id}?lang=en", json={"pickup_branch_id": branch}, headers=auth) as r:
            return r.status, await r.json()


@pytest.fixture
async def api(host: SandboxHost, http: HttpClient, tmp_path: Path) -> AsyncIterator[Api]:
    gateways = {m: ILSRestConnector(settings_for(host, m, timeout_s=1.0), http) for m in ("alpha", "drops", "hangs")}
    gateways["beta"] = NCIPConnector(ncip_settings_for(host.base_url, "beta"), http)  # type: ignore[assignment]
    db = await SQLiteDatabase.open(tmp_path / "ledger.db")
    await migrate(db)
    accounts, ledger = Accounts(db, Vault(Fernet.generate_key())), HoldLedger(db)
    service = HoldService(_consortium(), ledger, accounts, Placement(ledger, accounts, gateways.__getitem__, node="n"), gateways.__getitem__, node="n")
    app = web.Application()
    add_hold_routes(app, service)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{port}", session, host)
    await runner.cleanup()
    await db.close()


async def test_patch_moves_the_pickup_at_the_member_and_in_the_ledger(api: Api) -> None:
    auth = await api.patron("alpha")
    hold = await api.place(auth, "alpha", "alpha/kita")
    status, moved = await api.move(auth, hold["id"], "alpha/chuo")
    assert status == 200, moved
    assert (moved["pickup_branch_id"], moved["pickup_branch_name"], moved["state"]) == ("alpha/chuo", "alpha市立中央図書館", "waiting")
    assert [h.pickup_code for h in api.system("alpha").ledger.holds.values()] == ["CHUO"]
    listed = await (await api.session.get(f"{api.url}/api/v1/holds", headers=auth)).json()
    assert [h["pickup_branch_id"] for h in listed["holds"]] == ["alpha/chuo"]
    # The same branch again asks the member nothing.
    puts = sum(line.startswith("PUT ") for line in api.host.app[ACCESS_LOG])
    assert (await api.move(auth, hold["id"], "alpha/chuo"))[0] == 200
    assert sum(line.startswith("PUT ") for line in api.host.app[ACCESS_LOG]) == puts == 1


async def test_patch_once_the_member_processes_it_is_refused_with_the_phone(api: Api) -> None:
    auth = await api.patron("alpha")
    hold = await api.place(auth, "alpha", "alpha/kita")
    [member_hold] = api.system("alpha").ledger.holds.values()
    api.system("alpha").ledger.advance(member_hold.hold_id, HoldState.SECURED)
    status, problem = await api.move(auth, hold["id"], "alpha/chuo")  # the ledger still thinks it waits: the member says no
    assert (status, problem["reason"], problem["library"], problem["phone"]) == (422, "not_changeable_online", "alpha市立図書館", "086-000-0000")
    assert member_hold.pickup_code == "KITA"


async def test_patch_at_a_member_without_online_changes_is_refused_without_contact(api: Api) -> None:
    auth = await api.patron("beta")
    hold = await api.place(auth, "beta", "beta/east")
    before = len(api.system("beta").ledger.holds)
    status, problem = await api.move(auth, hold["id"], "beta/main")
    assert (status, problem["reason"], problem["library"], problem["phone"]) == (422, "not_changeable_online", "ベータ市立図書館", "086-111-1111")
    assert [h.pickup_code for h in api.system("beta").ledger.holds.values()] == ["EAST"] and before == 1


@pytest.mark.parametrize("member", ["drops", "hangs"])
async def test_patch_after_a_lost_answer_reads_the_hold_back(api: Api, member: str) -> None:
    auth = await api.patron(member)
    hold = await api.place(auth, member, f"{member}/kita")
    status, moved = await api.move(auth, hold["id"], f"{member}/chuo")
    # The member moved it and the answer was lost: reading the hold back shows the change landed.
    assert (status, moved["pickup_branch_id"]) == (200, f"{member}/chuo"), moved
    shown = await (await api.session.get(f"{api.url}/api/v1/holds/{hold['id']}", headers=auth)).json()
    assert shown["pickup_branch_id"] == f"{member}/chuo"


async def test_patch_bad_branches_are_named(api: Api) -> None:
    auth = await api.patron("beta")
    hold = await api.place(auth, "beta", "beta/east")
    assert (await api.move(auth, hold["id"], "beta/west"))[1]["reason"] == "pickup_not_allowed"  # not a pickup point
    assert (await api.move(auth, hold["id"], "nowhere/at-all"))[1]["reason"] == "pickup_not_allowed"


async def test_patch_when_the_member_cannot_confirm_changes_nothing_in_the_ledger(api: Api) -> None:
    auth = await api.patron("alpha")
    hold = await api.place(auth, "alpha", "alpha/kita")
    api.host.set_faults("alpha", FaultConfig(delay_ms=1500))  # longer than the member's 1 s deadline, read-back included
    try:
        status, problem = await api.move(auth, hold["id"], "alpha/chuo")
    finally:
        api.host.set_faults("alpha", FaultConfig())
    assert (status, problem["reason"]) == (503, "member_unreachable"), problem
    shown = await (await api.session.get(f"{api.url}/api/v1/holds/{hold['id']}", headers=auth)).json()
    assert shown["pickup_branch_id"] == "alpha/kita"  # not claimed: the poller's next look records where it is
