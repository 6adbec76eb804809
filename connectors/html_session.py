"""Logged-in OPAC sessions, one per patron, never shared between patrons.

The shared HTTP client keeps no cookies (connectors.http), so a patron's OPAC
login lives here: the cookies the OPAC set for it, sent back as a Cookie header.
Sessions are keyed by card number *and* a keyed digest of the PIN: a cached
login must never let a caller with the wrong PIN act as the card holder, and
PINs are not kept in clear (the digest key is random per process).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from yokodan import PatronCredentials

_MAX_SESSIONS = 256  # per member; the least recently used login is forgotten first


@dataclass(slots=True)
class OpacSession:
    cookies: dict[str, str]
    expires_at: float  # time.monotonic(): reused until then, unless the OPAC ends it first

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def remember(self, cookies: dict[str, str]) -> None:
        self.cookies.update(cookies)  # OPACs may rotate the session id on any answer


SessionKey = tuple[str, bytes]


class SessionCache:
    def __init__(self, max_sessions: int = _MAX_SESSIONS) -> None:
        self._secret = secrets.token_bytes(32)
        self._sessions: OrderedDict[SessionKey, OpacSession] = OrderedDict()
        # One login at a time per patron: concurrent requests share the login, not race it.
        self._locks: weakref.WeakValueDictionary[SessionKey, asyncio.Lock] = weakref.WeakValueDictionary()
        self._max = max_sessions

    def _key(self, patron: PatronCredentials) -> SessionKey:
        pin = patron.pin.get_secret_value() if patron.pin is not None else ""
        return patron.card_number, hmac.new(self._secret, pin.encode(), hashlib.sha256).digest()

    async def get(
        self, patron: PatronCredentials, login: Callable[[PatronCredentials], Awaitable[OpacSession]]
    ) -> OpacSession:
        """The patron's live session, logging in (once, however many callers wait) when there is none."""
        key = self._key(patron)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_at > time.monotonic():
                self._sessions.move_to_end(key)
                return session
            session = await login(patron)
            self._sessions[key] = session
            self._sessions.move_to_end(key)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
            return session

    def drop(self, patron: PatronCredentials, session: OpacSession) -> None:
        """Forget `session` (the OPAC ended it); a newer one another task made is kept."""
        key = self._key(patron)
        if self._sessions.get(key) is session:
            del self._sessions[key]
