"""Counting index.facets keys over every match, in the same pass as the scoring.

Each document stores its facet keys in one column (whoosh_schema.py); a categorizer reads
that column once per matched document and whoosh's grouping counts works per key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from whoosh import sorting
from whoosh.searching import Searcher

from index.facets import ALL
from index.store.whoosh_schema import FACET_SEPARATOR

__all__ = ["ColumnFor", "CountAll", "FacetKeys"]

ColumnFor = Callable[[Any], Any]  # a segment's reader -> its facet column reader


class _FacetKeysCategorizer(sorting.Categorizer):
    allow_overlap = True

    def __init__(self, column_for: ColumnFor) -> None:
        self._column_for = column_for
        self._column: Any = None

    def set_searcher(self, segment_searcher: Searcher, docoffset: int) -> None:
        self._column = self._column_for(segment_searcher.reader())

    def keys_for(self, matcher: object, docid: int) -> list[str]:
        raw = self._column[docid]
        return raw.decode().split(FACET_SEPARATOR) if raw else [ALL]

    def key_for(self, matcher: object, docid: int) -> str:
        return self.keys_for(matcher, docid)[0]

    def key_to_name(self, key: str) -> str:
        return key


class FacetKeys(sorting.FacetType):
    """`column_for(segment reader)` gives that segment's facet column (the back end caches them)."""

    def __init__(self, column_for: ColumnFor) -> None:
        self._column_for = column_for

    def categorizer(self, global_searcher: Searcher) -> _FacetKeysCategorizer:
        return _FacetKeysCategorizer(self._column_for)


class _CountAllCategorizer(sorting.Categorizer):
    """Puts every match in one group: an exact total in the same pass as the scoring.

    (Results.__len__ after a top-N search runs the query a second time.)"""

    def key_for(self, matcher: object, docid: int) -> str:
        return ALL


class CountAll(sorting.FacetType):
    def categorizer(self, global_searcher: Searcher) -> _CountAllCategorizer:
        return _CountAllCategorizer()
