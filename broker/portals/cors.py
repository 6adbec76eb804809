"""CORS for the configured origins only: the consortium's `[access] cors_origins` and each key's `origins`.

Written here rather than taken from `aiohttp-cors` (0.8.1, maintained): it configures a fixed set
of origins per route when the app starts, where these origins change while the broker runs (a key
created or revoked re-reads the keys file) and depend on the key a request presents; and every
route would have to be registered with it, where routes added later (search sessions) must be
covered by their path alone.

- Preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on an API path: an
  allowed origin asking for a method the route has gets 204 with the allowed methods and headers
  (`Authorization`, `X-Api-Key`, `Content-Type`, `Idempotency-Key`, `Last-Event-ID`) and a max age;
  anything else gets 403 problem+json without any CORS header. A preflight carries no key, so it
  is answered for the consortium's origins and for the origins of every live key.
- Actual responses on API paths carry `Vary: Origin`; `Access-Control-Allow-Origin` echoes the
  request's origin only when it is one of the consortium's origins or of the presented key's.
  Never `*`, and never `Access-Control-Allow-Credentials`: keys travel in headers, not cookies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from broker.consortium import web_origin
from broker.portals.access import ACCESS_KEY, PortalRefusal, principal_of

API_PATHS = ("/api/", "/sru", "/healthz")
ALLOW_HEADERS = "Authorization, X-Api-Key, Content-Type, Idempotency-Key, Last-Event-ID"
EXPOSE_HEADERS = (
    "RateLimit, RateLimit-Policy, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, Location, WWW-Authenticate"
)
MAX_AGE_S = 600


def _normalised(origin: str | None) -> str | None:
    if not origin or origin == "null":
        return None
    try:
        result = web_origin(origin)
    except ValueError:
        return None
    return result if isinstance(result, str) else None


def _add_vary(response: web.StreamResponse, *names: str) -> None:
    present = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    for name in names:
        if name.lower() not in (p.lower() for p in present):
            present.append(name)
    response.headers["Vary"] = ", ".join(present)


@web.middleware
async def cors_preflight_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method != "OPTIONS" or not request.path.startswith(API_PATHS) or "Origin" not in request.headers:
        return await handler(request)
    wanted = request.headers.get("Access-Control-Request-Method", "").strip().upper()
    if not wanted:
        return await handler(request)  # an OPTIONS that is not a preflight: the router's answer
    unmatched = request.match_info.http_exception
    if isinstance(unmatched, web.HTTPNotFound):
        return await handler(request)  # no such path: 404 as for any method
    methods = set(getattr(unmatched, "allowed_methods", set())) or {request.match_info.route.method}
    methods.discard("OPTIONS")
    access = request.app[ACCESS_KEY]
    origin = _normalised(request.headers["Origin"])
    if origin is None or origin not in access.consortium_origins | access.keys.key_origins():
        raise PortalRefusal(403, "Forbidden", "this origin is not allowed to call the API from a browser", "cors_origin_not_allowed")
    if wanted not in methods:
        raise PortalRefusal(403, "Forbidden", f"{wanted} is not a method of this path", "cors_method_not_allowed")
    response = web.Response(status=204)
    response.headers["Access-Control-Allow-Origin"] = request.headers["Origin"]
    response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set())))
    response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = str(MAX_AGE_S)
    _add_vary(response, "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
    return response


def cors_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare (streams included): the CORS headers of an actual response."""
    if not request.path.startswith(API_PATHS):
        return
    _add_vary(response, "Origin")
    if "Access-Control-Allow-Origin" in response.headers or "Origin" not in request.headers:
        return  # the preflight set its own
    access = request.app.get(ACCESS_KEY)
    origin = _normalised(request.headers["Origin"])
    if access is None or origin is None:
        return
    key = principal_of(request).key
    allowed = access.consortium_origins | (frozenset(key.origins) if key is not None else frozenset())
    if origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = request.headers["Origin"]
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
