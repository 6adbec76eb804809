"""The local union index: every work the broker has seen, searchable without the members.

    ix = UnionIndex.open(Path("var/union-index"), max_works=200_000, max_age_days=30)
    ix.submit(clusterer.works(), {"okayama-city": "岡山市"})   # enqueue only, never blocks
    page = ix.search(SearchQuery(text="銀河鉄道"), members=["okayama-city"])
    ix.close()

One small interface (`open`, `submit`, `search`, `flush`, `stats`, `close`) in front of
whoosh, so the store can be swapped (MEASUREMENTS.md: tantivy is ~20x faster) without
touching the broker.

Writes are write-behind (ARCHITECTURE.md: "never on the request's critical path"):
`submit` appends the caller's Works to a bounded in-memory queue and returns; one writer
thread drains it in batches (size or age threshold), turns each Work into a document,
replaces it by work_id (what `update_document` does, but we look the old document up
anyway to merge it, so we delete that docnum and add, saving a second lookup) and commits
once per batch. When the queue is full the oldest batch is dropped and counted: the index
is a cache, losing a batch only costs a later miss, while blocking would stall a search.

whoosh writes are pure Python (MEASUREMENTS.md's figures were for small documents; ours
carry five analysed fields): ~1-2 ms of CPU per work to index, ~2 ms per work per merge,
so a batch of 100 works costs the writer ~0.5 s. The thread is off the request path but
holds the GIL while it works; see bench/union_index.py for search latency during a commit.
Segments are kept few by `_log_merge` (whoosh's default policy never merges them).

Reads never wait for the writer. whoosh searchers are snapshot readers over immutable
segment files; a commit writes new segments and atomically renames a new TOC into place.
Each reading thread keeps its own searcher and refreshes it when the writer's commit
counter moved (an in-memory integer: cheaper than `Searcher.up_to_date()`, which lists the
directory; this process is the only writer, the lock below makes sure). `refresh()` closes
the segments the old searcher no longer shares, which is only safe when no other thread
is using it, hence one searcher per thread rather than one shared. `_readers_lock` guards
only that registry and is never taken by the writer.

Bounded: each commit deletes works not updated for `max_age_days`; when the index holds
more than `max_works`, the least recently updated are deleted down to 95 % of the bound
(a low-water mark, so a full index does not pay an eviction commit on every batch). The
writer also runs the age sweep when idle (every `evict_interval_s`).

A work seen again is merged, not just replaced: the new Work's members replace their own
holdings, members it lacks keep theirs (with their own `seen` time) until they age out.
A search that asked three members must not erase what forty others said an hour ago.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import re
import shutil
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import orjson
from whoosh import fields, query, sorting
from whoosh.columns import VarBytesColumn
from whoosh.filedb.filestore import FileStorage
from whoosh.index import TOC, clean_files
from whoosh.reading import EmptyReader, SegmentReader
from whoosh.scoring import BM25F
from whoosh.searching import Searcher

from yokodan import isbn as isbn_tools
from yokodan import Availability, Holding, SearchQuery, Work
from yokodan.errors import StoreError
from index.analysis import JapaneseAnalyzer, ReadingAnalyzer
from index.names import normalize_author
from index.text import key
from index.titles import split_subtitle

__all__ = ["CachedResult", "CachedWork", "Facets", "IndexStats", "UnionIndex", "UnionIndexError"]

log = logging.getLogger(__name__)

# Bumped whenever the schema or an analyzer changes meaning: an index built by another
# version would answer wrongly (different terms), so opening it is refused, not guessed at.
SCHEMA_VERSION = 1
_MARKER = "yokodan-union-index.json"
_INDEX_NAME = "MAIN"  # whoosh's default; its files are _MAIN_<gen>.toc and MAIN_<id>.seg
_LOCK_NAME = f"{_INDEX_NAME}_WRITELOCK"  # FileIndex.lock("WRITELOCK") prefixes the index name
# Held (flock) for the whole life of a UnionIndex: whoosh's WRITELOCK is only held while a
# batch is written, so two idle UnionIndex objects on one directory would not notice each other.
_OWNER_LOCK_NAME = "yokodan_OWNER"

# Query-time field boosts (BM25F term weights are multiplied by them). Query-time rather
# than whoosh's index-time field_boost so they can be tuned without a re-index.
FIELD_BOOSTS: dict[str, float] = {
    "title": 4.0,
    "title_reading": 2.5,
    "author": 2.0,
    "author_reading": 1.5,
    "publisher": 0.8,
}
# The whole query equals a title (or main title, or reading) of the work: beats any sum of
# bigram scores, so the exact title is first among works merely containing the words.
EXACT_TITLE_BOOST = 60.0
# An ISBN typed into the free-text box: that work first, whatever else matches.
ISBN_BOOST = 200.0

_READING_FIELDS = frozenset({"title_reading", "author_reading"})
_NOT_FOR_KANA = frozenset({"author", "publisher"})
_KANA_ONLY = re.compile("[\u3041-\u30fa\u30fc-\u30ff\uff66-\uff9f]+")
_HAS_KANJI = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f\u3005-\u3007]")
_SEP = "\x1f"  # joins facet keys in the facet column: never in a member id or a name
_NDC = re.compile(r"\s*([0-9]{1,3}(?:\.[0-9]+)?|[A-Za-z])")
# Ranking of a branch's copies: the most useful one speaks for the branch.
_AVAILABILITY_RANK = {
    a: rank
    for rank, a in enumerate(
        (
            Availability.AVAILABLE,
            Availability.LIBRARY_USE_ONLY,
            Availability.IN_TRANSIT,
            Availability.RESERVED,
            Availability.ON_LOAN,
            Availability.ON_ORDER,
            Availability.NOT_FOR_LOAN,
            Availability.CLOSED,
            Availability.UNKNOWN,
        )
    )
}
# "On the shelf somewhere" (the `available` field and the available-now facet): a copy a
# patron could put their hands on today. 禁帯出 copies count (they are on the shelf and
# can be read there); the per-branch availability in the blob tells the two apart.
_ON_SHELF = frozenset({Availability.AVAILABLE.value, Availability.LIBRARY_USE_ONLY.value})


class UnionIndexError(StoreError):
    """The union index directory cannot be used (corrupt, foreign, locked, wrong version)."""


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedWork:
    work_id: str
    score: float
    work: dict[str, Any]  # the stored blob: enough to render a result line (see _blob)
    age_seconds: float  # since this work was last written


@dataclass(slots=True)
class Facets:
    members: dict[str, int] = field(default_factory=dict)
    municipalities: dict[str, int] = field(default_factory=dict)
    decades: dict[int, int] = field(default_factory=dict)  # 1990 -> works published 1990-1999
    ndc_classes: dict[str, int] = field(default_factory=dict)  # '9' literature … 'E' picture books
    available_now: int = 0


@dataclass(slots=True)
class CachedResult:
    works: list[CachedWork]
    total: int
    facets: Facets | None = None


@dataclass(frozen=True, slots=True)
class IndexStats:
    doc_count: int
    segments: int  # whoosh segments; every query pays per segment (see _log_merge)
    last_commit_at: float | None  # epoch seconds
    last_commit_ms: float | None
    queue_depth: int  # batches waiting
    queued_works: int
    dropped_batches: int
    committed_batches: int
    commits: int  # whoosh commits (a commit takes several batches when they queue up)
    failed_batches: int
    evicted: int
    last_error: str | None


# --- schema --------------------------------------------------------------------------


def _schema() -> fields.Schema:
    ja, ja_no_unigrams, reading = JapaneseAnalyzer(), JapaneseAnalyzer(unigrams=False), ReadingAnalyzer()
    # phrase=False: no positions; queries are ANDed bigrams, positions would only cost space.
    return fields.Schema(
        work_id=fields.ID(unique=True, stored=True),
        title=fields.TEXT(analyzer=ja, phrase=False),
        title_reading=fields.TEXT(analyzer=reading, phrase=False),
        # key() of each title / main title / reading: exact-title matches.
        exact=fields.KEYWORD(scorable=True),
        author=fields.TEXT(analyzer=ja, phrase=False),
        author_reading=fields.TEXT(analyzer=reading, phrase=False),
        publisher=fields.TEXT(analyzer=ja_no_unigrams, phrase=False),
        isbn=fields.KEYWORD(scorable=True),  # every ISBN-13 and the ISBN-10 form of 978- ones
        # One tier (shift_step == bits): one term per document instead of whoosh's default 8
        # (or 16 for 64 bits); ranges here are exact years or an eviction cut-off, and whoosh
        # answers them by scanning the (small) lexicon range, so tiers would buy nothing.
        year=fields.NUMERIC(int, bits=32, shift_step=32, stored=True),
        ndc=fields.ID,
        ndc_class=fields.ID,
        members=fields.KEYWORD(stored=True, commas=True),
        municipalities=fields.KEYWORD(commas=True),
        available=fields.BOOLEAN,
        updated=fields.NUMERIC(int, bits=64, shift_step=64, stored=True, sortable=True),
        # Facet keys of the document in one column, read once per matched doc (see _FacetKeys).
        facets=fields.COLUMN(VarBytesColumn()),
        blob=fields.STORED,
    )


# --- segments ----------------------------------------------------------------------

# whoosh's default MERGE_SMALL only merges segments of a few documents (its Fibonacci test
# compares cumulative counts against fib(i+5)), so every batch commit left one more segment
# behind and a query pays per segment (~1.5 ms each at 30k works: term lookups in every
# field of every segment). A log-structured policy instead: segments are levelled by size
# (level 0 below MERGE_MIN_DOCS, then one level per factor MERGE_FACTOR) and a level
# holding MERGE_FACTOR segments is merged into one of the next level. Each work is rewritten
# about once per level (4 levels up to 200k works); whoosh merges cost ~2 ms per work, so
# this trades ~8 ms of writer CPU per work over its life for a bounded segment count
# (at most MERGE_FACTOR-1 per level). A segment with a third of its documents deleted
# (updated or evicted works) is rewritten too, to drop them.
MERGE_FACTOR = 6
MERGE_MIN_DOCS = 200
EXPUNGE_DELETED_RATIO = 1 / 3


def _merge_level(live_docs: int) -> int:
    if live_docs < MERGE_MIN_DOCS:
        return 0
    return 1 + int(math.log(live_docs / MERGE_MIN_DOCS, MERGE_FACTOR))


def _log_merge(writer: Any, segments: list[Any]) -> list[Any]:
    """A whoosh `mergetype`: merge full levels and deletion-heavy segments; keep the rest."""
    levels: dict[int, list[Any]] = {}
    to_merge: list[Any] = []
    for segment in segments:
        total = segment.doc_count_all()
        if total and segment.deleted_count() / total >= EXPUNGE_DELETED_RATIO:
            to_merge.append(segment)
        else:
            levels.setdefault(_merge_level(segment.doc_count()), []).append(segment)
    unchanged: list[Any] = []
    for level_segments in levels.values():
        (to_merge if len(level_segments) >= MERGE_FACTOR else unchanged).extend(level_segments)
    for segment in to_merge:
        reader = SegmentReader(writer.storage, writer.schema, segment)
        writer.add_reader(reader)
        reader.close()
    return unchanged


# --- query helpers -------------------------------------------------------------------


class _NoMatch(Exception):
    """A required query word has terms, but no field holds them all."""


_PRESENCE_CACHE_SIZE = 1 << 16


def _term_presence(searcher: Searcher) -> Callable[[str, str], bool]:
    """`present(field, text)`: is the term in this snapshot's lexicon? Cached per searcher.

    Searchers are per thread and snapshots never change, so the cache needs no lock and no
    invalidation (a refreshed searcher is a new object with an empty cache). Deleted
    documents still count (whoosh keeps their terms until a merge): a false "present" only
    costs a matcher, never a wrong answer.
    """
    cache: dict[tuple[str, str], bool] | None = getattr(searcher, "_yokodan_presence", None)
    if cache is None:
        cache = {}
        searcher._yokodan_presence = cache
    reader = searcher.reader()

    def present(fieldname: str, text: str) -> bool:
        found = cache.get((fieldname, text))
        if found is None:
            if len(cache) >= _PRESENCE_CACHE_SIZE:
                cache.clear()
            found = cache[(fieldname, text)] = reader.doc_frequency(fieldname, text) > 0
        return found

    return present


# --- facets --------------------------------------------------------------------------


class _FacetKeysCategorizer(sorting.Categorizer):
    """Reads the per-document facet keys column: one column read per matched document."""

    allow_overlap = True

    def set_searcher(self, segment_searcher: Searcher, docoffset: int) -> None:
        # A VarBytesColumn reader loads the whole segment's offset table when it is made
        # (~4 ms per 10k documents): make it once per segment reader, not once per query.
        # Segment readers are immutable and outlive refreshes that keep their segment.
        reader = segment_searcher.reader()
        column = getattr(reader, "_yokodan_facet_column", None)
        if column is None:
            column = reader.column_reader("facets", translate=False)
            reader._yokodan_facet_column = column
        self._column = column

    def keys_for(self, matcher: object, docid: int) -> list[str]:
        raw = self._column[docid]
        return raw.decode().split(_SEP) if raw else ["*"]

    def key_for(self, matcher: object, docid: int) -> str:
        return self.keys_for(matcher, docid)[0]

    def key_to_name(self, key: str) -> str:
        return key


class _FacetKeys(sorting.FacetType):
    def categorizer(self, global_searcher: Searcher) -> _FacetKeysCategorizer:
        return _FacetKeysCategorizer()


class _CountAllCategorizer(sorting.Categorizer):
    """Puts every match in one group: an exact total in the same pass as the scoring.

    (Results.__len__ after a top-N search runs the query a second time.)"""

    def key_for(self, matcher: object, docid: int) -> str:
        return "*"


class _CountAll(sorting.FacetType):
    def categorizer(self, global_searcher: Searcher) -> _CountAllCategorizer:
        return _CountAllCategorizer()


_FACET = {"f": _FacetKeys()}
_COUNT_ONLY = {"f": _CountAll()}


def _facets_from_counts(counts: dict[str, int]) -> Facets:
    result = Facets()
    for name, count in counts.items():
        kind, value = name[:1], name[1:]
        if kind == "m":
            result.members[value] = count
        elif kind == "u":
            result.municipalities[value] = count
        elif kind == "y":
            result.decades[int(value)] = count
        elif kind == "n":
            result.ndc_classes[value] = count
        elif kind == "a":
            result.available_now = count
    result.members = dict(sorted(result.members.items(), key=lambda kv: (-kv[1], kv[0])))
    result.municipalities = dict(sorted(result.municipalities.items(), key=lambda kv: (-kv[1], kv[0])))
    result.decades = dict(sorted(result.decades.items()))
    result.ndc_classes = dict(sorted(result.ndc_classes.items()))
    return result


# --- documents -----------------------------------------------------------------------


def _distinct(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _ndc(work: Work) -> str | None:
    for record in work.records:
        if record.ndc and (match := _NDC.match(record.ndc)):
            return match.group(1).upper()
    return None


def _branch_summary(holdings: Sequence[Holding]) -> list[dict[str, Any]]:
    """One line per branch: copies, how many on the shelf, the best copy's state and word."""
    by_branch: dict[str, list[Holding]] = {}
    for holding in holdings:
        by_branch.setdefault(holding.branch_id or holding.location or "", []).append(holding)
    lines = []
    for branch, copies in by_branch.items():
        best = min(copies, key=lambda h: _AVAILABILITY_RANK[h.availability])
        line: dict[str, Any] = {
            "branch": branch or None,
            "location": best.location,
            "copies": len(copies),
            "available": sum(h.availability == Availability.AVAILABLE for h in copies),
            "availability": best.availability.value,
            "status_text": best.status_text,
        }
        if best.call_number:
            line["call_number"] = best.call_number
        dues = [h.due_date for h in copies if h.due_date]
        if dues and best.availability != Availability.AVAILABLE:
            line["due_date"] = min(dues).isoformat()
        queue = [h.queue_length for h in copies if h.queue_length is not None]
        if queue:
            line["queue_length"] = max(queue)
        lines.append(line)
    return lines


