"""The whoosh back end (IndexBackend): the one module that touches whoosh's internals.

Internals used, and why: `TOC` / `SegmentReader` / `MultiReader` to build snapshots
ourselves (whoosh's `Searcher.refresh()` keeps readers of segments a commit merged away,
and reuses a segment's reader after the commit added deletions to it: a work updated
since shows twice, see `_reader`); `clean_files` to remove a killed writer's debris.
(whoosh_transaction.py builds merge readers with whoosh's public SegmentReader class.)

Reads never wait for the writer. A snapshot is a searcher over immutable segment files;
a commit writes new segments and atomically renames a new TOC into place. Each reading
thread keeps its own snapshot and renews it when the commit counter moved (an in-memory
integer: cheaper than listing the directory; the owner lock makes this process the only
writer, itself or through the writer process it started). Renewing closes the segment
readers the new snapshot does not keep, which is only safe when no other thread uses
them, hence one snapshot per thread, claimed (`busy`) while a search or a renewal uses it.

`refresh()` (told that a commit landed: by the writer thread here, or by the writer
process's answer) renews every idle snapshot at once, in the caller's thread, and waits
for busy ones to come free: a thread that searched once and never again must not keep
the segment files the commit merged away open ("(deleted)" in /proc/self/fd), and the
facet columns of the new segments are read then, not by the next search.

Two roles: `open` (the owner: reads, and writes in this process or lets a writer
process write) and `open_writer` (inside the writer process: writes only, under the
owner's lock, which the parent holds).

Opening never waits: a lock another live process holds is `UnionIndexInUse` at once
(`UnionIndex.open_async` is the place that waits, without blocking the event loop).
"""

from __future__ import annotations

import contextlib
import gc
import re
import shutil
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from whoosh import sorting
from whoosh.filedb.filestore import FileStorage
from whoosh.index import TOC, FileIndex, clean_files
from whoosh.reading import EmptyReader, IndexReader, MultiReader, SegmentReader
from whoosh.scoring import BM25F
from whoosh.searching import Searcher

from index.facets import ALL
from index.store.backend import BackendHit, BackendResult
from index.store.results import UnionIndexError, UnionIndexInUse
from index.store.storage import prepare_directory
from index.store.whoosh_facets import CountAll, FacetKeys
from index.store.whoosh_query import QueryBuilder
from index.store.whoosh_schema import SCHEMA_VERSION, schema
from index.store.whoosh_transaction import WhooshTransaction, commit_or_cancel
from yokodan import SearchQuery

__all__ = ["WhooshBackend"]

_INDEX_NAME = "MAIN"  # whoosh's default; its files are _MAIN_<gen>.toc and MAIN_<id>.seg
_LOCK_NAME = f"{_INDEX_NAME}_WRITELOCK"  # FileIndex.lock("WRITELOCK") prefixes the index name
# Held (flock) for the whole life of a backend: whoosh's WRITELOCK is only held while a
# batch is written, so two idle indexes on one directory would not notice each other.
_OWNER_LOCK_NAME = "yokodan_OWNER"
_TOC_TEMP = re.compile(rf"^_{_INDEX_NAME}_\d+\.toc\..+$")
# Per snapshot, and there is one snapshot per reading thread: 2**16 entries of (field, term) cost
# ~10 MiB per thread at full size (measured with tracemalloc); 2**13 keep a burst's terms (a
# lookup costs microseconds) for ~1.3 MiB.
_PRESENCE_CACHE_SIZE = 1 << 13
_SNAPSHOT_ATTEMPTS = 3  # a commit may delete a segment between our TOC read and its opening
_COLLECT_EVERY_S = 30.0  # at most one full garbage collection per this many seconds after merges


class _NoFacetColumn:
    """The facet column of an empty index: no document, so no key."""

    def __getitem__(self, docid: int) -> bytes:
        return b""


_NO_FACETS = _NoFacetColumn()


