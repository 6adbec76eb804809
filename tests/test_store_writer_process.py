"""The union index's writer process (index/store/writer_process.py, writer_child.py).

Over the real whoosh index in tmp directories and real processes: commits made in the
writer process are seen by this process's searches; a writer killed with SIGKILL is
noticed and restarted, its batch put back (or counted lost when it kills the writer
twice), searches never fail meanwhile; close() and a killed broker leave no writer
process; the searchers release the segment files commits merged away; the app's
cleanup closes it in order and /healthz shows it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broker.api import build_app
from broker.http_server import bound_port, start_server
from index.store import MERGE_FACTOR, UnionIndex
from index.store.writer_child import WRITER_NICENESS
from tests.conftest import SandboxedConsortium
from tests.writer_hooks import CommitGate
from yokodan import Availability, Holding, Record, SearchQuery, Work

ROOT = Path(__file__).resolve().parents[1]


def work(n: int, title: str = "耐障害性試験の本", member: str = "okayama-city") -> Work:
    holding = Holding(member=member, branch_id=f"{member}/chuo", availability=Availability.AVAILABLE, status_text="貸出可")
    record = Record(member=member, local_id=f"r{n}", title=f"{title} 第{n}巻", authors=["試験, 太郎"], holdings=[holding])
    return Work(work_id=f"k{n}", title=f"{title} 第{n}巻", authors=["試験, 太郎"], records=[record])


def works(start: int, count: int, title: str = "耐障害性試験の本") -> list[Work]:
    return [work(n, title) for n in range(start, start + count)]


def ids(ix: UnionIndex, text: str) -> list[str]:
    return sorted(w.work_id for w in ix.search(SearchQuery(text=text), limit=5000, facets=False).works)


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def deleted_index_files(path: Path) -> list[str]:
    """Files under `path` this process still holds (descriptors or mappings) although deleted."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(path)) and target.endswith("(deleted)"):
            held.append(target)
    for line in Path("/proc/self/maps").read_text().splitlines():
        if str(path) in line and line.endswith("(deleted)"):
            held.append(line.split(None, 5)[-1])
    return sorted(set(held))


@pytest.fixture
def open_index(tmp_path: Path) -> Iterator[Callable[..., UnionIndex]]:
    opened: list[UnionIndex] = []

    def _open(name: str = "ix", **kwargs: Any) -> UnionIndex:
        kwargs.setdefault("batch_delay_s", 0.01)
        ix = UnionIndex.open(tmp_path / name, **kwargs)
        opened.append(ix)
        return ix

    yield _open
    for ix in opened:
        ix.close(timeout=30)


def record_pid(directory: str) -> None:
    """before_commit: note which process commits."""
    Path(directory, f"committed-by-{os.getpid()}").touch()


