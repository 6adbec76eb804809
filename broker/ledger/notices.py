"""Notices to patrons: a record for every hold that becomes ready, and an optional sender.

The record is the promise (UNIQUE per hold and kind, so two pollers make one notice); sending is
pluggable and may fail without losing it (`sent_at` stays empty and a later pass sends again).
The e-mail sender uses the standard library's SMTP client in a thread, so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from yokodan import Hold

from broker.ledger.db import Database
from broker.ledger.records import HoldRow, iso, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Notice:
    id: str
    hold_id: str
    account_id: str
    kind: str
    pickup_branch_id: str | None
    ready_until: str | None


class NoticeSender(Protocol):
    async def send(self, notice: Notice) -> None: ...


class Notices:
    def __init__(self, db: Database, sender: NoticeSender | None = None) -> None:
        self.db = db
        self.sender = sender

    async def hold_ready(self, row: HoldRow, hold: Hold) -> Notice | None:
        """Record (once) that the hold is ready at its pickup branch, then try to send it."""
        notice = Notice(
            id=secrets.token_hex(16),
            hold_id=row.id,
            account_id=row.account_id,
            kind="ready",
            pickup_branch_id=hold.pickup_branch_id or row.pickup_branch_id,
            ready_until=hold.ready_until.isoformat() if hold.ready_until else None,
        )
        async with self.db.transaction() as tx:
            created = await tx.execute(
                "INSERT INTO notices (id, hold_id, account_id, kind, pickup_branch_id, ready_until, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hold_id, kind) DO NOTHING",
                (notice.id, notice.hold_id, notice.account_id, notice.kind, notice.pickup_branch_id,
                 notice.ready_until, iso(utc_now())),
            )  # fmt: skip
        if not created:
            return None
        await self._deliver(notice)
        return notice

    async def for_account(self, account_id: str) -> list[Notice]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT id, hold_id, account_id, kind, pickup_branch_id, ready_until FROM notices "
                "WHERE account_id = ? ORDER BY created_at",
                (account_id,),
            )
        return [Notice(**row) for row in rows]

    async def _deliver(self, notice: Notice) -> None:
        if self.sender is None:
            return
        try:
            await self.sender.send(notice)
        except Exception as exc:  # a mail server's failure must not lose the notice or stop the poller
            log.warning("notice %s for hold %s not sent: %s", notice.id, notice.hold_id, type(exc).__name__)
            return
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE notices SET sent_at = ? WHERE id = ?", (iso(utc_now()), notice.id))


@dataclass
class SmtpSender:
    """Sends a short notice (branch and date, no title: the mail may be read by others)."""

    host: str
    port: int
    sender: str
    address_of: object  # async (account_id) -> e-mail address | None
    branch_name: object = staticmethod(lambda branch_id: branch_id)

    async def send(self, notice: Notice) -> None:
        address = await self.address_of(notice.account_id)  # type: ignore[operator]
        if not address:
            return
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = address
        message["Subject"] = "ご予約の資料をご用意しました / Your hold is ready"
        branch = self.branch_name(notice.pickup_branch_id)  # type: ignore[operator]
        until = notice.ready_until or "—"
        message.set_content(
            f"ご予約の資料が {branch} でお受け取りいただけます（取置期限 {until}）。\n"
            f"Your hold is ready at {branch} until {until}.\n"
        )
        await asyncio.to_thread(self._send_sync, message)

    def _send_sync(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(message)
