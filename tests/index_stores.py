"""Union indexes of each engine for tests: a whoosh directory, or a private PostgreSQL schema.

`engine` (module-scoped, params whoosh / postgresql) parametrises every test that uses it, so
one store suite runs against both back ends. PostgreSQL is the server tests/ledger_databases.py
finds (`YOKODAN_TEST_POSTGRES`, default postgresql://127.0.0.1/test); each `IndexStore` makes
its schemas under a random prefix and drops them afterwards, never anything else. A missing
server skips with its reason, and fails under CI=true (scripts/test.sh starts one).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from index.store import UnionIndex
from tests.ledger_databases import POSTGRES_URL

ENGINES = ["whoosh", "postgresql"]


def postgres_admin() -> Any:
    """A psycopg connection (autocommit) to the test server, or skip/fail naming why not."""
    import psycopg

    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({str(exc).strip()})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} in CI; scripts/test.sh must start it")
        pytest.skip(message)


class IndexStore:
    """Opens union indexes of one engine; `name` picks the directory (whoosh) or the schema (PostgreSQL)."""

    def __init__(self, engine: str, tmp_path: Path) -> None:
        self.engine = engine
        self.tmp_path = tmp_path
        self._prefix = f"yk_test_{secrets.token_hex(4)}"
        self._schemas: set[str] = set()
        if engine == "postgresql":
            postgres_admin().close()  # skip/fail now, not half way through a test

    def location(self, name: str = "ix") -> tuple[Path | str, dict[str, Any]]:
        """(UnionIndex.open's first argument, the options that go with it)."""
        if self.engine == "whoosh":
            return self.tmp_path / name, {}
        schema = f"{self._prefix}_{name}".lower()
        self._schemas.add(schema)
        return POSTGRES_URL, {"schema": schema}

    def open(self, name: str = "ix", **options: Any) -> UnionIndex:
        where, extra = self.location(name)
        return UnionIndex.open(where, **extra, **options)

    async def open_async(self, name: str = "ix", **options: Any) -> UnionIndex:
        where, extra = self.location(name)
        return await UnionIndex.open_async(where, **extra, **options)

    def drop(self) -> None:
        if not self._schemas:
            return
        admin = postgres_admin()
        try:
            for schema in self._schemas:
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            admin.close()


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(engine: str, tmp_path: Path) -> Iterator[IndexStore]:
    stores = IndexStore(engine, tmp_path)
    try:
        yield stores
    finally:
        stores.drop()
