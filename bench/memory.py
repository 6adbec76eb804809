"""Where the broker's memory goes under load: tracemalloc sites and object counts, before/after (issue 12).

    python3 bench/memory.py [--searches 2000] [--concurrency 20] [--idle-s 30] [--latency-ms 20] [--no-index]

The broker (build_app with a whoosh union index in a temporary directory, as `yokodan serve` runs
it) runs in this process under tracemalloc; the sandbox members run in a child process and the
load comes from another child, so that neither's allocations are counted. Snapshots are taken after
a warm-up, after the load, and after an idle pause (each after gc.collect()); the script prints the
allocation sites that grew most (file:line, KiB and blocks), the growth of object counts by type
(our types and the containers), and RSS at each step, then RSS after glibc's malloc_trim(0).
tracemalloc itself roughly doubles allocation costs and adds its own memory: read sizes, not RSS, here.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from functools import partial
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fanout import SandboxProcess  # noqa: E402
from bench.soak import CLIENT_ADDRESSES, WORDS, rss_mib  # noqa: E402
from broker.api import SEARCH_KEY, build_app  # noqa: E402
from broker.consortium import load_consortium  # noqa: E402
from broker.demo import sandbox_members  # noqa: E402
from broker.http_server import bound_port, start_server  # noqa: E402
from broker.memory import trim_native_heap  # noqa: E402
from index.store import UnionIndex  # noqa: E402

OURS = ("yokodan.", "broker.", "connectors.", "index.", "whoosh.")


def queries(n: int, offset: int) -> list[str]:
    """Two-word queries over the sandbox's vocabulary, cycling through all 196 pairs, then single words
    with a page each (so caches keyed on the query meet new keys, as on a real day)."""
    pairs = [f"{a} {b}" for a in WORDS for b in WORDS]
    return [pairs[(i + offset) % len(pairs)] for i in range(n)]


async def load(url: str, n: int, concurrency: int, offset: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    statuses: collections.Counter[int] = collections.Counter()
    # Many loopback addresses: the broker limits searches per client address.
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(a, 0))) for a in CLIENT_ADDRESSES]

    async def one(n: int, q: str) -> None:
        async with gate, sessions[n % len(sessions)].get(f"{url}/api/v1/search", params={"q": q}) as response:
            await response.read()
            statuses[response.status] += 1

    await asyncio.gather(*(one(n, q) for n, q in enumerate(queries(n, offset))))
    for session in sessions:
        await session.close()
    print(f"load: statuses {dict(statuses)}", flush=True)


def load_in_child(url: str, n: int, concurrency: int, offset: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--load", url, "--searches", str(n), "--concurrency", str(concurrency),
         "--offset", str(offset)],
        cwd=ROOT,
    )  # fmt: skip


def rss_parts(pid: int) -> str:
    """Anonymous (heap) vs file-backed (mapped files: whoosh maps its segments) resident memory."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return ", ".join(f"{k} {v:.1f}" for k, v in fields.items())


def deleted_open(pid: int) -> int:
    """Descriptors and mappings of files that were deleted (segments merged away but still held)."""
    fds = sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if _readlink(fd).endswith("(deleted)"))
    maps = sum(1 for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if line.endswith("(deleted)"))
    return fds + maps


def _readlink(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return ""


def type_counts() -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        module = kind.__module__ if isinstance(kind.__module__, str) else ""
        if module.startswith(OURS) or kind in (dict, list, tuple, set, bytes, str, frozenset):
            counts[f"{module}.{kind.__qualname__}"] += 1
    return counts


async def wait_child(child: subprocess.Popen[bytes]) -> None:
    while child.poll() is None:
        await asyncio.sleep(0.2)


async def measure(args: argparse.Namespace, base_url: str) -> None:
    consortium = load_consortium().with_base_url(base_url)
    with tempfile.TemporaryDirectory(prefix="yokodan-memory-") as tmp:
        open_index = None if args.no_index else partial(UnionIndex.open, Path(tmp) / "index")
        runner = await start_server(build_app(consortium, open_index=open_index), "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(runner)}"
        import os

        pid = os.getpid()
        steps: list[tuple[str, float, tracemalloc.Snapshot, collections.Counter[str]]] = []

        app = runner.app

        def step(name: str) -> None:
            gc.collect()
            steps.append((name, rss_mib(pid)[0], tracemalloc.take_snapshot(), type_counts()))
            index = app[SEARCH_KEY].index
            works = index.stats().doc_count if index is not None else 0
            print(
                f"{name:>14}: RSS {steps[-1][1]:.1f} MiB ({rss_parts(pid)}), traced "
                f"{tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB, deleted files open {deleted_open(pid)}, "
                f"threads {threading.active_count()}, union index {works} works",
                flush=True,
            )

        await wait_child(load_in_child(url, 100, args.concurrency, 0))
        step("warm")
        started = time.perf_counter()
        await wait_child(load_in_child(url, args.searches, args.concurrency, 100))
        print(f"{args.searches} searches in {time.perf_counter() - started:.1f} s")
        step("after load")
        await asyncio.sleep(args.idle_s)
        step("after idle")
        await runner.cleanup()
        step("after cleanup")
    warm, idle = steps[0], steps[2]
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    diff = idle[2].filter_traces(filters).compare_to(warm[2].filter_traces(filters), "lineno")
    print(f"\ntop allocation sites, after idle vs warm (+{sum(d.size_diff for d in diff) / 2**20:.1f} MiB traced in all):")
    for stat in diff[: args.top]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {_short(frame.filename)}:{frame.lineno}")
    grown = {k: idle[3][k] - warm[3][k] for k in idle[3]}
    print("\nobject counts, after idle vs warm (largest growth):")
    for name, delta in sorted(grown.items(), key=lambda item: -item[1])[: args.top]:
        if delta > 0:
            print(f"  {delta:+8d}  {name}  (now {idle[3][name]})")
    before = rss_mib(pid)[0]
    trimmed = trim_native_heap()
    print(f"\nRSS warm {warm[1]:.1f} MiB, after load {steps[1][1]:.1f}, after idle {idle[1]:.1f}, "
          f"after cleanup {before:.1f}, after malloc_trim(0) {rss_mib(pid)[0]:.1f} (trim {'ran' if trimmed else 'unavailable'})")  # fmt: skip


def _short(filename: str) -> str:
    for marker in ("/site-packages/", str(ROOT) + "/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=30)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-index", action="store_true")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the load child's entry point
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        asyncio.run(load(args.load, args.searches, args.concurrency, args.offset))
        return
    tracemalloc.start(1)
    with SandboxProcess(sandbox_members(load_consortium(), latency_ms=args.latency_ms)) as sandbox:
        asyncio.run(measure(args, sandbox.base_url))


if __name__ == "__main__":
    main()
