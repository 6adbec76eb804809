"""Chaos: 1,000 placements through broker processes that are killed mid-run, at members that lose answers.

The members (sandbox REST systems in their own process) commit each hold and then lose the answer
— cut the connection or never answer — 20 % of the time, and do *not* de-duplicate keys, so a hold
sent twice would show up twice. Concurrent clients place holds with their own Idempotency-Keys,
retrying on 202 and on a dead broker; one broker is `kill -9`ed mid-run and restarted.
The verdict is read from the members' own hold lists (the sandbox's admin listing), never from the
ledger: every client key placed exactly once, no hold the ledger does not know, none lost.
Runs on SQLite (one node) and on PostgreSQL (two nodes sharing one database, one of them killed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet

from sandbox.accounts import CARD_NUMBERS, PIN
from sandbox.spec import SandboxBranch, SandboxMember
from tests.ledger_databases import drop_postgres, fresh_postgres_url

ROOT = Path(__file__).resolve().parent.parent
PLACEMENTS = 1000
MEMBERS = 4
CARDS = CARD_NUMBERS[:8]  # the sandbox's last two cards are blocked on purpose
CLIENTS = 24
DEADLINE_S = 240


def member_specs() -> list[SandboxMember]:
    branches = [SandboxBranch(id="m/chuo", name="中央図書館", code="CHUO"), SandboxBranch(id="m/kita", name="北図書館", code="KITA")]
    return [
        SandboxMember(
            id=f"chaos{i}", name=f"カオス{i}市立図書館", protocol="ils_rest", latency_ms=5, catalogue_share=0.95,
            branches=[b.model_copy(update={"id": b.id.replace("m/", f"chaos{i}/")}) for b in branches],
            protocol_options={"lose_hold_answer_rate": "0.2", "dedupe_hold_keys": "no", "max_holds": "100000"},
        )
        for i in range(MEMBERS)
    ]  # fmt: skip


def consortium_toml(base_url: str) -> str:
    parts = ['id = "chaos"\nname = "Chaos consortium"\nkind = "mutual_use"\n']
    for spec in member_specs():
        parts.append(
            f'[[members]]\nid = "{spec.id}"\nname = "{spec.name}"\nmunicipality = "{spec.id}"\nphone = "086-000-000{spec.id[-1]}"\n'
            f'connector = {{ kind = "ils_rest", endpoint = "{base_url}/{spec.id}/api/v1", timeout_s = 1.0 }}\n'
        )
        for branch in spec.branches:
            parts.append(
                f'[[members.branches]]\nid = "{branch.id}"\nname = "{branch.name.replace("図書館", spec.id + "図書館")}"\n'
                f'municipality = "{spec.id}"\ncoordinates_note = "test"\ncodes = ["{branch.code}"]\n'
                "pickup_point = true\naccepts_returns = true\n"
            )
    return "\n".join(parts)


class Process:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"{self.argv[:4]} did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        return self.url

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextmanager
def running(processes: list[Process]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


async def holdable_records(session: aiohttp.ClientSession, sandbox_url: str, member: str, count: int) -> list[str]:
    async with session.get(f"{sandbox_url}/_admin/{member}/holdable") as response:
        records = (await response.json())["records"]
    assert len(records) >= count, f"{member} has {len(records)} holdable records, need {count}"
    return records[:count]


async def run_clients(brokers: list[Process], sandbox_url: str, kill_after: int, victim: Process) -> dict[str, dict]:
    """Place every hold to a final answer; kill `victim` once `kill_after` have finished, then restart it."""
    results: dict[str, dict] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        per_pair = -(-PLACEMENTS // (MEMBERS * len(CARDS)))
        jobs = []
        for m in range(MEMBERS):
            member = f"chaos{m}"
            records = await holdable_records(session, sandbox_url, member, per_pair)
            for card in CARDS:
                for record in records:
                    jobs.append((member, card, record))
        jobs = jobs[:PLACEMENTS]
        tokens: dict[tuple[str, str], str] = {}
        for member, card, _ in jobs:
            if (member, card) not in tokens:
                async with session.post(f"{brokers[0].url}/api/v1/auth/login", json={"member": member, "card_number": card, "pin": PIN}) as r:
                    assert r.status == 200, await r.text()
                    tokens[(member, card)] = (await r.json())["token"]
        queue: asyncio.Queue[tuple[int, tuple[str, str, str]]] = asyncio.Queue()
        for number, job in enumerate(jobs):
            queue.put_nowait((number, job))
        killed = asyncio.Event()

        async def place(number: int, job: tuple[str, str, str]) -> None:
            member, card, record = job
            key = f"chaos-key-{number:05d}"
            body = {"member": member, "record_id": record, "pickup_branch_id": f"{member}/kita"}
            headers = {"Authorization": f"Bearer {tokens[(member, card)]}", "Idempotency-Key": key}
            for attempt in range(400):
                broker = brokers[attempt % len(brokers)] if len(brokers) > 1 else brokers[0]
                try:
                    async with session.post(f"{broker.url}/api/v1/holds", json=body, headers=headers) as r:
                        answer = await r.json()
                        if r.status in (200, 201) and answer["outcome"] in ("placed", "refused"):
                            results[key] = answer
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError):
                    pass  # the broker died under us, or is restarting: ask again (the same key)
                await asyncio.sleep(0.2 + random.random() * 0.3)
            raise AssertionError(f"{key}: no final answer")

        async def client() -> None:
            while not queue.empty():
                number, job = queue.get_nowait()
                await place(number, job)
                if len(results) >= kill_after and not killed.is_set():
                    killed.set()
                    victim.kill9()
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(victim.start)  # restarted: reconciles before serving

        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(CLIENTS))), DEADLINE_S)
        assert killed.is_set()
    return results


async def member_holds(sandbox_url: str) -> list[dict]:
    holds = []
    async with aiohttp.ClientSession() as session:
        for m in range(MEMBERS):
            async with session.get(f"{sandbox_url}/_admin/chaos{m}/holds") as response:
                holds.extend((await response.json())["holds"])
    return holds


def broker_process(consortium_file: Path, ledger_url: str, node: str, env: dict[str, str]) -> Process:
    return Process(
        [sys.executable, "-m", "broker.cli", "serve", "--consortium", str(consortium_file), "--port", "0", "--no-index",
         "--ledger", ledger_url, "--node-id", node, "--hold-resend-after-s", "5", "--ready-line"],
        env,
    )  # fmt: skip


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_every_hold_lands_exactly_once_through_kills_and_lost_answers(store: str, tmp_path: Path) -> None:
    env = os.environ | {"YOKODAN_LEDGER_KEY": Fernet.generate_key().decode()}
    spec_file = tmp_path / "members.json"
    spec_file.write_text(json.dumps([m.model_dump(mode="json") for m in member_specs()]))
    sandbox = Process([sys.executable, "-m", "sandbox", "--spec", str(spec_file), "--port", "0", "--catalogue-size", "400", "--admin"], env)
    dbname = None
    if store == "sqlite":
        ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        ledger_url, dbname = await fresh_postgres_url()
    try:
        sandbox_url = await asyncio.to_thread(sandbox.start)
        consortium_file = tmp_path / "chaos.toml"
        consortium_file.write_text(consortium_toml(sandbox_url))
        nodes = ["node-a"] if store == "sqlite" else ["node-a", "node-b"]
        brokers = [broker_process(consortium_file, ledger_url, node, env) for node in nodes]
        with running([sandbox, *brokers]):
            for broker in brokers:
                await asyncio.to_thread(broker.start)
            results = await run_clients(brokers, sandbox_url, kill_after=PLACEMENTS // 3, victim=brokers[0])
            holds = await member_holds(sandbox_url)
    finally:
        if dbname:
            await drop_postgres(dbname)
    assert len(results) == PLACEMENTS
    outcomes = Counter(r["outcome"] for r in results.values())
    placed = {r["id"] for r in results.values() if r["outcome"] == "placed"}
    keys_at_members = Counter(h["idempotency_key"] for h in holds)
    assert [k for k, n in keys_at_members.items() if n > 1] == []  # never sent twice
    assert set(keys_at_members) == placed  # none lost, none the ledger does not know
    assert outcomes["placed"] == PLACEMENTS, outcomes  # lost answers are reconciled, not refused
