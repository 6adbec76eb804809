"""What a hold is *of*, as the patron saw it when asking: title, author, volume — sealed at rest.

What a patron reads is private (DOMAIN.md), so the ledger keeps the least it can to show My holds:
these three strings, encrypted with the ledger's vault key in one column of the hold's own row.
They go when the hold goes (the `[privacy] finished_holds_days` purge deletes the row) and are
never logged: logs name hold and member ids only.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from broker.ledger.vault import Vault, VaultError

# Bounds on what a client may hand us for display (the catalogue's own titles are far shorter).
MAX_TITLE = 500
MAX_AUTHOR = 200
MAX_VOLUME = 50


@dataclass(frozen=True, slots=True)
class HoldDisplay:
    title: str
    author: str | None = None
    volume: str | None = None

    @classmethod
    def of(cls, title: str | None, author: str | None = None, volume: str | None = None) -> HoldDisplay | None:
        """None without a title: an author or volume alone names nothing a patron would recognise."""
        title = (title or "").strip()[:MAX_TITLE]
        if not title:
            return None
        return cls(title, (author or "").strip()[:MAX_AUTHOR] or None, (volume or "").strip()[:MAX_VOLUME] or None)

    def seal(self, vault: Vault) -> str:
        return vault.seal(orjson.dumps({"t": self.title, "a": self.author, "v": self.volume}).decode())

    @classmethod
    def open(cls, vault: Vault, sealed: str | None) -> HoldDisplay | None:
        """The stored display, or None (a hold placed before display was kept, or a key that changed)."""
        if not sealed:
            return None
        try:
            data = orjson.loads(vault.open(sealed))
        except (VaultError, orjson.JSONDecodeError):
            return None  # the hold still shows, by its record id; nothing else depends on this text
        return cls(data["t"], data.get("a"), data.get("v"))
