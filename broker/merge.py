"""Merging member records into works during a search.

`Clusterer` is the seam between search orchestration and deduplication: the
search hands each member's records to `add` as they arrive and reads `works()`
after every step. The real Japanese-aware clustering lives in `index.dedup`;
`IsbnClusterer` is the plain fallback (same ISBN-13 -> same work).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

from broker.models import Record, Work


class Clusterer(Protocol):
    def add(self, records: Iterable[Record]) -> list[str]: ...

    def works(self) -> list[Work]: ...

    def work(self, work_id: str) -> Work: ...


class IsbnClusterer:
    """Records sharing an ISBN-13 form one work; records without one stand alone."""

    def __init__(self) -> None:
        self._works: dict[str, list[Record]] = {}
        self._by_isbn: dict[str, str] = {}

    def add(self, records: Iterable[Record]) -> list[str]:
        changed: list[str] = []
        for record in records:
            work_id = next((self._by_isbn[i] for i in record.isbns if i in self._by_isbn), None)
            if work_id is None:
                basis = record.isbns[0] if record.isbns else f"{record.member}:{record.local_id}"
                work_id = hashlib.blake2s(basis.encode(), digest_size=8).hexdigest()
                self._works[work_id] = []
            self._works[work_id].append(record)
            for isbn in record.isbns:
                self._by_isbn.setdefault(isbn, work_id)
            changed.append(work_id)
        return list(dict.fromkeys(changed))

    def works(self) -> list[Work]:
        return [_work(work_id, records) for work_id, records in self._works.items()]

    def work(self, work_id: str) -> Work:
        return _work(work_id, self._works[work_id])


def _work(work_id: str, records: list[Record]) -> Work:
    # The record with the most to say (a reading, ISBNs) speaks for the work.
    best = max(records, key=lambda r: (r.title_reading is not None, len(r.isbns), len(r.authors)))
    isbns = list(dict.fromkeys(i for r in records for i in r.isbns))
    return Work(
        work_id=work_id,
        title=best.title,
        title_reading=best.title_reading,
        authors=best.authors,
        publisher=best.publisher,
        year=best.year,
        isbns=isbns,
        volume=best.volume,
        records=records,
        match_reasons=["isbn"] if len(records) > 1 and isbns else [],
    )


def default_clusterer() -> Clusterer:
    return IsbnClusterer()
