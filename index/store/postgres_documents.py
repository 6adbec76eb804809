"""An IndexDocument as a row of the PostgreSQL union index: prefixed terms, norms, facet columns.

The terms are what the whoosh engine indexes for the same document (the analyzers of
query_plan.FIELD_ANALYZERS in index mode, each multi-valued field joined with newlines so no
bigram spans two titles), prefixed by field so that one GIN index serves every field.
"""

from __future__ import annotations

from typing import Any

import orjson

from index.store.documents import IndexDocument
from index.store.query_plan import FIELD_ANALYZERS

__all__ = ["COLUMNS", "FIELD_PREFIX", "NORM_COLUMNS", "field_norm", "prefixed", "to_row"]

# One letter per field; `i` ISBN terms, `x` exact-title keys.
FIELD_PREFIX: dict[str, str] = {
    "title": "t",
    "title_reading": "r",
    "author": "a",
    "author_reading": "b",
    "publisher": "p",
    "isbn": "i",
    "exact": "x",
}
NORM_COLUMNS: dict[str, str] = {field: f"{field}_norm" for field in FIELD_ANALYZERS}

# BM25 with whoosh's defaults (BM25F: B 0.75, K1 1.2) for a term found once in a field of
# `length` terms. The average lengths are fixed, typical values of catalogue records (terms,
# including kanji unigrams) rather than statistics kept up to date across nodes: they only
# shape how much a long field is discounted against a short one.
_B, _K1 = 0.75, 1.2
_AVERAGE_LENGTH: dict[str, float] = {
    "title": 24.0,
    "title_reading": 14.0,
    "author": 10.0,
    "author_reading": 10.0,
    "publisher": 4.0,
}

COLUMNS: tuple[str, ...] = (
    "work_id",
    "terms",
    *NORM_COLUMNS.values(),
    "year",
    "ndc",
    "ndc_class",
    "members",
    "municipalities",
    "on_shelf",
    "facet_keys",
    "updated",
    "blob",
)


def field_norm(field: str, length: int) -> float:
    if length == 0:
        return 0.0
    return (_K1 + 1) / (1 + _K1 * (1 - _B + _B * length / _AVERAGE_LENGTH[field]))


def prefixed(field: str, terms: list[str] | tuple[str, ...]) -> list[str]:
    prefix = FIELD_PREFIX[field]
    return [f"{prefix}:{t}" for t in terms]


def to_row(document: IndexDocument) -> tuple[Any, ...]:
    """The row for `document`, in COLUMNS order (the blob as JSON text, for COPY)."""
    texts = {
        "title": document.titles,
        "title_reading": document.title_readings,
        "author": document.authors,
        "author_reading": document.author_readings,
        "publisher": document.publishers,
    }
    terms: list[str] = []
    norms: list[float] = []
    for field, values in texts.items():
        tokens = [t.text for t in FIELD_ANALYZERS[field]("\n".join(values), mode="index")] if values else []
        terms.extend(prefixed(field, list(dict.fromkeys(tokens))))
        norms.append(field_norm(field, len(tokens)))
    terms.extend(prefixed("isbn", document.isbn_terms))
    terms.extend(prefixed("exact", document.exact))
    return (
        document.work_id,
        list(dict.fromkeys(terms)),
        *norms,
        document.year,
        document.ndc,
        document.ndc_class,
        document.members,
        document.municipalities,
        document.on_shelf,
        document.facet_keys,
        document.updated,
        orjson.dumps(document.blob).decode(),
    )
