"""What a portal key costs a request: the key check alone, and whole requests with and without a key.

  verify            KeyStore.verify of a live key among N keys (id lookup + one SHA-256 + compare_digest)
  verify (scrypt)   for scale: what one scrypt check (n=2**14, r=8, p=1) would cost instead
  /api/v1/members   requests over a real socket: anonymous, with X-Api-Key, with a wrong key (401),
                    interleaved in one run so the ratios compare like with like

    python3 bench/portal_keys.py [--keys 1000] [--requests 2000]

The machine is shared: compare the ratios of one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from broker.api import build_app  # noqa: E402
from broker.consortium import load_consortium  # noqa: E402
from broker.http_server import bound_port, start_server  # noqa: E402
from broker.portals.keys import KeyStore, add_key, new_key  # noqa: E402
from broker.portals.keys import _write as write_keys  # noqa: E402


def time_verify(store: KeyStore, key: str, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        store.verify(key)
    return (time.perf_counter() - started) / rounds * 1e6


async def requests(url: str, count: int, headers_by_mode: dict[str, dict[str, str]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {mode: [] for mode in headers_by_mode}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            for mode, headers in headers_by_mode.items():  # interleaved: each mode sees the same machine
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                times[mode].append((time.perf_counter() - started) * 1e3)
    return times


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keys.toml"
        made = [new_key(f"portal {n}") for n in range(args.keys - 1)]
        write_keys(path, [record for record, _ in made])  # one write for the many
        _, full = add_key(path, lambda taken: new_key("measured", taken=taken))
        consortium = load_consortium()
        store = KeyStore(path, consortium_id=consortium.id, member_ids=[m.id for m in consortium.members])
        store.verify(full)
        print(f"verify, {args.keys} keys: {time_verify(store, full, 20_000):.2f} µs per check")
        started = time.perf_counter()
        hashlib.scrypt(b"x" * 43, salt=b"s" * 16, n=2**14, r=8, p=1)
        print(f"one scrypt check instead (n=2**14, r=8, p=1): {(time.perf_counter() - started) * 1e3:.1f} ms")
        runner = await start_server(build_app(consortium, portal_keys=path), "127.0.0.1", 0)
        try:
            url = f"http://127.0.0.1:{bound_port(runner)}/api/v1/members"
            modes = {"anonymous": {}, "with key": {"X-Api-Key": full}, "wrong key (401)": {"X-Api-Key": full[:-1] + "A"}}
            await requests(url, 50, modes)  # warm up
            times = await requests(url, args.requests, modes)
        finally:
            await runner.cleanup()
    base = statistics.median(times["anonymous"])
    for mode, samples in times.items():
        samples.sort()
        p99 = samples[int(len(samples) * 0.99) - 1]
        print(f"GET /api/v1/members {mode:>16}: p50 {statistics.median(samples):.3f} ms  p99 {p99:.3f} ms  "
              f"p50 ratio to anonymous {statistics.median(samples) / base:.3f}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args()))