class TestCommitsInTheWriterProcess:
    def test_commit_from_the_child_is_visible_to_this_process(self, open_index: Callable[..., UnionIndex], tmp_path: Path) -> None:
        ix = open_index(before_commit=partial(record_pid, str(tmp_path)))
        ix.submit(works(0, 30))
        assert ix.flush(60), ix.stats()
        stats = ix.stats()
        assert stats.writer == "process" and stats.last_error is None
        assert stats.writer_pid is not None and stats.writer_pid != os.getpid() and alive(stats.writer_pid)
        # Below the broker's CPU priority: searches come first on a busy machine.
        assert os.getpriority(os.PRIO_PROCESS, stats.writer_pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICENESS)
        # The commit ran in the writer process, not here, and this process's search sees it.
        assert [p.name for p in tmp_path.glob("committed-by-*")] == [f"committed-by-{stats.writer_pid}"]
        assert ids(ix, "耐障害性試験") == sorted(f"k{n}" for n in range(30))
        assert stats.doc_count == 30 and stats.commits == 1
        ix.submit([work(5, "差し替えた本")])  # a replace by work id, merged in the child
        assert ix.flush(60)
        assert ids(ix, "差し替え") == ["k5"] and "k5" not in ids(ix, "耐障害性試験")
        assert ix.stats().doc_count == 30

    def test_thread_writer_commits_here(self, open_index: Callable[..., UnionIndex], tmp_path: Path) -> None:
        """The other mode, for contrast (and the bench's comparison): commits in this process."""
        ix = open_index(writer="thread", before_commit=partial(record_pid, str(tmp_path)))
        ix.submit(works(0, 3))
        assert ix.flush(30)
        assert [p.name for p in tmp_path.glob("committed-by-*")] == [f"committed-by-{os.getpid()}"]
        assert ix.stats().writer == "thread" and ix.stats().writer_pid is None

    def test_an_unpicklable_hook_is_refused_when_opening(self, tmp_path: Path) -> None:
        with pytest.raises(TypeError, match="picklable before_commit"):
            UnionIndex.open(tmp_path / "ix", before_commit=lambda: None)
        # Refused before anything was started: the directory is free again.
        UnionIndex.open(tmp_path / "ix", writer="thread").close()

    def test_the_age_bound_uses_this_process_clock(self, open_index: Callable[..., UnionIndex]) -> None:
        now = [1_800_000_000.0]
        ix = open_index(max_age_days=30, clock=lambda: now[0])
        ix.submit([work(1, "古い本")])
        assert ix.flush(60)
        now[0] += 31 * 86400
        ix.submit([work(2, "新しい本")])
        assert ix.flush(60)
        assert ids(ix, "本") == ["k2"] and ix.stats().evicted == 1


