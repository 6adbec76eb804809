"""One commit of queued works, with the index's bounds: engine-neutral, used in either process.

The write-behind queue (writer.py) decides *when* to commit; this module is *what* a commit
does, the same whether it runs in the broker's writer thread or in the writer process
(writer_child.py): turn each Work into a document merged with the stored one, replace it,
delete works older than `max_age_s` in the same commit, and when the index then holds more
than `max_works`, delete the least recently updated down to 95 % of the bound (a low-water
mark, so a full index does not pay an eviction commit on every batch).

Time comes from the caller (`now`, epoch seconds): in the writer process the broker's clock
still decides what is old, so tests that move time behave the same in both modes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from index.store.backend import IndexBackend
from index.store.documents import build_document
from yokodan import Work

__all__ = ["CommitReport", "LocalCommitter"]


@dataclass(frozen=True, slots=True)
class CommitReport:
    commits: int  # engine commits made (0 when nothing changed; 2 with a size eviction)
    evicted: int  # works deleted by the age or size bound
    commit_ms: float | None  # wall time of the last commit made, None when none was


class LocalCommitter:
    """Commits into an IndexBackend owned by this process (thread mode, or inside the writer process)."""

    tick_s: float | None = None  # nothing to look after while idle

    def __init__(
        self, backend: IndexBackend, *, max_works: int, max_age_s: float, before_commit: Callable[[], None] | None
    ) -> None:
        self.backend = backend
        self._max_works = max_works
        self._max_age_s = max_age_s
        self._before_commit = before_commit

    def commit(self, works: Mapping[str, Work], municipalities: Mapping[str, str], now: float) -> CommitReport:
        """Store `works` (work id -> latest Work, in submission order) and apply the bounds."""
        started = time.perf_counter()
        stamp = int(now)
        oldest_kept = stamp - self._max_age_s
        with self.backend.transaction() as tx:
            previous = tx.previous_many(list(works))  # one round trip on PostgreSQL
            for work_id, work in works.items():
                tx.replace(build_document(work, stamp, municipalities, previous.get(work_id), oldest_kept))
            # Age bound, in the same commit: works nobody has shown us for max_age_days.
            aged = tx.delete_updated_before(int(oldest_kept))
            if self._before_commit is not None:
                self._before_commit()
        commits, last_ms = (1, _ms_since(started)) if works or aged else (0, None)
        evicted = aged
        if self.backend.doc_count() > self._max_works:
            started = time.perf_counter()
            with self.backend.transaction() as tx:
                by_size = tx.delete_least_recent(tx.live_count() - int(self._max_works * 0.95))
            if by_size:
                evicted += by_size
                commits, last_ms = commits + 1, _ms_since(started)
        return CommitReport(commits, evicted, last_ms)

    def sweep(self, now: float) -> CommitReport:
        """Idle-time age sweep, so aged works go even when nothing new is being written."""
        started = time.perf_counter()
        with self.backend.transaction() as tx:
            aged = tx.delete_updated_before(int(now - self._max_age_s))
        return CommitReport(1 if aged else 0, aged, _ms_since(started) if aged else None)


    def tick(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass  # the back end is the facade's to close (after the writer thread stopped)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