def _holdings_by_member(work: Work, now: int, municipalities: dict[str, str]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[Holding]] = {member: [] for member in work.members}
    for record in work.records:
        grouped[record.member].extend(record.holdings)
    return {
        member: {"seen": now, "municipality": municipalities.get(member), "branches": _branch_summary(holdings)}
        for member, holdings in grouped.items()
    }


def _document(
    work: Work,
    now: int,
    municipalities: dict[str, str],
    previous: dict[str, Any] | None,
    oldest_kept: float,
) -> dict[str, Any]:
    holdings = _holdings_by_member(work, now, municipalities)
    if previous:
        # Members this answer did not include keep what they said last time, until they age out.
        for member, entry in previous.get("holdings", {}).items():
            if member not in holdings and entry.get("seen", 0) >= oldest_kept:
                holdings[member] = entry
    for member, entry in holdings.items():
        if entry.get("municipality") is None and member in municipalities:
            entry["municipality"] = municipalities[member]

    titles = _distinct([work.title, *(r.title for r in work.records)])
    readings = _distinct([work.title_reading, *(r.title_reading for r in work.records)])
    authors = _distinct(
        normalize_author(a) or a for a in [*work.authors, *(a for r in work.records for a in r.authors)]
    )
    author_readings = _distinct(normalize_author(a) or a for r in work.records for a in r.author_readings)
    publishers = _distinct([work.publisher, *(r.publisher for r in work.records)])
    isbn13s = _distinct([*work.isbns, *(i for r in work.records for i in r.isbns)])
    isbn_terms = _distinct([*isbn13s, *(isbn_tools.to_isbn10(i) for i in isbn13s)])
    exact = _distinct(key(t) for title in [*titles, *readings] for t in (title, split_subtitle(title)[0]))
    year = work.year if work.year is not None else next((r.year for r in work.records if r.year), None)
    ndc = _ndc(work)
    ndc_class = ndc[0] if ndc else None
    members = list(holdings)
    member_municipalities = _distinct(entry.get("municipality") for entry in holdings.values())
    on_shelf = any(
        line["availability"] in _ON_SHELF for entry in holdings.values() for line in entry["branches"]
    )

    blob = {
        "work_id": work.work_id,
        "title": work.title,
        "title_reading": work.title_reading or (readings[0] if readings else None),
        "authors": work.authors,
        "publisher": work.publisher,
        "year": year,
        "isbns": isbn13s,
        "volume": work.volume,
        "ndc": ndc,
        "members": members,
        "holdings": holdings,
        "match_reasons": work.match_reasons,
    }
    facet_keys = ["*", *(f"m{m}" for m in members), *(f"u{m}" for m in member_municipalities)]
    if year is not None:
        facet_keys.append(f"y{year // 10 * 10}")
    if ndc_class:
        facet_keys.append(f"n{ndc_class}")
    if on_shelf:
        facet_keys.append("a")

    doc: dict[str, Any] = {
        "work_id": work.work_id,
        "title": "\n".join(titles),
        "exact": " ".join(k for k in exact if k),
        "isbn": " ".join(isbn_terms),
        "members": ",".join(members),
        "available": on_shelf,
        "updated": now,
        "facets": _SEP.join(facet_keys).encode(),
        "blob": orjson.dumps(blob),
    }
    optional = {
        "title_reading": "\n".join(readings),
        "author": "\n".join(authors),
        "author_reading": "\n".join(author_readings),
        "publisher": "\n".join(publishers),
        "municipalities": ",".join(member_municipalities),
        "ndc": ndc,
        "ndc_class": ndc_class,
    }
    doc.update({name: value for name, value in optional.items() if value})
    if year is not None:
        doc["year"] = year
    return doc