class TestWriterDeath:
    def test_kill_9_mid_commit_restarts_the_writer_and_resubmits_the_batch(
        self, open_index: Callable[..., UnionIndex], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        gate = CommitGate(tmp_path / "gate")
        ix = open_index(before_commit=gate)
        ix.submit(works(0, 50))
        assert ix.flush(60)
        first_pid = ix.stats().writer_pid
        assert first_pid is not None
        searched: list[int] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def search_meanwhile() -> None:
            while not stop.is_set():
                try:
                    searched.append(len(ids(ix, "耐障害性試験")))
                except BaseException as exc:  # noqa: BLE001 - any failure fails the test
                    failures.append(exc)
                time.sleep(0.005)

        searcher = threading.Thread(target=search_meanwhile)
        searcher.start()
        try:
            gate.arm()
            ix.submit(works(50, 400))
            assert gate.wait_in_commit(30), "the writer never reached its commit"
            gate.disarm()  # the restarted writer commits the resubmitted batch straight through
            with caplog.at_level(logging.WARNING, logger="index.store.writer_process"):
                os.kill(first_pid, signal.SIGKILL)
                assert ix.flush(120), ix.stats()
        finally:
            stop.set()
            searcher.join(10)
        stats = ix.stats()
        assert failures == []
        assert searched and set(searched) <= {50, 450}  # only whole commits were ever visible
        assert not alive(first_pid)
        assert stats.writer_pid is not None and stats.writer_pid != first_pid and alive(stats.writer_pid)
        assert (stats.writer_restarts, stats.resubmitted_batches, stats.lost_batches) == (1, 1, 0)
        assert ids(ix, "耐障害性試験") == sorted(f"k{n}" for n in range(450)) and stats.doc_count == 450
        warnings = [r.getMessage() for r in caplog.records if r.name == "index.store.writer_process"]
        assert len(warnings) == 1 and f"pid {first_pid}" in warnings[0] and "signal 9" in warnings[0]
        assert not (tmp_path / "ix" / "MAIN.tmp").exists()
        ix.submit([work(1000, "復旧後の本")])  # later submits land
        assert ix.flush(60) and ids(ix, "復旧後") == ["k1000"]

    def test_kill_9_during_a_large_commit_keeps_the_index_readable(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = open_index(batch_size=5000)
        ix.submit(works(0, 50))
        assert ix.flush(60)
        pid, commits = ix.stats().writer_pid, ix.stats().commits
        assert pid is not None
        ix.submit(works(50, 2000))
        time.sleep(0.5)  # 2,000 works take the writer seconds: this lands inside the commit
        assert ix.stats().commits == commits, "the commit finished before the kill; the test proves nothing"
        os.kill(pid, signal.SIGKILL)
        assert ids(ix, "耐障害性試験 第7巻") == ["k7"]  # readable at once, from the last commit
        assert ix.flush(300), ix.stats()
        stats = ix.stats()
        assert stats.writer_restarts == 1 and stats.resubmitted_batches == 1 and stats.lost_batches == 0
        assert stats.doc_count == 2050 and len(ids(ix, "耐障害性試験")) == 2050

    def test_a_batch_that_kills_the_writer_twice_is_counted_lost(
        self, open_index: Callable[..., UnionIndex], tmp_path: Path
    ) -> None:
        gate = CommitGate(tmp_path / "gate")
        ix = open_index(before_commit=gate)
        ix.submit(works(0, 5))
        assert ix.flush(60)
        gate.arm()
        ix.submit(works(100, 5, "二度殺される本"))
        for _ in range(2):  # the first commit, then its resubmission
            assert gate.wait_in_commit(60)
            gate.reset()
            pid = ix.stats().writer_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            assert wait_until(lambda pid=pid: not alive(pid), 10)
        gate.disarm()
        assert ix.flush(60), ix.stats()
        # The second writer died without committing anything: its successor starts after a back-off.
        assert wait_until(lambda: ix.stats().writer_restarts == 2, 10)
        stats = ix.stats()
        assert (stats.resubmitted_batches, stats.lost_batches) == (1, 1)
        assert ids(ix, "二度殺される") == [] and stats.doc_count == 5
        ix.submit(works(200, 3, "その後の本"))
        assert ix.flush(60) and ids(ix, "その後") == ["k200", "k201", "k202"]

    def test_a_writer_killed_while_idle_is_restarted_without_a_submit(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = open_index()
        ix.submit(works(0, 3))
        assert ix.flush(60)
        pid = ix.stats().writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: ix.stats().writer_restarts == 1 and ix.stats().writer_pid not in (None, pid), 10)
        new_pid = ix.stats().writer_pid
        assert new_pid is not None and alive(new_pid)
        ix.submit(works(10, 2))
        assert ix.flush(60) and len(ids(ix, "耐障害性試験")) == 5

    def test_when_the_writer_falls_behind_the_oldest_batches_are_dropped(
        self, open_index: Callable[..., UnionIndex], tmp_path: Path
    ) -> None:
        gate = CommitGate(tmp_path / "gate", armed=True)
        ix = open_index(before_commit=gate, max_queue_batches=2)
        ix.submit([work(0, "最初の本")])
        assert gate.wait_in_commit(60)
        for n in range(1, 5):  # k1 and k2 are dropped, k3 and k4 stay queued
            ix.submit([work(n, "本その")])
        stats = ix.stats()
        assert (stats.dropped_batches, stats.queue_depth) == (2, 2)
        gate.disarm()
        gate.release()
        assert ix.flush(60)
        assert ids(ix, "本その") == ["k3", "k4"] and ids(ix, "最初") == ["k0"]


class TestLifecycle:
    def test_close_commits_what_is_queued_and_leaves_no_writer_process(self, tmp_path: Path) -> None:
        ix = UnionIndex.open(tmp_path / "ix", batch_delay_s=60)  # nothing commits before close
        ix.submit(works(0, 20))
        assert wait_until(lambda: ix.stats().writer_pid is not None, 10)
        pid = ix.stats().writer_pid
        assert pid is not None and alive(pid)
        ix.close()
        assert not alive(pid), "close() left the writer process running"
        assert all(p.pid != pid for p in multiprocessing.active_children())
        with UnionIndex.open(tmp_path / "ix", writer="thread") as reopened:
            assert len(ids(reopened, "耐障害性試験")) == 20

    def test_a_killed_broker_leaves_no_writer_process(self, tmp_path: Path) -> None:
        script = tmp_path / "killed_owner.py"  # not broker.py: the script's folder comes first on sys.path
        script.write_text(
            textwrap.dedent(
                """
                import sys
                from pathlib import Path
                from tests.test_store_writer_process import works
                from index.store import UnionIndex

                if __name__ == "__main__":  # spawn imports the main module again in the writer
                    ix = UnionIndex.open(Path(sys.argv[1]), batch_delay_s=0.01, batch_size=5000)
                    ix.submit(works(0, 50))
                    assert ix.flush(60)
                    print(ix.stats().writer_pid, flush=True)
                    ix.submit(works(50, 3000))
                    print("committing", flush=True)
                    ix.flush(600)
                """
            )
        )
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        child = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "ix")], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            writer_pid = int(child.stdout.readline())
            assert child.stdout.readline().strip() == "committing"
            time.sleep(0.3)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
        assert wait_until(lambda: not alive(writer_pid), 10), "the writer outlived its broker"

        async def reopen() -> UnionIndex:
            return await UnionIndex.open_async(tmp_path / "ix", wait_s=10, batch_delay_s=0.01)

        ix = asyncio.run(reopen())
        try:
            count = ix.stats().doc_count
            assert count in (50, 3050)  # whole commits only
            assert len(ids(ix, "耐障害性試験")) == count
            ix.submit([work(9999, "再起動後の本")])
            assert ix.flush(60) and ids(ix, "再起動後") == ["k9999"]
        finally:
            ix.close()


