"""The union index lets go of segment files that merges deleted (issue 12: bounded memory).

Readers are per thread; a thread that searched once and then sat idle (an executor thread after
a burst) must not keep the merged-away segments of every later commit: their descriptors, their
mappings and the copies whoosh reads sub-files into. Checked in /proc/self, over a real index.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from index.store import UnionIndex
from tests.test_store import indexed, make_work
from yokodan import SearchQuery


def deleted_files_held(under: Path) -> list[str]:
    """Files under `under` that are deleted but still open or mapped by this process."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(under)) and target.endswith("(deleted)"):
            held.append(f"fd {fd}: {target}")
    for line in Path("/proc/self/maps").read_text().splitlines():
        if str(under) in line and line.endswith("(deleted)"):
            held.append(f"map: {line.split()[-2]}")
    return held


def test_merged_away_segments_are_released_by_idle_and_busy_readers(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    ix = UnionIndex.open(path, batch_delay_s=0.01)
    ix._backend.collect_every_s = 0  # noqa: SLF001 - every merge collects here; in a broker, at most every 30 s
    try:
        indexed(ix, [make_work(f"w{n}", f"吾輩は猫である 第{n}巻") for n in range(20)])
        query = SearchQuery(text="吾輩")
        # Three threads search once and then stay idle for the rest of the test.
        idle_threads = ThreadPoolExecutor(3, thread_name_prefix="idle-reader")
        ready = threading.Barrier(3)

        def search_then_wait() -> int:
            ready.wait(10)  # all three at once: each its own thread, so each its own snapshot
            return ix.search(query, limit=5).total

        assert list(idle_threads.map(lambda _: search_then_wait(), range(3))) == [20, 20, 20]
        busy = ThreadPoolExecutor(1, thread_name_prefix="busy-reader")
        segments_seen = set()
        for round_ in range(40):  # every commit adds a segment; the merge policy merges them away
            indexed(ix, [make_work(f"r{round_}-{n}", f"吾輩は猫である 新版{round_}") for n in range(3)])
            segments_seen.add(ix.stats().segments)
            assert busy.submit(ix.search, query, limit=5).result().total == 20 + 3 * (round_ + 1)
        assert ix.stats().commits >= 41 and max(segments_seen) < 20, "merges happened"
        assert deleted_files_held(path) == []
        # The idle threads' next search sees the latest commit.
        assert idle_threads.submit(ix.search, query, limit=5).result().total == 140
        idle_threads.shutdown()
        busy.shutdown()
    finally:
        ix.close()
    assert deleted_files_held(path) == []
