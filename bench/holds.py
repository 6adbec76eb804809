"""Hold ledger benchmark: placements through the ledger, and the poller's cost per 10,000 open holds.

Placements: one broker process (this one) places holds through the ledger at sandbox REST members
running in their own process and answering in 50 ms; every placement commits its intent, calls the
member, commits the outcome. Printed side by side for SQLite (WAL, synchronous=FULL) and PostgreSQL
(asyncpg): placements/s, p50/p99 latency, and broker CPU per placement.
Poller: 10,000 placed holds, one pass with a gateway that answers instantly ("unchanged"), so what is
measured is the ledger's own cost: claim + advance per hold.

Usage: python3 bench/holds.py [--placements 500] [--concurrency 32] [--postgres postgresql://127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from bench.fanout import SandboxProcess  # noqa: E402
from broker.ledger.accounts import Accounts  # noqa: E402
from broker.ledger.db import Database, PostgresDatabase, SQLiteDatabase  # noqa: E402
from broker.ledger.holds_repo import HoldLedger, NewHold  # noqa: E402
from broker.ledger.notices import Notices  # noqa: E402
from broker.ledger.placement import Placement, fingerprint  # noqa: E402
from broker.ledger.poller import Poller, PollSchedule  # noqa: E402
from broker.ledger.schema import migrate  # noqa: E402
from broker.ledger.vault import Vault  # noqa: E402
from connectors import HttpClient  # noqa: E402
from connectors.ils_rest import ILSRestConnector  # noqa: E402
from connectors.settings import TargetSettings  # noqa: E402
from sandbox.accounts import CARD_NUMBERS, MAX_HOLDS, PIN  # noqa: E402
from sandbox.spec import SandboxBranch, SandboxMember  # noqa: E402
from yokodan import Hold, HoldState, PatronCredentials  # noqa: E402

BRANCHES = [SandboxBranch(id="m/chuo", name="中央図書館", code="CHUO"), SandboxBranch(id="m/kita", name="北図書館", code="KITA")]


def members(count: int, latency_ms: float) -> list[SandboxMember]:
    return [
        SandboxMember(
            id=f"rest{i:02d}", name=f"図書館{i}", protocol="ils_rest", latency_ms=latency_ms, catalogue_share=0.9,
            branches=[b.model_copy(update={"id": b.id.replace("m/", f"rest{i:02d}/")}) for b in BRANCHES],
        )
        for i in range(count)
    ]  # fmt: skip


def connector(sandbox: SandboxProcess, member: SandboxMember, http: HttpClient) -> ILSRestConnector:
    codes = {b.id: b.code for b in member.branches}
    labels = {label: b.id for b in member.branches for label in (b.id, b.name, b.code)}
    settings = TargetSettings(
        member=member.id, kind="ils_rest", endpoint=f"{sandbox.base_url}/{member.id}/api/v1", timeout_s=10,
        branch_codes=labels, member_codes=codes,
    )  # fmt: skip
    return ILSRestConnector(settings, http)


async def record_ids(conn: ILSRestConnector, count: int) -> list[str]:
    from yokodan import SearchQuery

    result = await conn.search(SearchQuery(text="の", page_size=100))
    return [r.local_id for r in result.records if any(h.availability == "available" for h in r.holdings)][:count]


async def placements(db: Database, sandbox: SandboxProcess, specs: list[SandboxMember], total: int, concurrency: int) -> dict[str, float]:
    async with HttpClient() as http:
        conns = {m.id: connector(sandbox, m, http) for m in specs}
        accounts, ledger = Accounts(db, Vault(Fernet.generate_key())), HoldLedger(db)
        placement = Placement(ledger, accounts, conns.__getitem__, node="bench")
        jobs: list[NewHold] = []
        per_member = total // len(specs) + 1
        for member_id, conn in conns.items():
            records = await record_ids(conn, MAX_HOLDS)
            for card_number in CARD_NUMBERS[:8]:  # the sandbox's blocked cards are the last two
                card = await accounts.add_card(member_id, card_number, pin=PIN, keep_pin=False)
                for record in records:
                    body = {"m": member_id, "r": record, "c": card_number}
                    jobs.append(NewHold(card.account_id, card.id, secrets.token_hex(8), fingerprint(body), member_id, record, None, f"{member_id}/kita"))
                    if sum(1 for j in jobs if j.member == member_id) >= per_member:
                        break
                if sum(1 for j in jobs if j.member == member_id) >= per_member:
                    break
        jobs = jobs[:total]
        latencies: list[float] = []
        limit = asyncio.Semaphore(concurrency)

        async def one(job: NewHold) -> None:
            async with limit:
                start = time.perf_counter()
                row = await placement.place(job)
                latencies.append(time.perf_counter() - start)
                assert row.outcome == "placed", row

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(j) for j in jobs))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    latencies.sort()
    return {
        "n": len(jobs), "per_s": len(jobs) / wall, "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3, "cpu_us": cpu / len(jobs) * 1e6,
    }  # fmt: skip


class Unchanged:
    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold:
        return Hold(member="m", hold_id=hold_id, record_id="r", state=HoldState.WAITING, queue_position=2)


async def poller_cost(db: Database, count: int = 10_000) -> dict[str, float]:
    accounts, ledger = Accounts(db, Vault(Fernet.generate_key())), HoldLedger(db)
    card = await accounts.add_card("m", "10000001", pin=None, keep_pin=False)
    async with db.transaction() as tx:
        for i in range(count):
            await tx.execute(
                "INSERT INTO holds (id, account_id, card_id, client_key, fingerprint, member, record_id, pickup_branch_id, "
                "outcome, state, member_hold_id, queue_position, version, next_check_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'm', 'r', 'm/kita', 'placed', 'waiting', ?, 2, 0, 0, 'x', 'x')",
                (f"h{i:06d}", card.account_id, card.id, f"k{i}", "f", str(i)),
            )
    poller = Poller(ledger, accounts, Notices(db), lambda member: Unchanged(), node="bench",
                    schedule=PollSchedule(batch=500, per_member=64))  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    seen = 0
    while (report := await poller.run_once()).claimed:
        seen += report.claimed
    return {"holds": seen, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--placements", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--postgres", default="postgresql://127.0.0.1/test")
    args = parser.parse_args()
    specs = members(8, args.latency_ms)
    print(f"placements through the ledger: {args.placements}, {args.concurrency} in flight, members answer in {args.latency_ms:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sqlite", "postgresql"):
            with SandboxProcess(specs) as sandbox:  # fresh members: each run starts with empty hold lists
                for phase in ("place", "poll"):
                    await run_phase(name, phase, Path(tmp), sandbox, specs, args)


async def open_fresh(name: str, path: Path) -> tuple[Database, str | None]:
    from tests.ledger_databases import fresh_postgres_url

    if name == "sqlite":
        return await SQLiteDatabase.open(path), None
    url, dbname = await fresh_postgres_url()
    return await PostgresDatabase.open(url, max_size=16), dbname


async def run_phase(name: str, phase: str, tmp: Path, sandbox: SandboxProcess, specs: list[SandboxMember], args: argparse.Namespace) -> None:
    from tests.ledger_databases import drop_postgres

    db, dbname = await open_fresh(name, tmp / f"{phase}.db")
    await migrate(db)
    try:
        if phase == "place":
            f = await placements(db, sandbox, specs, args.placements, args.concurrency)
            print(f"  {name:10s} {f['per_s']:7.1f} placements/s  p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  "
                  f"broker CPU {f['cpu_us']:6.0f} µs/placement  (n={f['n']:.0f})")
        else:
            f = await poller_cost(db)
            print(f"  {name:10s} poller: {f['holds']:.0f} open holds in {f['wall_s']:.2f} s wall, {f['cpu_s']:.2f} s CPU per pass")
    finally:
        await db.close()
        if dbname:
            await drop_postgres(dbname)

if __name__ == "__main__":
    asyncio.run(main())
