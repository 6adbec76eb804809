"""Fan-out benchmark: one broker process searching N sandbox members (SRU, MARCXML).

The sandbox runs in its own process so the broker's CPU is measured alone.
Each member answers after a fixed latency with K records; we report, side by
side in one run (these machines are shared and noisy, so compare ratios):

  wall      median wall time of one search over all N members
  overhead  wall time above the slowest member's latency, absolute and as a share of it
  cpu/rec   broker CPU (parse + map + merge + HTTP) per record received
  ingest    parse + map CPU per record alone, on the same bodies, without the network
  search/s  completed searches per second at a few concurrency levels

With --cpu (issue 14), in one run: broker CPU per target at 0 hits (60 and 600 members), then a
60 × 20 search with the answers parsed inline and in the ingest pool, side by side: CPU per record in
the broker process and in the workers, and the wall time against the physical limit (slowest
member + total ingest CPU ÷ cores). `--inline` measures the inline side only.

With --stream, the same 60 × 20 search through the HTTP API, blocking (/api/v1/search) and
progressive (/api/v1/search/stream, read to its final line) alternately, and the ratio of their
median finish times (issue 14 item 3: within 10 %).

With --families, the same search runs against 12 members of each connector family
(SRU with 852 or 952 holdings, HTML OPAC tos/Shift_JIS and wopc/JSF, Koha-style REST,
NDL-style OpenSearch) and prints the broker's CPU per record for each, side by side.

Usage: python3 bench/fanout.py [--members 12 60] [--records 20] [--latency-ms 200] [--rounds 15]
       python3 bench/fanout.py --stream [--rounds 15]
       python3 bench/fanout.py --families [--rounds 5]
       python3 bench/fanout.py --cpu [--inline] [--rounds 15] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from yarl import URL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker.collector import tune_for_serving  # noqa: E402
from broker.consortium import Consortium  # noqa: E402
from broker.merge import default_clusterer  # noqa: E402
from yokodan import SearchQuery  # noqa: E402
from connectors.settings import TargetSettings
from broker.members import MemberRegistry  # noqa: E402
from broker.search import SearchService  # noqa: E402
from connectors import HttpClient, IngestPool, IngestSettings  # noqa: E402
from connectors.sru import SRUConnector, _query_string  # noqa: E402
from sandbox.spec import SandboxBranch, SandboxMember  # noqa: E402

# A query every sandbox member has well over 20 hits for.
QUERY = SearchQuery(text="の", page_size=20)


# family -> (sandbox protocol, protocol options, holdings field, endpoint path, connector kind, connector options)
FAMILIES: dict[str, tuple[str, dict[str, str], str, str, str, dict[str, object]]] = {
    "sru-852": ("sru", {}, "852", "sru", "sru", {}),
    "sru-952": ("sru", {}, "952", "sru", "sru", {}),
    "html-tos": ("html_opac", {"style": "tos"}, "852", "opac/", "html_opac", {"profile": "tos"}),
    "html-wopc": ("html_opac", {"style": "wopc"}, "852", "opac/", "html_opac", {"profile": "wopc"}),
    "ils-rest": ("ils_rest", {}, "852", "api/v1", "ils_rest", {}),
    "opensearch": ("opensearch", {}, "852", "opensearch", "opensearch", {}),
}


def member_specs(count: int, latency_ms: float, family: str | None = None) -> list[SandboxMember]:
    protocol, options, field, _, _, _ = FAMILIES[family] if family else ("sru", {}, "", "", "", {})
    return [
        SandboxMember(
            id=f"m{i:02d}",
            name=f"Member {i}",
            branches=[SandboxBranch(id=f"m{i:02d}/b{j}", name=f"分館{j}", code=f"B{j}") for j in range(3)],
            holdings_field=field or ("852" if i % 2 else "952"),
            status_style="tos" if protocol == "html_opac" else "standard",
            latency_ms=latency_ms,
            catalogue_share=0.6,
            protocol=protocol,  # type: ignore[arg-type]
            protocol_options=options,
        )
        for i in range(count)
    ]


class SandboxProcess:
    """`python -m sandbox` in a child process, ready when it prints READY <url>."""

    def __init__(self, members: list[SandboxMember], family: str | None = None) -> None:
        self.members = members
        self.family = family
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> SandboxProcess:
        spec = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump([m.model_dump(mode="json") for m in self.members], spec)
        spec.close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--spec", spec.name, "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"sandbox did not start: {line!r}")
        self.base_url = line.split(" ", 1)[1]
        os.unlink(spec.name)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def settings(self, member: SandboxMember) -> TargetSettings:
        _, _, _, path, kind, options = FAMILIES[self.family] if self.family else ("", {}, "", "sru", "sru", {})
        return TargetSettings(
            member=member.id,
            kind=kind,
            endpoint=f"{self.base_url}/{member.id}/{path}",
            options=options,
            timeout_s=30,
            max_records=100,
            branch_codes={b.code: b.id for b in member.branches} | {b.name: b.id for b in member.branches},
        )


def bench_consortium(sandbox: SandboxProcess) -> Consortium:
    """A real, validated consortium whose members are the sandbox process's members."""
    members = []
    for member in sandbox.members:
        settings = sandbox.settings(member)
        members.append(
            {
                "id": member.id,
                "name": member.name,
                "municipality": "ベンチ町",
                "connector": {
                    "kind": settings.kind, "endpoint": settings.endpoint, "timeout_s": settings.timeout_s,
                    "max_records": settings.max_records, "options": settings.options,
                },
                "branches": [
                    {
                        "id": b.id, "name": b.name, "municipality": "ベンチ町", "codes": [b.code],
                        "pickup_point": True, "accepts_returns": True, "coordinates_note": "benchmark branch",
                    }
                    for b in member.branches
                ],
            }
        )
    return Consortium.model_validate({"id": "bench", "name": "bench", "kind": "mutual_use", "members": members})


