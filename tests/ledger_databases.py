"""Ledger databases for tests: a fresh SQLite file, and a fresh PostgreSQL database per test.

PostgreSQL is the local server (`YOKODAN_TEST_POSTGRES`, default postgresql://127.0.0.1/test with
the current user; .ci/run installs and starts Debian's package where the machine has none).
Each test gets its own database, created from the server's template and dropped afterwards.
Under CI=true a missing server fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.ledger.db import Database, PostgresDatabase, SQLiteDatabase
from broker.ledger.schema import migrate

POSTGRES_URL = os.environ.get("YOKODAN_TEST_POSTGRES", "postgresql://127.0.0.1/test")


async def _admin_connection():  # type: ignore[no-untyped-def]
    import asyncpg

    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable in CI ({exc}); .ci/run must start it")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc})")


async def fresh_postgres_url() -> tuple[str, str]:
    admin = await _admin_connection()
    name = f"yokodan_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _with_database(POSTGRES_URL, name), name


def _with_database(url: str, name: str) -> str:
    """The same server URL naming another database (a socket URL keeps its ?host=…)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


async def drop_postgres(name: str) -> None:
    admin = await _admin_connection()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def ledger_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty ledger database of each kind."""
    if request.param == "sqlite":
        db: Database = await SQLiteDatabase.open(tmp_path / "ledger.db")
        await migrate(db)
        try:
            yield db
        finally:
            await db.close()
        return
    url, name = await fresh_postgres_url()
    db = await PostgresDatabase.open(url)
    try:
        await migrate(db)
        yield db
    finally:
        await db.close()
        await drop_postgres(name)
