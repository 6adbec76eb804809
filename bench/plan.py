"""Hold-plan benchmark: a popular work held at 40 branches by 12 members, a patron with 3 cards.

Prints, side by side in one run (shared machines are noisy: compare within a run):

  planner   the pure core (broker.holds.planner.plan_hold): wall p50/p99 per plan and CPU per plan
            (process time over all rounds / rounds). Target: ≤ 2 ms CPU per plan.
  lookups   the async gatherer against the sandbox members of the shipped Okayama file on localhost
            (3 patron lookups + live holdings for every record, in parallel): wall p50/p99 per gather.
  total     gather + plan, end to end, p50/p99.

Holdings are built once (40 branches of 12 members; on the shelf, on loan with queues, on order,
reference copies), so the planner rounds measure the planner alone; the first plan (rules compiled)
is reported separately as `cold`.

Usage: python3 bench/plan.py [--rounds 500] [--lookup-rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker.consortium import load_consortium  # noqa: E402
from broker.demo import start_sandbox  # noqa: E402
from broker.members import MemberRegistry  # noqa: E402
from broker.holds.gather import HoldsGatherer, find_work  # noqa: E402
from broker.holds.patron import Card, Patron  # noqa: E402
from broker.holds.planner import RuleBook, plan_hold  # noqa: E402
from broker.search import SearchService  # noqa: E402
from connectors import HttpClient  # noqa: E402
from yokodan import Availability, Holding, PatronStatus, Record, SearchQuery  # noqa: E402

TODAY = date(2026, 12, 1)
CARDS = ("okayama-pref", "okayama-city", "tsuyama-city")
STATES = (Availability.AVAILABLE, Availability.ON_LOAN, Availability.ON_LOAN, Availability.AVAILABLE,
          Availability.ON_ORDER, Availability.LIBRARY_USE_ONLY, Availability.RESERVED)


def popular_work(consortium) -> list[Record]:
    """One record per member, copies at 40 branches of 12 members (the 12 with most branches first)."""
    members = sorted(consortium.members, key=lambda m: -len([b for b in m.branches if b.holds_stock]))[:12]
    branches = [(m.id, b.id) for m in members for b in m.branches if b.holds_stock][:40]
    records = []
    for member in members:
        holdings = []
        for i, (owner, branch) in enumerate(branches):
            if owner != member.id:
                continue
            state = STATES[i % len(STATES)]
            holdings.append(Holding(
                member=owner, branch_id=branch, item_id=f"{branch}#{i}", availability=state,
                due_date=TODAY + timedelta(days=3 + i % 14) if state is Availability.ON_LOAN else None,
                queue_length=i % 4 if state is Availability.ON_LOAN else None,
            ))
        records.append(Record(member=member.id, local_id=f"{member.id}-1", title="こころ", holdings=holdings))
    assert sum(len(r.holdings) for r in records) == 40 and len({r.member for r in records}) == 12
    return records


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_planner(rounds: int) -> None:
    consortium = load_consortium()
    records = popular_work(consortium)
    patron = Patron(cards=[Card(member=m, card_number="10000001") for m in CARDS], home_municipality="岡山市",
                    location=(34.6652, 133.9186), preferred_pickups=["okayama-city/chuo"])
    statuses = {m: PatronStatus(member=m, holds_count=2) for m in CARDS}
    RuleBook._cache.clear()
    started = time.perf_counter()
    plan = plan_hold(consortium, patron, records, statuses, TODAY)
    cold_ms = (time.perf_counter() - started) * 1000
    walls: list[float] = []
    cpu_started = time.process_time()
    for i in range(rounds):
        today = TODAY + timedelta(days=i % 7)  # vary the day: no day-cache hits across weekdays for free
        started = time.perf_counter()
        plan_hold(consortium, patron, records, statuses, today)
        walls.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / rounds
    print(f"planner   {rounds} plans: wall p50 {pct(walls, .5):.3f} ms  p99 {pct(walls, .99):.3f} ms  "
          f"CPU {cpu_ms:.3f} ms/plan (target ≤ 2 ms)  cold {cold_ms:.1f} ms")
    print(f"          options {1 + len(plan.alternatives)}, refusals {len(plan.refusals)}, advice {len(plan.advice)}; "
          f"choice {plan.choice.member} → {plan.choice.pickup_branch} ready {plan.choice.ready}")


async def bench_lookups(rounds: int) -> None:
    sandbox, consortium = await start_sandbox(load_consortium(), latency_ms=5)
    try:
        async with HttpClient() as http:
            registry = MemberRegistry(consortium, http)  # one owner of connectors, as in the broker
            work, _ = await find_work(SearchService(registry), SearchQuery(isbn="9784101010137"))
            assert work is not None
            gatherer = HoldsGatherer(registry)
            patron = Patron(cards=[Card(member=m, card_number="10000001") for m in CARDS])
            gathers: list[float] = []
            totals: list[float] = []
            plan_cpu: list[float] = []
            for _ in range(rounds):
                started = time.perf_counter()
                gathered = await gatherer.gather(patron, work.records)
                gathered_at = time.perf_counter()
                cpu = time.process_time()
                plan_hold(consortium, patron, gathered.records, gathered.statuses, TODAY)
                plan_cpu.append((time.process_time() - cpu) * 1000)
                gathers.append((gathered_at - started) * 1000)
                totals.append((time.perf_counter() - started) * 1000)
        copies = sum(len(r.holdings) for r in gathered.records)
        print(f"lookups   {rounds} gathers ({len(work.records)} records, {copies} copies, 3 cards, sandbox 5 ms latency): "
              f"wall p50 {pct(gathers, .5):.1f} ms  p99 {pct(gathers, .99):.1f} ms")
        print(f"total     gather + plan: p50 {pct(totals, .5):.1f} ms  p99 {pct(totals, .99):.1f} ms; "
              f"planner CPU within it {statistics.median(plan_cpu):.3f} ms")
    finally:
        await sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--lookup-rounds", type=int, default=30)
    args = parser.parse_args()
    bench_planner(args.rounds)
    asyncio.run(bench_lookups(args.lookup_rounds))


if __name__ == "__main__":
    main()
