"""The HTTP API (aiohttp.web): JSON for portals and the pages.

  GET /api/v1/search          merged works + per-member statuses
  GET /api/v1/search/stream   the same, progressively, as NDJSON (one line per member answer)
  GET /api/v1/members         members, branches, connectors, circuits, unknown status words
  GET /healthz

HEAD of either search path checks the parameters and answers without a fan-out.

Query text is cleaned before it leaves (broker.querytext: control characters become spaces,
U+FFFD and lone surrogates are a 400). Searches pass admission first (broker.admission: a token
bucket per client address, 429; a cap on concurrent fan-outs with a short queue, 503), and
identical searches in flight share one fan-out (broker.coalesce). Every response carries the
security headers of `security_headers` and a `Server` header without versions.

Invalid requests get 400 with an RFC 9457 `application/problem+json` body that
names each bad parameter. Search requests carry no patron identity and are
never logged with one.

The app owns its resources through `cleanup_ctx` (opened in order on startup,
closed in reverse on cleanup): the shared HTTP client, then the union index,
which is opened in a thread because opening it may wait for a lock and read
files. The ledger and the hold poller join the same list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from broker.admission import AdmissionSettings, BrokerBusy, ClientRateLimiter, LagMonitor, RateDecision, SearchGate
from connectors.coalesce import Coalescer
from broker.allocator import describe as allocator_name
from broker.memo_caches import release_memo_caches
from broker.memory import IdleTrimmer, resident_mib
from broker.http_server import add_security_headers
from broker.consortium import Consortium
from broker.querytext import UndecodableText, clean_text
from yokodan import SearchQuery
from yokodan.errors import BadRequest
from broker.ledger.runtime import LedgerConfig
from broker.member_operations import GuardedConnector
from broker.members import MemberRegistry, UnknownMembers
from broker.portals.access import (
    ACCESS_KEY,
    CHECK_PATH,
    PortalAccess,
    PortalRefusal,
    members_for,
    portal_access_middleware,
    principal_of,
    set_pages_pass,
)
from broker.portals.cors import cors_preflight_middleware, cors_response_headers
from broker.portals.keys import KeyStore
from broker.outbound import FanoutSettings, OutboundGate
from broker.selection import MemberSelector, NoMembersSelected, PlaceQuery, UnknownPlace
from broker.search import SearchOutcome, SearchService
from broker.sessions.lines import StreamLines
from broker.sessions.settings import SessionSettings
from broker.views import DisplayNames, facets_view, status_view, work_view
from connectors import Capability, HttpClient, IngestPool
from index.store import UnionIndex

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
CONSORTIUM_KEY = web.AppKey("consortium", Consortium)
SEARCH_KEY = web.AppKey("search", SearchService)
NAMES_KEY = web.AppKey("names", DisplayNames)
HTTP_KEY = web.AppKey("http", HttpClient)
REGISTRY_KEY = web.AppKey("registry", MemberRegistry)
ADMISSION_KEY = web.AppKey("admission", AdmissionSettings)
GATE_KEY = web.AppKey("search_gate", SearchGate)
LIMITER_KEY = web.AppKey("rate_limiter", ClientRateLimiter)
KEY_LIMITER_KEY = web.AppKey("key_rate_limiter", ClientRateLimiter)  # one bucket per portal key
LAG_KEY = web.AppKey("lag_monitor", LagMonitor)
COALESCER_KEY = web.AppKey("coalescer", Coalescer)
SELECTOR_KEY = web.AppKey("member_selector", MemberSelector)
TRIMMER_KEY = web.AppKey("idle_trimmer", IdleTrimmer)
INGEST_KEY = web.AppKey("ingest", IngestPool)
RATE_DECISION = web.RequestKey("rate_decision", RateDecision)
SEARCH_PATHS = frozenset({"/api/v1/search", "/api/v1/search/stream"})
SESSIONS_PATH = "/api/v1/searches"  # POST starts a search session (broker.sessions)


class SearchParams(BaseModel):
    """Query parameters of /api/v1/search; unknown parameters are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    q: str | None = Field(default=None, max_length=500, description="free text, all words")
    title: str | None = Field(default=None, max_length=500)
    author: str | None = Field(default=None, max_length=200)
    isbn: str | None = Field(default=None, max_length=40)
    year: int | None = Field(default=None, ge=0, le=9999)
    members: list[str] = Field(default_factory=list, description="comma-separated member ids")
    near: str | None = Field(default=None, max_length=80, description="'lat,lon' or a branch id: rank copies nearby first")
    # Members by place (broker/selection.py); comma-separated values; narrowed by each other and `members`.
    prefecture: str | None = Field(default=None, max_length=200, description="JIS codes or names: 33, 岡山県")
    region: str | None = Field(default=None, max_length=100, description="regions (地方): 中国, 近畿")
    near_prefecture: str | None = Field(default=None, max_length=200, description="a prefecture and its land neighbours")
    start: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)

    @field_validator("q", "title", "author", "isbn", mode="before")
    @classmethod
    def _clean_text(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return clean_text(value)
        except UndecodableText as exc:
            raise PydanticCustomError("undecodable_text", str(exc)) from None

    @field_validator("members", mode="before")
    @classmethod
    def _split_members(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def to_query(self) -> SearchQuery:
        return SearchQuery(
            text=self.q or None,
            title=self.title or None,
            author=self.author or None,
            isbn=self.isbn or None,
            year=self.year,
            start=self.start,
            page_size=self.page_size,
        )


def json_response(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=content_type)


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.Response(body=orjson.dumps(body), status=status, content_type=PROBLEM_JSON)


class InvalidRequest(BadRequest):
    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


def _resolve_near(near: str | None, consortium: Consortium) -> tuple[float, float] | None:
    """'34.66,133.93' or a branch id with known coordinates -> (lat, lon)."""
    if not near:
        return None
    lat_text, comma, lon_text = near.partition(",")
    if comma:
        try:
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            lat = lon = float("nan")
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            return lat, lon
        raise InvalidRequest("near must be 'lat,lon' or a branch id", [{"parameter": "near", "detail": near}])
    try:
        branch = consortium.branch(near)
    except KeyError:
        raise InvalidRequest("unknown branch in near", [{"parameter": "near", "detail": near}]) from None
    if branch.lat is None or branch.lon is None:
        raise InvalidRequest(
            "that branch has no known location; give 'lat,lon'", [{"parameter": "near", "detail": near}]
        )
    return branch.lat, branch.lon


def single_values(request: web.Request) -> dict[str, str]:
    """The query string as one value per parameter; a parameter given twice is a 400 naming it."""
    raw: dict[str, str] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise InvalidRequest("a parameter was given more than once", [{"parameter": key, "detail": "repeated"}])
        raw[key] = values[0]
    return raw


def parse_search_params(request: web.Request) -> tuple[SearchQuery, list[str], tuple[float, float] | None]:
    """The structured query, the member ids asked for and where the patron is, or InvalidRequest."""
    try:
        params = SearchParams.model_validate(single_values(request))
        query = params.to_query()
    except ValidationError as exc:
        errors = [
            {"parameter": ".".join(str(p) for p in err["loc"]) or "query", "detail": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        raise InvalidRequest("invalid search parameters", errors) from None
    if query.is_empty():
        raise InvalidRequest(
            "give at least one of q, title, author, isbn, year", [{"parameter": "q", "detail": "empty query"}]
        )
    return query, chosen_members(request, params), _resolve_near(params.near, request.app[CONSORTIUM_KEY])


def chosen_members(request: web.Request, params: SearchParams) -> list[str]:
    """The member ids a search asks ([] for all): a portal key's member subset first (naming a
    member outside it is 403), then the places (prefecture, region, near_prefecture) narrow it."""
    consortium = request.app[CONSORTIUM_KEY]
    asked = members_for(request, params.members, [m.id for m in consortium.members])
    places = PlaceQuery(prefecture=params.prefecture, region=params.region, near_prefecture=params.near_prefecture)
    try:
        members = request.app[SELECTOR_KEY].select(asked, places)
    except UnknownPlace as exc:
        raise InvalidRequest(str(exc), [{"parameter": exc.parameter, "detail": str(exc)}]) from None
    except NoMembersSelected as exc:
        raise InvalidRequest(str(exc), [{"parameter": p, "detail": "no member matches"} for p in exc.parameters]) from None
    return members or []


async def search_handler(request: web.Request) -> web.Response:
    query, members, near = parse_search_params(request)
    service = request.app[SEARCH_KEY]
    names = request.app[NAMES_KEY]
    gate = request.app[GATE_KEY]
    chosen = tuple(service.chosen(members))  # unknown names are a 400 before any waiting
    request.app[TRIMMER_KEY].touch()

    async def fan_out() -> SearchOutcome:
        async with gate.place():
            return await service.search(query, members, near=near)

    key = (query.model_dump_json(), chosen, near)
    outcome = await request.app[COALESCER_KEY].run(key, fan_out)
    return json_response(
        {
            "query": query.model_dump(mode="json", exclude_none=True),
            "elapsed_ms": round(outcome.elapsed_ms, 1),
            "work_count": len(outcome.works),
            "works": [work_view(w, names) for w in outcome.works],
            "facets": facets_view(outcome.works, service.municipalities),
            "targets": [status_view(s, names) for s in outcome.statuses],
        }
    )


async def search_stream_handler(request: web.Request) -> web.StreamResponse:
    query, members, near = parse_search_params(request)
    service = request.app[SEARCH_KEY]
    names = request.app[NAMES_KEY]
    # Check the names before sending headers, so unknown members still get a 400 problem.
    service.chosen(members)
    request.app[TRIMMER_KEY].touch()
    # Each stream is its own caller's progress, so streams are not coalesced; they do take a place.
    async with request.app[GATE_KEY].place():
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        # From here on the status line is sent: a failure can only end the stream with an
        # error line, never become a second response (the problem middleware's job before this).
        lines = StreamLines(names)  # each work serialised once per change (broker.sessions.lines)
        try:
            async with aclosing(service.stream(query, members, near=near)) as events:
                async for event in events:
                    await response.write(lines.line(event))
        except ConnectionResetError:
            # The caller went away (closed tab, portal timeout): routine, one line, no traceback;
            # aclosing has already stopped the members.
            log.debug("search stream: client %s disconnected", request.remote)
            return response
        except Exception:
            log.exception("search stream failed on %s", request.path)  # path only: the query may be private
            await response.write(orjson.dumps(STREAM_ERROR_LINE) + b"\n")
        await response.write_eof()
        return response


async def search_head_handler(request: web.Request) -> web.Response:
    """HEAD of a search path: the parameters are checked (400 as for GET), but no member is asked."""
    _, members, _ = parse_search_params(request)
    request.app[SEARCH_KEY].chosen(members)
    content_type = "application/x-ndjson" if request.path.endswith("/stream") else "application/json"
    return web.Response(status=200, headers={"Content-Type": content_type})


# The last line of a stream that failed after it began (RFC 9457 fields, as the 500 problem body).
STREAM_ERROR_LINE: dict[str, Any] = {
    "type": "error",
    "status": 500,
    "title": "Internal Server Error",
    "detail": "the search failed after the stream began; the results above are incomplete; the error is logged",
}


async def members_handler(request: web.Request) -> web.Response:
    consortium = request.app[CONSORTIUM_KEY]
    registry = request.app[REGISTRY_KEY]
    members = []
    for member_id in registry.member_ids:
        m = registry.member(member_id)
        connectors = registry.connectors(member_id)
        members.append(
            {
                "id": m.id,
                "name": m.name,
                "municipality": m.municipality,
                "phone": m.phone,
                "connector": m.connector.kind,  # the search face; `connectors` lists every face
                "connectors": [{"kind": c.kind, "capabilities": sorted(c.capabilities)} for c in connectors],
                "circuit": registry.breaker(member_id).snapshot(),
                "maintenance": [w.describe() for w in m.maintenance],
                "in_maintenance": registry.maintenance_now(member_id) is not None,
                "unknown_status_words": registry.unknown_words.words_of(member_id),
                "unknown_status_words_dropped": registry.unknown_words.overflow_of(member_id),
                "calil_systemid": m.calil_systemid,
                "branches": [b.model_dump(mode="json", exclude_none=True) for b in m.branches],
            }
        )
    return json_response({"consortium": {"id": consortium.id, "name": consortium.name}, "members": members})


async def health_handler(request: web.Request) -> web.Response:
    lag, gate = request.app[LAG_KEY], request.app[GATE_KEY]
    return json_response(
        {
            "status": "ok",
            "consortium": request.app[CONSORTIUM_KEY].id,
            # what an operator (and bench/soak.py) needs to see the broker itself saturating
            "event_loop": {
                "lag_ms": round(lag.last_lag_s * 1000, 1),
                "max_lag_ms": round(lag.max_lag_s * 1000, 1),
                "saturated": lag.saturated(),
            },
            "searches": {"running": gate.running, "queued": gate.queued, "refused_busy": gate.refused},
            "memory": {"allocator": allocator_name(), "rss_mib": resident_mib()},
            **_union_index_health(request.app[SEARCH_KEY].index),
        }
    )


def _union_index_health(index: UnionIndex | None) -> dict[str, Any]:
    """The union index's writer, for an operator: is it alive, restarting, dropping work?"""
    if index is None:
        return {}
    stats = index.stats()  # counters and a cached count: no segment is opened
    return {
        "union_index": {
            "works": stats.doc_count,
            "writer": stats.writer,
            "writer_pid": stats.writer_pid,
            "writer_restarts": stats.writer_restarts,
            "queued_works": stats.queued_works,
            "dropped_batches": stats.dropped_batches,
            "resubmitted_batches": stats.resubmitted_batches,
            "lost_batches": stats.lost_batches,
            "failed_batches": stats.failed_batches,
            "last_error": stats.last_error,
        }
    }


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except PortalRefusal as exc:  # broker/portals: 401 bad or missing key, 403 members / CORS
        extra: dict[str, Any] = {"reason": exc.reason}
        if exc.errors:
            extra["errors"] = exc.errors
        response = problem(exc.status, exc.title, exc.detail, **extra)
        response.headers.update(exc.headers)
        return response
    except InvalidRequest as exc:
        return problem(400, "Invalid request", exc.detail, errors=exc.errors)
    except UnknownMembers as exc:
        return problem(
            400, "Unknown member", str(exc), errors=[{"parameter": "members", "detail": m} for m in exc.unknown]
        )
    except BrokerBusy as exc:
        response = problem(503, "Service Unavailable", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text or exc.reason)
    except Exception:
        log.exception("unhandled error on %s", request.path)  # path only: the query may be private
        return problem(500, "Internal Server Error", "the broker failed; the error is logged")


@web.middleware
async def rate_limit_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Searches take a token: from the portal key's own bucket when a key came with the request,
    else from the client address's (anonymous callers and the pages). A refusal costs no fan-out."""
    if not _costs_a_search(request):
        return await handler(request)
    key = principal_of(request).key
    if key is not None:
        decision = request.app[KEY_LIMITER_KEY].take(key.id, burst=key.burst, rate_per_s=key.rate_per_s, policy="key")
        whose = "with this API key"
    else:
        decision = request.app[LIMITER_KEY].take(request.remote or "unknown")
        whose = "from this address"
    request[RATE_DECISION] = decision
    if not decision.allowed:
        response = problem(
            429, "Too Many Requests", f"too many searches {whose}; retry in {decision.retry_after_s} s",
            reason="rate_limited",
        )
        response.headers["Retry-After"] = str(decision.retry_after_s)
        return response
    return await handler(request)


def _costs_a_search(request: web.Request) -> bool:
    if request.method == "POST":
        return request.path == SESSIONS_PATH  # starting a search session; polling it does not
    if request.method != "GET":
        return False
    # The Calil-compatible check: starting one costs a token, polling it with `session` does not (as at Calil).
    return request.path in SEARCH_PATHS or (request.path == CHECK_PATH and "session" not in request.query)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: runs for every response, streamed ones and the router's 404/405 included.

    A signal rather than a middleware: a middleware sees a stream only after its headers are sent.
    """
    # The pages' policy for everything a browser loads as part of a page (HTML, its script and style,
    # redirects between pages); the strict API policy for the machine interfaces.
    content_type = response.content_type or ""
    machine = request.path.startswith(("/api/", "/sru", "/healthz")) or "json" in content_type or "xml" in content_type
    page = content_type.startswith("text/html") or not machine
    add_security_headers(response.headers, html=page)
    decision = request.get(RATE_DECISION)
    if decision is not None:  # draft-ietf-httpapi-ratelimit-headers (the widely implemented fields)
        response.headers["RateLimit-Limit"] = str(decision.limit)
        response.headers["RateLimit-Remaining"] = str(decision.remaining)
        response.headers["RateLimit-Reset"] = str(decision.reset_s)
        # draft-ietf-httpapi-ratelimit-headers-09: the named policy, and what is left of it
        response.headers["RateLimit-Policy"] = f'"{decision.policy}";q={decision.limit};w={decision.window_s}'
        response.headers["RateLimit"] = f'"{decision.policy}";r={decision.remaining};t={decision.reset_s}'
    cors_response_headers(request, response)
    set_pages_pass(request, response)


def build_app(
    consortium: Consortium,
    *,
    http: HttpClient | None = None,
    open_index: Callable[[], UnionIndex] | None = None,
    ledger: LedgerConfig | None = None,
    admission: AdmissionSettings | None = None,
    portal_keys: Path | None = None,
    fanout: FanoutSettings | None = None,
    idle_trim_s: float | None = 10.0,
    sessions: SessionSettings | None = None,
    member_operations: int | None = None,
) -> web.Application:
    """The broker's web application.

    It owns one shared HttpClient unless given one (a given client is started, not
    closed). With `open_index` (e.g. `functools.partial(UnionIndex.open, path)`),
    the app opens the union index on startup, off the event loop, and closes it
    on cleanup; streamed searches then answer first from it and every search's
    works are cached there. With `ledger`, the hold endpoints are mounted and the
    ledger (database, reconciler, poller) opens and closes with the app. `portal_keys` is the
    portal keys file (broker/portals/keys.py); without one, every presented key is a 401.
    `idle_trim_s`: seconds without a search after which freed memory is collected and handed back
    to the system (broker.memory; None: never).
    `sessions` sets the search sessions' cap, idle expiry and long-poll bound (broker.sessions).
    `member_operations` replaces every member's `max_operations` (serve --member-operations).
    """
    # Order: problems outermost; a CORS preflight before any key check (it carries none); the
    # caller's identity before rate limiting (whose bucket).
    app = web.Application(
        middlewares=[problem_middleware, cors_preflight_middleware, portal_access_middleware, rate_limit_middleware]
    )
    app[CONSORTIUM_KEY] = consortium
    app[NAMES_KEY] = DisplayNames.of(consortium)
    app[HTTP_KEY] = http or HttpClient()
    app[INGEST_KEY] = IngestPool(consortium.search.ingest)  # workers start on the first burst, not here
    app[REGISTRY_KEY] = MemberRegistry(consortium, app[HTTP_KEY], ingest=app[INGEST_KEY], member_operations=member_operations)
    # One outbound gate per process: a cap on member requests in flight, fair between searches.
    app[SEARCH_KEY] = SearchService(app[REGISTRY_KEY], gate=OutboundGate(fanout or FanoutSettings()))
    app[SELECTOR_KEY] = MemberSelector(consortium)
    app.cleanup_ctx.append(_http_client_lifecycle(owns_client=http is None))
    app.cleanup_ctx.append(_ingest_pool_lifecycle)
    if open_index is not None:
        app.cleanup_ctx.append(_union_index_lifecycle(open_index))
    app[ADMISSION_KEY] = admission or AdmissionSettings()
    app[GATE_KEY] = SearchGate(app[ADMISSION_KEY])
    app[LIMITER_KEY] = ClientRateLimiter(app[ADMISSION_KEY])
    app[KEY_LIMITER_KEY] = ClientRateLimiter(app[ADMISSION_KEY])
    app[ACCESS_KEY] = PortalAccess(
        consortium.access,
        KeyStore(portal_keys, consortium_id=consortium.id, member_ids=[m.id for m in consortium.members]),
    )
    app[LAG_KEY] = LagMonitor(app[ADMISSION_KEY])
    app[COALESCER_KEY] = Coalescer()
    app[REGISTRY_KEY].broker_saturated = app[LAG_KEY].saturated
    app.cleanup_ctx.append(_lag_monitor_lifecycle)
    app[TRIMMER_KEY] = IdleTrimmer(idle_trim_s or 10.0, release=partial(release_memo_caches, [app[INGEST_KEY].cache]))
    if idle_trim_s is not None:
        app.cleanup_ctx.append(_idle_trimmer_lifecycle)
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/api/v1/search", search_handler, allow_head=False)
    app.router.add_get("/api/v1/search/stream", search_stream_handler, allow_head=False)
    app.router.add_head("/api/v1/search", search_head_handler)
    app.router.add_head("/api/v1/search/stream", search_head_handler)
    app.router.add_get("/api/v1/members", members_handler)
    app.router.add_get("/healthz", health_handler)
    from broker.sru_server import add_sru_routes  # imported here: it imports this module's keys
    add_sru_routes(app)  # GET /sru: SRU 1.2/2.0 explain and searchRetrieve
    from broker.calil_check import add_check_routes  # imported here: it imports this module's keys

    add_check_routes(app)  # GET /api/v1/check: Calil's check API, answered by this consortium
    from broker.holds.routes import add_plan_routes  # imported here: routes imports this module

    add_plan_routes(app)  # POST /api/v1/holds/plan
    from broker.sessions.routes import add_session_routes  # imported here: routes imports this module

    add_session_routes(app, sessions)  # /api/v1/searches…: progressive search sessions (long-poll, SSE)
    if ledger is not None:
        from broker.ledger.routes import add_hold_routes
        from broker.ledger.series_routes import add_series_hold_routes

        add_hold_routes(app)
        add_series_hold_routes(app)  # POST /api/v1/holds/series
        app.cleanup_ctx.append(_ledger_lifecycle(ledger))
    __import__("broker.pages").pages.add_page_routes(app)  # the patrons' and librarians' pages (broker/pages)

    from broker.openapi import add_openapi_routes  # imported here: openapi imports this module

    add_openapi_routes(app)  # GET /api/v1/openapi.json, /api/v1/docs (describes every route, the ledger's too)
    return app


def _ledger_lifecycle(config: LedgerConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        from broker.ledger.routes import HOLDS_KEY, LEDGER_KEY
        from broker.ledger.runtime import open_ledger

        registry = app[REGISTRY_KEY]

        def gateway_for(member_id: str) -> GuardedConnector:
            # The member's holds face where the file names one, else its catalogue connector; every
            # call in one of the member's slots, its outcome fed to the member's breaker.
            return registry.guarded(member_id, Capability.PLACE_HOLD)

        async with open_ledger(config, app[CONSORTIUM_KEY], gateway_for, unavailable=registry.unavailable) as runtime:
            app[HOLDS_KEY] = runtime.service
            app[LEDGER_KEY] = runtime
            yield

    return lifecycle


def _http_client_lifecycle(*, owns_client: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[HTTP_KEY].start()
        yield
        if owns_client:
            await app[HTTP_KEY].close()

    return lifecycle


async def _ingest_pool_lifecycle(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[INGEST_KEY].close()  # waits for the workers to exit: none is left behind


async def _lag_monitor_lifecycle(app: web.Application) -> AsyncIterator[None]:
    app[LAG_KEY].start()
    yield
    await app[LAG_KEY].stop()


async def _idle_trimmer_lifecycle(app: web.Application) -> AsyncIterator[None]:
    app[TRIMMER_KEY].start()
    yield
    await app[TRIMMER_KEY].stop()


def _union_index_lifecycle(open_index: Callable[[], UnionIndex]) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # Opening waits for the index lock and reads segments: never on the loop.
        index = await asyncio.to_thread(open_index)
        app[SEARCH_KEY].index = index
        yield
        app[SEARCH_KEY].index = None  # searches still running answer live only
        await asyncio.to_thread(index.close)  # commits what is queued, joins the writer

    return lifecycle
