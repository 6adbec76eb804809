"""What keeps the pages safe: headers on every response, the session cookie, CSRF, staff log-in.

- Every response carries a Content-Security-Policy without inline script (`script-src 'self'`):
  even a member-supplied title that slipped past escaping could not run.
- The session is one cookie, encrypted and signed (aiohttp_session's Fernet storage), HttpOnly and
  SameSite=Strict. It holds the ledger's API token (never a card number or PIN), a CSRF token and
  the staff flag. The key comes from $YOKODAN_PAGES_KEY (a Fernet key) or is made per process.
- Every form that changes state carries the session's CSRF token; a POST without it is refused.
- Staff log in with one shared password from $YOKODAN_STAFF_PASSWORD: hashed with scrypt and a
  random salt at start-up, compared hashed in constant time. Deliberately simple (no staff
  accounts, no roles); a consortium with staff directories would put its own log-in here.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from aiohttp import web
from aiohttp_session import Session, get_session
from aiohttp_session import setup as setup_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from broker.http_server import HTML_CSP
from yokodan.errors import YokodanError

# The broker sets CSP, nosniff, Referrer-Policy and Server on every response (broker.http_server);
# pages add only what an HTML page needs on top.
CONTENT_SECURITY_POLICY = HTML_CSP
SECURITY_HEADERS = {"X-Frame-Options": "DENY"}
SESSION_COOKIE = "yokodan_session"
SESSION_MAX_AGE_S = 12 * 3600  # as the ledger's tokens


class CsrfRejected(YokodanError):
    """A state-changing form arrived without this session's token."""


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # on_response_prepare runs before the status line is sent, streamed responses included.
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def install_session_and_headers(app: web.Application, key: bytes | None = None) -> None:
    key = key or os.environ.get("YOKODAN_PAGES_KEY", "").encode() or Fernet.generate_key()
    storage = EncryptedCookieStorage(
        Fernet(key), cookie_name=SESSION_COOKIE, httponly=True, samesite="Strict", max_age=SESSION_MAX_AGE_S, path="/"
    )
    setup_session(app, storage)
    app.on_response_prepare.append(_add_security_headers)


async def csrf_token(request: web.Request) -> str:
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: web.Request) -> tuple[Session, dict[str, str]]:
    """The session and the posted form, or CsrfRejected."""
    session = await get_session(request)
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(expected, form.get("csrf", "")):
        raise CsrfRejected("missing or wrong CSRF token")
    return session, form


@dataclass(frozen=True)
class StaffPassword:
    salt: bytes
    digest: bytes

    @classmethod
    def from_environment(cls) -> StaffPassword | None:
        password = os.environ.get("YOKODAN_STAFF_PASSWORD")
        return cls.of(password) if password else None

    @classmethod
    def of(cls, password: str) -> StaffPassword:
        salt = secrets.token_bytes(16)
        return cls(salt, _scrypt(password, salt))

    def matches(self, attempt: str) -> bool:
        return hmac.compare_digest(self.digest, _scrypt(attempt, self.salt))


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
