"""The hold endpoints over real sockets: log-in, place with Idempotency-Key, list, show, cancel.

Two patrons try each other's hold ids on every endpoint: each gets 404, as for an id that does
not exist, so an id leaks nothing. Members are sandbox REST systems; the ledger is SQLite.
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
from connectors.ils_rest import ILSRestConnector
from sandbox import SandboxHost
from sandbox.member import MemberSystem
from sandbox.sru_server import MEMBERS
from tests.test_ils_rest import BRANCHES, PIN, holdable, rest_member, settings_for
from yokodan import HoldState


def consortium_of(member_ids: list[str]) -> Consortium:
    return Consortium.model_validate(
        {
            "id": "test", "name": "テスト図書館ネットワーク", "kind": "mutual_use",
            "members": [
                {
                    "id": m, "name": f"{m}市立図書館", "municipality": m, "phone": "086-000-0000",
                    "connector": {"kind": "ils_rest", "endpoint": f"http://127.0.0.1:1/{m}/api/v1"},
                    "branches": [
                        {"id": b.id.replace("alpha", m), "name": b.name.replace("アルファ", m), "municipality": m,
                         "coordinates_note": "test", "codes": [b.code], "pickup_point": True, "accepts_returns": True}
                        for b in BRANCHES
                    ],
                }
                for m in member_ids
            ],
        }
    )  # fmt: skip


@dataclass
class Api:
    url: str
    session: aiohttp.ClientSession
    system: MemberSystem

    async def login(self, card: str, pin: str = PIN, token: str | None = None) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.session.post(f"{self.url}/api/v1/auth/login", json={"member": "alpha", "card_number": card, "pin": pin}, headers=headers)

    async def token(self, card: str) -> str:
        response = await self.login(card)
        assert response.status == 200, await response.text()
        return (await response.json())["token"]

    def place_body(self, index: int = 0) -> dict[str, str]:
        return {"member": "alpha", "record_id": holdable(self.system, index), "pickup_branch_id": "alpha/kita"}


@pytest.fixture
async def api(tmp_path: Path, http: HttpClient) -> AsyncIterator[Api]:
    async with SandboxHost([rest_member("alpha")], catalogue_size=200) as host:
        connector = ILSRestConnector(settings_for(host, "alpha", timeout_s=2.0), http)
        db = await SQLiteDatabase.open(tmp_path / "ledger.db")
        await migrate(db)
        accounts, ledger = Accounts(db, Vault(Fernet.generate_key())), HoldLedger(db)
        gateway = {"alpha": connector}.__getitem__
        service = HoldService(consortium_of(["alpha"]), ledger, accounts, Placement(ledger, accounts, gateway, node="n"), gateway, node="n")
        app = web.Application()
        add_hold_routes(app, service)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            yield Api(f"http://127.0.0.1:{port}", session, host.app[MEMBERS]["alpha"])
        await runner.cleanup()
        await db.close()


async def test_login_refuses_a_wrong_pin_and_answers_a_token(api: Api) -> None:
    bad = await api.login("10000001", pin="0000")
    assert bad.status == 401 and (await bad.json())["reason"] == "authentication_failed"
    assert (await api.session.get(f"{api.url}/api/v1/holds")).status == 401
    token = await api.token("10000001")
    listed = await api.session.get(f"{api.url}/api/v1/holds", headers={"Authorization": f"Bearer {token}"})
    assert listed.status == 200 and (await listed.json()) == {"holds": []}


async def test_place_replay_and_key_reuse(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token('10000001')}"}
    headers = auth | {"Idempotency-Key": "portal-key-0001"}
    first = await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body(), headers=headers)
    assert first.status == 201, await first.text()
    placed = await first.json()
    assert placed["outcome"] == "placed" and placed["state"] == "waiting"
    again = await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body(), headers=headers)
    assert again.status == 200 and (await again.json())["id"] == placed["id"]
    other_body = await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body(1), headers=headers)
    assert other_body.status == 422
    assert len(api.system.ledger.holds) == 1  # the member got one hold
    shown = await (await api.session.get(f"{api.url}/api/v1/holds/{placed['id']}", headers=auth)).json()
    assert [t["to"] for t in shown["transitions"]] == ["waiting"]


async def test_cancel_while_waiting_then_not_once_secured(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token('10000001')}"}
    first = await (await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body(0), headers=auth)).json()
    cancelled = await api.session.delete(f"{api.url}/api/v1/holds/{first['id']}", headers=auth)
    assert cancelled.status == 200 and (await cancelled.json())["state"] == "cancelled"
    second = await (await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body(1), headers=auth)).json()
    member_hold = next(h for h in api.system.ledger.holds.values() if h.idempotency_key == second["id"])
    api.system.ledger.advance(member_hold.hold_id, HoldState.SECURED)
    # The ledger learns of the new state from the member when it tries (here: the member refuses).
    refused = await api.session.delete(f"{api.url}/api/v1/holds/{second['id']}", headers=auth)
    problem = await refused.json()
    assert refused.status == 422 and problem["reason"] == "not_cancellable_online"
    assert problem["phone"] == "086-000-0000" and problem["library"] == "alpha市立図書館"


async def test_another_patrons_hold_is_not_found_on_every_endpoint(api: Api) -> None:
    mine = {"Authorization": f"Bearer {await api.token('10000001')}"}
    theirs = {"Authorization": f"Bearer {await api.token('10000002')}"}
    placed = await (await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body(), headers=mine)).json()
    url = f"{api.url}/api/v1/holds/{placed['id']}"
    missing = f"{api.url}/api/v1/holds/{'0' * 32}"
    for target in (url, missing):
        assert (await api.session.get(target, headers=theirs)).status == 404
        assert (await api.session.delete(target, headers=theirs)).status == 404
        assert (await api.session.patch(target, json={"pickup_branch_id": "alpha/chuo"}, headers=theirs)).status == 404
    listed = await (await api.session.get(f"{api.url}/api/v1/holds", headers=theirs)).json()
    assert listed == {"holds": []}
    assert (await (await api.session.get(url, headers=mine)).json())["state"] == "waiting"  # untouched


async def test_logout_revokes_the_token(api: Api) -> None:
    token = await api.token("10000001")
    auth = {"Authorization": f"Bearer {token}"}
    assert (await api.session.post(f"{api.url}/api/v1/auth/logout", headers=auth)).status == 204
    assert (await api.session.get(f"{api.url}/api/v1/holds", headers=auth)).status == 401


async def test_invalid_bodies_get_problem_details(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token('10000001')}"}
    response = await api.session.post(f"{api.url}/api/v1/holds", json={"member": "alpha", "extra": 1}, headers=auth)
    body = await response.json()
    assert response.status == 400 and response.content_type == "application/problem+json"
    assert {e["parameter"] for e in body["errors"]} >= {"record_id", "pickup_branch_id", "extra"}
