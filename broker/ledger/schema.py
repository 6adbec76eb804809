"""The ledger's schema as ordered migrations, in the SQL subset SQLite and PostgreSQL share.

A migration is applied once, in order, inside one transaction, and recorded in
`schema_migrations`; PostgreSQL nodes starting together serialise on an advisory lock so two
of them never apply the same step. Append new steps; never edit an applied one.

Times a query compares (leases, poll schedules) are epoch seconds (DOUBLE PRECISION); times a
person reads are ISO-8601 UTC text. What a patron reads stays out of clear text: the holds table
keeps the member's record id and our branch ids, and the title the patron asked for only sealed
(`display_enc`, broker/ledger/display.py), deleted with the row; never a query.
"""

from __future__ import annotations

from broker.ledger.db import Database

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "accounts, cards, tokens, holds, transitions, notices",
        [
            """CREATE TABLE accounts (
                id TEXT PRIMARY KEY,
                created_at TEXT NOT NULL
            )""",
            # A card: the member's card number (encrypted; found by a keyed hash) and, only where
            # the member's protocol needs the patron's own secret later (HTML OPAC log-ins),
            # the PIN encrypted with a key kept outside the database.
            """CREATE TABLE cards (
                id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
                member TEXT NOT NULL,
                card_hash TEXT NOT NULL,
                card_number_enc TEXT NOT NULL,
                pin_enc TEXT,
                created_at TEXT NOT NULL,
                UNIQUE (member, card_hash)
            )""",
            # API tokens are shown once; only their SHA-256 is kept.
            """CREATE TABLE tokens (
                token_hash TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
                created_at TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                revoked_at TEXT
            )""",
            """CREATE TABLE holds (
                id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
                card_id TEXT NOT NULL REFERENCES cards(id) ON DELETE CASCADE,
                client_key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                member TEXT NOT NULL,
                record_id TEXT NOT NULL,
                item_id TEXT,
                pickup_branch_id TEXT NOT NULL,
                outcome TEXT NOT NULL,
                refusal_reason TEXT,
                refusal_message TEXT,
                state TEXT,
                member_hold_id TEXT,
                status_text TEXT,
                queue_position INTEGER,
                ready_until TEXT,
                promised_ready TEXT,
                promised_until TEXT,
                series_id TEXT,
                series_position INTEGER,
                version INTEGER NOT NULL DEFAULT 0,
                lease_owner TEXT,
                lease_until DOUBLE PRECISION,
                next_check_at DOUBLE PRECISION,
                check_failures INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                finished_at TEXT,
                UNIQUE (account_id, client_key)
            )""",
            "CREATE INDEX holds_due ON holds (outcome, next_check_at)",
            "CREATE INDEX holds_account ON holds (account_id, created_at)",
            "CREATE INDEX holds_series ON holds (series_id, series_position)",
            """CREATE TABLE transitions (
                hold_id TEXT NOT NULL REFERENCES holds(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                from_state TEXT,
                to_state TEXT NOT NULL,
                member_word TEXT,
                at TEXT NOT NULL,
                PRIMARY KEY (hold_id, seq)
            )""",
            """CREATE TABLE notices (
                id TEXT PRIMARY KEY,
                hold_id TEXT NOT NULL REFERENCES holds(id) ON DELETE CASCADE,
                account_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                pickup_branch_id TEXT,
                ready_until TEXT,
                created_at TEXT NOT NULL,
                sent_at TEXT,
                UNIQUE (hold_id, kind)
            )""",
        ],
    ),
    (
        2,
        "an optional, sealed notice address per account",
        ["ALTER TABLE accounts ADD COLUMN email_enc TEXT"],
    ),
    (
        3,
        "the connector's placement intent, recorded before sending (HTML OPACs find holds by it)",
        ["ALTER TABLE holds ADD COLUMN intent TEXT"],
    ),
    (
        4,
        "what the patron asked for (title, author, volume), sealed, for My holds; purged with the hold",
        # Rows from before this step keep NULL: they show by record id (nothing to back-fill from).
        ["ALTER TABLE holds ADD COLUMN display_enc TEXT"],
    ),
]

_ADVISORY_LOCK_ID = 0x79_6F_6B_6F  # 'yoko': one id for the whole schema


async def migrate(db: Database) -> list[int]:
    """Apply the steps not yet applied; answers the versions applied now (empty when up to date)."""
    async with db.transaction() as tx:
        if db.dialect == "postgresql":
            await tx.execute("SELECT pg_advisory_xact_lock(?)", (_ADVISORY_LOCK_ID,))
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL)"
        )
        done = {row["version"] for row in await tx.fetchall("SELECT version FROM schema_migrations")}
        applied = []
        for version, description, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                await tx.execute(statement)
            await tx.execute("INSERT INTO schema_migrations (version, description) VALUES (?, ?)", (version, description))
            applied.append(version)
    return applied
