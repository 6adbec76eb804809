"""Two broker nodes on one PostgreSQL union index: node B answers from the cache with works node A learned.

Both nodes are real `python -m broker.cli serve` processes on real sockets, sharing a private
schema of the test PostgreSQL server (`--index postgresql://… --index-schema …`). Node A's
members are the Okayama sandbox (served by this test); node B's consortium points at a port
where nothing listens, so every member of B is unreachable and whatever B shows came from the
shared index.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import SandboxedConsortium
from tests.index_stores import IndexStore

ROOT = Path(__file__).resolve().parent.parent
CONSORTIUM = ROOT / "consortia" / "okayama.toml"
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once
LEARN_DEADLINE_S = 30.0  # A's write-behind commits within ~2 s (its batch delay); a loaded machine is slower


@contextmanager
def broker_node(base_url: str, index_url: str, schema: str, tmp_path: Path, name: str) -> Iterator[str]:
    """A `serve` process on an ephemeral port with the shared index; yields its URL."""
    argv = [
        sys.executable, "-m", "broker.cli", "serve", "--consortium", str(CONSORTIUM), "--base-url", base_url,
        "--port", "0", "--index", index_url, "--index-schema", schema, "--no-ledger", "--ready-line",
    ]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    log = (tmp_path / f"{name}.stderr").open("w")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("READY "):
            process.kill()
            process.wait(10)
            raise AssertionError(f"node {name} did not start: {line!r}; {(tmp_path / f'{name}.stderr').read_text()}")
        yield line.split(" ", 1)[1]
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log.close()


async def stream(session: aiohttp.ClientSession, url: str, **params: str) -> list[dict[str, Any]]:
    async with session.get(f"{url}/api/v1/search/stream", params=params) as response:
        assert response.status == 200, await response.text()
        return [orjson.loads(line) for line in (await response.read()).splitlines() if line.strip()]


async def test_node_b_answers_from_the_cache_with_a_work_node_a_learned(
    okayama_sandbox: SandboxedConsortium, tmp_path: Path
) -> None:
    stores = IndexStore("postgresql", tmp_path)
    index_url, options = stores.location("nodes")
    schema = options["schema"]
    sandbox_url = str(okayama_sandbox.consortium.base_url).rstrip("/")
    try:
        with (
            broker_node(sandbox_url, index_url, schema, tmp_path, "a") as node_a,
            broker_node(NOWHERE, index_url, schema, tmp_path, "b") as node_b,
        ):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                # Before A has searched, B knows nothing and can reach no member.
                before = await stream(session, node_b, author="夏目漱石")
                assert before[0]["type"] == "cached" and before[0]["works"] == []
                assert before[-1]["type"] == "final" and before[-1]["works"] == []
                assert {(t["state"], t["reason"]) for t in before[-1]["targets"]} == {("error", "unreachable")}

                async with session.get(f"{node_a}/api/v1/search", params={"author": "夏目漱石"}) as response:
                    assert response.status == 200
                    learned = await response.json()
                assert {t["state"] for t in learned["targets"]} == {"ok"}
                learned_ids = sorted(w["work_id"] for w in learned["works"])
                assert 1 < len(learned_ids) < 20, "every work A learned fits on B's first cached page"

                # A's writer commits behind its answer; B sees the shared index as soon as it lands.
                deadline = time.monotonic() + LEARN_DEADLINE_S
                while True:
                    lines = await stream(session, node_b, author="夏目漱石")
                    if lines[0]["works"] or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                cached, final = lines[0], lines[-1]
                assert cached["type"] == "cached"
                assert sorted(w["work_id"] for w in cached["works"]) == learned_ids
                assert cached["total"] == len(learned_ids)
                assert all(w["cached"] is True and 0 <= w["age_s"] < LEARN_DEADLINE_S + 5 for w in cached["works"])
                by_id = {w["work_id"]: w for w in learned["works"]}
                assert all(w["title"] == by_id[w["work_id"]]["title"] for w in cached["works"])
                # What B shows is the cache: its members were unreachable (by now their circuits are open).
                assert final["type"] == "final"
                assert {(t["state"], t["reason"]) for t in final["targets"]} <= {
                    ("error", "unreachable"),
                    ("skipped", "circuit_open"),
                }, final["targets"]
    finally:
        stores.drop()


def test_index_option_takes_only_a_postgresql_url(capsys: Any) -> None:
    from broker.cli import EXIT_USER_ERROR, main

    base = ["serve", "--consortium", str(CONSORTIUM), "--no-ledger", "--port", "0"]
    assert main([*base, "--index", str(ROOT / "var" / "somewhere")]) == EXIT_USER_ERROR
    assert "--index: expected a postgresql://… URL (a whoosh directory is --index-dir)" in capsys.readouterr().err
    assert main([*base, "--index", "postgresql://127.0.0.1/test", "--no-index"]) == EXIT_USER_ERROR
    assert "give one of --index, --index-dir and --no-index" in capsys.readouterr().err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*base, "--index", "postgresql://127.0.0.1/test", "--index-schema", "Bad-Name"]) == EXIT_USER_ERROR
        gc.collect()
    assert "lower-case SQL identifier" in capsys.readouterr().err
    # The start-up that failed had opened the member HTTP client: it is closed, not left to the collector.
    assert [str(w.message) for w in caught if "Unclosed" in str(w.message)] == []