async def one_search(service: SearchService, query: SearchQuery) -> tuple[float, int]:
    started = time.perf_counter()
    outcome = await service.search(query)
    records = sum(s.returned for s in outcome.statuses)
    failed = [s for s in outcome.statuses if s.state.value != "ok"]
    if failed:
        raise RuntimeError(f"members failed: {failed[:3]}")
    return (time.perf_counter() - started) * 1000, records


async def measure(sandbox: SandboxProcess, records: int, latency_ms: float, rounds: int) -> dict[str, float]:
    query = QUERY.model_copy(update={"page_size": records})
    async with HttpClient() as http:
        service = SearchService(MemberRegistry(bench_consortium(sandbox), http), clusterer_factory=default_clusterer)
        await one_search(service, query)  # warm the connections, as a running broker has them
        walls: list[float] = []
        cpu_start = time.process_time()
        total_records = 0
        for _ in range(rounds):
            wall, got = await one_search(service, query)
            walls.append(wall)
            total_records += got
        cpu_per_record_us = (time.process_time() - cpu_start) / max(total_records, 1) * 1e6

        throughput: dict[int, float] = {}
        for concurrency in (1, 4, 16):
            searches = max(concurrency * 3, 8)
            started = time.perf_counter()
            pending = [one_search(service, query) for _ in range(searches)]
            for start in range(0, searches, concurrency):
                await asyncio.gather(*pending[start : start + concurrency])
            throughput[concurrency] = searches / (time.perf_counter() - started)

        # Ingest alone: the same bodies parsed again, no network.
        member = sandbox.members[0]
        connector = SRUConnector(sandbox.settings(member), http)
        params = {
            "operation": "searchRetrieve", "version": "1.2", "recordSchema": "marcxml",
            "query": 'any="の"', "startRecord": "1", "maximumRecords": str(records),
        }
        body = (await http.get(connector.settings.endpoint, member=member.id, timeout_s=10, params=params)).body
        # Best of 5 batches: the least disturbed by other work on a shared machine.
        batches: list[float] = []
        for _ in range(5):
            parse_start = time.process_time()
            parsed = sum(len(connector.parse_response(body).records) for _ in range(50))
            batches.append((time.process_time() - parse_start) / max(parsed, 1) * 1e6)
        ingest_us = min(batches)

    median = statistics.median(walls)
    return {
        "wall_ms": median,
        "p90_ms": sorted(walls)[int(len(walls) * 0.9) - 1],
        "overhead_ms": median - latency_ms,
        "overhead_pct": (median - latency_ms) / latency_ms * 100,
        "records": total_records / rounds,
        "cpu_us_per_record": cpu_per_record_us,
        "ingest_us_per_record": ingest_us,
        **{f"searches_per_s_c{c}": v for c, v in throughput.items()},
    }


