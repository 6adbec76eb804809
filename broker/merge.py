"""Merging member records into works during a search.

`Clusterer` is the seam between search orchestration and deduplication: the
search hands each member's records to `add` as they arrive and reads `work(id)`
or `works()` when it needs them. The implementation is `index.dedup.WorkClusterer`
(Japanese-aware normalisation, blocking, a match cascade with recorded reasons).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from yokodan import Record, Work
from index.dedup import WorkClusterer


class Clusterer(Protocol):
    def add(self, records: Iterable[Record]) -> list[str]: ...

    def works(self) -> list[Work]: ...

    def work(self, work_id: str) -> Work: ...


def default_clusterer() -> Clusterer:
    """Manifestation-level clustering: editions and volumes stay apart."""
    return WorkClusterer()
