"""One Okayama hold and one Aomori hold followed from placement to collection, on the sandbox's clock.

The planner promises a ready day and a pickup-by day; the hold is placed with that promise; the
member's own system (the sandbox, its `today` set by the test) moves the hold through the seeds'
lifecycle on the promised days; the ledger's poller follows it, records each transition with the
member's word, keeps the member's pickup-by date, and leaves a ready notice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from broker.api import build_app
from broker.consortium import load_consortium
from broker.demo import consortium_file, start_sandbox
from broker.http_server import bound_port, start_server
from broker.ledger.poller import PollSchedule
from broker.ledger.routes import LEDGER_KEY
from broker.ledger.runtime import LedgerConfig
from sandbox.patrons import patron_named
from sandbox.sru_server import MEMBERS
from yokodan import Availability, HoldState

TODAY = date(2026, 12, 1)  # a Tuesday


@dataclass
class Broker:
    url: str
    app: web.Application
    host: object


@pytest.fixture
async def broker(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Broker]:
    monkeypatch.setenv("YOKODAN_LEDGER_KEY", Fernet.generate_key().decode())
    host, consortium = await start_sandbox(load_consortium(consortium_file(request.param)), latency_ms=2)
    for system in host.app[MEMBERS].values():
        system.ledger.today = TODAY
    config = LedgerConfig(
        url=f"sqlite:///{tmp_path / 'ledger.db'}", node="lifecycle", poll_every_s=3600, reconcile_every_s=3600,
        schedule=PollSchedule(waiting_s=0, secured_s=0, ready_s=0),
    )  # fmt: skip
    config = replace(config, timings=replace(config.timings, poll_s=0))
    runner = await start_server(build_app(consortium, ledger=config), "127.0.0.1", 0)
    try:
        yield Broker(f"http://127.0.0.1:{bound_port(runner)}", runner.app, host)
    finally:
        await runner.cleanup()
        await host.stop()


CASES = [
    # consortium, patron, the card's member (owner of the copy), where the patron collects
    ("okayama", "okayama-reader", "okayama-pref", None),
    ("aomori", "aomori-reader", "aomori-pref", None),
]


@pytest.mark.parametrize(("broker", "patron_id", "owner", "pickup"), [(c[0], *c[1:]) for c in CASES], indirect=["broker"], ids=[c[0] for c in CASES])
async def test_a_hold_from_plan_to_collection_on_the_promised_days(broker: Broker, patron_id: str, owner: str, pickup: str | None) -> None:
    consortium_id = patron_id.split("-")[0]
    card = patron_named(consortium_id, patron_id).card(owner)
    owner_system = broker.host.app[MEMBERS][owner]  # type: ignore[attr-defined]
    isbn = next(h.work.isbn13 for h in owner_system.held if h.work.isbn13 and h.local_id not in owner_system.ledger.patrons[card.card_number].loans
                and any(c.availability is Availability.AVAILABLE for c in h.copies))  # an on-shelf copy  # fmt: skip
    async with aiohttp.ClientSession() as session:
        plan_body = {"isbn": isbn, "today": TODAY.isoformat(), "patron": {"cards": [{"member": owner, "card_number": card.card_number, "pin": card.pin}]}}
        async with session.post(f"{broker.url}/api/v1/holds/plan", json=plan_body) as r:
            assert r.status == 200, await r.text()
            plan = (await r.json())["plan"]
        choice = plan["choice"]
        assert choice is not None, (plan["refusals"], [(a["availability"], a["lost_because"], a["assumptions"], a["ready"]) for a in plan["alternatives"]][:8])
        ready, deadline = date.fromisoformat(choice["ready"]), date.fromisoformat(choice["deadline"])
        assert TODAY < ready <= deadline
        async with session.post(f"{broker.url}/api/v1/auth/login", json={"member": owner, "card_number": card.card_number, "pin": card.pin}) as r:
            auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
        body = {"member": choice["member"], "record_id": choice["record_id"], "pickup_branch_id": choice["pickup_branch"],
                "promised_ready": choice["ready"], "promised_until": choice["deadline"]}  # fmt: skip
        async with session.post(f"{broker.url}/api/v1/holds", json=body, headers=auth | {"Idempotency-Key": f"life-{patron_id}"}) as r:
            assert r.status == 201, await r.text()
            hold = await r.json()
        assert (hold["promised_ready"], hold["promised_until"]) == (choice["ready"], choice["deadline"])

        system = broker.host.app[MEMBERS][choice["member"]]  # type: ignore[attr-defined]
        [member_hold] = [h for h in system.ledger.holds.values() if h.idempotency_key == hold["id"]]
        poller = broker.app[LEDGER_KEY].poller
        steps = [(HoldState.SECURED, TODAY), (HoldState.IN_TRANSIT, TODAY), (HoldState.READY, ready), (HoldState.COLLECTED, ready)]
        for state, day in steps:
            system.ledger.today = day  # the member's clock
            system.ledger.advance(member_hold.hold_id, state, ready_until=deadline if state is HoldState.READY else None)
            await poller.run_once()
        async with session.get(f"{broker.url}/api/v1/holds/{hold['id']}", headers=auth) as r:
            shown = await r.json()
    assert [t["to"] for t in shown["transitions"]] == ["waiting", "secured", "in_transit", "ready", "collected"]
    assert all(t["member_word"] for t in shown["transitions"][1:]), shown["transitions"]  # the member's own word, kept
    assert shown["state"] == "collected" and shown["ready_until"] == choice["deadline"]
    notices = await broker.app[LEDGER_KEY].poller.notices.for_account(await _account(broker, auth))
    assert [(n.kind, n.ready_until) for n in notices] == [("ready", choice["deadline"])]


async def _account(broker: Broker, auth: dict[str, str]) -> str:
    token = auth["Authorization"].split()[1]
    account = await broker.app[LEDGER_KEY].service.accounts.account_for_token(token)
    assert account is not None
    return account
