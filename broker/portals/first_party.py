"""The pages' pass: the consortium's own pages keep searching when anonymous search is off.

`[access] anonymous_search = false` is about *portals*: other sites that embed the consortium's
search must identify themselves with a key. The broker's own pages (broker/pages) are the
consortium's first-party site; their script reads `/api/v1/search/stream` like any other client.
So every HTML page the broker renders sets a short-lived pass cookie (HMAC-signed expiry;
HttpOnly, SameSite=Strict, so a browser sends it only with requests from the broker's own pages,
never from another site's), and the access middleware lets a request with a valid pass search as
"first party", rate-limited per address like an anonymous caller.

What this is not: a secret. Anyone who can open the pages can search through them, a scraper
included (it can fetch `/` first); switching anonymous search off stops portals from building on
the API without a key, it does not hide the catalogue. The HMAC is the standard library's: a
signed timestamp is all it takes, and `itsdangerous` would be a dependency for ten lines.

The signing key is derived from `$YOKODAN_PAGES_KEY` where set (nodes behind one load balancer
then accept each other's passes), else random per process (a restart asks for a page view again).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable

PASS_COOKIE = "yokodan_pages_pass"
PASS_TTL_S = 3600


class PassSigner:
    def __init__(self, key: bytes | None = None, *, clock: Callable[[], float] = time.time) -> None:
        env = os.environ.get("YOKODAN_PAGES_KEY")
        if key is None:
            # Derived, not the pages' Fernet key itself: one secret, two unrelated uses.
            key = hashlib.sha256(b"yokodan first-party pass\0" + env.encode()).digest() if env else secrets.token_bytes(32)
        self._key = key
        self.clock = clock

    def _mac(self, expires: str) -> str:
        return hmac.new(self._key, expires.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        expires = str(int(self.clock()) + PASS_TTL_S)
        return f"{expires}.{self._mac(expires)}"

    def valid(self, value: str | None) -> bool:
        if not value:
            return False
        expires, _, mac = value.partition(".")
        if not expires.isdigit() or not hmac.compare_digest(mac, self._mac(expires)):
            return False
        return int(expires) > self.clock()
