"""My holds shows what the patron asked for (issue 9/13 follow-up), over real sockets.

The ledger keeps the title, author and volume the patron saw, sealed with the vault key in the
hold's row (never in clear in the database file, never in a log), purged with the hold; the API
answers them with the owning library's and the pickup branch's names and the state in words
(ja by default, en by `lang=` or Accept-Language). Ledgers from before the column still list.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from broker.ledger import schema
from broker.ledger.accounts import Accounts
from broker.ledger.db import SQLiteDatabase
from broker.ledger.holds_repo import HoldLedger
from broker.ledger.records import iso, utc_now
from broker.ledger.routes import hold_view
from broker.ledger.runtime import purge_finished
from broker.ledger.schema import migrate
from broker.ledger.service import HoldService
from broker.ledger.vault import Vault
from tests.test_ledger_api import Api, api, consortium_of  # noqa: F401  (fixture)
from tests.test_ils_rest import holdable

TITLE, AUTHOR, VOLUME = "吾輩は猫である", "夏目漱石", "上"
SHOWN = ("id", "title", "author", "volume", "member_name", "pickup_branch_name", "state", "state_label", "queue_position")


def _shown(hold: dict[str, object]) -> tuple[object, ...]:
    return tuple(hold[k] for k in SHOWN)


async def test_the_list_shows_title_names_state_words_and_queue(api: Api) -> None:
    first = {"Authorization": f"Bearer {await api.token('10000002')}"}
    mine = {"Authorization": f"Bearer {await api.token('10000001')}"}
    record = holdable(api.system, 0)
    # Someone else is first in the queue for this record: the member tells us we are second.
    body = {"member": "alpha", "record_id": record, "pickup_branch_id": "alpha/kita"}
    assert (await api.session.post(f"{api.url}/api/v1/holds", json=body, headers=first)).status == 201
    placed = await api.session.post(
        f"{api.url}/api/v1/holds", json=body | {"title": TITLE, "author": AUTHOR, "volume": VOLUME}, headers=mine
    )
    assert placed.status == 201, await placed.text()
    hold_id = (await placed.json())["id"]
    untitled = await (await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body(1) | {"pickup_branch_id": "alpha/chuo"}, headers=mine)).json()

    listed = await api.session.get(f"{api.url}/api/v1/holds", headers=mine)
    assert listed.headers["Content-Language"] == "ja"
    assert [_shown(h) for h in (await listed.json())["holds"]] == [
        (hold_id, TITLE, AUTHOR, VOLUME, "alpha市立図書館", "alpha市立北図書館", "waiting", "予約中（確保待ち）", 2),
        (untitled["id"], None, None, None, "alpha市立図書館", "alpha市立中央図書館", "waiting", "予約中（確保待ち）", 1),
    ]
    english = await (await api.session.get(f"{api.url}/api/v1/holds?lang=en", headers=mine)).json()
    assert [h["state_label"] for h in english["holds"]] == ["waiting", "waiting"]
    by_header = await api.session.get(f"{api.url}/api/v1/holds/{hold_id}", headers=mine | {"Accept-Language": "en-GB, ja;q=0.5"})
    assert by_header.headers["Content-Language"] == "en" and (await by_header.json())["title"] == TITLE
    cancelled = await (await api.session.delete(f"{api.url}/api/v1/holds/{hold_id}?lang=en", headers=mine)).json()
    assert (cancelled["state"], cancelled["state_label"], cancelled["title"]) == ("cancelled", "cancelled", TITLE)


async def test_an_unknown_language_is_a_named_400(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token('10000001')}"}
    response = await api.session.get(f"{api.url}/api/v1/holds?lang=fr", headers=auth)
    problem = await response.json()
    assert response.status == 400 and response.content_type == "application/problem+json"
    assert [e["parameter"] for e in problem["errors"]] == ["lang"]


async def test_an_overlong_title_is_refused_by_name(api: Api) -> None:
    auth = {"Authorization": f"Bearer {await api.token('10000001')}"}
    response = await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body() | {"title": "長" * 501}, headers=auth)
    assert response.status == 400 and [e["parameter"] for e in (await response.json())["errors"]] == ["title"]
    assert api.system.ledger.holds == {}  # nothing placed


async def test_the_title_is_sealed_never_logged_and_purged_with_the_hold(
    api: Api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = {"Authorization": f"Bearer {await api.token('10000001')}"}
    placed = await (await api.session.post(f"{api.url}/api/v1/holds", json=api.place_body() | {"title": TITLE, "author": AUTHOR}, headers=auth)).json()
    assert (await (await api.session.get(f"{api.url}/api/v1/holds", headers=auth)).json())["holds"][0]["title"] == TITLE
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    assert stored and TITLE.encode() not in stored and AUTHOR.encode() not in stored
    assert TITLE not in caplog.text and AUTHOR not in caplog.text
    assert (await api.session.delete(f"{api.url}/api/v1/holds/{placed['id']}", headers=auth)).status == 200
    db = await SQLiteDatabase.open(tmp_path / "ledger.db")
    try:
        # Finished now: kept for the consortium's days, then the row (and its sealed title) is gone.
        assert await purge_finished(HoldLedger(db), 30) == 0
        assert await purge_finished(HoldLedger(db), 30, now=datetime.now(UTC) + timedelta(days=31)) == 1
        async with db.transaction() as tx:
            assert await tx.fetchall("SELECT id FROM holds") == []
    finally:
        await db.close()
    assert (await (await api.session.get(f"{api.url}/api/v1/holds", headers=auth)).json()) == {"holds": []}


async def test_a_ledger_from_before_the_display_column_migrates_and_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = await SQLiteDatabase.open(tmp_path / "old.db")
    try:
        with monkeypatch.context() as old:
            old.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] <= 3])
            assert await migrate(db) == [1, 2, 3]
        vault = Vault(Fernet.generate_key())
        accounts = Accounts(db, vault)
        card = await accounts.add_card("alpha", "10000001", pin=None, keep_pin=False)
        stamp = iso(utc_now())
        async with db.transaction() as tx:  # a hold as a version-3 broker wrote it
            await tx.execute(
                "INSERT INTO holds (id, account_id, card_id, client_key, fingerprint, member, record_id, pickup_branch_id, "
                "outcome, state, member_hold_id, status_text, created_at, updated_at) "
                "VALUES ('h1', ?, ?, 'k1', 'f1', 'alpha', '42', 'alpha/kita', 'placed', 'ready', '7', 'W', ?, ?)",
                (card.account_id, card.id, stamp, stamp),
            )
        assert await migrate(db) == [4]
        ledger = HoldLedger(db)
        service = HoldService(consortium_of(["alpha"]), ledger, accounts, None, lambda m: None, node="n")  # type: ignore[arg-type]
        [row] = await ledger.list_for(card.account_id)
        view = hold_view(row, service, "en")
        assert _shown(view) == ("h1", None, None, None, "alpha市立図書館", "alpha市立北図書館", "ready", "ready to collect", None)
    finally:
        await db.close()
