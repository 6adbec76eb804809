"""The distinct records of every member in this process, searched as one corpus, set-wise.

The members of one sandbox hold copies of one catalogue (the 13 Okayama members: 6,791 records,
1,314 distinct), so a query is answered once for the process as a set of distinct-record ids and
each member keeps the positions it holds. Text terms are found with `str.find` over each field's
texts joined into one string (C speed) instead of a Python predicate call per record: in
bench/soak.py's burst of 200 different queries the per-record predicate calls were half of the
sandbox's CPU, which shares the machine's two cores with the broker it is there to measure.

Semantics are `sandbox.cql.compile_query`'s exactly (tests/test_sandbox_cql.py compares the two
over the generated catalogue): the terms are normalised and padded by the same `_needle`, leaves
without a text form (year, ISBN, exact `==`) fall back to that predicate record by record, and a
malformed query raises the same CQLError.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from sandbox.cql import BooleanNode, Node, SearchFields, _needle, _words, compile_query, parse
from yokodan import isbn as isbn_tools

# A record's texts are joined with this separator, which no normalised text or needle holds, so
# a needle never spans two records.
_SEPARATOR = "\x00"
_TEXT_FIELDS = ("title", "author", "any")
_CONTAINING_CACHE_SIZE = 4096
_QUERY_CACHE_SIZE = 256


class Corpus:
    """Distinct `SearchFields` of the process, each with an id (its index), and their texts joined per field."""

    def __init__(self) -> None:
        self.fields: list[SearchFields] = []
        self._ids: dict[SearchFields, int] = {}
        self._joined: dict[str, tuple[str, list[int]]] = {}  # field -> (texts joined, start offsets)
        # (field, needle) -> ids: queries differ more than their words (bench/soak.py's 196 queries
        # are pairs of 14 words), so each word's scan is kept until the corpus changes.
        self._containing: dict[tuple[str, str], frozenset[int]] = {}
        self._queries: dict[str, frozenset[int]] = {}  # CQL -> ids, as many as a member's result cache

    def add(self, fields: SearchFields) -> int:
        """The id of `fields`, registering it when new (members are built before they are asked)."""
        known = self._ids.get(fields)
        if known is not None:
            return known
        self._ids[fields] = len(self.fields)
        self.fields.append(fields)
        self._joined.clear()  # rebuilt on the next query
        self._containing.clear()
        self._queries.clear()
        return len(self.fields) - 1

    def _text(self, field: str) -> tuple[str, list[int]]:
        joined = self._joined.get(field)
        if joined is None:
            texts = [getattr(f, field) for f in self.fields]
            starts, offset = [], 0
            for text in texts:
                starts.append(offset)
                offset += len(text) + 1
            joined = self._joined[field] = (_SEPARATOR.join(texts), starts)
        return joined

    def containing(self, field: str, needle: str) -> frozenset[int]:
        """Ids of the records whose `field` holds `needle` (`needle in getattr(f, field)`)."""
        found = self._containing.get((field, needle))
        if found is None:
            found = self._containing[field, needle] = frozenset(self._scan(field, needle))
            _bound(self._containing, _CONTAINING_CACHE_SIZE)
        return found

    def _scan(self, field: str, needle: str) -> set[int]:
        text, starts = self._text(field)
        found: set[int] = set()
        at = text.find(needle)
        while at >= 0:
            record = bisect_right(starts, at) - 1
            found.add(record)
            # On to the next record: one occurrence is enough.
            following = starts[record + 1] if record + 1 < len(starts) else len(text)
            at = text.find(needle, following)
        return found

    def where(self, predicate: Callable[[SearchFields], bool]) -> set[int]:
        return {i for i, f in enumerate(self.fields) if predicate(f)}

    def query(self, cql: str) -> frozenset[int]:
        """`matching` of the parsed query, kept until the corpus changes (a burst asks every member)."""
        found = self._queries.get(cql)
        if found is None:
            found = self._queries[cql] = frozenset(self.matching(parse(cql)))
            _bound(self._queries, _QUERY_CACHE_SIZE)
        return found

    def matching(self, node: Node) -> set[int]:
        """Ids of the records the query matches."""
        if isinstance(node, BooleanNode):
            left, right = self.matching(node.left), self.matching(node.right)
            if node.op == "and":
                return left & right
            if node.op == "or":
                return left | right
            return left - right
        if node.index == "allrecords":
            return set(range(len(self.fields)))
        if node.index in _TEXT_FIELDS and node.relation != "==":
            words = [node.term] if node.relation == "adj" else _words(node.term)
            sets = [self._word(node.index, word) for word in words]
            if node.relation == "any":
                return set().union(*sets)
            return set.intersection(*sets)
        return self.where(compile_query(node))  # year, ISBN, exact: record by record

    def _word(self, field: str, word: str) -> set[int]:
        needle = _needle(word)
        if not needle:  # a term of punctuation only matches nothing, as in Zebra
            return set()
        found = self.containing(field, needle)
        if field == "any" and (isbn13 := isbn_tools.to_isbn13(word)) is not None:
            return set(found) | self.where(lambda f: isbn13 in f.isbns)
        return set(found)


def _bound(cache: dict[Any, Any], size: int) -> None:
    if len(cache) > size:
        del cache[next(iter(cache))]  # the oldest entry


CORPUS = Corpus()


def matching(query: str) -> frozenset[int]:
    """Ids in `CORPUS` of the records `query` (CQL) matches; raises CQLError as the predicate does."""
    return CORPUS.query(query)
