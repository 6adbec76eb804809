"""The interface a union-index engine implements (whoosh today; tantivy or PostgreSQL later).

The facade (`union.py`) and the write-behind writer (`writer.py`) only talk to these
protocols, so a second engine is one new module beside `whoosh_backend.py`. Contract:

- one `IndexBackend` per directory, owned by this process (the engine takes its locks when
  it is opened and fails with `UnionIndexInUse` at once, never waiting, when another owner
  holds them; `UnionIndexError` for anything else unusable); the owner may let a writer
  process it started write on its behalf (whoosh: `WhooshBackend.open_writer`, and the
  owner's `refresh()` when a commit landed there; engine-specific, not part of the protocol);
- writes happen in one thread at a time, inside `transaction()`: what the block did is
  committed when it ends normally and changed something, cancelled otherwise (nothing
  changed, or an exception: then it is re-raised);
- `search` may be called from any number of threads at once, including during a
  transaction, and answers from the last committed state: never a half-written one, never
  a work twice, never one the last commit deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from index.store.documents import IndexDocument
from yokodan import SearchQuery

__all__ = ["BackendHit", "BackendResult", "IndexBackend", "WriteTransaction"]


@dataclass(frozen=True, slots=True)
class BackendHit:
    work_id: str
    score: float
    blob: dict[str, Any]
    updated: int  # epoch seconds of the document's last write


@dataclass(frozen=True, slots=True)
class BackendResult:
    hits: list[BackendHit]  # the requested page, best first
    total: int  # every match
    facet_counts: dict[str, int] | None  # index.facets keys -> matching works, when asked for


class WriteTransaction(Protocol):
    def previous(self, work_id: str) -> dict[str, Any] | None:
        """The stored blob of `work_id` as of the transaction's start, or None."""

    def previous_many(self, work_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`previous` of each id that has a stored blob, at once (a database answers them in
        one round trip instead of one per work)."""

    def replace(self, document: IndexDocument) -> None:
        """Store `document`, replacing any document with its work_id."""

    def delete_updated_before(self, cutoff: int) -> int:
        """Delete documents last written before `cutoff` (epoch seconds); how many."""

    def delete_least_recent(self, count: int) -> int:
        """Delete the `count` least recently written documents; how many."""

    def live_count(self) -> int:
        """Documents as of the transaction's start."""


class IndexBackend(Protocol):
    def transaction(self) -> AbstractContextManager[WriteTransaction]: ...

    def search(
        self, query: SearchQuery, members: Sequence[str] | None, *, offset: int, limit: int, facets: bool
    ) -> BackendResult: ...

    def doc_count(self) -> int:
        """Live documents in the last commit (cheap: no segment is opened)."""

    def segment_count(self) -> int: ...

    def close(self) -> None:
        """Release readers and locks; later searches raise UnionIndexError."""
