"""The write-behind writer: a bounded queue of submitted works and one thread committing them.

ARCHITECTURE.md: "never on the request's critical path". `submit` appends the caller's
Works to a bounded in-memory queue and returns; the writer thread drains it in batches
(size or age threshold), turns each Work into a document merged with the stored one and
commits once per batch. When the queue is full the oldest batch is dropped and counted:
the index is a cache, losing a batch only costs a later miss, while blocking would stall
a search.

whoosh writes are pure Python: ~1-2 ms of CPU per work to index, ~2 ms per work per
merge, so a batch of 100 works costs the writer ~0.5 s. The thread is off the request
path but holds the GIL while it works; see bench/union_index.py for search latency
during a commit.

Bounded: each commit deletes works not updated for `max_age_s`; when the index holds more
than `max_works`, the least recently updated are deleted down to 95 % of the bound (a
low-water mark, so a full index does not pay an eviction commit on every batch). The
writer also runs the age sweep when idle (every `evict_interval_s`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from index.store.backend import IndexBackend
from index.store.documents import build_document
from yokodan import Work

__all__ = ["WriteBehind", "WriterLimits"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterLimits:
    max_works: int
    max_age_s: float
    batch_size: int
    batch_delay_s: float
    max_queue_batches: int
    evict_interval_s: float


@dataclass(slots=True)
class _Batch:
    works: list[Work]
    municipalities: dict[str, str] | None
    enqueued_at: float  # time.monotonic()


class WriteBehind:
    def __init__(
        self,
        backend: IndexBackend,
        limits: WriterLimits,
        *,
        name: str,
        clock: Callable[[], float],
        before_commit: Callable[[], None] | None,
    ) -> None:
        self._backend = backend
        self.limits = limits
        self._clock = clock
        self._before_commit = before_commit
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
            if len(self._queue) >= self.limits.max_queue_batches:
                dropped = self._queue.popleft()
                self.queued_works -= len(dropped.works)
                self.dropped_batches += 1
            self._queue.append(_Batch(works, municipalities, time.monotonic()))
            self.queued_works += len(works)
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
        """Commit what is queued (up to `timeout`) and stop; False if the writer is still busy."""
        with self._cond:
            self.closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batches = self._next_batches()
            if batches is None:
                return
            try:
                if batches:
                    self._write(batches)
                else:
                    self._sweep()
            except Exception as exc:  # never let the writer die: the index is best effort
                self.failed_batches += len(batches)
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("union index writer %s: write failed", self._thread.name)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _next_batches(self) -> list[_Batch] | None:
        """Wait for a batch worth committing; [] when it is time for an idle age sweep;
        None when closing and nothing is left."""
        limits = self.limits
        with self._cond:
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
                    self._cond.wait(due - now)
                elif self.closing:
                    return None
                elif now >= self._next_sweep:
                    self._in_flight = 1
                    return []
                else:
                    self._cond.wait(self._next_sweep - now)

    def _write(self, batches: list[_Batch]) -> None:
        started = time.perf_counter()
        latest: dict[str, Work] = {}
        for batch in batches:
            if batch.municipalities:
                self._municipalities.update(batch.municipalities)
            for work in batch.works:
                latest.pop(work.work_id, None)  # last one wins, in submission order
                latest[work.work_id] = work
        now = int(self._clock())
        oldest_kept = now - self.limits.max_age_s
        with self._backend.transaction() as tx:
            previous = tx.previous_many(list(latest))
            for work_id, work in latest.items():
                tx.replace(build_document(work, now, self._municipalities, previous.get(work_id), oldest_kept))
            # Age bound, in the same commit: works nobody has shown us for max_age_days.
            aged = tx.delete_updated_before(int(oldest_kept))
            if self._before_commit is not None:
                self._before_commit()
        self.evicted += aged
        self._committed(started)
        if self._backend.doc_count() > self.limits.max_works:
            self._evict_least_recent()
        self.committed_batches += len(batches)

    def _evict_least_recent(self) -> None:
        """Size bound: delete the least recently updated works down to 95 % of max_works."""
        started = time.perf_counter()
        with self._backend.transaction() as tx:
            evicted = tx.delete_least_recent(tx.live_count() - int(self.limits.max_works * 0.95))
        if evicted:
            self.evicted += evicted
            self._committed(started)

    def _sweep(self) -> None:
        """Idle-time age sweep, so aged works go even when nothing new is being written."""
        self._next_sweep = time.monotonic() + self.limits.evict_interval_s
        started = time.perf_counter()
        with self._backend.transaction() as tx:
            aged = tx.delete_updated_before(int(self._clock() - self.limits.max_age_s))
        if aged:
            self.evicted += aged
            self._committed(started)

    def _committed(self, started: float) -> None:
        self.last_commit_at = self._clock()
        self.last_commit_ms = (time.perf_counter() - started) * 1000
        self.last_error = None
        self.commits += 1
