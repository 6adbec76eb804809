"""A SearchQuery as an engine-neutral plan: required clauses of field alternatives, filters, bonuses.

The query semantics every union-index engine shares (whoosh_query.py builds whoosh queries
with the same rules; postgres_query.py builds SQL from a plan):

- whitespace (incl. the ideographic space) separates words and the words are ANDed;
- one word matches when all of its terms are in one field (an Or over fields, an And
  within a field), each field analysed by its own analyzer (`FIELD_ANALYZERS`, the same
  as whoosh_schema's) in query mode;
- a word is only looked for where its script can occur: with a kanji not in the readings
  (kana and Latin); kana only not in author/publisher (an author typed in kana is found
  through author_reading);
- an ISBN typed into the free-text box is also an alternative (boosted far above text);
- `isbn`, `year` and the member list are filters; an exact title (the whole query equals
  a title, main title or reading key) adds EXACT_TITLE_BOOST.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.analysis import JapaneseAnalyzer, JapaneseTokenizer, ReadingAnalyzer
from index.text import key
from yokodan import SearchQuery
from yokodan import isbn as isbn_tools

__all__ = [
    "EXACT_TITLE_BOOST",
    "FIELD_ANALYZERS",
    "FIELD_BOOSTS",
    "ISBN_BOOST",
    "Alternative",
    "Clause",
    "QueryPlan",
    "field_terms",
    "plan_query",
]

# Query-time field boosts (BM25F term weights are multiplied by them). Query-time rather
# than an index-time boost so they can be tuned without a re-index.
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

# The analyzer of each text field, at index and query time (whoosh_schema.py uses the same).
FIELD_ANALYZERS: dict[str, JapaneseTokenizer] = {
    "title": JapaneseAnalyzer(),
    "title_reading": ReadingAnalyzer(),
    "author": JapaneseAnalyzer(),
    "author_reading": ReadingAnalyzer(),
    "publisher": JapaneseAnalyzer(unigrams=False),
}

READING_FIELDS = frozenset({"title_reading", "author_reading"})
NOT_FOR_KANA = frozenset({"author", "publisher"})
KANA_ONLY = re.compile("[\u3041-\u30fa\u30fc-\u30ff\uff66-\uff9f]+")
HAS_KANJI = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f\u3005-\u3007]")


def field_terms(fieldname: str, text: str, *, mode: str) -> list[str]:
    """The distinct terms `text` gives in `fieldname` ("index" or "query" mode), in order."""
    return list(dict.fromkeys(t.text for t in FIELD_ANALYZERS[fieldname](text, mode=mode)))


def script_fields(word: str, fieldnames: Sequence[str]) -> list[str]:
    """The fields `word` can occur in, by its script (see the module doc)."""
    if HAS_KANJI.search(word):
        return [f for f in fieldnames if f not in READING_FIELDS]
    if KANA_ONLY.fullmatch(word):
        return [f for f in fieldnames if f not in NOT_FOR_KANA]
    return list(fieldnames)


@dataclass(frozen=True, slots=True)
class Alternative:
    field: str  # a FIELD_BOOSTS field, or "isbn"
    terms: tuple[str, ...]  # all required in that field
    boost: float


@dataclass(frozen=True, slots=True)
class Clause:
    """One query word: any of its alternatives matches it."""

    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True, slots=True)
class QueryPlan:
    clauses: tuple[Clause, ...]  # all required
    isbn: str | None  # a required ISBN-13 (the isbn parameter)
    year: int | None
    members: tuple[str, ...] | None  # at least one of them holds the work; None: no filter
    exact_keys: tuple[str, ...]  # exact-title bonus keys


class _NoMatch(Exception):
    """A required part of the query has nothing searchable in it."""


def plan_query(q: SearchQuery, members: Sequence[str] | None) -> QueryPlan | None:
    """The plan for `q`, or None when it cannot match anything (nothing searchable, no member)."""
    clauses: list[Clause] = []
    bonus: list[str] = []
    try:
        if q.text:
            clauses.extend(_words(q.text, tuple(FIELD_BOOSTS), isbn=True))
            bonus.append(q.text)
        if q.title:
            clauses.extend(_words(q.title, ("title", "title_reading")))
            bonus.append(q.title)
        if q.author:
            clauses.extend(_words(q.author, ("author", "author_reading")))
    except _NoMatch:
        return None
    isbn13 = q.isbn or None  # SearchQuery has normalised it to ISBN-13
    if not clauses and isbn13 is None and q.year is None:
        return None
    member_filter = tuple(dict.fromkeys(members)) if members is not None else None
    if member_filter == ():
        return None
    exact = tuple(k for k in dict.fromkeys(key(text) for text in bonus) if k)
    return QueryPlan(tuple(clauses), isbn13, q.year, member_filter, exact)


def _words(text: str, fieldnames: Sequence[str], *, isbn: bool = False) -> list[Clause]:
    clauses = [_word(w, fieldnames, isbn=isbn) for w in text.replace("\u3000", " ").split()]
    found = [c for c in clauses if c is not None]
    if not found:
        raise _NoMatch  # nothing searchable in the whole field
    return found


def _word(word: str, fieldnames: Sequence[str], *, isbn: bool) -> Clause | None:
    """All alternatives of one word; None when it has no searchable terms (punctuation, a lone kana)."""
    alternatives: list[Alternative] = []
    for fieldname in script_fields(word, fieldnames):
        terms = field_terms(fieldname, word, mode="query")
        if terms:
            alternatives.append(Alternative(fieldname, tuple(terms), FIELD_BOOSTS[fieldname]))
    if isbn and (isbn13 := isbn_tools.to_isbn13(word)) is not None:
        alternatives.append(Alternative("isbn", (isbn13,), ISBN_BOOST))
    return Clause(tuple(alternatives)) if alternatives else None
