"""A SearchQuery as a whoosh query: words ANDed, each in the fields its script can occur in.

Ranking is BM25F over the text fields with FIELD_BOOSTS, plus EXACT_TITLE_BOOST when the
whole query is a title, and ISBN_BOOST for an ISBN typed as text. `present(field, term)`
(the snapshot's lexicon, cached by the back end) prunes clauses that cannot match, so a
query never builds a matcher for a term no document has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from whoosh import fields, query

# The query semantics and ranking constants every engine shares (PostgreSQL's too).
from index.store.query_plan import EXACT_TITLE_BOOST, FIELD_BOOSTS, ISBN_BOOST, script_fields
from index.text import key
from yokodan import SearchQuery
from yokodan import isbn as isbn_tools

__all__ = ["EXACT_TITLE_BOOST", "FIELD_BOOSTS", "ISBN_BOOST", "QueryBuilder"]

Presence = Callable[[str, str], bool]


class _NoMatch(Exception):
    """A required query word has terms, but no field holds them all."""


class QueryBuilder:
    def __init__(self, schema: fields.Schema) -> None:
        self._schema = schema

    def build(self, q: SearchQuery, members: Sequence[str] | None, present: Presence) -> query.Query | None:
        """The whoosh query for `q`, or None when it cannot match anything in this snapshot."""
        required: list[query.Query] = []
        bonus: list[str] = []
        try:
            if q.text:
                required.extend(self._words(q.text, tuple(FIELD_BOOSTS), present, isbn=True))
                bonus.append(q.text)
            if q.title:
                required.extend(self._words(q.title, ("title", "title_reading"), present))
                bonus.append(q.title)
            if q.author:
                required.extend(self._words(q.author, ("author", "author_reading"), present))
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
            required.append(_any(member_terms))
        main = required[0] if len(required) == 1 else query.And(required)
        exact = [
            query.Term("exact", k, boost=EXACT_TITLE_BOOST)
            for k in dict.fromkeys(key(text) for text in bonus)
            if k and present("exact", k)
        ]
        return query.AndMaybe(main, _any(exact)) if exact else main

    def _analyse(self, fieldname: str, text: str) -> list[str]:
        """Query-side terms of `text` for one field: the field's own analyzer in query mode."""
        return list(dict.fromkeys(self._schema[fieldname].process_text(text, mode="query")))

    def _words(self, text: str, fieldnames: Sequence[str], present: Presence, *, isbn: bool = False) -> list[query.Query]:
        # Whitespace (incl. the ideographic space) separates words; each is ANDed.
        clauses = [self._word(w, fieldnames, present, isbn=isbn) for w in text.replace("\u3000", " ").split()]
        found = [c for c in clauses if c is not None]
        if not found:
            raise _NoMatch  # nothing searchable in the whole field
        return found

    def _word(self, word: str, fieldnames: Sequence[str], present: Presence, *, isbn: bool) -> query.Query | None:
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
        fieldnames = script_fields(word, fieldnames)
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
        return _any(alternatives)


def _any(clauses: list[query.Query]) -> query.Query:
    return clauses[0] if len(clauses) == 1 else query.Or(clauses)
