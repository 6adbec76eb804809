"""Patron secrets at rest: encrypted with a key that lives outside the database.

The broker acts for a patron at another town's library, so it must present the card number
(and, where a member's protocol has no agency credential, the patron's PIN) again later. Both are
kept encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from the well-kept `cryptography`
package); card numbers are found by a keyed hash, so the database alone reveals neither.
A stolen database file without the key file is useless; a lost key makes cards re-enter.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from yokodan.errors import YokodanError

KEY_ENV = "YOKODAN_LEDGER_KEY"


class VaultError(YokodanError):
    """The key is missing or wrong, or a stored secret does not decrypt with it."""


class Vault:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise VaultError(f"the ledger key is not a Fernet key ({exc})") from None
        # A separate key for lookups, derived so one secret configures both.
        self._hash_key = hmac.new(key, b"yokodan card lookup", hashlib.sha256).digest()

    @classmethod
    def from_environment(cls, key_file: Path | None = None) -> Vault:
        """The key from $YOKODAN_LEDGER_KEY, else from `key_file` (created 0600 on first use)."""
        if value := os.environ.get(KEY_ENV):
            return cls(value.encode())
        if key_file is None:
            raise VaultError(f"no ledger key: set {KEY_ENV} or give a key file")
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(Fernet.generate_key())
        return cls(key_file.read_bytes().strip())

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise VaultError("a stored secret does not decrypt with this ledger key") from None

    def lookup_hash(self, member: str, card_number: str) -> str:
        return hmac.new(self._hash_key, f"{member}\x00{card_number}".encode(), hashlib.sha256).hexdigest()
