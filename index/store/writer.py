"""The write-behind writer: a bounded queue of submitted works and one thread committing them.

ARCHITECTURE.md: "never on the request's critical path". `submit` appends the caller's
Works to a bounded in-memory queue and returns; the writer thread drains it in batches
(size or age threshold) and hands each batch to a `Committer`:

- `LocalCommitter` (committer.py, the "thread" writer): builds the documents and commits
  in this thread. whoosh writes are pure Python (~1-2 ms of CPU per work to index, ~2 ms
  per work per merge, ~0.5 s per 100 Japanese works), and this thread holds the GIL all
  that time: searches in the same process wait for it (bench/union_index.py).
- `ChildCommitter` (writer_process.py, the "process" writer): sends the batch's works to a
  writer process that owns the engine's writer and answers when the commit landed; this
  thread then only waits on a pipe, without the GIL.

When the queue is full the oldest batch is dropped and counted (`dropped_batches`): the
index is a cache, losing a batch only costs a later miss, while blocking would stall a
search. A batch the writer process died on is put back at the head of the queue once
(`resubmitted_batches`; a commit is a replace by work id, so landing twice is harmless);
if the process dies on it again it is dropped (`lost_batches`), so one poisonous batch
cannot crash the writer forever. The writer also runs the age sweep when idle (every
`evict_interval_s`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from index.store.committer import CommitReport
from index.store.results import WriterCrashed
from yokodan import Work

__all__ = ["Committer", "WriteBehind", "WriterLimits"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterLimits:
    max_works: int
    max_age_s: float
    batch_size: int
    batch_delay_s: float
    max_queue_batches: int
    evict_interval_s: float


class Committer(Protocol):
    """What the writer thread hands batches to (committer.LocalCommitter, writer_process.ChildCommitter)."""

    # While idle the writer thread calls tick() this often (None: never), so a committer
    # that runs a process can notice it died and restart it before the next batch.
    tick_s: float | None

    def commit(self, works: Mapping[str, Work], municipalities: Mapping[str, str], now: float) -> CommitReport:
        """Commit; raises WriterCrashed when the commit was lost with the writer process."""

    def sweep(self, now: float) -> CommitReport: ...

    def tick(self) -> None: ...

    def close(self, timeout: float) -> None:
        """Release the engine's writer (stop and join the writer process)."""


@dataclass(slots=True)
class _Batch:
    works: list[Work]
    municipalities: dict[str, str] | None
    enqueued_at: float  # time.monotonic()
    resubmitted: bool = False  # put back once after the writer process died on it


