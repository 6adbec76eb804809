"""The PostgreSQL back end (IndexBackend): one union index that several broker nodes share.

    backend = PostgresBackend.open("postgresql://db.example/yokodan", schema="yokodan_index")

The union index as a cache every node reads and writes: node A's search teaches node B the
works A's members answered. Terms are pre-analysed in Python (postgres_documents.py: the same
Japanese analysis as whoosh) and matched through a GIN index (postgres_query.py); schema by
migrations (postgres_schema.py).

Driver: psycopg 3, synchronous, because the IndexBackend contract is synchronous (the facade's
`search` runs in a worker thread, the write-behind writer is a thread); psycopg releases the GIL
while it waits for the server, so neither blocks the event loop. (asyncpg, the ledger's driver,
would need an event loop of its own in another thread and a hop to it for every call.)
Searches take a connection from a small pool (autocommit: one statement, one snapshot); the
writer has a connection of its own.

Writes: one transaction per batch. It first takes a transaction-scoped advisory lock, the same
key on every node, so that two nodes' writers never merge the same work from the same previous
blob (each would drop the other's members' holdings); readers never wait for it (MVCC). The
batch's previous blobs are read in one query, the new rows COPYed into a temporary table and
upserted with one `INSERT … ON CONFLICT DO UPDATE`.

Opening never waits for another owner: any number of processes may open the same schema.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from index.store.backend import BackendHit, BackendResult
from index.store.documents import IndexDocument
from index.store.postgres_documents import COLUMNS, to_row
from index.store.postgres_query import search_statement
from index.store.postgres_schema import DEFAULT_SCHEMA, advisory_key, check_schema_name, migrate
from index.store.query_plan import plan_query
from index.store.results import UnionIndexError
from yokodan import SearchQuery

__all__ = ["PostgresBackend", "PostgresTransaction", "is_postgres_url", "redacted_url"]

_CONNECT_TIMEOUT_S = 5
_POOL_SIZE = 8  # concurrent searches per process; more wait for a connection (up to _POOL_WAIT_S)
# A search's bounds. The broker awaits the cached answer before it streams the members' answers,
# so a database that hangs or is gone must cost a search about a second, not the pool's default
# 30 s: past these the search fails (UnionIndexError) and the broker answers live only.
_POOL_WAIT_S = 1.0
_SEARCH_STATEMENT_TIMEOUT_MS = 2_000
_COUNT_MAX_AGE_S = 2.0  # doc_count() re-counts at most this often (other nodes write too)


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def redacted_url(url: str) -> str:
    """`url` without its password, for logs and start-up lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _orjson_loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(bytes(data) if isinstance(data, memoryview) else data)


def _configure(connection: Any) -> None:
    from psycopg.types.json import set_json_loads

    set_json_loads(_orjson_loads, connection)  # blobs: orjson is several times faster than json


def _application_name(schema: str, role: str) -> str:
    # Seen in pg_stat_activity: which index and which part of it holds a connection.
    return f"yokodan-index:{schema}:{role}"[:63]


def _connect(url: str, schema: str) -> Any:
    import psycopg  # only nodes configured for PostgreSQL need the driver

    connection = psycopg.connect(
        url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S, application_name=_application_name(schema, "writer")
    )
    _configure(connection)
    return connection


