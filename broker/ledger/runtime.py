"""The ledger's running parts for one broker node, opened and closed as one aiohttp cleanup context.

Opening: the database (SQLite file or PostgreSQL URL), its migrations, the vault key, then two
background tasks — the reconciler (settles what a crash or a lost answer left unsettled, *before*
anything is placed again) and the status poller. Closing: the tasks stop, then the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.consortium import Consortium
from broker.ledger.accounts import Accounts
from broker.ledger.db import Database, open_database
from broker.ledger.holds_repo import HoldLedger
from broker.ledger.notices import Notices, NoticeSender
from broker.ledger.placement import Placement, PlacementTimings
from broker.ledger.poller import Poller, PollSchedule
from broker.ledger.records import iso
from broker.ledger.schema import migrate
from broker.ledger.service import HoldService
from broker.ledger.vault import Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerConfig:
    url: str = "sqlite:///var/ledger.db"  # or postgresql://user@host/db, shared by several nodes
    key_file: Path = Path("var/ledger.key")  # used when $YOKODAN_LEDGER_KEY is not set
    node: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    reconcile_every_s: float = 5.0
    poll_every_s: float = 30.0
    purge_every_s: float = 3600.0
    timings: PlacementTimings = PlacementTimings()
    schedule: PollSchedule = PollSchedule()


@dataclass
class LedgerRuntime:
    db: Database
    service: HoldService
    poller: Poller
    placement: Placement


async def _every(seconds: float, job: Callable[[], Any], stop: asyncio.Event, what: str) -> None:
    while not stop.is_set():
        try:
            await job()
        except Exception:  # a background loop that dies strands holds: log and keep going
            log.exception("%s failed", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def purge_finished(ledger: HoldLedger, days: int, *, now: datetime | None = None) -> int:
    """Delete holds that finished more than `days` ago (the consortium's `[privacy]` setting)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    deleted = await ledger.purge_finished(iso(cutoff))
    if deleted:
        log.info("purged %d finished holds older than %d days", deleted, days)
    return deleted


@contextlib.asynccontextmanager
async def open_ledger(
    config: LedgerConfig,
    consortium: Consortium,
    gateway_for: Callable[[str], Any],
    *,
    unavailable: Callable[[str], str | None] = lambda member: None,
    sender: NoticeSender | None = None,
    background: bool = True,
) -> AsyncIterator[LedgerRuntime]:
    db = await open_database(config.url)
    try:
        applied = await migrate(db)
        if applied:
            log.info("ledger schema migrated to %s", applied[-1])
        vault = Vault.from_environment(config.key_file)
        ledger, accounts = HoldLedger(db), Accounts(db, vault)
        placement = Placement(ledger, accounts, gateway_for, node=config.node, timings=config.timings)
        poller = Poller(
            ledger, accounts, Notices(db, sender), gateway_for, node=config.node, unavailable=unavailable,
            schedule=config.schedule,
            after_ready=lambda row: placement.place_next_in_series(row.series_id) if row.series_id else asyncio.sleep(0),
        )  # fmt: skip
        service = HoldService(consortium, ledger, accounts, placement, gateway_for, node=config.node)
        stop = asyncio.Event()
        tasks = []
        if background:
            # Reconcile first, once, before the node takes requests: a crash's leftovers are looked up
            # at the members before any new placement could race them.
            await placement.reconcile_due(limit=1000)
            async def purge() -> None:
                await purge_finished(ledger, consortium.privacy.finished_holds_days)

            tasks = [
                asyncio.create_task(_every(config.reconcile_every_s, placement.reconcile_due, stop, "hold reconciler")),
                asyncio.create_task(_every(config.poll_every_s, poller.run_once, stop, "hold poller")),
                asyncio.create_task(_every(config.purge_every_s, purge, stop, "finished-hold purge")),
            ]
        try:
            yield LedgerRuntime(db, service, poller, placement)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await db.close()
