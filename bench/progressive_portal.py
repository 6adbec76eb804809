"""The portals of bench/progressive.py: a process of their own that runs search sessions against a broker.

A real portal is another process on another machine; here it is another process on this one, so its
HTTP client and JSON parsing neither count in the broker's latency nor compete with its event loop.
Each diff is stamped with time.monotonic() as soon as its bytes are in (before it is parsed): on Linux
that is CLOCK_MONOTONIC, one clock for every process, so the broker can subtract its own stamps.

Sessions run `--concurrency` at a time, alternately followed by long-poll (GET …?version=N&timeout=20)
and SSE (GET …/events); none is deleted. At the end one JSON object goes to `--out` (default stdout):
{"sessions": [{"id", "via", "received": {member: monotonic}}], "cpu_s": this process's CPU time}.

Usage: python3 bench/progressive_portal.py BASE_URL [--searches 200] [--concurrency 1] [--records 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fanout import QUERY  # noqa: E402

OnDiff = Callable[[dict, float], None]  # a parsed diff, and when its bytes arrived (monotonic)


async def follow_poll(http: aiohttp.ClientSession, url: str, on_diff: OnDiff) -> None:
    version = 0
    while True:
        async with http.get(url, params={"version": str(version), "timeout": "20"}) as response:
            body = await response.read()
        arrived = time.monotonic()
        diff = orjson.loads(body)
        on_diff(diff, arrived)
        version = diff["version"]
        if diff["done"]:
            return


async def follow_sse(http: aiohttp.ClientSession, url: str, on_diff: OnDiff) -> None:
    pending: list[bytes] = []  # the chunks of an event not yet complete (a big diff comes in many)
    async with http.get(url + "/events") as response:
        async for chunk in response.content.iter_any():  # a diff is one long data line: no line-length limit here
            arrived = time.monotonic()
            if b"\r\n\r\n" not in chunk and not (pending and b"\r\n\r\n" in pending[-1][-3:] + chunk[:3]):
                pending.append(chunk)  # joined once, when the event ends: not re-scanned per chunk
                continue
            *events, rest = b"".join((*pending, chunk)).split(b"\r\n\r\n")
            pending = [rest] if rest else []
            for event in events:
                data = next((line[6:] for line in event.split(b"\r\n") if line.startswith(b"data: ")), None)
                if data is None:
                    continue  # a keep-alive comment
                diff = orjson.loads(data)
                on_diff(diff, arrived)
                if diff["done"]:
                    return


async def one_session(http: aiohttp.ClientSession, base: str, records: int, via: str) -> dict:
    async with http.post(f"{base}/api/v1/searches", json={"q": QUERY.text, "page_size": records}) as response:
        assert response.status == 201, await response.text()
        created = await response.json()
    received: dict[str, float] = {}

    def on_diff(diff: dict, arrived: float) -> None:
        for status in diff["finished"]:
            received.setdefault(status["member"], arrived)

    follow = follow_poll if via == "poll" else follow_sse
    await follow(http, f"{base}{created['links']['self']}", on_diff)
    return {"id": created["id"], "via": via, "received": received}


async def run(base: str, searches: int, concurrency: int, records: int) -> list[dict]:
    queue = list(range(searches))
    done: list[dict] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:

        async def portal() -> None:
            while queue:
                n = queue.pop(0)
                done.append(await one_session(http, base, records, "poll" if n % 2 == 0 else "sse"))

        await asyncio.gather(*(portal() for _ in range(concurrency)))
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--out", help="write the receipts to this file")
    args = parser.parse_args()
    sessions = asyncio.run(run(args.base, args.searches, args.concurrency, args.records))
    receipts = orjson.dumps({"sessions": sessions, "cpu_s": time.process_time()}) + b"\n"
    if args.out:
        Path(args.out).write_bytes(receipts)
    else:
        sys.stdout.buffer.write(receipts)


if __name__ == "__main__":
    main()
