"""Broker accounts, the cards they hold, and API tokens.

An account is nothing but an id: the least patron data the broker can keep. Its cards are
the member card numbers (sealed by the vault, found by keyed hash) and, only where asked for,
a sealed PIN. Tokens are random, shown once, kept as SHA-256, expire and can be revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from broker.ledger.db import Database
from broker.ledger.records import iso, utc_now
from broker.ledger.vault import Vault

DEFAULT_TOKEN_TTL_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Card:
    id: str
    account_id: str
    member: str
    card_number: str  # opened from the vault for this call only; never logged
    pin: str | None  # only where the member's protocol needs the patron's own secret


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, db: Database, vault: Vault) -> None:
        self.db = db
        self.vault = vault

    async def card_account(self, member: str, card_number: str) -> str | None:
        """The account that holds this card, if any."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT account_id FROM cards WHERE member = ? AND card_hash = ?",
                (member, self.vault.lookup_hash(member, card_number)),
            )
        return row["account_id"] if row else None

    async def add_card(
        self, member: str, card_number: str, *, pin: str | None, keep_pin: bool, account_id: str | None = None
    ) -> Card:
        """Attach a (verified) card to `account_id`, or to a new account; the same card again updates it."""
        lookup = self.vault.lookup_hash(member, card_number)
        sealed_pin = self.vault.seal(pin) if (keep_pin and pin) else None
        stamp = iso(utc_now())
        async with self.db.transaction() as tx:
            existing = await tx.fetchone("SELECT id, account_id FROM cards WHERE member = ? AND card_hash = ?", (member, lookup))
            if existing:
                await tx.execute("UPDATE cards SET pin_enc = ? WHERE id = ?", (sealed_pin, existing["id"]))
                card_id, owner = existing["id"], existing["account_id"]
            else:
                owner = account_id or secrets.token_hex(16)
                if account_id is None:
                    await tx.execute("INSERT INTO accounts (id, created_at) VALUES (?, ?)", (owner, stamp))
                card_id = secrets.token_hex(16)
                await tx.execute(
                    "INSERT INTO cards (id, account_id, member, card_hash, card_number_enc, pin_enc, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (card_id, owner, member, lookup, self.vault.seal(card_number), sealed_pin, stamp),
                )
        return Card(card_id, owner, member, card_number, pin if sealed_pin else None)

    async def cards(self, account_id: str) -> list[Card]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT id, member, card_number_enc, pin_enc FROM cards WHERE account_id = ? ORDER BY created_at, id",
                (account_id,),
            )
        return [self._card(account_id, row) for row in rows]

    async def card(self, account_id: str, card_id: str) -> Card | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT id, member, card_number_enc, pin_enc FROM cards WHERE id = ? AND account_id = ?",
                (card_id, account_id),
            )
        return self._card(account_id, row) if row else None

    def _card(self, account_id: str, row: dict) -> Card:
        pin = self.vault.open(row["pin_enc"]) if row["pin_enc"] else None
        return Card(row["id"], account_id, row["member"], self.vault.open(row["card_number_enc"]), pin)

    async def set_email(self, account_id: str, address: str | None) -> None:
        """Where ready notices go (optional; sealed like the cards)."""
        sealed = self.vault.seal(address) if address else None
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE accounts SET email_enc = ? WHERE id = ?", (sealed, account_id))

    async def email_of(self, account_id: str) -> str | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchone("SELECT email_enc FROM accounts WHERE id = ?", (account_id,))
        return self.vault.open(row["email_enc"]) if row and row["email_enc"] else None

    # --- tokens -------------------------------------------------------------------------

    async def issue_token(self, account_id: str, *, ttl_s: float = DEFAULT_TOKEN_TTL_S) -> str:
        token = secrets.token_urlsafe(32)
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO tokens (token_hash, account_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (token_hash(token), account_id, iso(utc_now()), time.time() + ttl_s),
            )
        return token

    async def account_for_token(self, token: str) -> str | None:
        """The account a live token belongs to; None when unknown, expired or revoked."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT account_id FROM tokens WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?",
                (token_hash(token), time.time()),
            )
        return row["account_id"] if row else None

    async def revoke_token(self, token: str) -> bool:
        async with self.db.transaction() as tx:
            return bool(
                await tx.execute(
                    "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                    (iso(utc_now()), token_hash(token)),
                )
            )