@dataclass(slots=True)
class _Snapshot:
    thread: weakref.ref[threading.Thread]
    searcher: Searcher
    generation: int
    presence: dict[tuple[str, str], bool] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)  # segment id -> facet column reader
    busy: bool = False  # claimed by a search or a renewal (guarded by the registry's condition)

    def present(self, fieldname: str, text: str) -> bool:
        """Is the term in this snapshot's lexicon? Deleted documents still count (a false
        "present" only costs a matcher, never a wrong answer)."""
        found = self.presence.get((fieldname, text))
        if found is None:
            if len(self.presence) >= _PRESENCE_CACHE_SIZE:
                self.presence.clear()
            found = self.presence[(fieldname, text)] = self.searcher.reader().doc_frequency(fieldname, text) > 0
        return found

    def facet_column(self, reader: SegmentReader) -> Any:
        # A VarBytesColumn reader loads the whole segment's offset table when it is made
        # (~4 ms per 10k documents): make it once per segment, not once per query; renewed
        # snapshots inherit the columns of the segments they keep.
        segment = reader.segment()
        if segment is None:
            # An index with no segment yet (nothing committed) reads through whoosh's EmptyReader,
            # whose column_reader raises NotImplementedError: it has no documents to count anyway.
            return _NO_FACETS
        segment_id = segment.segment_id()
        column = self.columns.get(segment_id)
        if column is None:
            column = self.columns[segment_id] = reader.column_reader("facets", translate=False)
        return column


