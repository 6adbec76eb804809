"""Soak the broker: a burst of concurrent searches, a steady rate, then idle (issue 12).

    python3 bench/soak.py [--burst 200] [--rate 10] [--steady-s 600] [--idle-s 60] [--latency-ms 200]

The sandbox members (the shipped Okayama network, each answering after --latency-ms) run in one
child process, the broker (`yokodan serve`) in another, and the load from this one, so that the
broker is what is measured. Searches come from many loopback addresses (127.0.0.2 …) because the
broker limits each client address. Prints latency p50/p95/p99 per phase, answers by HTTP status,
member outcomes by reason, breaker openings of (healthy) members, the broker's event-loop lag
(from /healthz), its RSS and open descriptors over time (from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fanout import SandboxProcess  # noqa: E402
from broker.consortium import load_consortium  # noqa: E402
from broker.demo import CONSORTIA_DIR, sandbox_members  # noqa: E402

WORDS = ["夏目漱石", "猫", "森鴎外", "宮沢賢治", "芥川", "太宰治", "岡山", "桃太郎", "歴史", "料理", "旅", "海", "山", "星"]
CLIENT_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 252)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(a, 0), limit=0)) for a in CLIENT_ADDRESSES
        ]
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.reasons: collections.Counter[str] = collections.Counter()
        self.opened: set[str] = set()
        self.n = 0

    async def one(self, phase: str) -> None:
        self.n += 1
        session = self.sessions[self.n % len(self.sessions)]
        query = f"{WORDS[self.n % len(WORDS)]} {WORDS[(self.n // len(WORDS)) % len(WORDS)]}"
        started = time.perf_counter()
        try:
            async with session.get(f"{self.url}/api/v1/search", params={"q": query}) as response:
                body = await response.read()
                status = response.status
        except aiohttp.ClientError as error:
            self.statuses[phase][type(error).__name__] += 1  # type: ignore[index]
            return
        self.latencies[phase].append(time.perf_counter() - started)
        self.statuses[phase][status] += 1
        if status == 200:
            for target in orjson.loads(body)["targets"]:
                self.reasons[f"{target['state']}:{target['reason'] or '-'}"] += 1
                if target.get("circuit") == "open" or target["reason"] == "circuit_open":
                    self.opened.add(target["member"])

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49] * 1000:.0f} ms  p95 {q[94] * 1000:.0f} ms  p99 {q[98] * 1000:.0f} ms  (n={len(values)})"


async def health(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(f"{url}/healthz") as response:
        return orjson.loads(await response.read())


async def soak(args: argparse.Namespace, url: str, pid: int) -> None:
    load = Load(url)
    samples: list[tuple[float, float, int, float]] = []  # t, rss MiB, fds, max lag ms
    started = time.monotonic()
    async with aiohttp.ClientSession() as probe:

        async def sample() -> None:
            h = await health(probe, url)
            samples.append((time.monotonic() - started, rss_mib(pid), open_fds(pid), h["event_loop"]["max_lag_ms"]))

        await sample()
        await asyncio.gather(*(load.one("warm") for _ in range(20)))
        await sample()
        warm_rss = samples[-1][1]
        await asyncio.gather(*(load.one("burst") for _ in range(args.burst)))
        await sample()
        tasks: list[asyncio.Task[None]] = []
        steady_end = time.monotonic() + args.steady_s
        next_sample = time.monotonic() + 5
        while time.monotonic() < steady_end:
            tasks.append(asyncio.create_task(load.one("steady")))
            await asyncio.sleep(1 / args.rate)
            if time.monotonic() >= next_sample:
                await sample()
                next_sample += 5
        await asyncio.gather(*tasks)
        await sample()
        await asyncio.sleep(args.idle_s)
        await sample()
    await load.close()
    for phase in ("warm", "burst", "steady"):
        print(f"{phase:>6}: {percentiles(load.latencies[phase])}  statuses {dict(load.statuses[phase])}")
    fivexx = sum(n for c in load.statuses.values() for s, n in c.items() if isinstance(s, int) and s >= 500)
    print(f"5xx answers: {fivexx}")
    print(f"member outcomes: {dict(load.reasons.most_common())}")
    print(f"breaker openings of healthy members: {len(load.opened)} {sorted(load.opened)}")
    print(f"event-loop lag max: {samples[-1][3]:.0f} ms")
    print("t(s)   RSS MiB  fds")
    for t, rss, fds, _ in samples:
        print(f"{t:6.0f} {rss:8.1f} {fds:4d}")
    print(f"RSS after idle vs warm: {samples[-1][1]:.1f} / {warm_rss:.1f} MiB = {samples[-1][1] / warm_rss - 1:+.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="searches per second in the steady phase")
    parser.add_argument("--steady-s", type=float, default=600)
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--latency-ms", type=float, default=200)
    args = parser.parse_args()
    consortium = load_consortium()
    with SandboxProcess(sandbox_members(consortium, latency_ms=args.latency_ms)) as sandbox:
        port = free_port()
        broker = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "serve", "--consortium", str(CONSORTIA_DIR / "okayama.toml"),
             "--base-url", sandbox.base_url, "--port", str(port), "--no-index"],
            cwd=ROOT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(_wait_then_soak(args, url, broker.pid))
        finally:
            broker.terminate()
            broker.wait(timeout=10)


async def _wait_then_soak(args: argparse.Namespace, url: str, pid: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                await health(session, url)
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    await soak(args, url, pid)


if __name__ == "__main__":
    main()
