"""Does parsing a multi-MB SRU answer stall the event loop, and does moving it off the loop help?

The body is served by `python3 -m http.server` in another process (so serving it
costs the measured loop nothing). In the measured process one SRU search fetches
and parses the big body while a "small request" probe keeps asking for a 2 KB file
every 5 ms, as other patrons' searches would. Reported per mode:

  slow callbacks   asyncio debug mode's slow-callback log (loop.slow_callback_duration = 20 ms)
  max loop lag     the longest a 1 ms sleep overslept
  probe p50/max    latency of the small requests issued while the big one parsed
  parse wall       the big search's own duration

Modes: `inline` (parse on the loop, as before), `thread` (asyncio.to_thread),
`process` (a ProcessPoolExecutor; the Records are pickled back), and `shipped`
(`SRUConnector.search_cql` as it is now: connectors.offload decides by size).

    python3 bench/parse_stall.py [--mb 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors import HttpClient  # noqa: E402
from connectors.base import SearchResult  # noqa: E402
from connectors.settings import TargetSettings  # noqa: E402
from connectors.sru import SRUConnector  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "sru-marcxml-ndl.xml"
SLOW_CALLBACK_S = 0.020


def big_body(target_mb: float) -> bytes:
    """A valid SRU MARCXML answer of ~target_mb: 100 records, each with as many 852 copies as it takes."""
    text = DATA.read_text()
    head, rest = text.split("<zs:record>", 1)
    record, tail = rest.split("</zs:record>", 1)
    copy = '<datafield tag="852" ind1=" " ind2=" "><subfield code="a">中央図書館</subfield><subfield code="h">913.6</subfield><subfield code="p">T{n:06d}</subfield><subfield code="z">貸出可</subfield></datafield>'
    copies_per_record = max(1, int(target_mb * 1024 * 1024 / 100 / len(copy.encode())))
    records = []
    for r in range(100):
        copies = "".join(copy.format(n=r * copies_per_record + i) for i in range(copies_per_record))
        records.append("<zs:record>" + record.replace("</record>", copies + "</record>") + "</zs:record>")
    # keep whatever followed the first record's closing tag (records end, envelope end)
    tail_after_records = tail[tail.index("</zs:records>") :]
    return (head + "".join(records) + tail_after_records).encode()


SETTINGS = TargetSettings(member="big", kind="sru", endpoint="http://127.0.0.1/", timeout_s=60)


def parse_in_worker(body: bytes) -> SearchResult:
    return SRUConnector(SETTINGS, HttpClient()).parse_response(body)


class SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.durations: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing") and "took" in message:
            self.durations.append(float(message.rsplit("took ", 1)[1].split(" ")[0]))


async def one_run(mode: str, base: str, pool: ProcessPoolExecutor | None, slow: SlowCallbacks) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    async with HttpClient(max_body_bytes=64 * 1024 * 1024) as http:
        settings = SETTINGS.model_copy(update={"endpoint": f"{base}/big.xml"})
        connector = SRUConnector(settings, http)
        await http.get(f"{base}/small.xml", member="probe", timeout_s=5)  # warm the connection
        done = asyncio.Event()
        lags: list[float] = []
        probes: list[float] = []

        async def lag_meter() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - started - 0.001)

        async def prober() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await http.get(f"{base}/small.xml", member="probe", timeout_s=5)
                probes.append(time.perf_counter() - started)
                await asyncio.sleep(0.005)

        async def big_search() -> float:
            started = time.perf_counter()
            if mode == "shipped":
                result = await connector.search_cql("dc.title=x", maximum=100)
                assert len(result.records) == 100
                return time.perf_counter() - started
            response = await http.get(settings.endpoint, member="big", timeout_s=60, max_body_bytes=64 * 1024 * 1024)
            if mode == "inline":
                result = connector.parse_response(response.body)
            elif mode == "thread":
                result = await asyncio.to_thread(connector.parse_response, response.body)
            else:
                result = await loop.run_in_executor(pool, parse_in_worker, response.body)
            assert len(result.records) == 100
            return time.perf_counter() - started

        slow.durations.clear()
        meters = [asyncio.create_task(lag_meter()), asyncio.create_task(prober())]
        await asyncio.sleep(0.05)
        wall = await big_search()
        await asyncio.sleep(0.05)
        done.set()
        await asyncio.gather(*meters)
    return {
        "slow_callbacks": len(slow.durations),
        "worst_callback_ms": max(slow.durations, default=0.0) * 1000,
        "max_lag_ms": max(lags) * 1000,
        "probe_p50_ms": statistics.median(probes) * 1000,
        "probe_max_ms": max(probes) * 1000,
        "parse_wall_ms": wall * 1000,
    }


async def main_async(mb: float, runs: int) -> None:
    body = big_body(mb)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "big.xml").write_bytes(body)
        Path(tmp, "small.xml").write_bytes(DATA.read_bytes()[:2048])
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", tmp],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            line = server.stdout.readline() if server.stdout else ""
            port = int(line.split("port ")[1].split(" ")[0])
            base = f"http://127.0.0.1:{port}"
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = SLOW_CALLBACK_S
            slow = SlowCallbacks()
            logging.getLogger("asyncio").addHandler(slow)
            logging.getLogger("asyncio").setLevel(logging.WARNING)
            logging.getLogger("asyncio").propagate = False
            print(f"body {len(body) / 1e6:.1f} MB, 100 records; slow-callback threshold {SLOW_CALLBACK_S * 1000:.0f} ms; medians of {runs} runs")
            with ProcessPoolExecutor(max_workers=1) as pool:
                await loop.run_in_executor(pool, parse_in_worker, body)  # start the worker, import lxml there
                for mode in ("inline", "thread", "process", "shipped"):
                    results = [await one_run(mode, base, pool, slow) for _ in range(runs)]
                    summary = {k: statistics.median(r[k] for r in results) for k in results[0]}
                    print(
                        f"{mode:>8}: slow callbacks {summary['slow_callbacks']:.0f} (worst {summary['worst_callback_ms']:.0f} ms), "
                        f"max loop lag {summary['max_lag_ms']:.0f} ms, probe p50 {summary['probe_p50_ms']:.1f} ms "
                        f"max {summary['probe_max_ms']:.0f} ms, big search {summary['parse_wall_ms']:.0f} ms"
                    )
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main_async(args.mb, args.runs))


if __name__ == "__main__":
    main()