class PostgresTransaction:
    """WriteTransaction on the writer's connection, inside its open transaction."""

    def __init__(self, connection: Any, schema: str) -> None:
        self._connection = connection
        self._works = f'"{schema}".works'
        self._pending: dict[str, IndexDocument] = {}  # replaced, not yet written (last one wins)
        self.changed = False

    def previous(self, work_id: str) -> dict[str, Any] | None:
        return self.previous_many([work_id]).get(work_id)

    def previous_many(self, work_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not work_ids:
            return {}
        rows = self._connection.execute(
            f"SELECT work_id, blob FROM {self._works} WHERE work_id = ANY(%s::text[])", (list(work_ids),)
        ).fetchall()
        return dict(rows)

    def replace(self, document: IndexDocument) -> None:
        self._pending.pop(document.work_id, None)
        self._pending[document.work_id] = document
        self.changed = True

    def flush(self) -> None:
        """Write the pending documents: COPY into the session's staging table, then one upsert."""
        if not self._pending:
            return
        documents, self._pending = list(self._pending.values()), {}
        columns = ", ".join(COLUMNS)
        with self._connection.cursor() as cursor:
            with cursor.copy(f"COPY yokodan_works_staging ({columns}) FROM STDIN") as copy:
                for document in documents:
                    copy.write_row(to_row(document))
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "work_id")
            cursor.execute(
                f"INSERT INTO {self._works} ({columns}) SELECT {columns} FROM yokodan_works_staging "
                f"ON CONFLICT (work_id) DO UPDATE SET {updates}"
            )
            cursor.execute("TRUNCATE yokodan_works_staging")

    def delete_updated_before(self, cutoff: int) -> int:
        self.flush()  # a work re-seen in this batch is not aged
        deleted = self._connection.execute(f"DELETE FROM {self._works} WHERE updated < %s", (cutoff,)).rowcount
        self.changed = self.changed or deleted > 0
        return deleted

    def delete_least_recent(self, count: int) -> int:
        if count <= 0:
            return 0
        self.flush()
        deleted = self._connection.execute(
            f"DELETE FROM {self._works} WHERE work_id IN "
            f"(SELECT work_id FROM {self._works} ORDER BY updated, work_id LIMIT %s)",
            (count,),
        ).rowcount
        self.changed = self.changed or deleted > 0
        return deleted

    def live_count(self) -> int:
        self.flush()
        return int(self._connection.execute(f"SELECT count(*) FROM {self._works}").fetchone()[0])