# --- the queue -----------------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    works: list[Work]
    municipalities: dict[str, str] | None
    enqueued_at: float  # time.monotonic()


@dataclass(slots=True)
class _Reader:
    thread: weakref.ref[threading.Thread]
    searcher: Searcher
    generation: int


# --- the store -----------------------------------------------------------------------


class UnionIndex:
    """The whoosh union index behind one small interface. Build with `UnionIndex.open`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("use UnionIndex.open(path, ...)")

    @classmethod
    def open(
        cls,
        path: Path,
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
    ) -> UnionIndex:
        """Create or open the index at `path` and start its writer thread.

        The writer commits when `batch_size` works are queued or the oldest has waited
        `batch_delay_s`: whoosh pays per distinct term per commit (~80 µs each, ~28 new
        terms per work in a small segment), so fewer, larger commits are much cheaper.

        `before_commit` runs in the writer thread with the whoosh write lock held, after a
        batch's documents are added and before the commit (tests slow the writer with it).
        `clock` gives epoch seconds (tests move time forward to exercise age eviction).
        Raises UnionIndexError when the directory is not a usable union index.
        """
        if max_works < 1 or max_age_days <= 0 or batch_size < 1 or max_queue_batches < 1:
            raise ValueError("max_works, max_age_days, batch_size and max_queue_batches must be positive")
        self = object.__new__(cls)
        self.path = Path(path)
        self.max_works = max_works
        self.max_age_s = max_age_days * 86400.0
        self.batch_size = batch_size
        self.batch_delay_s = batch_delay_s
        self.max_queue_batches = max_queue_batches
        self.lock_timeout_s = lock_timeout_s
        self.evict_interval_s = evict_interval_s
        self._before_commit = before_commit
        self._clock = clock
        self._schema = _schema()
        self._ix, self._owner_lock = _open_index(self.path, self._schema, lock_timeout_s)

        self._municipalities: dict[str, str] = {}
        self._queue: deque[_Batch] = deque()
        self._queued_works = 0
        self._in_flight = 0  # batches taken by the writer and not yet committed (or failed)
        self._flush_waiters = 0
        self._closing = False
        self._closed = False
        self._cond = threading.Condition()  # queue state; the writer never holds it while writing
        self._generation = 0  # bumped after each commit; readers compare against it
        self._readers: dict[int, _Reader] = {}
        self._readers_lock = threading.Lock()  # the reader registry only; never taken by the writer

        self._segments = 0
        self._doc_count = self._count_docs()
        self._last_commit_at: float | None = None
        self._last_commit_ms: float | None = None
        self._dropped_batches = 0
        self._committed_batches = 0
        self._commits = 0
        self._failed_batches = 0
        self._evicted = 0
        self._last_error: str | None = None
        self._next_sweep = time.monotonic() + evict_interval_s

        self._writer = threading.Thread(target=self._run_writer, name=f"union-index-writer:{self.path}", daemon=True)
        self._writer.start()
        return self

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
        with self._cond:
            if self._closing:
                raise UnionIndexError(f"union index {self.path} is closed")
            if len(self._queue) >= self.max_queue_batches:
                dropped = self._queue.popleft()
                self._queued_works -= len(dropped.works)
                self._dropped_batches += 1
            self._queue.append(_Batch(batch, munis, time.monotonic()))
            self._queued_works += len(batch)
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is committed (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_waiters += 1
            self._cond.notify_all()  # the writer stops waiting for a fuller batch
            try:
                while self._queue or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._writer.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued (up to `timeout`), stop the writer, close every searcher."""
        if self._closed:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._writer.join(timeout)
        if self._writer.is_alive():
            log.warning("union index %s: writer still busy after %.0f s; uncommitted works are lost", self.path, timeout)
        with self._readers_lock:
            self._closed = True  # searches from now on fail fast instead of using closed readers
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            with contextlib.suppress(Exception):
                reader.searcher.close()
        self._ix.close()
        with contextlib.suppress(Exception):
            self._owner_lock.release()

    # --- reads -------------------------------------------------------------------------

    def search(
        self,
        query: SearchQuery,
        *,
        members: list[str] | None = None,
        limit: int = 20,
        facets: bool = True,
    ) -> CachedResult:
        """Search the cached works; `members` keeps works held by at least one of them.

        Ranking is BM25F over the text fields with FIELD_BOOSTS, plus EXACT_TITLE_BOOST when
        the whole query is a title, and ISBN_BOOST for an ISBN typed as text. `query.start`
        (1-based) pages. Facets count every match, not just the page.
        """
        offset = query.start - 1
        searcher = self._searcher()
        now = self._clock()
        try:
            whoosh_query = self._build_query(query, members, searcher)
            if whoosh_query is None:
                return CachedResult([], 0, Facets() if facets else None)
            results = searcher.search(
                whoosh_query, limit=offset + limit, groupedby=_FACET if facets else _COUNT_ONLY, maptype=sorting.Count
            )
            counts = results.groups("f")
            total = counts.get("*", 0)
            result_facets = _facets_from_counts(counts) if facets else None
            works = [
                CachedWork(
                    work_id=hit["work_id"],
                    score=float(hit.score or 0.0),
                    work=orjson.loads(hit["blob"]),
                    age_seconds=max(0.0, now - hit["updated"]),
                )
                for hit in results[offset : offset + limit]
            ]
        except Exception as exc:  # a segment vanished or is damaged under us
            raise UnionIndexError(f"union index {self.path}: search failed: {type(exc).__name__}: {exc}") from exc
        return CachedResult(works, total, result_facets)

    def stats(self) -> IndexStats:
        with self._cond:
            queue_depth, queued_works = len(self._queue), self._queued_works
        return IndexStats(
            doc_count=self._doc_count,
            segments=self._segments,
            last_commit_at=self._last_commit_at,
            last_commit_ms=self._last_commit_ms,
            queue_depth=queue_depth,
            queued_works=queued_works,
            dropped_batches=self._dropped_batches,
            committed_batches=self._committed_batches,
            commits=self._commits,
            failed_batches=self._failed_batches,
            evicted=self._evicted,
            last_error=self._last_error,
        )

    def _searcher(self) -> Searcher:
        """This thread's searcher, refreshed if the writer committed since it was made."""
        thread = threading.current_thread()
        ident = thread.ident or 0
        generation = self._generation
        with self._readers_lock:
            if self._closed:
                raise UnionIndexError(f"union index {self.path} is closed")
            reader = self._readers.get(ident)
            if reader is not None and reader.thread() is not thread:
                reader = None  # a dead thread's id reused: its searcher is closed below
        if reader is not None and reader.generation == generation:
            return reader.searcher
        # Outside the lock: opening segments takes milliseconds and other threads must not wait.
        replaced: Searcher | None = None
        try:
            if reader is not None and not isinstance(reader.searcher.reader(), EmptyReader):
                searcher = reader.searcher.refresh()
            else:
                # whoosh cannot refresh a searcher made on an empty index (its reader has
                # no segments to reuse): open a new one; the stale one is closed below.
                searcher = self._ix.searcher(weighting=BM25F())
                replaced = reader.searcher if reader is not None else None
        except Exception as exc:
            raise UnionIndexError(f"union index {self.path}: cannot open a reader: {exc}") from exc
        stale: list[Searcher] = [replaced] if replaced is not None else []
        with self._readers_lock:
            self._readers[ident] = _Reader(weakref.ref(thread), searcher, generation)
            # Threads that are gone (executor threads come and go) leave searchers behind.
            for other_ident, other in list(self._readers.items()):
                other_thread = other.thread()
                if other_thread is None or not other_thread.is_alive():
                    stale.append(self._readers.pop(other_ident).searcher)
        for old in stale:
            with contextlib.suppress(Exception):
                old.close()
        return searcher

    # --- query building ----------------------------------------------------------------

    def _analyse(self, fieldname: str, text: str) -> list[str]:
        """Query-side terms of `text` for one field: the field's own analyzer in query mode."""
        return list(dict.fromkeys(self._schema[fieldname].process_text(text, mode="query")))

    def _word_clause(
        self, word: str, fieldnames: Sequence[str], present: Callable[[str, str], bool], *, isbn: bool
    ) -> query.Query | None:
        """One query word: all its terms in one of the fields (Or over fields, And within).

        None when the word has no searchable terms (punctuation, a lone kana); raises
        _NoMatch when it has terms but no field holds them all (the AND cannot match).
        """
        # Each field alternative costs term lookups in every segment and, worse, a posting
        # walk per matching document (~30 µs of whoosh Python per hit of a 5-field query).
        # So a word is only looked for where its script can occur:
        # - with a kanji: not in readings (they are kana and Latin);
        # - kana only: title and the readings, not author/publisher: an author typed in kana
        #   is found through author_reading (NDL readings are katakana), and kana bigrams are
        #   the most frequent terms (さよなら matched 2.7k of 30k works through 5 fields);
        # and only in fields whose lexicon has every one of its terms (one lookup per term
        # per segment here saves the matcher's two or three, and usually leaves one field).
        if _HAS_KANJI.search(word):
            fieldnames = [f for f in fieldnames if f not in _READING_FIELDS]
        elif _KANA_ONLY.fullmatch(word):
            fieldnames = [f for f in fieldnames if f not in _NOT_FOR_KANA]
        alternatives: list[query.Query] = []
        searchable = False
        for fieldname in fieldnames:
            terms = self._analyse(fieldname, word)
            if not terms:
                continue
            searchable = True
            if all(present(fieldname, t) for t in terms):
                boost = FIELD_BOOSTS[fieldname]
                parts = [query.Term(fieldname, t, boost=boost) for t in terms]
                alternatives.append(parts[0] if len(parts) == 1 else query.And(parts))
        if isbn and (isbn13 := isbn_tools.to_isbn13(word)) is not None:
            searchable = True
            if present("isbn", isbn13):
                alternatives.append(query.Term("isbn", isbn13, boost=ISBN_BOOST))
        if not alternatives:
            if searchable:
                raise _NoMatch
            return None
        return alternatives[0] if len(alternatives) == 1 else query.Or(alternatives)

    def _words_clause(
        self, text: str, fieldnames: Sequence[str], present: Callable[[str, str], bool], *, isbn: bool = False
    ) -> list[query.Query]:
        # Whitespace (incl. the ideographic space) separates words; each is ANDed.
        words = text.replace("\u3000", " ").split()
        clauses = [self._word_clause(w, fieldnames, present, isbn=isbn) for w in words]
        found = [c for c in clauses if c is not None]
        if not found:
            raise _NoMatch  # nothing searchable in the whole field
        return found

    def _build_query(self, q: SearchQuery, members: list[str] | None, searcher: Searcher) -> query.Query | None:
        """The whoosh query for `q`, or None when it cannot match anything in this snapshot."""
        present = _term_presence(searcher)
        required: list[query.Query] = []
        bonus: list[query.Query] = []
        try:
            if q.text:
                required.extend(self._words_clause(q.text, tuple(FIELD_BOOSTS), present, isbn=True))
                bonus.append(q.text)
            if q.title:
                required.extend(self._words_clause(q.title, ("title", "title_reading"), present))
                bonus.append(q.title)
            if q.author:
                required.extend(self._words_clause(q.author, ("author", "author_reading"), present))
        except _NoMatch:
            return None
        if q.isbn:
            required.append(query.Term("isbn", q.isbn, boost=ISBN_BOOST))
        if q.year is not None:
            required.append(query.NumericRange("year", q.year, q.year))
        if not required:
            return None
        if members is not None:
            # A filter, not a ranking signal: boost 0 adds nothing to the score, and as a
            # conjunct it is evaluated lazily (skipping), unlike whoosh's `filter=` docset.
            member_terms = [query.Term("members", m, boost=0.0) for m in dict.fromkeys(members) if present("members", m)]
            if not member_terms:
                return None
            required.append(member_terms[0] if len(member_terms) == 1 else query.Or(member_terms))
        main = required[0] if len(required) == 1 else query.And(required)
        exact = [
            query.Term("exact", k, boost=EXACT_TITLE_BOOST)
            for k in dict.fromkeys(key(text) for text in bonus)
            if k and present("exact", k)
        ]
        if exact:
            return query.AndMaybe(main, exact[0] if len(exact) == 1 else query.Or(exact))
        return main

    # --- the writer thread -------------------------------------------------------------

    def _run_writer(self) -> None:
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
                self._failed_batches += len(batches)
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("union index %s: write failed", self.path)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _next_batches(self) -> list[_Batch] | None:
        """Wait for a batch worth committing; [] when it is time for an idle age sweep;
        None when closing and nothing is left."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._queue:
                    due = self._queue[0].enqueued_at + self.batch_delay_s
                    if self._queued_works >= self.batch_size or self._flush_waiters or self._closing or now >= due:
                        taken: list[_Batch] = []
                        size = 0
                        while self._queue and (not taken or size + len(self._queue[0].works) <= self.batch_size):
                            batch = self._queue.popleft()
                            taken.append(batch)
                            size += len(batch.works)
                        self._queued_works -= size
                        self._in_flight = len(taken)
                        return taken
                    self._cond.wait(due - now)
                elif self._closing:
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
        oldest_kept = now - self.max_age_s
        aged_query = query.NumericRange("updated", None, int(oldest_kept), endexcl=True)
        writer = self._ix.writer(timeout=self.lock_timeout_s)
        try:
            # The writer's own (cached) searcher sees the committed index as of the lock.
            searcher = writer.searcher()
            has_docs = searcher.doc_count_all() > 0
            for work_id, work in latest.items():
                # update_document would look the id up again; we need the old blob anyway.
                docnum = searcher.document_number(work_id=work_id) if has_docs else None
                previous = None
                if docnum is not None:
                    previous = orjson.loads(searcher.stored_fields(docnum)["blob"])
                    writer.delete_document(docnum)
                writer.add_document(**_document(work, now, self._municipalities, previous, oldest_kept))
            # Age bound, in the same commit: works nobody has shown us for max_age_days.
            aged = writer.delete_by_query(aged_query)
            if self._before_commit is not None:
                self._before_commit()
            writer.commit(mergetype=_log_merge)
        except BaseException:
            writer.cancel()
            raise
        self._evicted += aged
        self._doc_count = self._count_docs()
        self._after_commit(started)
        if self._doc_count > self.max_works:
            self._evict_oldest()
        self._committed_batches += len(batches)

    def _evict_oldest(self) -> None:
        """Size bound: delete the least recently updated works down to 95 % of max_works."""
        started = time.perf_counter()
        writer = self._ix.writer(timeout=self.lock_timeout_s)
        try:
            reader = writer.searcher().reader()
            excess = reader.doc_count() - int(self.max_works * 0.95)
            if excess <= 0:
                writer.cancel()
                return
            updated = reader.column_reader("updated")
            # (updated, docnum): ties broken by docnum, i.e. older segments first.
            oldest = heapq.nsmallest(excess, ((updated[d], d) for d in reader.all_doc_ids()))
            for _, docnum in oldest:
                writer.delete_document(docnum)
            writer.commit(mergetype=_log_merge)
        except BaseException:
            writer.cancel()
            raise
        self._evicted += len(oldest)
        self._doc_count = self._count_docs()
        self._after_commit(started)

    def _sweep(self) -> None:
        """Idle-time age sweep, so aged works go even when nothing new is being written."""
        self._next_sweep = time.monotonic() + self.evict_interval_s
        started = time.perf_counter()
        oldest_kept = int(self._clock() - self.max_age_s)
        writer = self._ix.writer(timeout=self.lock_timeout_s)
        try:
            aged = writer.delete_by_query(query.NumericRange("updated", None, oldest_kept, endexcl=True))
            if not aged:
                writer.cancel()
                return
            writer.commit(mergetype=_log_merge)
        except BaseException:
            writer.cancel()
            raise
        self._evicted += aged
        self._doc_count = self._count_docs()
        self._after_commit(started)

    def _after_commit(self, started: float) -> None:
        self._last_commit_at = self._clock()
        self._last_commit_ms = (time.perf_counter() - started) * 1000
        self._last_error = None
        self._commits += 1
        self._generation += 1  # readers refresh on their next search

    def _count_docs(self) -> int:
        # From the TOC's segment list: no segment is opened.
        segments = self._ix._segments()  # whoosh has no public accessor; FileIndex keeps it stable
        self._segments = len(segments)
        return sum(segment.doc_count() for segment in segments)


# --- opening, locking, damage --------------------------------------------------------


def _open_index(path: Path, schema: fields.Schema, lock_timeout_s: float) -> tuple[Any, Any]:
    """Open (or create) the whoosh index at `path` and take the owner lock.

    Every failure becomes UnionIndexError naming the directory and what to do.
    """
    if path.exists() and not path.is_dir():
        raise UnionIndexError(f"union index path {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnionIndexError(f"cannot create union index directory {path}: {exc}") from exc
    marker = path / _MARKER
    storage = FileStorage(str(path))
    owner_lock = None
    try:
        if marker.exists():
            _check_marker(marker)
        elif any(path.iterdir()):
            raise UnionIndexError(
                f"{path} is not empty and is not a Yokodan union index (no {_MARKER}); refusing to write into it"
            )
        else:
            marker.write_bytes(orjson.dumps({"schema_version": SCHEMA_VERSION}))
        owner_lock = _acquire(storage, _OWNER_LOCK_NAME, path, lock_timeout_s)
        _clear_stale_lock(path, storage, schema, lock_timeout_s)
        if any(path.glob(f"_{_INDEX_NAME}_*.toc")):
            # Our schema, not the pickled one: the analyzers come from this code's version
            # (the marker's version check makes sure they mean the same thing). Not
            # storage.index_exists(): it unpickles the stored schema just to say yes.
            ix = storage.open_index(_INDEX_NAME, schema=schema)
        else:
            ix = storage.create_index(schema, _INDEX_NAME)
        # Opening the TOC reads little; a reader opens every segment, so damage shows now.
        with ix.searcher() as searcher:
            searcher.doc_count()
        return ix, owner_lock
    except Exception as exc:
        if owner_lock is not None:
            with contextlib.suppress(Exception):
                owner_lock.release()
        if isinstance(exc, UnionIndexError):
            raise
        raise UnionIndexError(
            f"union index {path} is unreadable ({type(exc).__name__}: {exc}); it is a cache: "
            f"delete the directory to rebuild it"
        ) from exc


def _acquire(storage: FileStorage, name: str, path: Path, timeout_s: float) -> Any:
    lock = storage.lock(name)
    deadline = time.monotonic() + timeout_s
    while not lock.acquire(blocking=False):
        if time.monotonic() >= deadline:
            raise UnionIndexError(f"union index {path} is in use by a live process ({name} is held)")
        time.sleep(0.05)
    return lock


def _check_marker(marker: Path) -> None:
    try:
        version = orjson.loads(marker.read_bytes()).get("schema_version")
    except (OSError, orjson.JSONDecodeError, AttributeError) as exc:
        raise UnionIndexError(f"unreadable union index marker {marker}: {exc}") from exc
    if version != SCHEMA_VERSION:
        raise UnionIndexError(
            f"union index {marker.parent} has schema version {version!r}, this Yokodan uses {SCHEMA_VERSION}; "
            f"delete the directory to rebuild it"
        )


def _clear_stale_lock(path: Path, storage: FileStorage, schema: fields.Schema, lock_timeout_s: float) -> None:
    """Remove what a killed writer leaves behind, or fail if a live one holds the lock.

    whoosh's MAIN_WRITELOCK file is a lock only while a process holds an flock(2) on it
    (fcntl on POSIX, msvcrt.locking on Windows); the kernel releases that lock when the
    holder dies, so after a SIGKILL the file stays but nobody holds it, and whoosh itself
    would simply lock it again. We probe with a non-blocking acquire: if it succeeds the
    file is stale, and while still holding it we delete it and the killed writer's debris:
    its MAIN.tmp pool directory, half-written TOC temp files and the segment files of the
    commit that never happened (whoosh's `clean_files` against the last good TOC; what the
    TOC does not name was never visible to a reader). A commit is only visible once its
    TOC is renamed into place, so the last good generation is intact. If the probe keeps
    failing for `lock_timeout_s`, another live process is writing here: UnionIndexError.
    """
    lock = _acquire(storage, _LOCK_NAME, path, lock_timeout_s)
    try:
        toc_temp = re.compile(rf"^_{_INDEX_NAME}_\d+\.toc\..+$")
        for entry in path.iterdir():
            if entry.name == f"{_INDEX_NAME}.tmp" and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif toc_temp.match(entry.name):
                with contextlib.suppress(OSError):
                    entry.unlink()
        if any(path.glob(f"_{_INDEX_NAME}_*.toc")):
            toc = TOC.read(storage, _INDEX_NAME, schema=schema)
            clean_files(storage, _INDEX_NAME, toc.generation, toc.segments)
        with contextlib.suppress(OSError):
            os.unlink(path / _LOCK_NAME)
    finally:
        lock.release()
