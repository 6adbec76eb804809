"""Progressive search sessions: delivery latency (member answer → client) and memory per open search.

The sandbox's 60 SRU members run in a process of their own (bench/fanout.py's SandboxProcess); member i
answers after 100 + 10·i ms, so answers arrive spread over 0.1–0.7 s. The broker app and the clients
share this process's event loop (the clients' own parsing is counted in the latency: the figure is an
upper bound). `--searches` sessions are opened one after another, half followed by long-poll
(GET …?version=N&timeout=20), half by SSE (GET …/events); none is deleted, so at the end that many are
open and the later searches run beside them. For each member answer a client receives, delivery =
received by the client − the moment the member's connector returned its parsed records in the broker
(merge, serialisation, diff, wake-up, HTTP and the client's parse are in it; the member's own time and
the parse of its XML are not).

Memory: the same number of finished sessions, opened again with tracemalloc on; Python memory held
after they are done (gc'd), divided by the sessions, beside the bytes of serialised state each keeps.

These machines are shared with other work: figures vary from run to run; compare within one run.

Usage: python3 bench/progressive.py [--searches 200] [--concurrency 8] [--records 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.fanout import QUERY, SandboxProcess, bench_consortium, member_specs  # noqa: E402
from broker.admission import AdmissionSettings  # noqa: E402
from broker.api import build_app  # noqa: E402
from broker.sessions.routes import SESSIONS_KEY  # noqa: E402
from broker.sessions.settings import SessionSettings  # noqa: E402
from connectors.sru import SRUConnector  # noqa: E402

# When each member's answer was in the broker (its connector returned, records parsed): the start of
# "delivery". One search runs at a time (--concurrency 1), so a member id names the answer.
ANSWERED: dict[str, float] = {}
_search = SRUConnector.search


async def _timed_search(self, query):  # type: ignore[no-untyped-def]
    result = await _search(self, query)
    ANSWERED[self.member] = time.perf_counter()
    return result


SRUConnector.search = _timed_search  # type: ignore[method-assign]

MEMBERS = 60


def latency_of(index: int) -> float:
    return 100.0 + 10.0 * index


def specs():  # type: ignore[no-untyped-def]
    members = member_specs(MEMBERS, 0.0)
    return [m.model_copy(update={"latency_ms": latency_of(i)}) for i, m in enumerate(members)]


async def follow_poll(http: aiohttp.ClientSession, url: str, on_diff) -> None:  # type: ignore[no-untyped-def]
    version = 0
    while True:
        async with http.get(url, params={"version": str(version), "timeout": "20"}) as response:
            diff = orjson.loads(await response.read())
        on_diff(diff)
        version = diff["version"]
        if diff["done"]:
            return


async def follow_sse(http: aiohttp.ClientSession, url: str, on_diff) -> None:  # type: ignore[no-untyped-def]
    buffer = b""
    async with http.get(url + "/events") as response:
        async for chunk in response.content.iter_any():  # a diff is one long data line: no line-length limit here
            buffer += chunk
            *events, buffer = buffer.split(b"\r\n\r\n")
            for event in events:
                data = next((line[6:] for line in event.split(b"\r\n") if line.startswith(b"data: ")), None)
                if data is None:
                    continue  # a keep-alive comment
                diff = orjson.loads(data)
                on_diff(diff)
                if diff["done"]:
                    return


async def one_session(http: aiohttp.ClientSession, base: str, records: int, via: str, delays: list[float]) -> None:
    ANSWERED.clear()
    async with http.post(f"{base}/api/v1/searches", json={"q": QUERY.text, "page_size": records}) as response:
        assert response.status == 201, await response.text()
        created = await response.json()

    def on_diff(diff: dict) -> None:
        now = time.perf_counter()
        for status in diff["finished"]:
            delays.append((now - ANSWERED[status["member"]]) * 1000)

    follow = follow_poll if via == "poll" else follow_sse
    await follow(http, f"{base}{created['links']['self']}", on_diff)


async def run(sandbox: SandboxProcess, searches: int, concurrency: int, records: int, *, traced: bool) -> dict[str, float]:
    generous = AdmissionSettings(max_searches=searches, client_burst=100_000, client_rate_per_s=100_000.0)
    sessions = SessionSettings(max_sessions=searches + 10, idle_expiry_s=3600)
    app = build_app(bench_consortium(sandbox), admission=generous, sessions=sessions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    delays: dict[str, list[float]] = {"poll": [], "sse": []}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            await one_session(http, base, records, "poll", [])  # warm the members' connections
            await http.delete(f"{base}/api/v1/searches/{next(iter(app[SESSIONS_KEY]._sessions))}")
            gc.collect()
            if traced:
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
            queue = list(range(searches))

            async def worker() -> None:
                while queue:
                    n = queue.pop()
                    via = "poll" if n % 2 == 0 else "sse"
                    await one_session(http, base, records, via, delays[via])

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            store = app[SESSIONS_KEY]
            assert len(store) == searches, len(store)
            gc.collect()
            result: dict[str, float] = {"open": len(store), "elapsed_s": elapsed}
            state = [s.nbytes() for s in store._sessions.values()]
            result["state_kb"] = statistics.mean(state) / 1024
            if traced:
                held = tracemalloc.get_traced_memory()[0] - before
                if "--top" in sys.argv:
                    for stat in tracemalloc.take_snapshot().statistics("lineno")[:12]:
                        print(stat)
                tracemalloc.stop()
                result["held_kb"] = held / searches / 1024
            for via, values in delays.items():
                values.sort()
                result[f"{via}_p50"] = values[len(values) // 2]
                result[f"{via}_p99"] = values[min(len(values) - 1, int(len(values) * 0.99))]
                result[f"{via}_n"] = len(values)
    finally:
        await runner.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1, help="searches running at once (1: delivery is timed exactly)")
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--top", action="store_true", help="print where the held memory was allocated")
    args = parser.parse_args()
    with SandboxProcess(specs()) as sandbox:
        timing = asyncio.run(run(sandbox, args.searches, args.concurrency, args.records, traced=False))
        memory = asyncio.run(run(sandbox, args.searches, args.concurrency, args.records, traced=True))
    print(f"progressive search sessions: {MEMBERS} members x up to {args.records} records, members answer at 100-690 ms,")
    print(f"{args.searches} sessions ({args.concurrency} running at a time), half long-poll, half SSE; all left open")
    print(f"  open at the end: {timing['open']:.0f}   wall {timing['elapsed_s']:.1f} s")
    for via in ("poll", "sse"):
        print(f"  delivery {via:>4} (member answer in the broker -> client): p50 {timing[via + '_p50']:6.1f} ms   "
              f"p99 {timing[via + '_p99']:6.1f} ms   ({timing[via + '_n']:.0f} answers)")  # fmt: skip
    print(f"  memory per open finished session: {memory['held_kb']:.0f} KB held (tracemalloc), "
          f"of which {memory['state_kb']:.0f} KB serialised works and statuses")  # fmt: skip


if __name__ == "__main__":
    main()
