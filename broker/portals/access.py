"""Who is calling: a portal key, the consortium's own pages, or an anonymous client.

The middleware runs before rate limiting (which needs to know whose bucket to take from) and
after the CORS preflight (a preflight carries no key). It never lets a wrong key pass as
anonymous: anything presented as a portal key that is not a live key valid at this broker is a
401 with `reason: invalid_api_key`.

Where a key is read, in this order:
- `X-Api-Key: yk_…` on any route;
- `Authorization: Bearer yk_…`, except on the patron routes (`/api/v1/auth/…`, `/api/v1/holds…`),
  where Authorization carries the patron's own token; a portal sends its key there as X-Api-Key.
  A bearer that does not start with `yk_` is a patron's token and none of this module's business;
- on the Calil-compatible check, `appkey=yk_…` (an appkey of another shape is Calil's own key,
  sent by a site that only changed the URL: it is ignored, and the caller is anonymous).

Search surfaces are route prefixes (`SEARCH_SURFACES`), so routes added under them later (search
sessions under /api/v1/searches) inherit the rule: with `[access] anonymous_search = false` they
answer 401 (`reason: api_key_required`, `WWW-Authenticate`) unless a key or the pages' pass comes
with the request. Everything else (members, health, the OpenAPI document, hold planning) is open.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from broker.consortium import AccessSettings
from broker.portals.first_party import PASS_COOKIE, PASS_TTL_S, PassSigner
from broker.portals.keys import KeyStore, PortalKey, looks_like_key, split_key
from yokodan.errors import YokodanError

log = logging.getLogger(__name__)

CHECK_PATH = "/api/v1/check"
# Prefixes: '/api/v1/search' covers /search, /search/stream and /searches/… alike.
SEARCH_SURFACES: tuple[str, ...] = ("/api/v1/search", "/sru", CHECK_PATH)
PATRON_ROUTES: tuple[str, ...] = ("/api/v1/auth/", "/api/v1/holds")
REALM = 'Bearer realm="yokodan"'


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["key", "first_party", "anonymous"]
    key: PortalKey | None = None


ANONYMOUS = Principal("anonymous")
FIRST_PARTY = Principal("first_party")


@dataclass
class PortalAccess:
    """What the access middleware, CORS and the check endpoint consult; one per app."""

    settings: AccessSettings
    keys: KeyStore
    passes: PassSigner = field(default_factory=PassSigner)
    consortium_origins: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.consortium_origins = frozenset(self.settings.cors_origins)


ACCESS_KEY = web.AppKey("portal_access", PortalAccess)
PRINCIPAL = web.RequestKey("portal_principal", Principal)


class PortalRefusal(YokodanError):
    """A request the portal rules refuse; the problem middleware answers it as problem+json."""

    def __init__(self, status: int, title: str, detail: str, reason: str, *, headers: dict[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:  # fmt: skip
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.reason = reason
        self.headers = headers or {}
        self.errors = errors


def invalid_key() -> PortalRefusal:
    # Never says which part was wrong (unknown id, revoked, wrong secret, another consortium's key).
    return PortalRefusal(
        401, "Unauthorized", "the API key is not valid here (unknown, revoked, or for another consortium)",
        "invalid_api_key", headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
    )  # fmt: skip


def key_required() -> PortalRefusal:
    return PortalRefusal(
        401, "Unauthorized",
        "this consortium's search is for portals with an API key: send it as `Authorization: Bearer yk_…` or `X-Api-Key`",
        "api_key_required", headers={"WWW-Authenticate": REALM},
    )  # fmt: skip


def is_search_surface(path: str) -> bool:
    return path.startswith(SEARCH_SURFACES)


def _presented(request: web.Request) -> list[str]:
    """Every value the caller presented as a portal key (usually none or one)."""
    found: list[str] = []
    header = request.headers.get("X-Api-Key")
    if header is not None:
        found.append(header.strip())
    if not request.path.startswith(PATRON_ROUTES):
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and looks_like_key(credentials):
            found.append(credentials.strip())
    if request.path == CHECK_PATH:
        appkey = request.query.get("appkey", "")
        if looks_like_key(appkey):
            found.append(appkey.strip())
    return list(dict.fromkeys(found))


def identify(request: web.Request, access: PortalAccess) -> Principal:
    """The caller, or PortalRefusal (401) for a key that is not valid here."""
    presented = _presented(request)
    if presented:
        if len(presented) > 1:
            raise PortalRefusal(401, "Unauthorized", "two different API keys were sent; send one", "invalid_api_key",
                                headers={"WWW-Authenticate": f'{REALM}, error="invalid_request"'})  # fmt: skip
        key = access.keys.verify(presented[0])
        if key is None:
            parts = split_key(presented[0])
            if parts is not None:  # the id only, for the operator; never the secret
                log.info("refused API key %s from %s", parts[0], request.remote)
            raise invalid_key()
        return Principal("key", key)
    if access.passes.valid(request.cookies.get(PASS_COOKIE)):
        return FIRST_PARTY
    return ANONYMOUS


@web.middleware
async def portal_access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    access = request.app[ACCESS_KEY]
    principal = identify(request, access)
    request[PRINCIPAL] = principal
    if principal is ANONYMOUS and not access.settings.anonymous_search and is_search_surface(request.path):
        raise key_required()
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    return request.get(PRINCIPAL, ANONYMOUS)


def members_for(request: web.Request, asked: Sequence[str], known: Sequence[str]) -> list[str]:
    """The members a search may ask: a key limited to some members searches those (all of them
    when the request names none); naming another known member is 403 `members_not_allowed`.
    Unknown names pass through, to be refused as unknown (400) by the search."""
    key = principal_of(request).key
    if key is None or key.members is None:
        return list(asked)
    if not asked:
        return list(key.members)
    outside = [m for m in asked if m in known and m not in key.members]
    if outside:
        raise PortalRefusal(
            403, "Forbidden", "this API key may not search these members", "members_not_allowed",
            errors=[{"parameter": "members", "detail": m} for m in outside],
        )  # fmt: skip
    return list(asked)


def set_pages_pass(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: a page the broker renders hands its script the first-party pass."""
    access = request.app.get(ACCESS_KEY)
    if access is None or access.settings.anonymous_search:
        return  # nothing to pass: anyone may search
    if not (response.content_type or "").startswith("text/html") or response.status >= 300:
        return
    # A header, not response.set_cookie: aiohttp has already turned the cookies into headers
    # when on_response_prepare runs.
    cookie: SimpleCookie = SimpleCookie()
    cookie[PASS_COOKIE] = access.passes.issue()
    morsel = cookie[PASS_COOKIE]
    morsel.update({"max-age": str(PASS_TTL_S), "path": "/", "httponly": True, "samesite": "Strict", "secure": request.secure})
    response.headers.add("Set-Cookie", morsel.OutputString())
