"""The hold ledger on SQLite and PostgreSQL: intents before calls, outcomes after, exactly once.

Members are the sandbox's Koha-style REST systems on real sockets; what a member holds is read
from the member's own ledger (`MemberSystem.ledger`), never from ours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from broker.ledger.accounts import Accounts
from broker.ledger.db import Database, SQLiteDatabase
from broker.ledger.holds_repo import HoldLedger, IdempotencyKeyReused, NewHold
from broker.ledger.placement import Placement, PlacementTimings, fingerprint
from broker.ledger.records import Outcome
from broker.ledger.schema import MIGRATIONS, migrate
from broker.ledger.vault import Vault
from connectors import HttpClient
from connectors.ils_rest import ILSRestConnector
from sandbox import SandboxHost
from sandbox.member import MemberSystem
from sandbox.sru_server import MEMBERS
from tests.ledger_databases import ledger_db  # noqa: F401  (fixture)
from tests.test_ils_rest import PIN, holdable, rest_member, settings_for
from yokodan import HoldState, RefusalReason

CARD = "10000001"


@dataclass
class World:
    host: SandboxHost
    http: HttpClient
    db: Database
    accounts: Accounts
    ledger: HoldLedger
    connectors: dict[str, ILSRestConnector]

    def system(self, member: str) -> MemberSystem:
        return self.host.app[MEMBERS][member]

    def placement(self, node: str = "node-a", **timings: float) -> Placement:
        return Placement(
            self.ledger, self.accounts, self.connectors.__getitem__, node=node, timings=PlacementTimings(**timings)
        )

    def member_holds(self, member: str, key: str) -> list[str]:
        return [h.hold_id for h in self.system(member).ledger.holds.values() if h.idempotency_key == key]

    async def new_hold(self, member: str, client_key: str, *, record_index: int = 0, pickup: str | None = None) -> NewHold:
        card = await self.accounts.add_card(member, CARD, pin=PIN, keep_pin=False)
        body = {"member": member, "record": holdable(self.system(member), record_index), "pickup": pickup or f"{member}/kita"}
        return NewHold(
            account_id=card.account_id, card_id=card.id, client_key=client_key, fingerprint=fingerprint(body),
            member=member, record_id=str(body["record"]), item_id=None, pickup_branch_id=str(body["pickup"]),
        )  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def world(ledger_db: Database, http: HttpClient) -> AsyncIterator[World]:  # noqa: F811
    members = [rest_member("alpha"), rest_member("drops", lose_hold_answer="drop"), rest_member("hangs", lose_hold_answer="hang")]
    async with SandboxHost(members, catalogue_size=200) as host:
        connectors = {m.id: ILSRestConnector(settings_for(host, m.id, timeout_s=1.0), http) for m in members}
        dead = settings_for(host, "alpha").model_copy(update={"member": "dead", "endpoint": f"http://127.0.0.1:{_closed_port()}/api/v1"})
        connectors["dead"] = ILSRestConnector(dead, http)
        vault = Vault(Fernet.generate_key())
        yield World(host, http, ledger_db, Accounts(ledger_db, vault), HoldLedger(ledger_db), connectors)


async def test_migrations_apply_once(ledger_db: Database) -> None:  # noqa: F811
    assert await migrate(ledger_db) == []  # the fixture already applied every step
    async with ledger_db.transaction() as tx:
        rows = await tx.fetchall("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == [version for version, _, _ in MIGRATIONS]


async def test_a_placed_hold_is_recorded_with_the_members_id(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0001")
    row = await world.placement().place(new)
    assert row.outcome is Outcome.PLACED and row.state is HoldState.WAITING
    assert world.member_holds("alpha", row.member_key) == ["alpha-H00001"]
    assert [t.to_state for t in await world.ledger.transitions(row.id)] == [HoldState.WAITING]


async def test_the_same_key_answers_the_stored_hold_and_sends_nothing(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0002")
    first = await world.placement().place(new)
    posts_before = len(world.system("alpha").ledger.holds)
    again = await world.placement("node-b").place(new)
    assert again.id == first.id and again.outcome is Outcome.PLACED
    assert len(world.system("alpha").ledger.holds) == posts_before


async def test_the_same_key_with_another_body_is_refused(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0003")
    await world.placement().place(new)
    other = await world.new_hold("alpha", "client-key-0003", record_index=1)
    with pytest.raises(IdempotencyKeyReused):
        await world.placement().place(other)


async def test_a_dropped_answer_is_found_not_sent_again(world: World) -> None:
    new = await world.new_hold("drops", "client-key-0004")
    row = await world.placement().place(new)
    assert row.outcome is Outcome.PLACED, row
    assert len(world.member_holds("drops", row.member_key)) == 1


async def test_a_hung_answer_is_unknown_then_found(world: World) -> None:
    new = await world.new_hold("hangs", "client-key-0005")
    row = await world.placement().place(new)  # read timeout after 1 s, then one look-up
    assert row.outcome is Outcome.PLACED
    assert len(world.member_holds("hangs", row.member_key)) == 1


async def test_a_refused_connection_is_not_sent_and_says_so(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0006")
    new = dataclasses.replace(new, member="dead")
    row = await world.placement().place(new)
    assert row.outcome is Outcome.REFUSED and row.refusal_reason == RefusalReason.MEMBER_UNREACHABLE


async def test_a_member_refusal_keeps_its_reason(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0007", pickup="alpha/minami")  # not a pickup point
    row = await world.placement().place(new)
    assert row.outcome is Outcome.REFUSED and row.refusal_reason == "invalid_pickup"
    assert world.system("alpha").ledger.holds == {}


async def test_an_intent_left_by_a_crash_is_looked_up_before_it_is_sent(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0008")
    crashed, _ = await world.ledger.begin(new, node="crashed", lease_s=0.01, now=time.time())
    # The crashed node had sent it: the member has the hold under our key.
    connector = world.connectors["alpha"]
    card = (await world.accounts.cards(new.account_id))[0]
    from yokodan import HoldRequest, PatronCredentials

    await connector.place_hold(
        PatronCredentials(card_number=card.card_number, pin=PIN),
        HoldRequest(member="alpha", record_id=new.record_id, pickup_branch_id=new.pickup_branch_id, idempotency_key=crashed.member_key),
    )
    await asyncio.sleep(0.02)  # the crashed node's lease runs out
    assert await world.placement("restarted").reconcile_due() == 1
    row = await world.ledger.by_id(crashed.id)
    assert row is not None and row.outcome is Outcome.PLACED
    assert len(world.member_holds("alpha", crashed.member_key)) == 1


async def test_an_old_intent_the_member_never_got_is_sent_once(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0009")
    crashed, _ = await world.ledger.begin(new, node="crashed", lease_s=0.01, now=time.time())
    await asyncio.sleep(0.02)
    placement = world.placement("restarted", resend_after_s=0.0)
    assert await placement.reconcile_due() == 1
    assert await placement.reconcile_due() == 0  # settled: nothing left to look at
    assert len(world.member_holds("alpha", crashed.member_key)) == 1


async def test_two_nodes_placing_one_key_at_once_send_it_once(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0010")
    rows = await asyncio.gather(world.placement("node-a").place(new), world.placement("node-b").place(new))
    assert len({r.id for r in rows}) == 1
    assert len(world.member_holds("alpha", rows[0].member_key)) == 1


async def test_a_transition_from_a_stale_row_lands_once(world: World) -> None:
    new = await world.new_hold("alpha", "client-key-0011")
    row = await world.placement().place(new)
    async with world.db.transaction() as tx:
        await tx.execute("UPDATE holds SET next_check_at = 0 WHERE id = ?", (row.id,))
    claimed = await world.ledger.claim_due(node="poller-a", lease_s=30, now=time.time())
    assert [c.id for c in claimed] == [row.id]
    assert await world.ledger.claim_due(node="poller-b", lease_s=30, now=time.time()) == []  # leased to a
    stale = claimed[0]
    member = world.connectors["alpha"]
    card = (await world.accounts.cards(new.account_id))[0]
    from yokodan import PatronCredentials

    [sandbox_id] = world.member_holds("alpha", row.member_key)
    world.system("alpha").ledger.advance(sandbox_id, HoldState.SECURED)
    seen = await member.hold_status(PatronCredentials(card_number=card.card_number, pin=PIN), row.member_hold_id)
    assert await world.ledger.advance(stale, seen, node="poller-a", next_check_at=time.time() + 60)
    assert not await world.ledger.advance(stale, seen, node="poller-a", next_check_at=time.time() + 60)
    states = [t.to_state for t in await world.ledger.transitions(row.id)]
    assert states == [HoldState.WAITING, HoldState.SECURED]


async def test_a_patron_sees_only_their_own_holds(world: World) -> None:
    mine = await world.placement().place(await world.new_hold("alpha", "client-key-0012"))
    other_card = await world.accounts.add_card("alpha", "10000002", pin=PIN, keep_pin=False)
    assert await world.ledger.get(other_card.account_id, mine.id) is None
    assert await world.ledger.list_for(other_card.account_id) == []
    assert [r.id for r in await world.ledger.list_for(mine.account_id)] == [mine.id]


async def test_finished_holds_are_purged(world: World) -> None:
    refused = await world.placement().place(await world.new_hold("alpha", "client-key-0013", pickup="alpha/minami"))
    kept = await world.placement().place(await world.new_hold("alpha", "client-key-0014"))
    assert await world.ledger.purge_finished("9999-12-31") == 1
    assert await world.ledger.by_id(refused.id) is None and await world.ledger.by_id(kept.id) is not None


async def test_tokens_are_hashed_expire_and_revoke(ledger_db: Database) -> None:  # noqa: F811
    accounts = Accounts(ledger_db, Vault(Fernet.generate_key()))
    card = await accounts.add_card("alpha", CARD, pin=None, keep_pin=False)
    token = await accounts.issue_token(card.account_id)
    assert await accounts.account_for_token(token) == card.account_id
    async with ledger_db.transaction() as tx:
        stored = [r["token_hash"] for r in await tx.fetchall("SELECT token_hash FROM tokens")]
    assert token not in stored and len(stored) == 1
    assert await accounts.revoke_token(token)
    assert await accounts.account_for_token(token) is None
    short = await accounts.issue_token(card.account_id, ttl_s=-1)
    assert await accounts.account_for_token(short) is None


async def test_the_database_file_holds_no_pin_or_card_number(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / "ledger.db")
    await migrate(db)
    accounts = Accounts(db, Vault(Fernet.generate_key()))
    card = await accounts.add_card("maniwa-city", "23990001", pin="8642", keep_pin=True)
    assert (await accounts.card(card.account_id, card.id)) == card  # the broker can still act for the patron
    await db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"8642" not in raw and b"23990001" not in raw


# --- the poller -------------------------------------------------------------------------------


async def test_the_poller_follows_the_member_and_notices_ready_once(world: World) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    from broker.ledger.notices import Notices, SmtpSender
    from broker.ledger.poller import Poller, PollSchedule

    received: list[object] = []

    class Sink(Message):
        def handle_message(self, message: object) -> None:
            received.append(message)

    smtp_port = _closed_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        row = await world.placement().place(await world.new_hold("alpha", "client-key-0101"))
        await world.accounts.set_email(row.account_id, "patron@example.invalid")
        sender = SmtpSender("127.0.0.1", smtp_port, "yokodan@example.invalid", world.accounts.email_of)
        notices = Notices(world.db, sender)
        clock = [time.time() + 10_000]  # every hold due
        polls = [
            Poller(world.ledger, world.accounts, notices, world.connectors.__getitem__, node=node, clock=lambda: clock[0],
                   schedule=PollSchedule(waiting_s=1, secured_s=1, ready_s=1))  # due again next round, not this one
            for node in ("poller-a", "poller-b")
        ]  # fmt: skip
        [sandbox_id] = world.member_holds("alpha", row.member_key)
        seen: list[HoldState] = []
        for state in (HoldState.SECURED, HoldState.IN_TRANSIT, HoldState.READY, HoldState.COLLECTED):
            world.system("alpha").ledger.advance(sandbox_id, state)
            clock[0] += 1
            reports = await asyncio.gather(*(p.run_once() for p in polls))  # two nodes at once
            assert sum(r.claimed for r in reports) == 1  # one of them took it
            seen.append(state)
        transitions = [t.to_state for t in await world.ledger.transitions(row.id)]
        assert transitions == [HoldState.WAITING, *seen]
        assert [n.kind for n in await notices.for_account(row.account_id)] == ["ready"]
        assert len(received) == 1
    finally:
        smtp.stop()


async def test_the_poller_skips_an_unavailable_member_without_asking(world: World) -> None:
    from broker.ledger.notices import Notices
    from broker.ledger.poller import Poller

    row = await world.placement().place(await world.new_hold("alpha", "client-key-0102"))
    asked: list[str] = []

    def gateway(member: str) -> ILSRestConnector:
        asked.append(member)
        return world.connectors[member]

    poller = Poller(world.ledger, world.accounts, Notices(world.db), gateway, node="p", clock=lambda: time.time() + 10**6,
                    unavailable=lambda member: "maintenance")  # fmt: skip
    report = await poller.run_once()
    assert (report.claimed, report.skipped, asked) == (1, 1, [])
    assert (await world.ledger.by_id(row.id)).state is HoldState.WAITING  # type: ignore[union-attr]
