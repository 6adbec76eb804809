"""A QueryPlan (query_plan.py) as one SQL statement over the PostgreSQL union index.

Matching: every clause (query word) needs one alternative whose prefixed terms the row's
`terms` array contains (`@>`, answered by the GIN index; the alternatives of a word are a
BitmapOr over it); members (`&&`, its own GIN index) and year are filters.

Ranking follows the whoosh engine: each matching alternative adds its field boost per term,
times the field's BM25 length norm stored with the row; an ISBN alternative adds ISBN_BOOST;
an exact title adds EXACT_TITLE_BOOST. There is no idf (PostgreSQL keeps no per-term document
frequencies for an array, and keeping our own across nodes would cost every write): within
one query all terms weigh alike, which is what the boosts and the exact-title bonus decide
anyway. Ties go by work id, so pages are stable.

One statement answers the page, the total and the facet counts from one snapshot: the
matches are materialised once, counted, their facet keys counted, and only the page's rows
are joined back for their stored blob (a blob is read for 20 works, not for every match).
"""

from __future__ import annotations

from typing import Any

from index.store.postgres_documents import NORM_COLUMNS, prefixed
from index.store.query_plan import EXACT_TITLE_BOOST, QueryPlan

__all__ = ["search_statement"]


def search_statement(schema: str, plan: QueryPlan, *, offset: int, limit: int, facets: bool) -> tuple[str, list[Any]]:
    """(sql, params): rows (kind, key, score, blob, updated); kind 0 total, 1 a facet count, 2 a hit."""
    where: list[str] = []
    scores: list[str] = []
    params_where: list[Any] = []
    params_score: list[Any] = []
    for clause in plan.clauses:
        options: list[str] = []
        for alternative in clause.alternatives:
            terms = prefixed(alternative.field, alternative.terms)
            options.append("terms @> %s::text[]")
            params_where.append(terms)
            weight = alternative.boost * len(alternative.terms)
            norm = NORM_COLUMNS.get(alternative.field)
            factor = f"{weight!r} * {norm}" if norm else f"{weight!r}"
            scores.append(f"CASE WHEN terms @> %s::text[] THEN {factor} ELSE 0 END")
            params_score.append(terms)
        where.append(options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")")
    if plan.isbn is not None:
        where.append("terms @> %s::text[]")
        params_where.append(prefixed("isbn", [plan.isbn]))
    if plan.year is not None:
        where.append("year = %s")
        params_where.append(plan.year)
    if plan.members is not None:
        where.append("members && %s::text[]")
        params_where.append(list(plan.members))
    for exact in plan.exact_keys:
        scores.append(f"CASE WHEN terms @> %s::text[] THEN {EXACT_TITLE_BOOST!r} ELSE 0 END")
        params_score.append(prefixed("exact", [exact]))
    score = " + ".join(scores) if scores else "0"
    works = f'"{schema}".works'
    facet_part = (
        "UNION ALL SELECT 1, k, count(*)::float8, NULL, NULL FROM matches, unnest(matches.facet_keys) AS k GROUP BY k"
        if facets
        else ""
    )
    sql = f"""
        WITH matches AS MATERIALIZED (
            SELECT work_id, facet_keys, ({score})::float8 AS score FROM {works} WHERE {" AND ".join(where)}
        ),
        page AS (SELECT work_id, score FROM matches ORDER BY score DESC, work_id LIMIT %s OFFSET %s)
        SELECT 0 AS kind, NULL::text AS key, count(*)::float8 AS score, NULL::jsonb AS blob, NULL::bigint AS updated
        FROM matches
        {facet_part}
        UNION ALL SELECT 2, page.work_id, page.score, w.blob, w.updated FROM page JOIN {works} AS w USING (work_id)
    """
    return sql, [*params_score, *params_where, limit, offset]
