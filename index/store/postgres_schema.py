"""The PostgreSQL union index's tables, created by ordered migrations in their own schema.

PostgreSQL has no Japanese parser of its own, so nothing here asks it to analyse text: every
search term (bigrams, kanji unigrams, readings, ISBNs, exact-title keys) is computed in Python
by index.analysis, the analysis the whoosh engine uses, and stored pre-analysed in one `text[]`
column with a GIN index, each term prefixed by its field (`t:` title, `r:` title reading …;
postgres_documents.py). One array and one GIN index rather than one per field: a query's
alternatives over fields then become a BitmapOr over the same index, and each write maintains
one inverted index instead of five.

Everything lives in one schema (default `yokodan_index`), so a database can hold the ledger,
several indexes, or a test's private copy. `index_meta` records the applied migrations and the
analysis version: an index whose terms were cut by another version would answer wrongly, so
opening it is refused (it is a cache: dropping the schema rebuilds it). Nodes starting together
serialise on an advisory lock, so two of them never apply the same step.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from index.store.results import UnionIndexError

__all__ = ["ANALYSIS_VERSION", "DEFAULT_SCHEMA", "MIGRATIONS", "advisory_key", "check_schema_name", "migrate"]

DEFAULT_SCHEMA = "yokodan_index"
# Bumped whenever an analyzer or the term layout changes meaning (like whoosh_schema.SCHEMA_VERSION).
ANALYSIS_VERSION = 1

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# (version, what, statements); `{s}` is the quoted schema. Append steps; never edit an applied one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "works with pre-analysed terms, facet columns, ages",
        [
            """CREATE TABLE {s}.works (
                work_id TEXT PRIMARY KEY,
                terms TEXT[] NOT NULL,
                -- BM25 length normalisation of each text field, computed at write time
                -- (postgres_documents.field_norm), so a query only multiplies.
                title_norm REAL NOT NULL,
                title_reading_norm REAL NOT NULL,
                author_norm REAL NOT NULL,
                author_reading_norm REAL NOT NULL,
                publisher_norm REAL NOT NULL,
                year INTEGER,
                ndc TEXT,
                ndc_class TEXT,
                members TEXT[] NOT NULL,
                municipalities TEXT[] NOT NULL,
                on_shelf BOOLEAN NOT NULL,
                facet_keys TEXT[] NOT NULL,
                updated BIGINT NOT NULL,
                blob JSONB NOT NULL
            )""",
            # fastupdate off: a write pays its GIN insertions at once instead of queueing them in a
            # pending list that every query must scan until a vacuum merges it.
            "CREATE INDEX works_terms ON {s}.works USING GIN (terms) WITH (fastupdate = off)",
            "CREATE INDEX works_members ON {s}.works USING GIN (members) WITH (fastupdate = off)",
            "CREATE INDEX works_year ON {s}.works (year)",
            "CREATE INDEX works_updated ON {s}.works (updated, work_id)",
        ],
    ),
]


def check_schema_name(name: str) -> str:
    """`name` if it is a plain lower-case SQL identifier (it is quoted into DDL), else UnionIndexError."""
    if not _IDENTIFIER.match(name):
        raise UnionIndexError(f"union index schema name {name!r} must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)")
    return name


def advisory_key(schema: str, purpose: str) -> int:
    """A stable 63-bit advisory-lock key for `purpose` on this schema (same on every node)."""
    return zlib.crc32(f"yokodan-union-index:{schema}:{purpose}".encode()) | (1 << 40)


def migrate(connection: Any, schema: str) -> None:
    """Create or upgrade the index tables in `schema` (a psycopg connection in autocommit mode).

    Refuses a schema that holds tables but no `index_meta` (not ours) and one written by another
    analysis version or a newer migration.
    """
    s = f'"{schema}"'
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(schema, "migrate"),))
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
        }
        if tables and "index_meta" not in tables:
            raise UnionIndexError(
                f"PostgreSQL schema {schema} holds tables ({', '.join(sorted(tables))}) but is not a Yokodan union "
                f"index (no index_meta); refusing to write into it"
            )
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.index_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        meta = dict(connection.execute(f"SELECT key, value FROM {s}.index_meta").fetchall())
        analysis = meta.get("analysis_version")
        if analysis is not None and analysis != ANALYSIS_VERSION:
            raise UnionIndexError(
                f"union index schema {schema} has schema version {analysis} (of its terms' analysis), this Yokodan "
                f"uses {ANALYSIS_VERSION}; drop the schema to rebuild it"
            )
        applied = meta.get("migration", 0)
        latest = MIGRATIONS[-1][0]
        if applied > latest:
            raise UnionIndexError(
                f"union index schema {schema} has schema version {applied}, newer than this Yokodan's {latest}"
            )
        for version, _what, statements in MIGRATIONS:
            if version <= applied:
                continue
            for statement in statements:
                connection.execute(statement.format(s=s))
        upsert = (
            f"INSERT INTO {s}.index_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        connection.execute(upsert, ("migration", latest))
        connection.execute(upsert, ("analysis_version", ANALYSIS_VERSION))
