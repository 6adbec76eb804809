"""Progressive search sessions: delivery latency (member answer → portal) and memory per open search.

Three processes, as in production: the sandbox's 60 SRU members (bench/fanout.py's SandboxProcess;
member i answers after 100 + 10·i ms, so answers arrive spread over 0.1–0.7 s), the broker (this
process), and the portals (bench/progressive_portal.py), which open `--searches` sessions one after
another (`--concurrency` at a time), half followed by long-poll, half by SSE; none is deleted, so at
the end that many are open and the later searches run beside them.

Delivery of one member answer = the portal read the diff holding it − the member's connector returned
its parsed records in the broker; both stamped with time.monotonic() (CLOCK_MONOTONIC: one clock for
every process on Linux). Merge, serialisation, diff, wake-up, the write and the loopback are in it;
the member's own time, the parse of its XML and the portal's parse of the JSON are not. The stages
(bench/progressive_probes.py) say where it went: commit (answer → the session's version), wake (→ the
poller or stream resumed), send (→ the diff's bytes about to be written), wire (→ the portal read them); with the
event loop's lag, gc pauses, the final settle of each search, and what an answer costs against how
many works its session already holds.

Memory: the same number of sessions again, bare (no probes), with tracemalloc on; Python memory the
broker holds once they are done (gc'd), divided by the sessions, beside their serialised state.

Targets (issue 10): delivery p99 ≤ 20 ms (long-poll and SSE); ≤ 200 KB per open 60-member search.
These machines are shared: the load average is printed beside the wall-clock figures.

Usage: python3 bench/progressive.py [--searches 200] [--concurrency 1] [--records 20] [--top]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.fanout import SandboxProcess, bench_consortium, member_specs  # noqa: E402
from bench.progressive_portal import one_session  # noqa: E402
from bench.progressive_probes import Probes, installed, stamp_poll_sent  # noqa: E402
from broker.admission import AdmissionSettings  # noqa: E402
from broker.api import build_app  # noqa: E402
from broker.collector import tune_for_serving  # noqa: E402
from broker.sessions.routes import SESSIONS_KEY  # noqa: E402
from broker.sessions.settings import SessionSettings  # noqa: E402

MEMBERS = 60
DELIVERY_P99_MS = 20.0
MEMORY_KB = 200.0
STAGES = ("commit", "wake", "send", "wire")
WORKS_BUCKETS = (0, 100, 200, 400, 800)  # works a session already holds when an answer comes


def specs():  # type: ignore[no-untyped-def]
    members = member_specs(MEMBERS, 0.0)
    return [m.model_copy(update={"latency_ms": 100.0 + 10.0 * i}) for i, m in enumerate(members)]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


async def serve(sandbox: SandboxProcess, args: argparse.Namespace, probes: Probes | None) -> dict:
    """One run: the broker here, the portals in their own process; what both measured."""
    generous = AdmissionSettings(max_searches=args.searches, client_burst=100_000, client_rate_per_s=100_000.0)
    sessions = SessionSettings(max_sessions=args.searches + 10, idle_expiry_s=3600)
    app = build_app(bench_consortium(sandbox), admission=generous, sessions=sessions)
    if probes is not None:
        app.on_response_prepare.append(stamp_poll_sent(probes))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    tune_for_serving()  # as `serve` does once started (broker.collector)
    try:
        async with aiohttp.ClientSession() as http:  # warm the members' connections, as a running broker has them
            warm = await one_session(http, base, args.records, "poll")
            await http.delete(f"{base}/api/v1/searches/{warm['id']}")
        gc.collect()
        tracked = len(gc.get_objects())  # not counting the frozen
        if probes is None:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
        else:
            probes.start_watching()
        cpu, started = time.process_time(), time.monotonic()
        with tempfile.NamedTemporaryFile(suffix=".json") as receipts:  # read once the memory is measured
            portals = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "bench" / "progressive_portal.py"), base, "--searches", str(args.searches),
                "--concurrency", str(args.concurrency), "--records", str(args.records), "--out", receipts.name,
            )  # fmt: skip
            if await portals.wait() != 0:
                raise RuntimeError(f"the portal process failed ({portals.returncode})")
            elapsed_s, broker_cpu_s = time.monotonic() - started, time.process_time() - cpu
            if probes is not None:
                probes.stop_watching()
            store = app[SESSIONS_KEY]
            assert len(store) == args.searches, len(store)
            await asyncio.gather(*(s.task for s in store._sessions.values() if s.task))  # the last one packing its works
            gc.collect()
            held_kb = None
            if probes is None:
                held_kb = (tracemalloc.get_traced_memory()[0] - before) / args.searches / 1024
                if args.top:
                    for stat in tracemalloc.take_snapshot().statistics("lineno")[:12]:
                        print(stat)
                tracemalloc.stop()
            result = orjson.loads(Path(receipts.name).read_bytes())
        result |= {"elapsed_s": elapsed_s, "broker_cpu_s": broker_cpu_s, "open": len(store), "tracked": tracked, "held_kb": held_kb}
        result["tracked_per_session"] = (len(gc.get_objects()) - tracked) / len(store)
        result["state_kb"] = statistics.mean(s.nbytes() for s in store._sessions.values()) / 1024
    finally:
        await runner.cleanup()
    return result


def report_delivery(result: dict, probes: Probes) -> bool:
    """Print the delivery figures per mode and where the time went; whether both meet the target."""
    met = True
    for via in ("poll", "sse"):
        stages = [
            s
            for session in result["sessions"] if session["via"] == via
            for member, received in session["received"].items()
            if (s := probes.stage(session["id"], member, received)) is not None
        ]  # fmt: skip
        totals = [s["total"] for s in stages]
        p99 = quantile(totals, 0.99)
        ok = p99 <= DELIVERY_P99_MS
        met &= ok
        print(f"  delivery {via:>4} (member answer in the broker -> portal process): p50 {quantile(totals, 0.5):6.1f} ms   "
              f"p99 {p99:6.1f} ms   ({len(totals)} answers)   target p99 <= {DELIVERY_P99_MS:g} ms: "
              f"{'MET' if ok else 'NOT MET'}")  # fmt: skip
        print("      stages p50/p99 ms: " + "   ".join(
            f"{name} {quantile([s[name] for s in stages], 0.5):.1f}/{quantile([s[name] for s in stages], 0.99):.1f}"
            for name in STAGES))  # fmt: skip
        slow = [s for s in stages if s["total"] >= p99]
        if slow:
            print(f"      slowest 1% ({len(slow)}), mean ms: " + "   ".join(
                f"{name} {statistics.mean(s[name] for s in slow):.1f}" for name in (*STAGES, "stalled"))
                + "   (stalled: loop lag or gc pause > 5 ms while it was on its way)")  # fmt: skip
    return met


def report_broker(result: dict, probes: Probes) -> None:
    answers = sum(len(s["received"]) for s in result["sessions"])
    print(f"  broker CPU {result['broker_cpu_s'] / answers * 1e6:.0f} us per member answer delivered; "
          f"portal process CPU {result['cpu_s'] / answers * 1e6:.0f} us")  # fmt: skip
    print(f"  gc-tracked objects: {gc.get_freeze_count()} frozen at start-up, {result['tracked']} more once warm, "
          f"{result['tracked_per_session']:.0f} more per open session")  # fmt: skip
    sizes = probes.diff_bytes
    print(f"  diffs: {len(sizes) / len(result['sessions']):.0f} per search, {sum(sizes) / len(result['sessions']) / 1024:.0f} KB "
          f"per search, p50 {quantile(sizes, 0.5) / 1024:.1f} KB, max {max(sizes) / 1024:.0f} KB")  # fmt: skip
    lags = probes.lags_ms
    print(f"  event-loop lag ({len(lags)} ticks of 2 ms): p50 {quantile(lags, 0.5):.2f} ms   p99 {quantile(lags, 0.99):.2f} ms   "
          f"max {max(lags):.1f} ms   ticks over 5 ms: {sum(1 for v in lags if v > 5)}")  # fmt: skip
    print("  gc pauses: " + "   ".join(
        f"gen{gen} {len(ms)}x max {max(ms):.1f} ms total {sum(ms):.0f} ms" for gen, ms in sorted(probes.gc_ms.items())))  # fmt: skip
    settle = probes.settle_ms
    finish = probes.finish_ms
    print(f"  final settle per search (one loop step): p50 {quantile(settle, 0.5):.1f} ms   p99 {quantile(settle, 0.99):.1f} ms   "
          f"max {max(settle):.1f} ms; of which the session's log p50 {quantile(finish, 0.5):.1f} ms   "
          f"p99 {quantile(finish, 0.99):.1f} ms (the rest: dedup's settle, ranking, serialising; its works are packed in a thread after)")  # fmt: skip
    commits = [(s[2], s[3], (s[0] - probes.answered[key]) * 1000) for key, s in probes.committed.items() if key in probes.answered]
    print("  by works the session holds (is anything O(works) per answer?), medians: answer -> version ms, "
          "the same per work the answer changed, diff assembly ms:")  # fmt: skip
    for low, high in zip(WORKS_BUCKETS, (*WORKS_BUCKETS[1:], 10**9)):
        commit = [(changed, ms) for held, changed, ms in commits if low <= held < high]
        diff = [ms for held, ms in probes.diff_ms if low <= held < high]
        if commit:
            print(f"      {low:>4}-{high - 1 if high < 10**9 else '':<4} works: {statistics.median(ms for _, ms in commit):.2f} ms "
                  f"({len(commit)} answers)   {statistics.median(ms / max(changed, 1) for changed, ms in commit) * 1000:.0f} us "
                  f"per changed work   diff {statistics.median(diff) if diff else float('nan'):.3f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1, help="searches running at once")
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--top", action="store_true", help="print where the held memory was allocated")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory run")
    args = parser.parse_args()
    probes = Probes()
    with SandboxProcess(specs()) as sandbox:
        load_before = load()
        with installed(probes):
            timing = asyncio.run(serve(sandbox, args, probes))
        load_after = load()
        memory = None if args.no_memory else asyncio.run(serve(sandbox, args, None))
    print(f"progressive search sessions: {MEMBERS} members x up to {args.records} records, members answer at 100-690 ms,")
    print(f"{args.searches} sessions ({args.concurrency} running at a time), half long-poll, half SSE; all left open;")
    print(f"portals in a process of their own   [{load_before} before, {load_after} after]")
    print(f"  open at the end: {timing['open']}   wall {timing['elapsed_s']:.1f} s")
    delivered = report_delivery(timing, probes)
    report_broker(timing, probes)
    if memory is not None:
        ok = memory["held_kb"] <= MEMORY_KB
        print(f"  memory per open finished session: {memory['held_kb']:.0f} KB held (tracemalloc), of which "
              f"{memory['state_kb']:.0f} KB serialised works and statuses   target <= {MEMORY_KB:g} KB: "
              f"{'MET' if ok else 'NOT MET'}")  # fmt: skip
    print(f"verdict: delivery {'MET' if delivered else 'NOT MET'}" + ("" if memory is None else
          f", memory {'MET' if memory['held_kb'] <= MEMORY_KB else 'NOT MET'}"))  # fmt: skip


if __name__ == "__main__":
    main()
