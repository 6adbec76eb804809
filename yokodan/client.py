"""A Python client for a Yokodan broker (httpx): `Client` (sync) and `AsyncClient`, typed with `yokodan.wire`.

    with Client("http://127.0.0.1:8400") as yokodan:
        found = yokodan.search("夏目漱石 こころ")
        for line in yokodan.stream(isbn="9784101010137"):      # as each member answers
            print(line.type, [w.title for w in getattr(line, "works", [])])
        yokodan.login("okayama-pref", "10000001", pin)         # keeps the bearer token
        hold = yokodan.place_hold("okayama-pref", record_id, "okayama-pref/main")

        state = ProgressiveState()                              # a progressive search session
        for diff in yokodan.progressive_search("夏目漱石"):     # SSE; resumes after a dropped connection
            state.apply(diff)
            print(diff.version, [w.title for w in diff.inserted], diff.running)
        page = state.ranked()

Every error is a `yokodan.errors.YokodanError`:

    ClientError
    ├── ApiError              the broker answered 4xx/5xx: status, type, title, detail, reason, errors, problem
    │   ├── InvalidRequest    400 (`errors` names each bad parameter)
    │   ├── Unauthorized      401 (log in; a wrong card or PIN has reason authentication_failed)
    │   ├── Forbidden         403 (a portal key limited to some members: reason members_not_allowed)
    │   ├── NotFound          404
    │   ├── Conflict          409
    │   ├── Refused           422 (`reason` is a RefusalReason code; `problem` has library, phone …)
    │   ├── RateLimited       429 (a portal key's or address's searches used up, or the broker's cap on open
    │   │                     search sessions; `retry_after_s`; also importable as TooManyRequests)
    │   ├── Unavailable       503 and other 5xx but 500
    │   ├── ServerError       500
    │   └── StreamFailed      a stream that ended with an error line after it began
    ├── TransportError        no answer: refused connection, timeout, a connection cut mid-body
    └── UnexpectedResponse    an answer that is not what the API documents (not JSON, wrong shape)

Answers are parsed leniently (fields the client does not know are ignored), so an older client
keeps working against a newer broker. Card numbers and PINs are sent, never logged or kept.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import httpx_sse
from pydantic import TypeAdapter, ValidationError

from yokodan.errors import YokodanError
from yokodan.wire import (
    CardsResponse,
    ErrorLine,
    HoldsResponse,
    HoldView,
    SeriesHoldsResponse,
    MembersResponse,
    ParameterError,
    PlanResponse,
    SearchDiff,
    SearchResponse,
    SearchSessionCreated,
    SeriesPlanResponse,
    StreamLine,
    TargetStatusView,
    TokenResponse,
    WorkView,
)

__all__ = [
    "ApiError", "AsyncClient", "Client", "ClientError", "Conflict", "Forbidden", "InvalidRequest", "NotFound",
    "ProgressiveState", "RateLimited", "Refused", "ServerError", "StreamFailed", "TooManyRequests", "TransportError",
    "Unauthorized", "Unavailable",
    "UnexpectedResponse",
]  # fmt: skip

T = TypeVar("T")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


# --- errors ------------------------------------------------------------------------------------


class ClientError(YokodanError):
    """Anything the client reports on purpose."""


class TransportError(ClientError):
    """The broker could not be reached or the connection failed before a whole answer arrived."""


class UnexpectedResponse(ClientError):
    """The broker (or something in front of it) answered what the API does not document."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiError(ClientError):
    """The broker answered an error, as RFC 9457 problem details where it could."""

    def __init__(self, status: int, title: str, detail: str, *, type: str = "about:blank",
                 reason: str | None = None, errors: Sequence[ParameterError] = (),
                 problem: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(f"{status} {title}: {detail}" + (f" ({reason})" if reason else ""))
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.reason = reason
        self.errors = list(errors)
        self.problem = problem or {}  # every member of the body, e.g. `library` and `phone` of a refusal
        self.retry_after_s: int | None = None  # the Retry-After header (429, 503), when it is a number of seconds


class InvalidRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class NotFound(ApiError):
    pass


class Forbidden(ApiError):
    """403: e.g. `members_not_allowed`, a portal key limited to some members."""


class Conflict(ApiError):
    pass


class RateLimited(ApiError):
    """429: this key's (or, without a key, this address's) searches are used up, or the broker holds as
    many search sessions as it may; `retry_after_s` says when."""


class Refused(ApiError):
    pass


TooManyRequests = RateLimited  # one 429 class; both names were published while sessions and portal keys were built


class ServerError(ApiError):
    pass


class Unavailable(ApiError):
    pass


class StreamFailed(ApiError):
    """The stream began and then failed: the lines already delivered are incomplete."""


_BY_STATUS: dict[int, type[ApiError]] = {400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
                                         409: Conflict, 422: Refused, 429: RateLimited, 500: ServerError}  # fmt: skip


def _error_class(status: int) -> type[ApiError]:
    return _BY_STATUS.get(status) or (Unavailable if status >= 500 else ApiError)


def api_error(response: httpx.Response) -> ApiError:
    """The error an error answer means; a body that is not problem+json still gives its status and text."""
    error = _api_error(response)
    retry_after = response.headers.get("retry-after", "").strip()
    error.retry_after_s = int(retry_after) if retry_after.isdigit() else None
    return error


def _api_error(response: httpx.Response) -> ApiError:
    status = response.status_code
    cls = _error_class(status)
    problem: Any = None
    if response.headers.get("content-type", "").split(";")[0].strip() in ("application/problem+json", "application/json"):
        try:
            problem = json.loads(response.content)
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError
            problem = None
    if not isinstance(problem, dict):
        # aiohttp's parser (a request line over 8190 bytes), a proxy's HTML page …
        text = response.text.strip()[:300] or response.reason_phrase
        return cls(status, response.reason_phrase or "Error", text)
    errors = [ParameterError.model_validate(e, extra="ignore") for e in problem.get("errors") or [] if isinstance(e, dict) and {"parameter", "detail"} <= e.keys()]
    return cls(
        status, str(problem.get("title") or response.reason_phrase), str(problem.get("detail") or ""),
        type=str(problem.get("type") or "about:blank"), reason=problem.get("reason"), errors=errors, problem=problem,
    )  # fmt: skip


# --- requests and how to read their answers (shared by both clients) ---------------------------


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _parsed(adapter: TypeAdapter[T], statuses: frozenset[int] = frozenset({200})) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        if response.status_code >= 400:
            raise api_error(response)
        if response.status_code not in statuses:
            raise UnexpectedResponse(f"status {response.status_code} is not an answer of this operation", status=response.status_code)
        try:
            return adapter.validate_json(response.content, extra="ignore")
        except ValidationError as exc:
            raise UnexpectedResponse(f"the answer is not the documented shape: {exc}", status=response.status_code) from None

    return parse


def _no_content(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise api_error(response)


_SEARCH = TypeAdapter(SearchResponse)
_LINE: TypeAdapter[Any] = TypeAdapter(StreamLine)
_MEMBERS = TypeAdapter(MembersResponse)
_PLAN: TypeAdapter[Any] = TypeAdapter(PlanResponse | SeriesPlanResponse)
_TOKEN = TypeAdapter(TokenResponse)
_CARDS = TypeAdapter(CardsResponse)
_HOLD = TypeAdapter(HoldView)
_HOLDS = TypeAdapter(HoldsResponse)
_SERIES = TypeAdapter(SeriesHoldsResponse)
_CREATED = TypeAdapter(SearchSessionCreated)
_DIFF = TypeAdapter(SearchDiff)
RECONNECTS = 5  # consecutive failed (re)connections a progressive search survives before it raises
RECONNECT_WAIT_S = 0.2  # the first wait before reconnecting; doubled after each failure


class ProgressiveState:
    """What a client holds of a progressive search: `apply` each SearchDiff in the order received.

    A diff with `reset` replaces the state; `ranked()` is the page in the broker's order once done.
    """

    def __init__(self) -> None:
        self.version = 0
        self.done = False
        self.works: dict[str, WorkView] = {}
        self.statuses: dict[str, TargetStatusView] = {}
        self.running: list[str] = []
        self.order: list[str] | None = None

    def apply(self, diff: SearchDiff) -> None:
        if diff.reset:
            self.works.clear()
            self.statuses.clear()
        for work in diff.inserted:
            self.works[work.work_id] = work
        for update in diff.updated:
            self.works[update.work.work_id] = update.work if update.whole else self._merged(update.work)
        for gone in diff.removed:
            self.works.pop(gone.work_id, None)
        for status in diff.finished:
            self.statuses[status.member] = status
        self.running = list(diff.running)
        self.version, self.done, self.order = diff.version, diff.done, diff.order

    def _merged(self, changed: WorkView) -> WorkView:
        """The work the client has with the changed members' holdings put in (WorkUpdate)."""
        holdings = {h.member: h for h in self.works[changed.work_id].holdings}
        holdings.update((h.member, h) for h in changed.holdings)  # in place, new members at the end
        return changed.model_copy(update={"holdings": list(holdings.values())})

    def ranked(self) -> list[WorkView]:
        if self.order is None:
            return list(self.works.values())
        return [self.works[work_id] for work_id in self.order if work_id in self.works]


def _session_body(q: str | None, kw: dict[str, Any]) -> dict[str, Any]:
    """POST /api/v1/searches takes the parameters of /api/v1/search as typed JSON."""
    args = _search_kwargs(kw)
    body: dict[str, Any] = {k: v for k, v in (("q", q), ("title", args["title"]), ("author", args["author"]),
                                              ("isbn", args["isbn"]), ("year", args["year"])) if v is not None}  # fmt: skip
    if args["members"]:
        body["members"] = list(args["members"])
    near = args["near"]
    if near is not None:
        body["near"] = near if isinstance(near, str) else f"{near[0]},{near[1]}"
    body["start"], body["page_size"] = args["start"], args["page_size"]
    return body


def _diff_of_event(data: str) -> SearchDiff:
    try:
        return _DIFF.validate_json(data, extra="ignore")
    except ValidationError as exc:
        raise UnexpectedResponse(f"an event is not a SearchDiff: {exc}", status=200) from None


def _poll_timeout(timeout_s: float, base: httpx.Timeout) -> httpx.Timeout:
    # The read must outlast the long-poll's own wait.
    return httpx.Timeout(base.connect, read=(base.read or 0) + timeout_s, write=base.write, pool=base.pool, connect=base.connect)


def _search_params(q: str | None, title: str | None, author: str | None, isbn: str | None, year: int | None,
                   members: Sequence[str], near: str | tuple[float, float] | None, start: int, page_size: int) -> dict[str, str]:  # fmt: skip
    params = {"q": q, "title": title, "author": author, "isbn": isbn, "year": None if year is None else str(year)}
    found = {k: v for k, v in params.items() if v is not None}
    if members:
        found["members"] = ",".join(members)
    if near is not None:
        found["near"] = near if isinstance(near, str) else f"{near[0]},{near[1]}"
    if start != 1:
        found["start"] = str(start)
    if page_size != 20:
        found["page_size"] = str(page_size)
    return found


def parse_stream_line(raw: bytes) -> Any:
    """One NDJSON line as its StreamLine model; an error line raises StreamFailed."""
    try:
        line = _LINE.validate_json(raw, extra="ignore")
    except ValidationError as exc:
        raise UnexpectedResponse(f"a stream line is not a StreamLine: {exc}", status=200) from None
    if isinstance(line, ErrorLine):
        raise StreamFailed(line.status, line.title, line.detail)
    return line


class _Calls:
    """The operations as `_Call`s; the two clients only differ in how they send them."""

    token: str | None = None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _search_call(self, q: str | None = None, **kw: Any) -> _Call[SearchResponse]:
        return _Call("GET", "/api/v1/search", _parsed(_SEARCH), params=_search_params(q, **_search_kwargs(kw)))

    def _stream_params(self, q: str | None, kw: dict[str, Any]) -> dict[str, str]:
        return _search_params(q, **_search_kwargs(kw))

    def _members_call(self) -> _Call[MembersResponse]:
        return _Call("GET", "/api/v1/members", _parsed(_MEMBERS))

    def _plan_call(self, patron: dict[str, Any], *, isbn: str | None, isbns: Sequence[str], title: str | None,
                   author: str | None, work_id: str | None, pickup_only: bool, today: str | None) -> _Call[Any]:  # fmt: skip
        body: dict[str, Any] = {"patron": patron, "pickup_only": pickup_only}
        for key, value in (("isbn", isbn), ("title", title), ("author", author), ("work_id", work_id), ("today", today)):
            if value is not None:
                body[key] = value
        if isbns:
            body["isbns"] = list(isbns)
        return _Call("POST", "/api/v1/holds/plan", _parsed(_PLAN), json=body)

    def _login_call(self, member: str, card_number: str, pin: str | None) -> _Call[TokenResponse]:
        body = {"member": member, "card_number": card_number, **({"pin": pin} if pin is not None else {})}
        return _Call("POST", "/api/v1/auth/login", _parsed(_TOKEN), json=body, headers=self._auth())

    def _logout_call(self) -> _Call[None]:
        return _Call("POST", "/api/v1/auth/logout", _no_content, headers=self._auth())

    def _cards_call(self) -> _Call[CardsResponse]:
        return _Call("GET", "/api/v1/auth/cards", _parsed(_CARDS), headers=self._auth())

    def _place_call(self, member: str, record_id: str, pickup_branch_id: str, *, item_id: str | None,
                    card_id: str | None, idempotency_key: str | None) -> _Call[HoldView]:  # fmt: skip
        body = {"member": member, "record_id": record_id, "pickup_branch_id": pickup_branch_id}
        body |= {k: v for k, v in (("item_id", item_id), ("card_id", card_id)) if v is not None}
        # A key per placement, so that sending it again (after a lost answer) never places twice.
        key = idempotency_key or f"yokodan-client-{uuid.uuid4().hex}"
        headers = self._auth() | {"Idempotency-Key": key}
        return _Call("POST", "/api/v1/holds", _parsed(_HOLD, frozenset({200, 201, 202})), json=body, headers=headers)

    def _series_call(self, isbn: str | None, isbns: Sequence[str], scope: str, idempotency_key: str | None) -> _Call[SeriesHoldsResponse]:
        if bool(isbn) == bool(isbns):
            raise TypeError("give one volume (isbn) or the volumes (isbns), not both")
        body: dict[str, Any] = {"isbn": isbn, "scope": scope} if isbn else {"isbns": list(isbns)}
        # One key for the whole series: sending it again (after a lost answer) answers the series it made.
        key = idempotency_key or f"yokodan-client-{uuid.uuid4().hex}"
        headers = self._auth() | {"Idempotency-Key": key}
        return _Call("POST", "/api/v1/holds/series", _parsed(_SERIES, frozenset({200, 201})), json=body, headers=headers)

    def _holds_call(self) -> _Call[HoldsResponse]:
        return _Call("GET", "/api/v1/holds", _parsed(_HOLDS), headers=self._auth())

    def _start_call(self, q: str | None, kw: dict[str, Any]) -> _Call[SearchSessionCreated]:
        return _Call("POST", "/api/v1/searches", _parsed(_CREATED, frozenset({201})), json=_session_body(q, kw))

    def _poll_call(self, search_id: str, version: int, timeout: float) -> _Call[SearchDiff]:
        params = {"version": str(version), "timeout": f"{timeout:g}"}
        return _Call("GET", f"/api/v1/searches/{_segment(search_id)}", _parsed(_DIFF), params=params)

    def _delete_search_call(self, search_id: str) -> _Call[None]:
        return _Call("DELETE", f"/api/v1/searches/{_segment(search_id)}", _no_content)

    def _hold_call(self, method: str, hold_id: str, body: Any = None) -> _Call[HoldView]:
        return _Call(method, f"/api/v1/holds/{_segment(hold_id)}", _parsed(_HOLD), json=body, headers=self._auth())


def _segment(value: str) -> str:
    return quote(value, safe="")


def _search_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    allowed = {"title", "author", "isbn", "year", "members", "near", "start", "page_size"}
    unknown = set(kw) - allowed
    if unknown:
        raise TypeError(f"unknown search arguments: {sorted(unknown)}")
    return {"title": None, "author": None, "isbn": None, "year": None, "members": (), "near": None,
            "start": 1, "page_size": 20} | kw  # fmt: skip


def _key_header(api_key: str | None) -> dict[str, str]:
    """A portal key goes in X-Api-Key on every request: Authorization stays free for the patron's token."""
    return {"X-Api-Key": api_key} if api_key else {}


def _transport_error(exc: httpx.HTTPError) -> TransportError:
    return TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


# --- the clients -----------------------------------------------------------------------------------


class Client(_Calls):
    """A blocking client. Use as a context manager, or call `close()`."""

    def __init__(self, base_url: str, *, token: str | None = None, api_key: str | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        self.token = token
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport, headers=_key_header(api_key))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T], *, timeout: httpx.Timeout | None = None) -> T:
        try:
            response = self._http.request(call.method, call.path, params=call.params, json=call.json, headers=call.headers,
                                          timeout=timeout or self._http.timeout)  # fmt: skip
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        return call.parse(response)

    def search(self, q: str | None = None, **kw: Any) -> SearchResponse:
        """Merged works (`works`) and one status per member (`targets`). Keywords: title, author, isbn,
        year, members, near ('lat,lon', a (lat, lon) pair or a branch id), start, page_size."""
        return self._send(self._search_call(q, **kw))

    def stream(self, q: str | None = None, **kw: Any) -> Iterator[Any]:
        """The progressive search: a CachedLine, one MemberLine per member as it answers, a FinalLine."""
        params = self._stream_params(q, kw)
        try:
            with self._http.stream("GET", "/api/v1/search/stream", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise api_error(response)
                for raw in response.iter_lines():
                    if raw.strip():
                        yield parse_stream_line(raw.encode())
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    # --- progressive search sessions -----------------------------------------------------------

    def start_search(self, q: str | None = None, **kw: Any) -> SearchSessionCreated:
        """Start a session (the fan-out runs on the broker); the same keywords as `search`."""
        return self._send(self._start_call(q, kw))

    def poll(self, search_id: str, version: int = 0, *, timeout: float = 0.0) -> SearchDiff:
        """The diff since `version`, waiting up to `timeout` seconds (at most 30) for something newer."""
        return self._send(self._poll_call(search_id, version, timeout), timeout=_poll_timeout(timeout, self._http.timeout))

    def delete_search(self, search_id: str) -> None:
        self._send(self._delete_search_call(search_id))

    def progressive_search(self, q: str | None = None, *, via: str = "sse", poll_timeout: float = 20.0,
                           **kw: Any) -> Iterator[SearchDiff]:  # fmt: skip
        """Start a session and yield its diffs as members answer, to the one with `done`.

        A dropped connection is resumed where it was (SSE with Last-Event-ID, or a long-poll with the
        last version), so no work is lost or delivered twice; after RECONNECTS failures in a row the
        TransportError is raised. `via="poll"` long-polls instead of listening to events.
        """
        created = self.start_search(q, **kw)
        yield from self.follow_search(created.id, via=via, poll_timeout=poll_timeout)

    def follow_search(self, search_id: str, *, version: int = 0, via: str = "sse", poll_timeout: float = 20.0) -> Iterator[SearchDiff]:
        """The diffs of an existing session after `version` (see `progressive_search`)."""
        failures = 0
        while True:
            try:
                if via == "poll":
                    diff = self.poll(search_id, version, timeout=poll_timeout)
                    failures = 0
                    if diff.version != version or diff.done or diff.reset:
                        version = diff.version
                        yield diff
                    if diff.done:
                        return
                    continue
                for diff in self._events(search_id, version):
                    failures = 0
                    version = diff.version
                    yield diff
                    if diff.done:
                        return
                failures += 1  # the stream ended before `done` (a proxy closed it): reconnect
            except TransportError:
                failures += 1
                if failures > RECONNECTS:
                    raise
            time.sleep(RECONNECT_WAIT_S * 2 ** max(failures - 1, 0))

    def _events(self, search_id: str, version: int) -> Iterator[SearchDiff]:
        headers = {"Last-Event-ID": str(version)} if version else {}
        path = f"/api/v1/searches/{_segment(search_id)}/events"
        try:
            with httpx_sse.connect_sse(self._http, "GET", path, headers=headers) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise api_error(source.response)
                for event in source.iter_sse():
                    if event.event == "diff":
                        yield _diff_of_event(event.data)
        except httpx_sse.SSEError as exc:
            raise UnexpectedResponse(f"not an event stream: {exc}") from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    def holdings(self, isbn: str, *, members: Sequence[str] = ()) -> list[WorkView]:
        """Every work with this ISBN (10 or 13 digits) and each member's copies of it."""
        return self.search(isbn=isbn, members=members).works

    def members(self) -> MembersResponse:
        return self._send(self._members_call())

    def plan_hold(self, patron: dict[str, Any], *, isbn: str | None = None, isbns: Sequence[str] = (),
                  title: str | None = None, author: str | None = None, work_id: str | None = None,
                  pickup_only: bool = False, today: str | None = None) -> PlanResponse | SeriesPlanResponse:  # fmt: skip
        """A dry run: nothing is placed. `patron` as POST /api/v1/holds/plan takes it ({"cards": [...], …})."""
        return self._send(self._plan_call(patron, isbn=isbn, isbns=isbns, title=title, author=author,
                                          work_id=work_id, pickup_only=pickup_only, today=today))  # fmt: skip

    def login(self, member: str, card_number: str, pin: str | None = None) -> TokenResponse:
        """Log in (or add a card to the account already logged in); the client keeps the token."""
        answer = self._send(self._login_call(member, card_number, pin))
        self.token = answer.token
        return answer

    def logout(self) -> None:
        self._send(self._logout_call())
        self.token = None

    def cards(self) -> CardsResponse:
        return self._send(self._cards_call())

    def place_hold(self, member: str, record_id: str, pickup_branch_id: str, *, item_id: str | None = None,
                   card_id: str | None = None, idempotency_key: str | None = None) -> HoldView:  # fmt: skip
        """Place once. Pass the same `idempotency_key` to retry after a lost answer; outcome 'intent' or
        'unknown' (HTTP 202) means the member's answer is not known yet: poll `hold(id)`."""
        return self._send(self._place_call(member, record_id, pickup_branch_id, item_id=item_id, card_id=card_id,
                                           idempotency_key=idempotency_key))  # fmt: skip

    def place_series(self, isbn: str | None = None, *, isbns: Sequence[str] = (), scope: str = "from_this",
                     idempotency_key: str | None = None) -> SeriesHoldsResponse:  # fmt: skip
        """Hold a series in reading order: from the volume `isbn` on (`scope="all"`: every volume), or exactly
        `isbns`. The first volume is placed now, each next one when the one before is ready (`deferred`)."""
        return self._send(self._series_call(isbn, isbns, scope, idempotency_key))

    def holds(self) -> list[HoldView]:
        return self._send(self._holds_call()).holds

    def hold(self, hold_id: str) -> HoldView:
        return self._send(self._hold_call("GET", hold_id))

    def cancel_hold(self, hold_id: str) -> HoldView:
        return self._send(self._hold_call("DELETE", hold_id))

    def change_pickup(self, hold_id: str, pickup_branch_id: str) -> HoldView:
        return self._send(self._hold_call("PATCH", hold_id, {"pickup_branch_id": pickup_branch_id}))


class AsyncClient(_Calls):
    """The same operations, awaited. Use as an async context manager, or await `aclose()`."""

    def __init__(self, base_url: str, *, token: str | None = None, api_key: str | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self.token = token
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport, headers=_key_header(api_key))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T], *, timeout: httpx.Timeout | None = None) -> T:
        try:
            response = await self._http.request(call.method, call.path, params=call.params, json=call.json,
                                                headers=call.headers, timeout=timeout or self._http.timeout)  # fmt: skip
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        return call.parse(response)

    async def search(self, q: str | None = None, **kw: Any) -> SearchResponse:
        return await self._send(self._search_call(q, **kw))

    async def stream(self, q: str | None = None, **kw: Any) -> AsyncIterator[Any]:
        params = self._stream_params(q, kw)
        try:
            async with self._http.stream("GET", "/api/v1/search/stream", params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise api_error(response)
                async for raw in response.aiter_lines():
                    if raw.strip():
                        yield parse_stream_line(raw.encode())
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    async def start_search(self, q: str | None = None, **kw: Any) -> SearchSessionCreated:
        return await self._send(self._start_call(q, kw))

    async def poll(self, search_id: str, version: int = 0, *, timeout: float = 0.0) -> SearchDiff:
        return await self._send(self._poll_call(search_id, version, timeout), timeout=_poll_timeout(timeout, self._http.timeout))

    async def delete_search(self, search_id: str) -> None:
        await self._send(self._delete_search_call(search_id))

    async def progressive_search(self, q: str | None = None, *, via: str = "sse", poll_timeout: float = 20.0,
                                 **kw: Any) -> AsyncIterator[SearchDiff]:  # fmt: skip
        created = await self.start_search(q, **kw)
        async for diff in self.follow_search(created.id, via=via, poll_timeout=poll_timeout):
            yield diff

    async def follow_search(self, search_id: str, *, version: int = 0, via: str = "sse",
                            poll_timeout: float = 20.0) -> AsyncIterator[SearchDiff]:  # fmt: skip
        failures = 0
        while True:
            try:
                if via == "poll":
                    diff = await self.poll(search_id, version, timeout=poll_timeout)
                    failures = 0
                    if diff.version != version or diff.done or diff.reset:
                        version = diff.version
                        yield diff
                    if diff.done:
                        return
                    continue
                async for diff in self._events(search_id, version):
                    failures = 0
                    version = diff.version
                    yield diff
                    if diff.done:
                        return
                failures += 1
            except TransportError:
                failures += 1
                if failures > RECONNECTS:
                    raise
            await asyncio.sleep(RECONNECT_WAIT_S * 2 ** max(failures - 1, 0))

    async def _events(self, search_id: str, version: int) -> AsyncIterator[SearchDiff]:
        headers = {"Last-Event-ID": str(version)} if version else {}
        path = f"/api/v1/searches/{_segment(search_id)}/events"
        try:
            async with httpx_sse.aconnect_sse(self._http, "GET", path, headers=headers) as source:
                if source.response.status_code >= 400:
                    await source.response.aread()
                    raise api_error(source.response)
                async for event in source.aiter_sse():
                    if event.event == "diff":
                        yield _diff_of_event(event.data)
        except httpx_sse.SSEError as exc:
            raise UnexpectedResponse(f"not an event stream: {exc}") from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc

    async def holdings(self, isbn: str, *, members: Sequence[str] = ()) -> list[WorkView]:
        return (await self.search(isbn=isbn, members=members)).works

    async def members(self) -> MembersResponse:
        return await self._send(self._members_call())

    async def plan_hold(self, patron: dict[str, Any], *, isbn: str | None = None, isbns: Sequence[str] = (),
                        title: str | None = None, author: str | None = None, work_id: str | None = None,
                        pickup_only: bool = False, today: str | None = None) -> PlanResponse | SeriesPlanResponse:  # fmt: skip
        return await self._send(self._plan_call(patron, isbn=isbn, isbns=isbns, title=title, author=author,
                                                work_id=work_id, pickup_only=pickup_only, today=today))  # fmt: skip

    async def login(self, member: str, card_number: str, pin: str | None = None) -> TokenResponse:
        answer = await self._send(self._login_call(member, card_number, pin))
        self.token = answer.token
        return answer

    async def logout(self) -> None:
        await self._send(self._logout_call())
        self.token = None

    async def cards(self) -> CardsResponse:
        return await self._send(self._cards_call())

    async def place_hold(self, member: str, record_id: str, pickup_branch_id: str, *, item_id: str | None = None,
                         card_id: str | None = None, idempotency_key: str | None = None) -> HoldView:  # fmt: skip
        return await self._send(self._place_call(member, record_id, pickup_branch_id, item_id=item_id, card_id=card_id,
                                                 idempotency_key=idempotency_key))  # fmt: skip

    async def place_series(self, isbn: str | None = None, *, isbns: Sequence[str] = (), scope: str = "from_this",
                           idempotency_key: str | None = None) -> SeriesHoldsResponse:  # fmt: skip
        return await self._send(self._series_call(isbn, isbns, scope, idempotency_key))

    async def holds(self) -> list[HoldView]:
        return (await self._send(self._holds_call())).holds

    async def hold(self, hold_id: str) -> HoldView:
        return await self._send(self._hold_call("GET", hold_id))

    async def cancel_hold(self, hold_id: str) -> HoldView:
        return await self._send(self._hold_call("DELETE", hold_id))

    async def change_pickup(self, hold_id: str, pickup_branch_id: str) -> HoldView:
        return await self._send(self._hold_call("PATCH", hold_id, {"pickup_branch_id": pickup_branch_id}))
