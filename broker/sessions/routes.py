"""The session routes: create, long-poll, delete (SSE is broker/sessions/sse.py).

  POST   /api/v1/searches              the parameters of /api/v1/search as a JSON body → 201 {id, version, links}
  GET    /api/v1/searches/{search_id}  ?version=N&timeout=S: the diff since N, waiting up to S for news
  DELETE /api/v1/searches/{search_id}  ends it: the fan-out stops, the id answers 404 from then on
  GET    /api/v1/searches/{search_id}/events   the same diffs as Server-Sent Events

A POST passes the same admission as GET /api/v1/search: the client's token bucket (429), then a
place at the search gate (503) held by the fan-out until it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.api import (
    CONSORTIUM_KEY, GATE_KEY, NAMES_KEY, SEARCH_KEY, TRIMMER_KEY, InvalidRequest, SearchParams, _resolve_near,
    chosen_members, problem, single_values,
)  # fmt: skip
from broker.sessions.changelog import SearchSession
from broker.sessions.fanout import run_fanout
from broker.sessions.settings import SessionSettings
from broker.sessions.store import SessionNotFound, SessionStore, SessionsFull

__all__ = ["SESSIONS_KEY", "SessionEventsQuery", "SessionPoll", "add_session_routes"]

SESSIONS_KEY = web.AppKey("search_sessions", SessionStore)
SEARCHES = "/api/v1/searches"
MAX_BODY = 16 * 1024


class SessionPoll(BaseModel):
    """Query parameters of GET /api/v1/searches/{search_id}."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(default=0, ge=0, le=2**31 - 1, description="the last version the client has (0: none); "
                         "the answer is the diff since it, or the whole state with reset=true when the session no longer keeps it")  # fmt: skip
    timeout: float = Field(default=0.0, ge=0, le=30, description="seconds to wait for something newer than `version` "
                           "before answering an empty diff (0: answer at once)")  # fmt: skip


class SessionEventsQuery(BaseModel):
    """Query parameters of GET /api/v1/searches/{search_id}/events."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(default=0, ge=0, le=2**31 - 1, description="where to start when no Last-Event-ID header "
                         "is sent (a reconnecting EventSource sends it: it wins)")  # fmt: skip


def parse_query(model: type[BaseModel], request: web.Request) -> Any:
    try:
        return model.model_validate(single_values(request))
    except ValidationError as exc:
        raise InvalidRequest("invalid parameters", _errors(exc)) from None


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"parameter": ".".join(str(p) for p in e["loc"]) or "body", "detail": e["msg"]} for e in exc.errors(include_url=False)]


def json_bytes(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def session_of(request: web.Request) -> SearchSession:
    return request.app[SESSIONS_KEY].get(request.match_info["search_id"])


async def create_handler(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return problem(413, "Request body too large", f"at most {MAX_BODY} bytes")
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not JSON", [{"parameter": "body", "detail": "not JSON"}]) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", [{"parameter": "body", "detail": "not an object"}])
    try:
        params = SearchParams.model_validate(body)
        query = params.to_query()
    except ValidationError as exc:
        raise InvalidRequest("invalid search parameters", _errors(exc)) from None
    if query.is_empty():
        raise InvalidRequest("give at least one of q, title, author, isbn, year", [{"parameter": "q", "detail": "empty query"}])
    near = _resolve_near(params.near, request.app[CONSORTIUM_KEY])
    service = request.app[SEARCH_KEY]
    # The token (the key's or the address's bucket) was taken by broker.api's rate_limit_middleware.
    members = chosen_members(request, params)  # a key's subset and the places, as GET /api/v1/search
    service.chosen(members)  # unknown names are a 400 before anything is spent
    request.app[TRIMMER_KEY].touch()  # a search runs: no idle housekeeping now
    store = request.app[SESSIONS_KEY]
    session = store.open()  # SessionsFull: 429
    admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    session.task = asyncio.create_task(
        run_fanout(session, service, request.app[GATE_KEY], request.app[NAMES_KEY], admitted, query, members, near),
        name="search-session",
    )
    try:
        await asyncio.shield(admitted)  # BrokerBusy (503) when no gate place came free in time
    except BaseException:
        store.forget(session)
        session.task.cancel()
        raise
    location = f"{SEARCHES}/{session.id}"
    body_out = {"id": session.id, "version": session.version, "links": {"self": location, "events": f"{location}/events"}}
    return json_bytes(orjson.dumps(body_out), 201, {"Location": location})


async def poll_handler(request: web.Request) -> web.Response:
    params = parse_query(SessionPoll, request)
    session = session_of(request)
    session.touch()
    wait_s = min(params.timeout, request.app[SESSIONS_KEY].settings.max_poll_timeout_s)
    await session.wait_newer(params.version, wait_s)
    if session.closed:
        raise SessionNotFound(f"search session {session.id!r} ended while the poll waited")
    session.touch()  # the poll's end counts: a client that polls in a loop is never idle
    return json_bytes(session.diff(params.version))


async def delete_handler(request: web.Request) -> web.Response:
    await request.app[SESSIONS_KEY].end(request.match_info["search_id"])
    return web.Response(status=204)


@web.middleware
async def session_problems(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """404 and 429 problems for the session routes (the app's problem middleware knows the rest)."""
    if not request.path.startswith(SEARCHES):
        return await handler(request)
    try:
        return await handler(request)
    except SessionNotFound as exc:
        return problem(404, "Not Found", str(exc))
    except SessionsFull as exc:
        response = problem(429, "Too Many Requests", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response


def _lifecycle(settings: SessionSettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = app[SESSIONS_KEY]
        store.start()
        yield
        await store.stop()  # every fan-out still running is cancelled before the HTTP client closes

    return lifecycle


def add_session_routes(app: web.Application, settings: SessionSettings | None = None) -> None:
    from broker.sessions.sse import events_handler

    settings = settings or SessionSettings()
    app[SESSIONS_KEY] = SessionStore(settings)
    app.middlewares.append(session_problems)
    app.cleanup_ctx.append(_lifecycle(settings))
    app.router.add_post(SEARCHES, create_handler)
    app.router.add_get(SEARCHES + "/{search_id}", poll_handler, allow_head=False)
    app.router.add_delete(SEARCHES + "/{search_id}", delete_handler)
    app.router.add_get(SEARCHES + "/{search_id}/events", events_handler, allow_head=False)
