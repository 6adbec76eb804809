"""Writing to whoosh: one commit-or-cancel, replace by work id, age and size eviction, merges."""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from whoosh import query as wq
from whoosh.index import Index
from whoosh.reading import SegmentReader

from index.store.documents import IndexDocument
from index.store.merge_policy import SegmentSize, segments_to_merge
from index.store.whoosh_schema import to_fields

__all__ = ["WhooshTransaction", "commit_or_cancel"]


class WhooshTransaction:
    """WriteTransaction over one whoosh writer (public whoosh API only)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self._searcher = writer.searcher()  # the committed index as of the lock
        self._has_docs = self._searcher.doc_count_all() > 0
        self._docnums: dict[str, int | None] = {}
        self.changed = False

    def _docnum(self, work_id: str) -> int | None:
        if work_id not in self._docnums:
            self._docnums[work_id] = self._searcher.document_number(work_id=work_id) if self._has_docs else None
        return self._docnums[work_id]

    def previous(self, work_id: str) -> dict[str, Any] | None:
        docnum = self._docnum(work_id)
        return None if docnum is None else orjson.loads(self._searcher.stored_fields(docnum)["blob"])

    def previous_many(self, work_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found = ((work_id, self.previous(work_id)) for work_id in work_ids)
        return {work_id: blob for work_id, blob in found if blob is not None}

    def replace(self, document: IndexDocument) -> None:
        # update_document would look the id up again; previous() has already found it.
        docnum = self._docnum(document.work_id)
        if docnum is not None:
            self._writer.delete_document(docnum)
            self._docnums[document.work_id] = None
        self._writer.add_document(**to_fields(document))
        self.changed = True

    def delete_updated_before(self, cutoff: int) -> int:
        deleted = self._writer.delete_by_query(wq.NumericRange("updated", None, cutoff, endexcl=True))
        self.changed = self.changed or bool(deleted)
        return deleted

    def delete_least_recent(self, count: int) -> int:
        if count <= 0:
            return 0
        reader = self._searcher.reader()
        updated = reader.column_reader("updated")
        # (updated, docnum): ties broken by docnum, i.e. older segments first.
        oldest = heapq.nsmallest(count, ((updated[d], d) for d in reader.all_doc_ids()))
        for _, docnum in oldest:
            self._writer.delete_document(docnum)
        self.changed = self.changed or bool(oldest)
        return len(oldest)

    def live_count(self) -> int:
        return self._searcher.doc_count()

    def close(self) -> None:
        """Close the searcher of the index as of the lock: its readers hold every segment file
        that commit's merges delete (left to the garbage collector, they stayed open for minutes)."""
        self._searcher.close()
        self._searcher = None  # the caller's frame still holds this transaction while we collect


@contextlib.contextmanager
def commit_or_cancel(ix: Index, lock_timeout_s: float) -> Iterator[WhooshTransaction]:
    """The one commit-or-cancel: commit what changed, cancel when nothing did or on error."""
    writer = ix.writer(timeout=lock_timeout_s)
    tx: WhooshTransaction | None = None
    try:
        tx = WhooshTransaction(writer)
        yield tx
        if tx.changed:
            writer.commit(mergetype=_log_merge)
        else:
            writer.cancel()
    except BaseException:
        with contextlib.suppress(Exception):
            writer.cancel()
        raise
    finally:
        if tx is not None:
            with contextlib.suppress(Exception):
                tx.close()


def _log_merge(writer: Any, segments: list[Any]) -> list[Any]:
    """merge_policy as a whoosh `mergetype`: merge what it chooses, keep the rest."""
    chosen = set(segments_to_merge([SegmentSize(s.doc_count(), s.deleted_count()) for s in segments]))
    for n in sorted(chosen):
        reader = SegmentReader(writer.storage, writer.schema, segments[n])
        writer.add_reader(reader)
        reader.close()
    return [s for n, s in enumerate(segments) if n not in chosen]