async def family_cpu(sandbox: SandboxProcess, records: int, rounds: int) -> tuple[float, float, float]:
    """(CPU µs per record, records per search, median wall ms) for one family's members."""
    query = QUERY.model_copy(update={"page_size": records})
    async with HttpClient() as http:
        service = SearchService(MemberRegistry(bench_consortium(sandbox), http), clusterer_factory=default_clusterer)
        await one_search(service, query)
        walls: list[float] = []
        got = 0
        cpu_start = time.process_time()
        for _ in range(rounds):
            wall, n = await one_search(service, query)
            walls.append(wall)
            got += n
        cpu = time.process_time() - cpu_start
    return cpu / max(got, 1) * 1e6, got / rounds, statistics.median(walls)


def families(rounds: int, records: int) -> None:
    print(f"per-family broker CPU, 12 members x up to {records} records, {rounds} rounds, 0 ms member latency")
    print(f"{'family':<12} {'cpu/rec':>9} {'rec/search':>10} {'wall':>9}")
    for family in FAMILIES:
        with SandboxProcess(member_specs(12, 0.0, family), family) as sandbox:
            cpu_us, per_search, wall = asyncio.run(family_cpu(sandbox, records, rounds))
        print(f"{family:<12} {cpu_us:>7.1f}µs {per_search:>10.0f} {wall:>7.1f}ms")