class WhooshBackend:
    """Build with `WhooshBackend.open(path)`; see backend.py for the contract."""

    def __init__(
        self,
        path: Path,
        storage: FileStorage,
        ix: FileIndex,
        our_schema: Any,
        owner_lock: Any | None,
        writer_lock_timeout_s: float,
    ) -> None:
        """Use `open`."""
        self.path = path
        self._storage = storage
        self._ix = ix
        self._owner_lock = owner_lock
        self._writer_lock_timeout_s = writer_lock_timeout_s
        self._schema = our_schema  # not ix.schema: that property re-reads the TOC every time
        self._queries = QueryBuilder(self._schema)
        self._generation = 0  # bumped after each commit; snapshots compare against it
        self._snapshots: dict[int, _Snapshot] = {}
        # The snapshot registry and the snapshots' busy flags; never held while reading segments.
        self._snapshots_lock = threading.Condition()
        self._closed = False
        self._doc_count, self._segments = self._count()
        self.collect_every_s = _COLLECT_EVERY_S
        self._next_collect = 0.0

    @classmethod
    def open(cls, path: Path, *, writer_lock_timeout_s: float = 5.0) -> WhooshBackend:
        """Open (or create) the index at `path`; every failure is a UnionIndexError naming it.

        `writer_lock_timeout_s` bounds how long a transaction (in the writer thread) waits
        for whoosh's write lock; opening itself never waits.
        """
        prepare_directory(path, SCHEMA_VERSION)
        storage = FileStorage(str(path))
        owner_lock = _try_lock(storage, _OWNER_LOCK_NAME, path)
        try:
            # Our schema, not the pickled one: the analyzers come from this code's version
            # (the marker's version check makes sure they mean the same thing).
            our_schema = schema()
            _clear_stale_writer(path, storage, our_schema)
            if any(path.glob(f"_{_INDEX_NAME}_*.toc")):
                ix = storage.open_index(_INDEX_NAME, schema=our_schema)
            else:
                ix = storage.create_index(our_schema, _INDEX_NAME)
            # Opening the TOC reads little; a reader opens every segment, so damage shows now.
            _reader(storage, our_schema, None).close()
            return cls(path, storage, ix, our_schema, owner_lock, writer_lock_timeout_s)
        except Exception as exc:
            with contextlib.suppress(Exception):
                owner_lock.release()
            if isinstance(exc, UnionIndexError):
                raise
            raise UnionIndexError(
                f"union index {path} is unreadable ({type(exc).__name__}: {exc}); it is a cache: "
                f"delete the directory to rebuild it"
            ) from exc

    @classmethod
    def open_writer(cls, path: Path, *, writer_lock_timeout_s: float = 5.0) -> WhooshBackend:
        """The write side, inside the writer process: the parent (the owner) holds the owner
        lock and created the index. First removes what a killed writer process left (its
        flock on the write lock died with it); a write lock still held is UnionIndexInUse."""
        storage = FileStorage(str(path))
        our_schema = schema()
        try:
            _clear_stale_writer(path, storage, our_schema)
            ix = storage.open_index(_INDEX_NAME, schema=our_schema)
        except UnionIndexError:
            raise
        except Exception as exc:
            raise UnionIndexError(f"union index {path}: the writer cannot open it ({type(exc).__name__}: {exc})") from exc
        return cls(path, storage, ix, our_schema, None, writer_lock_timeout_s)

    # --- writes (one thread) -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WhooshTransaction]:
        with commit_or_cancel(self._ix, self._writer_lock_timeout_s) as tx:
            yield tx
        if tx.changed:
            self.refresh()

    def doc_count(self) -> int:
        return self._doc_count

    def segment_count(self) -> int:
        return self._segments

    def _count(self) -> tuple[int, int]:
        # From the TOC's segment list: no segment is opened.
        segments = TOC.read(self._storage, _INDEX_NAME, schema=self._schema).segments
        return sum(s.doc_count() for s in segments), len(segments)

    # --- reads (any thread) ------------------------------------------------------------

    def search(
        self, query: SearchQuery, members: Sequence[str] | None, *, offset: int, limit: int, facets: bool
    ) -> BackendResult:
        snapshot = self._acquire()
        try:
            whoosh_query = self._queries.build(query, members, snapshot.present)
            if whoosh_query is None:
                return BackendResult([], 0, {} if facets else None)
            grouping = FacetKeys(snapshot.facet_column) if facets else CountAll()
            results = snapshot.searcher.search(
                whoosh_query, limit=offset + limit, groupedby={"f": grouping}, maptype=sorting.Count
            )
            counts: dict[str, int] = results.groups("f")
            hits = [
                BackendHit(hit["work_id"], float(hit.score or 0.0), orjson.loads(hit["blob"]), hit["updated"])
                for hit in results[offset : offset + limit]
            ]
        except Exception as exc:  # a segment vanished or is damaged under us
            raise UnionIndexError(f"union index {self.path}: search failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._release(snapshot)
        return BackendResult(hits, counts.get(ALL, 0), dict(counts) if facets else None)

    def refresh(self, wait_busy_s: float = 5.0) -> None:
        """A commit landed: count again and renew every snapshot now (see the module's doc).

        Idle snapshots are renewed at once; busy ones (a search running) when they come
        free, waiting up to `wait_busy_s` (searches take milliseconds); after that their
        threads renew them on their next search.
        """
        counts = self._count()
        with self._snapshots_lock:
            if self._closed:
                return
            merged = counts[1] <= self._segments  # no more segments than before: a merge deleted some
            self._doc_count, self._segments = counts
            self._generation += 1
            generation = self._generation
        try:
            self._renew_all(generation, wait_busy_s)
        finally:
            if merged and time.monotonic() >= self._next_collect:
                # whoosh's readers and searchers refer to each other in cycles: a closed reader
                # and the memory map of its deleted segment file (descriptor, pages) live on until
                # the cyclic collector's oldest generation runs, which under a steady load takes
                # minutes and in an idle process never comes. A full collection holds the GIL for
                # tens of ms (py-spy: 16 % of a 200-search burst when run after every merge), so at
                # most one per `collect_every_s`; the rest goes at the broker's idle housekeeping
                # (broker.memory) or the next pass.
                self._next_collect = time.monotonic() + self.collect_every_s
                gc.collect()

    def _renew_all(self, generation: int, wait_busy_s: float) -> None:
        """Renew every snapshot older than `generation` (refresh's loop)."""
        deadline = time.monotonic() + wait_busy_s
        while True:
            with self._snapshots_lock:
                if self._closed or self._generation != generation:
                    return  # closed, or a later refresh took over
                todo = [s for s in self._snapshots.values() if s.generation != generation and not s.busy]
                for snapshot in todo:
                    snapshot.busy = True
                waiting = any(s.generation != generation and s.busy for s in self._snapshots.values() if s not in todo)
            for snapshot in todo:
                thread = snapshot.thread()
                renewed = None
                if thread is not None and thread.is_alive():
                    with contextlib.suppress(UnionIndexError):
                        renewed = self._renewed(snapshot, thread, generation, warm=True)
                if renewed is None:  # a dead thread's snapshot, or the index cannot be read: drop it
                    with contextlib.suppress(Exception):
                        snapshot.searcher.close()
                self._replace(snapshot, renewed)
            if not waiting:
                return
            with self._snapshots_lock:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._snapshots_lock.wait(min(remaining, 0.05))

    def _acquire(self) -> _Snapshot:
        """This thread's snapshot, claimed, renewed if a commit happened since it was taken."""
        thread = threading.current_thread()
        ident = thread.ident or 0
        with self._snapshots_lock:
            while True:
                if self._closed:
                    raise UnionIndexError(f"union index {self.path} is closed")
                old = self._snapshots.get(ident)
                if old is None or not old.busy:
                    break
                self._snapshots_lock.wait(0.5)  # refresh() is renewing it: a few milliseconds
            orphan = None
            if old is not None and old.thread() is not thread:
                orphan, old = old, None  # a dead thread's id reused: its snapshot is closed below
                del self._snapshots[ident]
            if old is not None:
                old.busy = True
            generation = self._generation
        if orphan is not None:
            with contextlib.suppress(Exception):
                orphan.searcher.close()
        if old is not None and old.generation == generation:
            return old
        # Outside the lock: opening segments takes milliseconds and other threads must not wait.
        try:
            snapshot = self._renewed(old, thread, generation, warm=False)
        except BaseException:
            if old is not None:  # its readers may be half closed: start afresh next time
                self._replace(old, None)
                with contextlib.suppress(Exception):
                    old.searcher.close()
            raise
        snapshot.busy = True
        stale: list[Searcher] = []
        with self._snapshots_lock:
            self._snapshots[ident] = snapshot
            # Threads that are gone (executor threads come and go) leave snapshots behind.
            for other_ident, other in list(self._snapshots.items()):
                other_thread = other.thread()
                if not other.busy and (other_thread is None or not other_thread.is_alive()):
                    stale.append(self._snapshots.pop(other_ident).searcher)
        for searcher in stale:
            with contextlib.suppress(Exception):
                searcher.close()
        return snapshot

    def _release(self, snapshot: _Snapshot) -> None:
        with self._snapshots_lock:
            snapshot.busy = False
            self._snapshots_lock.notify_all()

    def _replace(self, old: _Snapshot, new: _Snapshot | None) -> None:
        """Put `new` (unclaimed) where the claimed `old` was, or drop `old` from the registry."""
        with self._snapshots_lock:
            ident = next((i for i, s in self._snapshots.items() if s is old), None)
            if ident is not None:
                if new is None or self._closed:
                    del self._snapshots[ident]
                else:
                    self._snapshots[ident] = new
            old.busy = False
            self._snapshots_lock.notify_all()
        if new is not None and (ident is None or self._closed):
            with contextlib.suppress(Exception):
                new.searcher.close()

    def _renewed(self, old: _Snapshot | None, thread: threading.Thread, generation: int, *, warm: bool) -> _Snapshot:
        """A snapshot of the latest commit, reusing `old`'s segment readers (claimed by the caller;
        it must not be used afterwards). `warm` reads the new segments' facet columns now."""
        previous = old.searcher.reader() if old is not None else None
        previous_leaves = {id(r) for r, _ in _leaves(previous)} if previous is not None else set()
        try:
            reader = _reader(self._storage, self._schema, previous)
        except Exception as exc:
            raise UnionIndexError(f"union index {self.path}: cannot open a reader: {exc}") from exc
        # Facet columns follow only the segment readers reused as they were.
        kept = {r.segment().segment_id() for r, _ in _leaves(reader) if id(r) in previous_leaves}
        columns = {sid: c for sid, c in old.columns.items() if sid in kept} if old is not None else {}
        snapshot = _Snapshot(weakref.ref(thread), Searcher(reader, weighting=BM25F(), fromindex=self._ix), generation)
        snapshot.columns.update(columns)
        if warm:
            for leaf, _ in _leaves(reader):
                snapshot.facet_column(leaf)
        return snapshot

    def close(self) -> None:
        with self._snapshots_lock:
            self._closed = True  # searches from now on fail fast instead of using closed readers
            snapshots, self._snapshots = list(self._snapshots.values()), {}
        for snapshot in snapshots:
            with contextlib.suppress(Exception):
                snapshot.searcher.close()
        self._ix.close()
        if self._owner_lock is not None:
            with contextlib.suppress(Exception):
                self._owner_lock.release()


def _leaves(reader: IndexReader) -> list[tuple[SegmentReader, int]]:
    return [(r, base) for r, base in reader.leaf_readers() if isinstance(r, SegmentReader)]


def _reader(storage: FileStorage, schema: Any, previous: IndexReader | None) -> IndexReader:
    """A reader of the latest commit, reusing `previous`'s segment readers where still valid.

    A segment reader is reused only for the same segment with the same deletions (deletions
    only grow during a segment's life, so equal counts mean equal sets). Readers of
    `previous` not reused are closed: `previous` must not be used afterwards.
    """
    reusable = {r.segment().segment_id(): r for r, _ in _leaves(previous)} if previous is not None else {}
    for attempt in range(_SNAPSHOT_ATTEMPTS):
        readers: list[SegmentReader] = []
        opened: list[SegmentReader] = []
        try:
            # Inside the retry: the TOC named by the directory listing may itself be cleaned
            # away by a commit before it is opened (seen under load: FileNotFoundError _MAIN_83.toc).
            toc = TOC.read(storage, _INDEX_NAME, schema=schema)
            for segment in toc.segments:
                old = reusable.get(segment.segment_id())
                if old is not None and old.segment().deleted_count() == segment.deleted_count():
                    readers.append(old)
                else:
                    reader = SegmentReader(storage, schema, segment, generation=toc.generation)
                    opened.append(reader)
                    readers.append(reader)
        except FileNotFoundError:
            for reader in opened:
                reader.close()
            if attempt + 1 == _SNAPSHOT_ATTEMPTS:
                raise
            continue  # the TOC we read was superseded and its files cleaned: read the new one
        kept = {id(r) for r in readers}
        for old in reusable.values():
            if id(old) not in kept:
                old.close()
        if not readers:
            return EmptyReader(schema)
        return readers[0] if len(readers) == 1 else MultiReader(readers, generation=toc.generation)
    raise AssertionError("unreachable")


def _try_lock(storage: FileStorage, name: str, path: Path) -> Any:
    lock = storage.lock(name)
    if not lock.acquire(blocking=False):
        raise UnionIndexInUse(f"union index {path} is in use by a live process ({name} is held)")
    return lock


def _clear_stale_writer(path: Path, storage: FileStorage, our_schema: Any) -> None:
    """Remove what a killed writer leaves behind, or fail if a live one holds the lock.

    whoosh's MAIN_WRITELOCK file is a lock only while a process holds an flock(2) on it;
    the kernel releases that lock when the holder dies, so after a SIGKILL the file stays
    but nobody holds it. We probe with a non-blocking acquire: if it succeeds the file is
    stale, and while still holding it we delete it and the killed writer's debris: its
    MAIN.tmp pool directory, half-written TOC temp files and the segment files of the
    commit that never happened (`clean_files` against the last good TOC; what the TOC does
    not name was never visible to a reader). A commit is only visible once its TOC is
    renamed into place, so the last good generation is intact.
    """
    lock = _try_lock(storage, _LOCK_NAME, path)
    try:
        for entry in path.iterdir():
            if entry.name == f"{_INDEX_NAME}.tmp" and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif _TOC_TEMP.match(entry.name):
                with contextlib.suppress(OSError):
                    entry.unlink()
        if any(path.glob(f"_{_INDEX_NAME}_*.toc")):
            toc = TOC.read(storage, _INDEX_NAME, schema=our_schema)
            clean_files(storage, _INDEX_NAME, toc.generation, toc.segments)
        with contextlib.suppress(OSError):
            (path / _LOCK_NAME).unlink()
    finally:
        lock.release()

