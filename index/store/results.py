"""What the union index answers with: plain data, free of any search engine's types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from index.facets import Facets
from yokodan.errors import StoreError

__all__ = ["CachedResult", "CachedWork", "Facets", "IndexStats", "UnionIndexError", "UnionIndexInUse", "WriterCrashed"]


class UnionIndexError(StoreError):
    """The union index directory cannot be used (corrupt, foreign, locked, wrong version)."""


class UnionIndexInUse(UnionIndexError):
    """Another live process (or another UnionIndex in this one) owns the directory.

    `UnionIndex.open` never waits for it; `UnionIndex.open_async` retries until its deadline.
    """


class WriterCrashed(UnionIndexError):
    """The writer process died (killed, out of memory) before it answered for a commit.

    The commit may or may not have landed; the writer thread restarts the process and puts
    the batch back once (a replace by work id, so landing twice is harmless).
    """


@dataclass(frozen=True, slots=True)
class CachedWork:
    work_id: str
    score: float
    work: dict[str, Any]  # the stored blob: enough to render a result line (see documents.py)
    age_seconds: float  # since this work was last written


@dataclass(slots=True)
class CachedResult:
    works: list[CachedWork]
    total: int
    facets: Facets | None = None


@dataclass(frozen=True, slots=True)
class IndexStats:
    doc_count: int
    segments: int  # back-end segments; every query pays per segment (see merge_policy.py)
    last_commit_at: float | None  # epoch seconds
    last_commit_ms: float | None
    queue_depth: int  # batches waiting
    queued_works: int
    dropped_batches: int
    committed_batches: int
    commits: int  # commits (a commit takes several batches when they queue up)
    failed_batches: int
    evicted: int
    last_error: str | None
    writer: str = "thread"  # "process": commits happen in a writer process, "thread": in this one
    writer_pid: int | None = None  # the writer process, while one runs
    writer_restarts: int = 0  # writer processes started again after one died
    resubmitted_batches: int = 0  # batches put back once after the writer process died on them
    lost_batches: int = 0  # batches the writer process died on twice, dropped