# A query no sandbox member has a record for: every answer is a 0-hit searchRetrieveResponse.
ZERO_QUERY = SearchQuery(text="ぬぬぬぬ存在しない", page_size=20)


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of other processes (the ingest workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@contextmanager
def serving_collector() -> Iterator[None]:
    """The collector as `yokodan serve` sets it once started (broker.collector), undone afterwards."""
    threshold = gc.get_threshold()
    tune_for_serving()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def zero_hit_cpu(sandbox: SandboxProcess, rounds: int, *, serving: bool = True) -> tuple[float, float]:
    """(broker CPU µs per target, median wall ms) for searches every member answers with 0 hits.

    `serving`: with the collector as `yokodan serve` runs it (after the warm-up, as after start-up).
    """
    async with HttpClient() as http:
        service = SearchService(MemberRegistry(bench_consortium(sandbox), http))
        for _ in range(3):  # warm connections, caches, code paths
            outcome = await service.search(ZERO_QUERY)
        if any(s.state.value != "ok" or s.hits != 0 for s in outcome.statuses):
            raise RuntimeError(f"not a 0-hit answer everywhere: {outcome.statuses[:3]}")
        walls = []
        with serving_collector() if serving else nullcontext():
            cpu_start = time.process_time()
            for _ in range(rounds):
                walls.append((await one_search(service, ZERO_QUERY))[0])
            cpu = time.process_time() - cpu_start
    return cpu / rounds / len(sandbox.members) * 1e6, statistics.median(walls)


async def aiohttp_alone_cpu(sandbox: SandboxProcess, rounds: int) -> float:
    """CPU µs per request of a bare aiohttp session fetching the same 0-hit URLs, read whole: the floor
    under the broker's per-target figure (no Yokodan code on the path but the URLs built beforehand)."""
    import aiohttp

    async with HttpClient() as http:
        urls = [SRUConnector(sandbox.settings(m), http) for m in sandbox.members]
        urls = [c.request_url(_query_string(c._dialect, ZERO_QUERY, None, 1, ZERO_QUERY.page_size)) for c in urls]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def fetch(url: URL) -> bytes:
            async with session.get(url) as response:
                return await response.read()

        for _ in range(3):
            await asyncio.gather(*(fetch(u) for u in urls))
        with serving_collector():
            cpu_start = time.process_time()
            for _ in range(rounds):
                await asyncio.gather(*(fetch(u) for u in urls))
            cpu = time.process_time() - cpu_start
    return cpu / rounds / len(urls) * 1e6


# Issue 14's targets, printed with a verdict by the runs that measure them.
TARGET_CPU_PER_TARGET_US = 150.0


def verdict(value: float, target: float, unit: str) -> str:
    """MET with what is to spare, or NOT MET by how much (`value` at most `target`, in `unit`)."""
    digits = 2 if unit == "x" else 0
    margin = target - value
    return f"MET ({margin:.{digits}f}{unit} to spare)" if margin >= 0 else f"NOT MET (by {-margin:.{digits}f}{unit})"


async def ingest_run(
    sandbox: SandboxProcess, records: int, rounds: int, settings: IngestSettings
) -> dict[str, float]:
    """One ingest mode: broker and worker CPU per record, median wall of a whole search."""
    query = QUERY.model_copy(update={"page_size": records})
    async with HttpClient() as http, IngestPool(settings) as pool:
        service = SearchService(MemberRegistry(bench_consortium(sandbox), http, ingest=pool))
        pids = await pool.warm() if settings.workers else []
        for _ in range(2):
            await one_search(service, query)
        walls: list[float] = []
        got = 0
        cpu_start, workers_start = time.process_time(), _cpu_s(pids)
        for _ in range(rounds):
            wall, n = await one_search(service, query)
            walls.append(wall)
            got += n
        cpu, workers = time.process_time() - cpu_start, _cpu_s(pids) - workers_start
        fallbacks = pool.inline_fallbacks
    return {
        "wall_ms": statistics.median(walls), "records": got / rounds,
        "broker_us_per_record": cpu / max(got, 1) * 1e6, "worker_us_per_record": workers / max(got, 1) * 1e6,
        "fallbacks": fallbacks,
    }  # fmt: skip


async def burst_ingest(sandbox: SandboxProcess, records: int, workers: int, rounds: int) -> dict[str, float]:
    """Ingest alone: one body per member (a burst of 60 answers) parsed at once, inline and via the pool.

    CPU per record in the broker process (the loop plus the pool's feeder threads: the hop's
    whole cost) and in the workers, on the same bodies, without the network or the merge.
    """
    async with HttpClient() as http:
        connectors = [SRUConnector(sandbox.settings(m), http) for m in sandbox.members]
        query = QUERY.model_copy(update={"page_size": records})
        bodies = []
        for c in connectors:
            url = c.request_url(_query_string(c._dialect, query, None, 1, records))
            bodies.append((await http.get(url, member=c.member, timeout_s=30)).body)
        figures: dict[str, float] = {}
        for mode, settings in (("inline", IngestSettings(workers=0, cache_bytes=0, min_bytes=0)),
                               ("pool", IngestSettings(workers=workers, cache_bytes=0, min_bytes=0))):  # fmt: skip
            async with IngestPool(settings) as pool:
                for c in connectors:
                    c.ingest = pool if settings.workers else None
                pids = await pool.warm() if settings.workers else []
                await asyncio.gather(*(c._ingest(b, 1) for c, b in zip(connectors, bodies)))
                got = 0
                cpu, worker_cpu, wall = time.process_time(), _cpu_s(pids), time.perf_counter()
                for _ in range(rounds):
                    results = await asyncio.gather(*(c._ingest(b, 1) for c, b in zip(connectors, bodies)))
                    got += sum(len(r.records) for r in results)
                figures[f"{mode}_loop_us"] = (time.process_time() - cpu) / got * 1e6
                figures[f"{mode}_worker_us"] = (_cpu_s(pids) - worker_cpu) / got * 1e6
                figures[f"{mode}_wall_ms"] = (time.perf_counter() - wall) / rounds * 1000
    return figures


def _load() -> str:
    """The 1-minute load average: noted beside every wall-clock figure (the machine is shared)."""
    return f"{os.getloadavg()[0]:.2f}"


def cpu_figures(rounds: int, records: int, latency_ms: float, workers: int, inline_only: bool) -> None:
    cores = os.cpu_count() or 1
    print(f"issue 14 figures ({cores} cores; this machine is shared: compare ratios within one run; load {_load()})")
    print("broker CPU per target at 0 hits, side by side in one run: aiohttp alone on the same URLs, the broker as")
    print("`yokodan serve` runs it (collector tuned once started, broker/collector.py), and with CPython's collector defaults")
    print(f"{'members':>7} {'aiohttp alone':>13} {'broker':>9} {'above':>8} {'gc defaults':>11} {'wall':>8}  target ≤ {TARGET_CPU_PER_TARGET_US:.0f} µs")
    for count in (60, 600):
        n = max(3, rounds if count <= 60 else rounds // 3)
        with SandboxProcess(member_specs(count, 0.0)) as sandbox:
            alone = asyncio.run(aiohttp_alone_cpu(sandbox, n))
            per_target, wall = asyncio.run(zero_hit_cpu(sandbox, n))
            defaults, _ = asyncio.run(zero_hit_cpu(sandbox, n, serving=False))
        print(
            f"{count:>7} {alone:>11.1f}µs {per_target:>7.1f}µs {per_target - alone:>6.1f}µs {defaults:>9.1f}µs {wall:>6.1f}ms  "
            + verdict(per_target, TARGET_CPU_PER_TARGET_US, " µs")
        )
    modes = {"inline": IngestSettings(workers=0, cache_bytes=0)}
    if not inline_only:
        modes[f"pool x{workers}"] = IngestSettings(workers=workers, cache_bytes=0)
        modes[f"pool x{workers}+cache"] = IngestSettings(workers=workers)  # the same query every round: hits
    print(f"\n60 members x {records} records, {latency_ms:.0f} ms member latency, {rounds} rounds, median wall, load {_load()}")
    print(f"{'mode':<16} {'wall':>8} {'limit':>8} {'wall/limit':>10} {'broker/rec':>10} {'workers/rec':>11} {'rec/search':>10}")
    with SandboxProcess(member_specs(60, latency_ms)) as sandbox:
        results = {mode: asyncio.run(ingest_run(sandbox, records, rounds, s)) for mode, s in modes.items()}
    inline = results["inline"]
    # Physical limit: the slowest member, plus all ingest CPU spread over every core.
    ingest_total_ms = inline["broker_us_per_record"] * inline["records"] / 1000
    limit = latency_ms + ingest_total_ms / cores
    for mode, r in results.items():
        ratio = r["wall_ms"] / limit
        print(
            f"{mode:<16} {r['wall_ms']:>6.1f}ms {limit:>6.1f}ms {ratio:>9.2f}x "
            f"{r['broker_us_per_record']:>8.1f}µs {r['worker_us_per_record']:>9.1f}µs {r['records']:>10.0f}"
            + (f"  ({r['fallbacks']} inline fallbacks)" if r["fallbacks"] else "")
            + f"  wall ≤ 1.5x limit: {verdict(ratio, 1.5, 'x')}"
        )
    print(f"limit = {latency_ms:.0f} ms + {ingest_total_ms:.1f} ms inline broker CPU per search ÷ {cores} cores; load {_load()}")
    if not inline_only:
        with SandboxProcess(member_specs(60, 0.0)) as sandbox:
            b = asyncio.run(burst_ingest(sandbox, records, workers, max(3, rounds // 2)))
        print(f"\ningest alone, a burst of 60 answers x {records} records (no network, no merge), per record:")
        print(f"{'mode':<8} {'on the loop':>11} {'in workers':>10} {'burst wall':>10}")
        for mode in ("inline", "pool"):
            loop_us = b[mode + "_loop_us"]
            print(
                f"{mode:<8} {loop_us:>9.1f}µs {b[mode + '_worker_us']:>8.1f}µs {b[mode + '_wall_ms']:>8.1f}ms"
                + (f"  on the loop ≤ 100 µs/record: {verdict(loop_us, 100, ' µs')}" if mode == "pool" else "")
            )


async def stream_vs_blocking(sandbox: SandboxProcess, records: int, rounds: int) -> tuple[list[float], list[float]]:
    """Finish times (ms) of the blocking search and of the NDJSON stream read to its end, alternated."""
    import aiohttp
    from aiohttp import web

    from broker.admission import AdmissionSettings
    from broker.api import build_app

    generous = AdmissionSettings(client_burst=100_000, client_rate_per_s=100_000.0)  # one bench client, many searches
    runner = web.AppRunner(build_app(bench_consortium(sandbox), admission=generous), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    params = {"q": QUERY.text or "", "page_size": str(records)}
    blocking: list[float] = []
    streamed: list[float] = []
    try:
        async with aiohttp.ClientSession() as client:
            for n in range(rounds + 1):  # the first round warms connections and is not counted
                for path, into in (("/api/v1/search", blocking), ("/api/v1/search/stream", streamed)):
                    started = time.perf_counter()
                    async with client.get(f"http://{host}:{port}{path}", params=params) as response:
                        body = await response.read()
                    assert response.status == 200 and body, (path, response.status)
                    if n:
                        into.append((time.perf_counter() - started) * 1000)
    finally:
        await runner.cleanup()
    return blocking, streamed


def stream_figure(rounds: int, records: int, latency_ms: float) -> None:
    with SandboxProcess(member_specs(60, latency_ms)) as sandbox:
        blocking, streamed = asyncio.run(stream_vs_blocking(sandbox, records, rounds))
    b, s = statistics.median(blocking), statistics.median(streamed)
    print(f"stream vs blocking, 60 members x {records} records, {latency_ms:.0f} ms, {rounds} alternated rounds (median, min-max), load {_load()}:")
    print(f"  blocking {b:6.1f} ms ({min(blocking):.0f}-{max(blocking):.0f})   stream {s:6.1f} ms ({min(streamed):.0f}-{max(streamed):.0f})"
          f"   stream/blocking {s / b:.2f}x  within 10 %: {verdict(s / b, 1.10, 'x')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[12, 60])
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[200.0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--families", action="store_true", help="compare connector families instead")
    parser.add_argument("--cpu", action="store_true", help="issue 14: CPU per target at 0 hits, ingest inline vs pool")
    parser.add_argument("--inline", action="store_true", help="with --cpu: the inline ingest only (before)")
    parser.add_argument("--workers", type=int, default=2, help="with --cpu: ingest worker processes")
    parser.add_argument("--stream", action="store_true", help="only the stream vs blocking figure")
    args = parser.parse_args()
    if args.cpu:  # issue 14's figures in one run: per target, per record, physical limit, stream vs blocking
        cpu_figures(args.rounds, args.records, args.latency_ms[0], args.workers, args.inline)
        stream_figure(args.rounds, args.records, args.latency_ms[0])
        return
    if args.families:
        families(args.rounds, args.records)
        return
    if args.stream:
        stream_figure(args.rounds, args.records, args.latency_ms[0])
        return
    print(f"fan-out benchmark: {args.records} records per member, {args.rounds} rounds, median figures")
    header = (
        f"{'members':>7} {'latency':>8} {'wall':>8} {'p90':>8} {'overhead':>14} {'rec/search':>10} "
        f"{'cpu/rec':>9} {'ingest/rec':>10} {'search/s c1':>11} {'c4':>6} {'c16':>6}"
    )
    print(header)
    for latency in args.latency_ms:
        for count in args.members:
            with SandboxProcess(member_specs(count, latency)) as sandbox:
                r = asyncio.run(measure(sandbox, args.records, latency, args.rounds))
            print(
                f"{count:>7} {latency:>6.0f}ms {r['wall_ms']:>6.1f}ms {r['p90_ms']:>6.1f}ms "
                f"{r['overhead_ms']:>6.1f}ms {r['overhead_pct']:>5.1f}% {r['records']:>10.0f} "
                f"{r['cpu_us_per_record']:>7.1f}µs {r['ingest_us_per_record']:>8.1f}µs "
                f"{r['searches_per_s_c1']:>11.2f} {r['searches_per_s_c4']:>6.2f} {r['searches_per_s_c16']:>6.2f}"
            )
    stream_figure(args.rounds, args.records, args.latency_ms[0])


if __name__ == "__main__":
    main()
