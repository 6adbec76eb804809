"""Ranking merged works: relevance to the query, then how widely held, then availability near the patron.

Relevance here is a few clear tiers rather than a score from one member's engine:
each member ranks (or does not rank) its own hits differently, so the broker
re-ranks on what it sees. Matching uses the same folding as dedup and the union
index (width, kana, long vowels), so ネコ and ねこ rank alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import asin, cos, radians, sin, sqrt

from yokodan import Availability, SearchQuery, Work
from index.text import fold, key

EARTH_RADIUS_KM = 6371.0
_FAR = float("inf")

# Relevance tiers (higher is better).
EXACT_TITLE = 4  # the query is the title (or ISBN of the work)
TITLE_HAS_ALL = 3  # every query word is in the title or its reading
AUTHOR_AND_TITLE = 2  # every word is in title, reading or authors
SOME_WORDS = 1  # the member matched on something we do not see (subject, notes …)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(radians, (*a, *b))
    h = sin((lat2 - lat1) / 2) ** 2 + cos(lat1) * cos(lat2) * sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(sqrt(h))


def _query_words(query: SearchQuery) -> list[str]:
    text = " ".join(part for part in (query.text, query.title, query.author) if part)
    return [fold(word) for word in text.split() if word]


def relevance(work: Work, query: SearchQuery) -> int:
    if query.isbn and query.isbn in work.isbns:
        return EXACT_TITLE
    words = _query_words(query)
    if not words:
        return SOME_WORDS
    title = fold(work.title)
    reading = fold(work.title_reading or "")
    wanted_title = key(query.title or query.text or "")
    if wanted_title and wanted_title in (key(work.title), key(work.title_reading or "")):
        return EXACT_TITLE
    if all(w in title or w in reading for w in words):
        return TITLE_HAS_ALL
    people = fold(" ".join(work.authors))
    if all(w in title or w in reading or w in people for w in words):
        return AUTHOR_AND_TITLE
    return SOME_WORDS


def nearest_available_km(
    work: Work, near: tuple[float, float], coordinates: Mapping[str, tuple[float, float]]
) -> float:
    """Distance to the closest branch with a copy on the shelf (inf if none, or none located)."""
    best = _FAR
    for holding in work.holdings:
        if holding.availability is Availability.AVAILABLE and holding.branch_id in coordinates:
            best = min(best, distance_km(near, coordinates[holding.branch_id]))
    return best


def rank_works(
    works: list[Work],
    query: SearchQuery,
    *,
    near: tuple[float, float] | None = None,
    coordinates: Mapping[str, tuple[float, float]] | None = None,
) -> list[Work]:
    """Most relevant first; ties by members holding, then a copy on the shelf (nearest first)."""

    def sort_key(work: Work) -> tuple[int, int, int, float, str]:
        available = any(h.availability is Availability.AVAILABLE for h in work.holdings)
        distance = nearest_available_km(work, near, coordinates or {}) if near else _FAR
        return (
            -relevance(work, query),
            -len(work.members),
            0 if available else 1,
            distance,
            work.title_reading or work.title,
        )

    return sorted(works, key=sort_key)
