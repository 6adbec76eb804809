"""The whoosh schema of the union index and an IndexDocument's whoosh field values."""

from __future__ import annotations

from typing import Any

import orjson
from whoosh import fields
from whoosh.columns import VarBytesColumn

from index.analysis import JapaneseAnalyzer, ReadingAnalyzer
from index.store.documents import IndexDocument

__all__ = ["FACET_SEPARATOR", "SCHEMA_VERSION", "schema", "to_fields"]

# Bumped whenever the schema or an analyzer changes meaning (storage.py refuses other versions).
SCHEMA_VERSION = 1
FACET_SEPARATOR = "\x1f"  # joins facet keys in the facet column: never in a member id or a name


def schema() -> fields.Schema:
    ja, ja_no_unigrams, reading = JapaneseAnalyzer(), JapaneseAnalyzer(unigrams=False), ReadingAnalyzer()
    # phrase=False: no positions; queries are ANDed bigrams, positions would only cost space.
    return fields.Schema(
        work_id=fields.ID(unique=True, stored=True),
        title=fields.TEXT(analyzer=ja, phrase=False),
        title_reading=fields.TEXT(analyzer=reading, phrase=False),
        exact=fields.KEYWORD(scorable=True),
        author=fields.TEXT(analyzer=ja, phrase=False),
        author_reading=fields.TEXT(analyzer=reading, phrase=False),
        publisher=fields.TEXT(analyzer=ja_no_unigrams, phrase=False),
        isbn=fields.KEYWORD(scorable=True),
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
        # Facet keys of the document in one column, read once per matched doc.
        facets=fields.COLUMN(VarBytesColumn()),
        blob=fields.STORED,
    )


def to_fields(document: IndexDocument) -> dict[str, Any]:
    # Multi-valued text is joined with newlines: the analyzers treat a line break as a hard
    # boundary, so no bigram spans two titles or two authors.
    values: dict[str, Any] = {
        "work_id": document.work_id,
        "title": "\n".join(document.titles),
        "exact": " ".join(document.exact),
        "isbn": " ".join(document.isbn_terms),
        "members": ",".join(document.members),
        "available": document.on_shelf,
        "updated": document.updated,
        "facets": FACET_SEPARATOR.join(document.facet_keys).encode(),
        "blob": orjson.dumps(document.blob),
    }
    optional = {
        "title_reading": "\n".join(document.title_readings),
        "author": "\n".join(document.authors),
        "author_reading": "\n".join(document.author_readings),
        "publisher": "\n".join(document.publishers),
        "municipalities": ",".join(document.municipalities),
        "ndc": document.ndc,
        "ndc_class": document.ndc_class,
    }
    values.update({name: value for name, value in optional.items() if value})
    if document.year is not None:
        values["year"] = document.year
    return values
