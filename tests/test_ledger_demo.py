"""The demo's hold path end to end: the broker app with its ledger, the Okayama sandbox, a test patron.

Log in with a sandbox test patron's 岡山市 card (its holds face is NCIP beside an SRU catalogue),
place a hold through `POST /api/v1/holds`, see it at the member's own ledger, list and cancel it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet

from broker.api import build_app
from broker.http_server import bound_port, start_server
from broker.ledger.runtime import LedgerConfig
from sandbox.patrons import patron_named
from sandbox.sru_server import MEMBERS
from tests.conftest import SandboxedConsortium
from yokodan import Availability, HoldState

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def broker(okayama_sandbox: SandboxedConsortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setenv("YOKODAN_LEDGER_KEY", Fernet.generate_key().decode())
    config = LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}", node="demo-test")
    runner = await start_server(build_app(okayama_sandbox.consortium, ledger=config), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


async def test_a_test_patron_places_lists_and_cancels_a_hold(broker: str, okayama_sandbox: SandboxedConsortium) -> None:
    card = patron_named("okayama", "okayama-reader").card("okayama-city")
    system = okayama_sandbox.host.app[MEMBERS]["okayama-city"]
    record = next(h.local_id for h in system.held if any(c.availability is Availability.AVAILABLE for c in h.copies)
                  and h.local_id not in system.ledger.patrons[card.card_number].loans)  # fmt: skip
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{broker}/api/v1/auth/login", json={"member": "okayama-city", "card_number": card.card_number, "pin": card.pin}) as r:
            assert r.status == 200, await r.text()
            auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
        body = {"member": "okayama-city", "record_id": record, "pickup_branch_id": "okayama-city/chuo"}
        async with session.post(f"{broker}/api/v1/holds", json=body, headers=auth | {"Idempotency-Key": "demo-0001-key"}) as r:
            assert r.status == 201, await r.text()
            hold = await r.json()
        assert (hold["outcome"], hold["member"]) == ("placed", "okayama-city")
        at_member = [h for h in system.ledger.holds.values() if h.idempotency_key == hold["id"]]
        assert [(h.record_id, h.state) for h in at_member] == [(record, HoldState.WAITING)]
        async with session.get(f"{broker}/api/v1/holds", headers=auth) as r:
            assert [h["id"] for h in (await r.json())["holds"]] == [hold["id"]]
        async with session.delete(f"{broker}/api/v1/holds/{hold['id']}", headers=auth) as r:
            assert r.status == 200 and (await r.json())["state"] == "cancelled"
        assert at_member[0].state is HoldState.CANCELLED


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.cli", "holds", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_holds_cli_logs_in_places_lists_and_cancels(broker: str, okayama_sandbox: SandboxedConsortium) -> None:
    card = patron_named("okayama", "okayama-reader").card("okayama-city")
    system = okayama_sandbox.host.app[MEMBERS]["okayama-city"]
    record = next(h.local_id for h in system.held if any(c.availability is Availability.AVAILABLE for c in h.copies)
                  and h.local_id not in system.ledger.patrons[card.card_number].loans)  # fmt: skip
    env = os.environ | {"YOKODAN_BROKER": broker, "YOKODAN_PIN": card.pin}
    code, token, err = await _cli("login", "--card", f"okayama-city:{card.card_number}", env=env)
    assert code == 0, err
    env |= {"YOKODAN_TOKEN": token.strip()}
    assert card.card_number not in token and card.pin not in token
    code, out, err = await _cli(
        "place", "--member", "okayama-city", "--record", record, "--pickup", "okayama-city/chuo", "--title", "こころ", "--author", "夏目漱石",
        env=env,
    )  # fmt: skip
    assert code == 0 and "予約中" in out, (out, err)
    hold_id = out.split()[0]
    code, out, _ = await _cli("list", env=env)
    assert out.splitlines() == [f"{hold_id}  こころ / 夏目漱石", "    所蔵 岡山市立図書館 · 受取館 岡山市立中央図書館  予約中（確保待ち） · 順番 1"]
    code, out, _ = await _cli("list", "--lang", "en", env=env)
    assert out.splitlines()[1] == "    owner 岡山市立図書館 · pickup 岡山市立中央図書館  waiting · position 1"
    code, out, _ = await _cli("show", hold_id, env=env)
    assert "→ waiting" in out
    # 岡山市's holds face (NCIP) moves a waiting hold with UpdateRequestItem.
    code, out, err = await _cli("pickup", hold_id, "okayama-city/saiwai", env=env)
    assert code == 0 and "受取館 岡山市立幸町図書館" in out, (out, err)
    [at_member] = [h for h in system.ledger.holds.values() if h.idempotency_key == hold_id]
    assert at_member.pickup_code == next(b.code for b in okayama_sandbox.host.app[MEMBERS]["okayama-city"].spec.branches if b.id == "okayama-city/saiwai")
    code, _, err = await _cli("pickup", hold_id, "nowhere/at-all", env=env)
    assert code == 2 and "no branch 'nowhere/at-all'" in err, err
    code, out, _ = await _cli("cancel", hold_id, env=env)
    assert code == 0 and "取り消し済み" in out
    code, _, err = await _cli("show", "0" * 32, env=env)
    assert code == 2 and "no such hold" in err