class TestSearcherRefresh:
    def test_no_merged_away_segment_stays_open(self, open_index: Callable[..., UnionIndex], tmp_path: Path) -> None:
        """Threads that searched once and never again must not pin the files later commits deleted."""
        ix = open_index()
        path = tmp_path / "ix"
        for n in range(MERGE_FACTOR):  # level-0 segments, one per commit
            ix.submit(works(n * 10, 10))
            assert ix.flush(60)
        assert ix.stats().segments == MERGE_FACTOR
        with ThreadPoolExecutor(4) as pool:
            # Every pool thread takes a snapshot of these segments (and keeps it: the threads live on).
            barrier = threading.Barrier(4)
            counts = list(pool.map(lambda _: (barrier.wait(10), len(ids(ix, "耐障害性試験")))[1], range(4)))
            assert counts == [MERGE_FACTOR * 10] * 4
            ix.submit(works(1000, 10))  # a full level: the next commit merges it and deletes its files
            assert ix.flush(60)
            assert ix.stats().segments < MERGE_FACTOR
            # The pool threads have not searched since; their snapshots were renewed anyway.
            assert deleted_index_files(path) == []
            counts = list(pool.map(lambda _: (barrier.wait(10), len(ids(ix, "耐障害性試験")))[1], range(4)))
            assert counts == [MERGE_FACTOR * 10 + 10] * 4


class TestWithTheApp:
    async def test_healthz_shows_the_writer_and_cleanup_stops_it(
        self, okayama_sandbox: SandboxedConsortium, tmp_path: Path
    ) -> None:
        path = tmp_path / "index"
        app = build_app(okayama_sandbox.consortium, open_index=partial(UnionIndex.open, path, batch_delay_s=60))
        runner = await start_server(app, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{bound_port(runner)}"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/api/v1/search", params={"q": "夏目漱石"}) as response:
                    assert response.status == 200
                    found = len((await response.json())["works"])
                assert found > 0
                async with session.get(f"{base}/healthz") as response:
                    health = (await response.json())["union_index"]
            assert health["writer"] == "process" and health["writer_pid"] not in (None, os.getpid())
            assert health["queued_works"] == found  # batch_delay_s=60: still queued
            assert (health["writer_restarts"], health["lost_batches"], health["dropped_batches"]) == (0, 0, 0)
            pid = health["writer_pid"]
            assert alive(pid)
        finally:
            await runner.cleanup()
        # Cleanup flushed the queue through the writer process, then joined it.
        assert not alive(pid)
        with UnionIndex.open(path, writer="thread") as reopened:
            assert reopened.stats().doc_count == found