class PostgresBackend:
    """Build with `PostgresBackend.open(url)`; see backend.py for the contract."""

    def __init__(self, url: str, schema: str, writer: Any, pool: Any, writer_lock_timeout_s: float) -> None:
        """Use `open`."""
        self.url = url
        self.location = f"{redacted_url(url)} (schema {schema})"
        self.schema = schema
        self._writer = writer
        self._writer_mutex = threading.Lock()  # one transaction at a time on the writer's connection
        self._pool = pool
        self._writer_lock_timeout_s = writer_lock_timeout_s
        self._write_lock_key = advisory_key(schema, "write")
        self._closed = False
        self._count_lock = threading.Lock()
        self._doc_count = 0
        self._counted_at = 0.0
        self._recount(writer)

    @classmethod
    def open(
        cls, url: str, *, schema: str = DEFAULT_SCHEMA, writer_lock_timeout_s: float = 5.0
    ) -> PostgresBackend:
        """Connect, migrate and open a search pool; every failure is a UnionIndexError (password hidden)."""
        check_schema_name(schema)
        shown = redacted_url(url)
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise UnionIndexError(f"union index {shown}: the PostgreSQL driver is not installed ({exc})") from exc
        writer = None
        try:
            writer = _connect(url, schema)
            migrate(writer, schema)
            _create_staging(writer, schema)
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=_POOL_SIZE,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": _CONNECT_TIMEOUT_S,
                    "application_name": _application_name(schema, "search"),
                    "options": f"-c statement_timeout={_SEARCH_STATEMENT_TIMEOUT_MS}",
                },
                configure=_configure,
                timeout=_POOL_WAIT_S,
                name=f"union-index:{schema}",
                open=True,
            )
            return cls(url, schema, writer, pool, writer_lock_timeout_s)
        except UnionIndexError:
            if writer is not None:
                writer.close()
            raise
        except (psycopg.Error, OSError) as exc:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
            raise UnionIndexError(f"union index {shown} (schema {schema}) cannot be used: {_first_line(exc)}") from exc

    # --- writes (one thread) -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        with self._writer_mutex:
            self._check_open()
            if not self._writer_alive():
                # The server restarted or dropped the connection since the last batch: a new one,
                # so that the batch is written instead of failing on the dead connection.
                with contextlib.suppress(Exception):
                    self._writer.close()
                self._writer = _connect(self.url, self.schema)
                _create_staging(self._writer, self.schema)
            with self._writer.transaction():
                # SET LOCAL: lock_timeout bounds the wait for another node's writer, this batch only.
                self._writer.execute(f"SET LOCAL lock_timeout = '{int(self._writer_lock_timeout_s * 1000)}ms'")
                self._writer.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_lock_key,))
                tx = PostgresTransaction(self._writer, self.schema)
                yield tx
                tx.flush()
            if tx.changed:
                self._recount(self._writer)

    def _writer_alive(self) -> bool:
        import psycopg

        if self._writer.closed or self._writer.broken:
            return False
        try:
            self._writer.execute("SELECT 1")  # one round trip per batch: a dropped connection shows here
        except psycopg.OperationalError:
            return False
        return True

    def doc_count(self) -> int:
        """Works in the shared index, re-counted when older than a couple of seconds (other nodes write)."""
        if time.monotonic() - self._counted_at > _COUNT_MAX_AGE_S and not self._closed:
            with contextlib.suppress(Exception):  # stats must not fail because the server is away
                self._recount()
        return self._doc_count

    def segment_count(self) -> int:
        return 1  # one table; a query pays per matching row, not per segment

    def _recount(self, connection: Any = None) -> None:
        sql = f'SELECT count(*) FROM "{self.schema}".works'
        with self._count_lock:
            if connection is not None:
                count = connection.execute(sql).fetchone()[0]
            else:
                with self._pool.connection() as pooled:
                    count = pooled.execute(sql).fetchone()[0]
            self._doc_count, self._counted_at = int(count), time.monotonic()

    # --- reads (any thread) ------------------------------------------------------------

    def search(
        self, query: SearchQuery, members: Sequence[str] | None, *, offset: int, limit: int, facets: bool
    ) -> BackendResult:
        self._check_open()
        plan = plan_query(query, members)
        if plan is None:
            return BackendResult([], 0, {} if facets else None)
        sql, params = search_statement(self.schema, plan, offset=offset, limit=limit, facets=facets)
        rows = self._fetch(sql, params)
        total = 0
        counts: dict[str, int] = {}
        hits: list[BackendHit] = []
        for kind, key, score, blob, updated in rows:
            if kind == 0:
                total = int(score)
            elif kind == 1:
                counts[key] = int(score)
            else:
                hits.append(BackendHit(key, float(score), blob, int(updated)))
        hits.sort(key=lambda h: (-h.score, h.work_id))
        return BackendResult(hits, total, counts if facets else None)

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        import psycopg

        for attempt in (1, 2):
            try:
                with self._pool.connection() as connection:
                    return list(connection.execute(sql, params).fetchall())
            except psycopg.OperationalError as exc:
                # A connection the server dropped (a restart, a failover) surfaces on its next use;
                # the pool discards it, and one more attempt on a fresh connection hides the blip.
                # A statement cut by its timeout is not retried: the bound is the point.
                if attempt == 2 or self._closed or isinstance(exc, psycopg.errors.QueryCanceled):
                    raise UnionIndexError(f"union index {self.location}: search failed: {_first_line(exc)}") from exc
            except Exception as exc:
                raise UnionIndexError(f"union index {self.location}: search failed: {_first_line(exc)}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._pool.close()
        with self._writer_mutex, contextlib.suppress(Exception):
            self._writer.close()

    def _check_open(self) -> None:
        if self._closed:
            raise UnionIndexError(f"union index {self.location} is closed")


def _create_staging(connection: Any, schema: str) -> None:
    # Per session: the writer's batches are COPYed here, then upserted in one statement.
    connection.execute(
        f'CREATE TEMP TABLE IF NOT EXISTS yokodan_works_staging (LIKE "{schema}".works INCLUDING DEFAULTS)'
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