class WriteBehind:
    def __init__(
        self,
        committer: Committer,
        limits: WriterLimits,
        *,
        name: str,
        clock: Callable[[], float],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        """`on_commit` runs in the writer thread after each commit landed, before flush() returns."""
        self.committer = committer
        self.limits = limits
        self._clock = clock
        self._on_commit = on_commit
        self._municipalities: dict[str, str] = {}
        self._queue: deque[_Batch] = deque()
        self.queued_works = 0
        self._in_flight = 0  # batches taken by the writer and not yet committed (or failed)
        self._flush_waiters = 0
        self.closing = False
        self._cond = threading.Condition()  # queue state; the writer never holds it while writing
        self.last_commit_at: float | None = None
        self.last_commit_ms: float | None = None
        self.dropped_batches = 0
        self.committed_batches = 0
        self.commits = 0
        self.failed_batches = 0
        self.resubmitted_batches = 0
        self.lost_batches = 0
        self.evicted = 0
        self.last_error: str | None = None
        self._next_sweep = time.monotonic() + limits.evict_interval_s
        self._thread = threading.Thread(target=self._run, name=f"union-index-writer:{name}", daemon=True)
        self._thread.start()

    # --- the callers' side -------------------------------------------------------------

    def enqueue(self, works: list[Work], municipalities: dict[str, str] | None) -> bool:
        """Queue a batch (dropping the oldest when full); False when closing."""
        with self._cond:
            if self.closing:
                return False
            self._queue.append(_Batch(works, municipalities, time.monotonic()))
            self.queued_works += len(works)
            self._enforce_bound()
            self._cond.notify_all()
        return True

    def queue_depth(self) -> tuple[int, int]:
        with self._cond:
            return len(self._queue), self.queued_works

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is committed (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_waiters += 1
            self._cond.notify_all()  # the writer stops waiting for a fuller batch
            try:
                while self._queue or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def stop(self, timeout: float) -> bool:
        """Commit what is queued (up to `timeout`), release the committer, stop; False if still busy."""
        with self._cond:
            self.closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batches = self._next_batches()
                if batches is None:
                    return
                try:
                    if batches:
                        self._write(batches)
                    elif batches is not _TICK:
                        self._sweep()
                    else:
                        self.committer.tick()
                except WriterCrashed as exc:
                    self.last_error = str(exc)
                    self._requeue(batches)
                except Exception as exc:  # never let the writer die: the index is best effort
                    self.failed_batches += len(batches)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("union index writer %s: write failed", self._thread.name)
                finally:
                    with self._cond:
                        self._in_flight = 0
                        self._cond.notify_all()
        finally:
            self.committer.close(timeout=10.0)
            with self._cond:
                self._cond.notify_all()  # flush() waiters see the thread gone

    def _next_batches(self) -> list[_Batch] | None:
        """Wait for a batch worth committing; [] when it is time for an idle age sweep; _TICK
        when the committer asked to be looked after; None when closing and nothing is left."""
        limits = self.limits
        tick_s = self.committer.tick_s
        with self._cond:
            next_tick = time.monotonic() + tick_s if tick_s is not None else float("inf")
            while True:
                now = time.monotonic()
                if self._queue:
                    due = self._queue[0].enqueued_at + limits.batch_delay_s
                    if self.queued_works >= limits.batch_size or self._flush_waiters or self.closing or now >= due:
                        taken: list[_Batch] = []
                        size = 0
                        while self._queue and (not taken or size + len(self._queue[0].works) <= limits.batch_size):
                            batch = self._queue.popleft()
                            taken.append(batch)
                            size += len(batch.works)
                        self.queued_works -= size
                        self._in_flight = len(taken)
                        return taken
                    wake = min(due, next_tick)
                elif self.closing:
                    return None
                elif now >= self._next_sweep:
                    self._in_flight = 1
                    return []
                else:
                    wake = min(self._next_sweep, next_tick)
                if now >= next_tick:
                    return _TICK
                self._cond.wait(wake - now)

    def _write(self, batches: list[_Batch]) -> None:
        latest: dict[str, Work] = {}
        for batch in batches:
            if batch.municipalities:
                self._municipalities.update(batch.municipalities)
            for work in batch.works:
                latest.pop(work.work_id, None)  # last one wins, in submission order
                latest[work.work_id] = work
        report = self.committer.commit(latest, self._municipalities, self._clock())
        self._committed(report)
        self.committed_batches += len(batches)

    def _sweep(self) -> None:
        self._next_sweep = time.monotonic() + self.limits.evict_interval_s
        self._committed(self.committer.sweep(self._clock()))

    def _committed(self, report: CommitReport) -> None:
        self.evicted += report.evicted
        if report.commits:
            self.last_commit_at = self._clock()
            self.last_commit_ms = report.commit_ms
            self.last_error = None
            self.commits += report.commits
            if self._on_commit is not None:
                self._on_commit()  # before in_flight clears: after flush(), searches see the commit

    def _requeue(self, batches: list[_Batch]) -> None:
        """The writer process died with these batches: put them back once, then give up on them."""
        again = [b for b in batches if not b.resubmitted]
        self.lost_batches += len(batches) - len(again)
        with self._cond:
            for batch in reversed(again):
                batch.resubmitted = True
                self._queue.appendleft(batch)
                self.queued_works += len(batch.works)
            self.resubmitted_batches += len(again)
            self._enforce_bound()

    def _enforce_bound(self) -> None:
        """Drop the oldest batches beyond max_queue_batches (called with the condition held)."""
        while len(self._queue) > self.limits.max_queue_batches:
            dropped = self._queue.popleft()
            self.queued_works -= len(dropped.works)
            self.dropped_batches += 1


# Returned by _next_batches when the committer's tick is due (an empty list, told apart by identity).
_TICK: list[_Batch] = []
