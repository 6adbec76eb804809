"""UnionIndex: the facade the broker uses (open, submit, search, flush, stats, close).

    ix = await UnionIndex.open_async(Path("var/union-index"), max_works=200_000, max_age_days=30)
    ix = UnionIndex.open("postgresql://db/yokodan")   # or one index several nodes share
    ix.submit(clusterer.works(), {"okayama-city": "岡山市"})   # enqueue only, never blocks
    page = ix.search(SearchQuery(text="銀河鉄道"), members=["okayama-city"])
    ix.close()

Behind it: an IndexBackend (backend.py): whoosh in a directory (whoosh_backend.py, the
embedded default) or PostgreSQL for a `postgresql://` URL (postgres_backend.py, shared by
several broker nodes); and the write-behind writer (writer.py). A whoosh index commits in a
writer process by default (writer_process.py: whoosh's pure-Python commits then no longer hold
this process's GIL) or in a thread of this process (`writer="thread"`); PostgreSQL's commits are
the server's work and run in a thread here. Results are engine-free (results.py); facets count the
keys index.facets defines, the same definition a live answer's facets use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, Literal, Self

from index.facets import facets_from_counts
from index.store.backend import IndexBackend
from index.store.committer import LocalCommitter
from index.store.results import CachedResult, CachedWork, IndexStats, UnionIndexError, UnionIndexInUse
from index.store.postgres_backend import PostgresBackend, is_postgres_url
from index.store.postgres_schema import DEFAULT_SCHEMA
from index.store.whoosh_backend import WhooshBackend
from index.store.writer import Committer, WriteBehind, WriterLimits
from index.store.writer_process import ChildCommitter
from yokodan import SearchQuery, Work

__all__ = ["WRITER_MODES", "UnionIndex", "WriterMode"]

WriterMode = Literal["process", "thread"]
WRITER_MODES: tuple[WriterMode, ...] = ("process", "thread")

log = logging.getLogger(__name__)

_OPEN_RETRY_S = 0.05  # between attempts of open_async while another owner holds the directory


class UnionIndex:
    """The union index behind one small interface. Build with `UnionIndex.open` / `open_async`."""

    path: Path | None  # the whoosh directory; None for PostgreSQL
    location: str  # what to show an operator: the directory, or the URL without its password
    _backend: IndexBackend
    _writer: WriteBehind

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("use UnionIndex.open(path, ...) or await UnionIndex.open_async(path, ...)")

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        max_works: int = 200_000,
        max_age_days: float = 30,
        batch_size: int = 1_000,
        batch_delay_s: float = 2.0,
        max_queue_batches: int = 64,
        lock_timeout_s: float = 5.0,
        evict_interval_s: float = 3600.0,
        before_commit: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        schema: str = DEFAULT_SCHEMA,
        writer: WriterMode = "process",
    ) -> UnionIndex:
        """Create or open the index at `path` and start its writer. Never sleeps.

        `path` is a whoosh directory, or a `postgresql://` URL: then the index is the tables
        of `schema` in that database, created by migrations, and any number of processes
        (broker nodes) may open it at once; `lock_timeout_s` bounds the wait for another
        node's writer.

        Blocking file I/O (opening every segment, crash recovery): call it from a thread
        (`asyncio.to_thread`) or use `open_async`. Raises `UnionIndexInUse` at once when
        another owner holds the directory, `UnionIndexError` when it is not a usable index.

        The writer commits when `batch_size` works are queued or the oldest has waited
        `batch_delay_s`: whoosh pays per distinct term per commit, so fewer, larger commits
        are much cheaper. `lock_timeout_s` bounds the writer thread's wait for the engine's
        write lock. `before_commit` runs in the writer thread with the write lock held,
        after a batch's documents are added and before the commit (tests slow the writer
        with it). `clock` gives epoch seconds (tests move time to exercise age eviction).

        `writer="process"` (the default) commits in a writer process started now (spawn;
        it is ready ~0.4 s later, works submitted meanwhile wait in the queue): this process
        only reads the directory and refreshes its searchers when a commit lands. Then
        `before_commit` runs in the writer process and must be picklable (a module-level
        function or a functools.partial of one). `writer="thread"` commits in a thread here.
        """
        if max_works < 1 or max_age_days <= 0 or batch_size < 1 or max_queue_batches < 1:
            raise ValueError("max_works, max_age_days, batch_size and max_queue_batches must be positive")
        if writer not in WRITER_MODES:
            raise ValueError(f"writer must be one of {WRITER_MODES}, not {writer!r}")
        limits = WriterLimits(
            max_works=max_works,
            max_age_s=max_age_days * 86400.0,
            batch_size=batch_size,
            batch_delay_s=batch_delay_s,
            max_queue_batches=max_queue_batches,
            evict_interval_s=evict_interval_s,
        )
        self = object.__new__(cls)
        self._clock = clock
        self._closed = False
        if is_postgres_url(path):
            pg = PostgresBackend.open(str(path), schema=schema, writer_lock_timeout_s=lock_timeout_s)
            self.path, self.location, self._backend = None, pg.location, pg
            # The database does the heavy part of a commit; a writer process would only add a hop.
            self.writer_mode = "thread"
            committer: Committer = LocalCommitter(pg, max_works=max_works, max_age_s=limits.max_age_s, before_commit=before_commit)
            self._writer = WriteBehind(committer, limits, name=self.location, clock=clock, on_commit=None)
            return self
        self.path = Path(path)
        self.location = str(self.path)
        self.writer_mode = writer
        backend = self._backend = WhooshBackend.open(self.path, writer_lock_timeout_s=lock_timeout_s)
        try:
            if writer == "process":
                committer = ChildCommitter(
                    partial(WhooshBackend.open_writer, self.path, writer_lock_timeout_s=lock_timeout_s),
                    max_works=max_works,
                    max_age_s=limits.max_age_s,
                    before_commit=before_commit,
                    on_restart=backend.refresh,
                    name=str(self.path),
                )
                on_commit: Callable[[], None] | None = backend.refresh  # the commit happened elsewhere
            else:
                committer = LocalCommitter(backend, max_works=max_works, max_age_s=limits.max_age_s, before_commit=before_commit)
                on_commit = None  # the back end's own transaction refreshes it
        except BaseException:
            backend.close()
            raise
        self._writer = WriteBehind(committer, limits, name=self.location, clock=clock, on_commit=on_commit)
        return self

    @classmethod
    async def open_async(cls, path: Path | str, *, wait_s: float = 5.0, **options: Any) -> UnionIndex:
        """`open` in a worker thread, retried while another owner holds the directory.

        For aiohttp's cleanup_ctx: the event loop never blocks, neither on file I/O nor on
        the wait (up to `wait_s`, e.g. a previous process still shutting down); then the
        last UnionIndexInUse is raised. `options` are `open`'s.
        """
        deadline = time.monotonic() + wait_s
        while True:
            attempt = asyncio.ensure_future(asyncio.to_thread(cls.open, path, **options))
            try:
                return await asyncio.shield(attempt)
            except UnionIndexInUse:
                if time.monotonic() + _OPEN_RETRY_S > deadline:
                    raise
            except asyncio.CancelledError:
                # The thread cannot be stopped: whatever it opens must still be closed.
                attempt.add_done_callback(_close_opened)
                raise
            await asyncio.sleep(_OPEN_RETRY_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes ------------------------------------------------------------------------

    def submit(self, works: Iterable[Work], municipalities_by_member: dict[str, str] | None = None) -> None:
        """Queue works for the writer and return at once (never waits for a commit).

        The Works are referenced, not copied: do not mutate them afterwards (WorkClusterer
        builds a new Work object when a cluster changes, so its output is safe to pass).
        When `max_queue_batches` are already waiting, the oldest is dropped (and counted in
        `stats().dropped_batches`): the index is a cache, a lost batch is a later miss.
        """
        batch = list(works)
        if not batch:
            return
        munis = dict(municipalities_by_member) if municipalities_by_member else None
        if not self._writer.enqueue(batch, munis):
            raise UnionIndexError(f"union index {self.location} is closed")

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is committed (or failed); False on timeout."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued (up to `timeout`), stop the writer, release the directory."""
        if self._closed:
            return
        self._closed = True
        if not self._writer.stop(timeout):
            log.warning("union index %s: writer still busy after %.0f s; uncommitted works are lost", self.location, timeout)
            committer = self._writer.committer
            if isinstance(committer, ChildCommitter):
                # No writer may outlive the owner lock: another owner could open the directory.
                committer.kill()
        self._backend.close()

    # --- reads -------------------------------------------------------------------------

    def search(
        self, query: SearchQuery, *, members: list[str] | None = None, limit: int = 20, facets: bool = True
    ) -> CachedResult:
        """Search the cached works; `members` keeps works held by at least one of them.

        `query.start` (1-based) pages. Facets count every match, not just the page.
        """
        now = self._clock()
        found = self._backend.search(query, members, offset=query.start - 1, limit=limit, facets=facets)
        works = [CachedWork(h.work_id, h.score, h.blob, max(0.0, now - h.updated)) for h in found.hits]
        return CachedResult(works, found.total, facets_from_counts(found.facet_counts or {}) if facets else None)

    def stats(self) -> IndexStats:
        writer = self._writer
        queue_depth, queued_works = writer.queue_depth()
        return IndexStats(
            doc_count=self._backend.doc_count(),
            segments=self._backend.segment_count(),
            last_commit_at=writer.last_commit_at,
            last_commit_ms=writer.last_commit_ms,
            queue_depth=queue_depth,
            queued_works=queued_works,
            dropped_batches=writer.dropped_batches,
            committed_batches=writer.committed_batches,
            commits=writer.commits,
            failed_batches=writer.failed_batches,
            evicted=writer.evicted,
            last_error=writer.last_error,
            writer=self.writer_mode,
            writer_pid=getattr(writer.committer, "pid", None),
            writer_restarts=getattr(writer.committer, "restarts", 0),
            resubmitted_batches=writer.resubmitted_batches,
            lost_batches=writer.lost_batches,
        )


def _close_opened(attempt: asyncio.Future[UnionIndex]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        asyncio.get_running_loop().run_in_executor(None, attempt.result().close)
