"""The HTTP API (aiohttp.web): JSON for portals and the pages.

  GET /api/v1/search          merged works + per-member statuses
  GET /api/v1/search/stream   the same, progressively, as NDJSON (one line per member answer)
  GET /api/v1/members         members, branches, connector kinds
  GET /healthz

Invalid requests get 400 with an RFC 9457 `application/problem+json` body that
names each bad parameter. Search requests carry no patron identity and are
never logged with one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from broker.consortium import Consortium
from yokodan import SearchQuery
from broker.search import SearchService, UnknownMembers
from broker.views import DisplayNames, cached_view, facets_view, status_view, work_view
from connectors import HttpClient
from connectors.status_words import UNKNOWN_WORDS
from index.store import UnionIndex

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
CONSORTIUM_KEY = web.AppKey("consortium", Consortium)
SEARCH_KEY = web.AppKey("search", SearchService)
NAMES_KEY = web.AppKey("names", DisplayNames)
HTTP_KEY = web.AppKey("http", HttpClient)


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
    start: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)

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


class InvalidRequest(Exception):
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


def parse_search_params(request: web.Request) -> tuple[SearchQuery, list[str], tuple[float, float] | None]:
    """The structured query, the member ids asked for and where the patron is, or InvalidRequest."""
    raw: dict[str, str] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise InvalidRequest("a parameter was given more than once", [{"parameter": key, "detail": "repeated"}])
        raw[key] = values[0]
    try:
        params = SearchParams.model_validate(raw)
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
    return query, params.members, _resolve_near(params.near, request.app[CONSORTIUM_KEY])


async def search_handler(request: web.Request) -> web.Response:
    query, members, near = parse_search_params(request)
    service = request.app[SEARCH_KEY]
    names = request.app[NAMES_KEY]
    outcome = await service.search(query, members, near=near)
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
    events = service.stream(query, members, near=near)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    async for event in events:
        if event.cached is not None:  # the union index's instant answer, before any member
            await response.write(orjson.dumps({"type": "cached", **cached_view(event.cached)}) + b"\n")
            continue
        line: dict[str, Any] = {
            "type": "final" if event.final else "member",
            "works": [work_view(w, names) for w in event.works],
        }
        if event.answer is not None:
            line["target"] = status_view(event.answer.status, names)
        if event.final:
            line["targets"] = [status_view(s, names) for s in event.statuses]
        await response.write(orjson.dumps(line) + b"\n")
    await response.write_eof()
    return response


async def members_handler(request: web.Request) -> web.Response:
    consortium = request.app[CONSORTIUM_KEY]
    unknown: dict[str, dict[str, int]] = {}
    for (member, word), count in UNKNOWN_WORDS.items():
        unknown.setdefault(member, {})[word] = count
    members = [
        {
            "id": m.id,
            "name": m.name,
            "municipality": m.municipality,
            "phone": m.phone,
            "connector": m.connector.kind,
            "circuit": request.app[SEARCH_KEY].breakers[m.id].snapshot(),
            "maintenance": [w.describe() for w in m.maintenance],
            "unknown_status_words": unknown.get(m.id, {}),
            "branches": [b.model_dump(mode="json", exclude_none=True) for b in m.branches],
        }
        for m in consortium.members
    ]
    return json_response({"consortium": {"id": consortium.id, "name": consortium.name}, "members": members})


async def health_handler(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "consortium": request.app[CONSORTIUM_KEY].id})


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except InvalidRequest as exc:
        return problem(400, "Invalid request", exc.detail, errors=exc.errors)
    except UnknownMembers as exc:
        return problem(
            400, "Unknown member", str(exc), errors=[{"parameter": "members", "detail": m} for m in exc.unknown]
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text or exc.reason)
    except Exception:
        log.exception("unhandled error on %s", request.path)  # path only: the query may be private
        return problem(500, "Internal Server Error", "the broker failed; the error is logged")


def build_app(
    consortium: Consortium, *, http: HttpClient | None = None, index: UnionIndex | None = None
) -> web.Application:
    """The broker's web application; owns one shared HttpClient unless given one.

    With `index`, streamed searches answer first from the union index and every
    search's works are cached there (the caller opens and closes the index).
    """
    app = web.Application(middlewares=[problem_middleware])
    app[CONSORTIUM_KEY] = consortium
    app[NAMES_KEY] = DisplayNames.of(consortium)
    app[HTTP_KEY] = http or HttpClient()
    app[SEARCH_KEY] = SearchService(consortium, app[HTTP_KEY], index=index)
    owns_client = http is None

    async def start_client(app: web.Application) -> None:
        await app[HTTP_KEY].start()

    async def close_client(app: web.Application) -> None:
        if owns_client:
            await app[HTTP_KEY].close()

    app.on_startup.append(start_client)
    app.on_cleanup.append(close_client)
    app.router.add_get("/api/v1/search", search_handler)
    app.router.add_get("/api/v1/search/stream", search_stream_handler)
    app.router.add_get("/api/v1/members", members_handler)
    app.router.add_get("/healthz", health_handler)
    from broker.holds.routes import add_plan_routes  # imported here: routes imports this module

    add_plan_routes(app)  # POST /api/v1/holds/plan
    return app
