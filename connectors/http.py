"""The one outbound HTTP client every connector shares.

One `aiohttp.ClientSession` per process (MEASUREMENTS.md: aiohttp costs ~1/13 of
httpx's CPU per request in a 60-target fan-out), kept alive so member
connections stay warm. Everything a member sends is untrusted, so this layer
enforces the two limits no parser can: a total deadline that includes reading
the body (a slow-drip body cannot hold a search hostage) and a size cap (a
50 MB answer is cut off at the cap, never buffered whole).

Failures say whether the request left this machine, as httpx's transport errors do: a
connection that was never made is `RequestNotSent` (ConnectError, ConnectTimeout); once a
connection is made (the connector marks it), the member may have the request. For
requests with effects (placing, cancelling a hold) such failures are `OutcomeUnknown`, the
one error a hold ledger reconciles.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextvars import ContextVar
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from yokodan.errors import YokodanError
from connectors.errors import (
    OUTCOME_UNKNOWN_STATUSES,
    AnswerLost,
    ConnectError,
    ConnectTimeout,
    OutcomeUnknown,
    ReadTimeout,
    ResponseTooLarge,
    TargetHTTPError,
    TargetUnreachable,
)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MEMBER_CONCURRENCY = 8
USER_AGENT = "Yokodan/0.1 (+library consortium search broker)"
_CHUNK = 64 * 1024
# Reads are retried on answers that are usually passing (a restarted OPAC, a proxy
# in front of it); a member that answers 4xx or malformed bodies is not asked twice.
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
DEFAULT_READ_ATTEMPTS = 3
# Jittered exponential backoff between tries (no thundering herd after a member restarts).
_BACKOFF_MULTIPLIER_S = 0.05
_BACKOFF_MAX_S = 0.5
# aiohttp's own timers are all off: `request` bounds the whole exchange (queueing,
# connect, every try, the body) with one asyncio.timeout, and aiohttp's defaults
# (total=300 s, a sock_read timer rescheduled on every chunk) cost two timer handles
# per request for nothing (bench/fanout.py: part of the per-target cost at 0 hits).
_NO_AIOHTTP_TIMEOUTS = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)


# Methods that are idempotent by themselves (RFC 9110 §9.2.2 lists PUT and DELETE too, but
# deleting a hold and creating one are effects the ledger must account for, so they are not
# treated as safe to repeat). A POST that only reads (an NCIP lookup) says idempotent=True.
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _is_safe_to_retry(exc: BaseException) -> bool:
    """For idempotent requests only: errors that a second try may cure."""
    if isinstance(exc, TargetUnreachable):  # not sent (ConnectError) or answer lost (AnswerLost)
        return True
    return isinstance(exc, TargetHTTPError) and exc.status in RETRYABLE_STATUSES


class ClientNotStarted(YokodanError, RuntimeError):
    """HttpClient used outside `async with` / before `start()`: a programming error, not a member's."""


@dataclass(slots=True)
class _Progress:
    """How far one attempt got: decides "sent or not" when it fails."""

    connected: bool = False  # a connection to the member was made (or reused): the request may be out


# The deadline (event-loop time) by which this task's caller ends the whole operation with a timer of
# its own (broker.search: one per member and search, bounding the parse as well). A request that
# would end no sooner needs no second timer (a timer handle and a heap entry per member: ~4k
# instructions per target, valgrind on bench/fanout.py's 0-hit search).
_CALLER_DEADLINE: ContextVar[float | None] = ContextVar("yokodan_http_caller_deadline", default=None)


class CallerDeadline:
    """`with CallerDeadline(timer.when()):` around an operation the caller already bounds by `when`.

    A class, not a generator-based context manager: it is entered once per member of every search.
    Requests within it still raise their own errors; a deadline reached is the caller's TimeoutError.
    """

    __slots__ = ("_token", "_when")

    def __init__(self, when: float | None) -> None:
        self._when = when

    def __enter__(self) -> None:
        self._token = _CALLER_DEADLINE.set(self._when)

    def __exit__(self, *exc_info: object) -> None:
        _CALLER_DEADLINE.reset(self._token)


# The attempt running in this task. aiohttp asks its connector for a connection in the task that
# sends the request, so a context variable links the two without aiohttp's request tracing
# (which costs ~40 µs CPU per request, measured: more than the rest of the client).
_ATTEMPT: ContextVar[_Progress | None] = ContextVar("yokodan_http_attempt", default=None)


class _ProgressConnector(aiohttp.TCPConnector):
    """A TCPConnector that marks the current attempt as connected once it has a connection."""

    async def connect(self, req: aiohttp.ClientRequest, traces: Any, timeout: aiohttp.ClientTimeout) -> Any:
        connection = await super().connect(req, traces, timeout)
        progress = _ATTEMPT.get()
        if progress is not None:
            progress.connected = True
        return connection


class _SentOnce(aiohttp.ClientError):
    """A non-idempotent request's broken connection, wrapped so aiohttp does not re-send it.

    aiohttp re-sends a PUT or DELETE once by itself when the connection breaks (RFC 9112
    §9.3.1 allows it for idempotent methods); cancelling a hold must go out exactly once.
    """

    def __init__(self, error: aiohttp.ClientError) -> None:
        super().__init__(str(error))
        self.error = error


async def _never_resend(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise  # never connected: nothing to re-send, and aiohttp does not
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as error:
        raise _SentOnce(error) from error


@dataclass(slots=True)
class HttpResponse:
    final_url: URL  # after redirects; `url` is its text, rendered only when asked (SRU never asks)
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    elapsed_ms: float
    cookies: dict[str, str] = field(default_factory=dict)  # Set-Cookie of this answer only

    @property
    def url(self) -> str:
        return str(self.final_url)

    @property
    def charset(self) -> str | None:
        """The charset the Content-Type header declares, if any (Zebra declares none)."""
        content_type = self.headers.get("Content-Type", "")
        for part in content_type.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip('"').lower()
        return None


class HttpClient:
    """Shared client: use as `async with HttpClient() as http:` once per process."""

    def __init__(
        self,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        member_concurrency: int = DEFAULT_MEMBER_CONCURRENCY,
        total_connections: int = 512,
        connections_per_host: int = 0,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.member_concurrency = member_concurrency
        # Sockets open at once, in all (each is a descriptor: keep it below RLIMIT_NOFILE, see
        # broker/fd_limit.py) and per host:port (0: no cap of its own; sandbox members and a vendor's
        # hosted catalogues share one host, so a per-host cap is a cap on all of them together).
        self.total_connections = total_connections
        self.connections_per_host = connections_per_host
        self._session: aiohttp.ClientSession | None = None
        # A cap per *member*, not per host: sandbox members share one host:port,
        # and real consortia put several members behind one vendor's host.
        self._member_slots: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> HttpClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            connector = _ProgressConnector(
                limit=self.total_connections,
                limit_per_host=self.connections_per_host,
                ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                auto_decompress=True,
                raise_for_status=False,
                # Never keep cookies in the shared session: sandbox and real members share
                # hosts, and a patron's OPAC login must never reach another patron's request.
                # Connectors that need a session (HTML OPAC) carry its cookies themselves.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=_NO_AIOHTTP_TIMEOUTS,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _slot(self, member: str) -> asyncio.Semaphore:
        slot = self._member_slots.get(member)
        if slot is None:
            slot = self._member_slots[member] = asyncio.Semaphore(self.member_concurrency)
        return slot

    def get(
        self,
        url: str | URL,
        *,
        member: str,
        timeout_s: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_body_bytes: int | None = None,
        attempts: int = DEFAULT_READ_ATTEMPTS,
    ) -> Coroutine[Any, Any, HttpResponse]:
        """GET, retried on transient failures within the one deadline (reads are idempotent).

        `request`'s coroutine itself, not one awaiting it: one frame less on every member's request.
        """
        return self.request(
            "GET", url, member=member, timeout_s=timeout_s, params=params, headers=headers,
            max_body_bytes=max_body_bytes, attempts=attempts,
        )

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        member: str,
        timeout_s: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | bytes | None = None,
        json: Any = None,
        max_body_bytes: int | None = None,
        attempts: int = 1,
        idempotent: bool | None = None,
    ) -> HttpResponse:
        """One exchange; the whole of it (queueing, connect, retries, body) within `timeout_s`.

        `idempotent` defaults to True for GET/HEAD/OPTIONS and False otherwise; a POST that
        only reads (an NCIP lookup, a PIN check) passes idempotent=True. `attempts` > 1 only
        for idempotent requests, and only errors a second try may cure are retried: a hold
        placement is sent once and never blindly again (ARCHITECTURE.md).

        Raises, by how far the request got:
          not sent    ConnectError, ConnectTimeout (both RequestNotSent: safe to try again);
          sent        ReadTimeout, AnswerLost, TargetHTTPError (status >= 400), ResponseTooLarge;
                      for a non-idempotent request every "sent" failure that leaves open what the
                      member did (ReadTimeout, AnswerLost, ResponseTooLarge, HTTP 500/502/504)
                      is OutcomeUnknown instead, with the error underneath as its `cause`.
        ClientNotStarted when used before `start()` / outside `async with`.
        """
        if self._session is None or self._session.closed:
            raise ClientNotStarted("HttpClient used before start(): use `async with HttpClient() as http:`")
        if idempotent is None:
            idempotent = method.upper() in _READ_METHODS
        if attempts > 1 and not idempotent:
            raise ValueError(f"a non-idempotent {method} must not be retried (attempts={attempts})")
        progress = _Progress()
        caller_ends_by = _CALLER_DEADLINE.get()
        if caller_ends_by is not None and caller_ends_by <= asyncio.get_running_loop().time() + timeout_s:
            own_timeout_s: float | None = None  # the caller's timer fires first: no second one
        else:
            own_timeout_s = timeout_s
        try:
            try:
                async with asyncio.timeout(own_timeout_s):
                    try:
                        return await self._once(method, url, member, params, headers, data, json, max_body_bytes, progress, idempotent)
                    except (TargetUnreachable, TargetHTTPError) as first:
                        if attempts <= 1 or not _is_safe_to_retry(first):
                            raise
                    # Only a failed first try builds a tenacity retrier: building one per request
                    # cost ~20 µs of CPU on every member of every search for a rare event.
                    await asyncio.sleep(random.uniform(0, _BACKOFF_MULTIPLIER_S))  # the wait before try 2
                    retrying = AsyncRetrying(
                        stop=stop_after_attempt(attempts - 1),
                        # tenacity counts from its own first attempt (our second): shifted by one.
                        wait=wait_random_exponential(multiplier=_BACKOFF_MULTIPLIER_S * 2, max=_BACKOFF_MAX_S),
                        retry=retry_if_exception(_is_safe_to_retry),
                        reraise=True,
                    )
                    async for attempt in retrying:
                        with attempt:
                            progress = _Progress()  # each try is judged by how far it got
                            return await self._once(method, url, member, params, headers, data, json, max_body_bytes, progress, idempotent)
            except TimeoutError:
                message = f"no complete answer within {timeout_s:g} s"
                if progress.connected:
                    raise ReadTimeout(message, member=member) from None
                raise ConnectTimeout(f"{message}: no connection made", member=member) from None
        except (ReadTimeout, AnswerLost, ResponseTooLarge) as error:
            if idempotent:
                raise
            raise OutcomeUnknown(error, member=member) from error
        except TargetHTTPError as error:
            if idempotent or error.status not in OUTCOME_UNKNOWN_STATUSES:
                raise
            raise OutcomeUnknown(error, member=member) from error
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _once(
        self,
        method: str,
        url: str | URL,
        member: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | bytes | None,
        json: Any,
        max_body_bytes: int | None,
        progress: _Progress,
        idempotent: bool,
    ) -> HttpResponse:
        session = self._session
        if session is None:  # closed while this request waited
            raise ClientNotStarted("HttpClient closed")
        cap = max_body_bytes or self.max_body_bytes
        started = time.perf_counter()
        attempt = _ATTEMPT.set(progress)  # this task's context only: concurrent requests each see their own
        slot = self._slot(member)
        try:
            await slot.acquire()  # not `async with`: its __aenter__ is one more coroutine per request
            try:
                async with session.request(
                    method, url, params=params, headers=headers, data=data, json=json,
                    middlewares=() if idempotent else (_never_resend,),
                ) as response:
                    if _read_at_once(response, cap, member):
                        body = await response.read()
                    else:
                        body = await _read_chunks(response, cap, member)
                    status = response.status
                    response_headers = response.headers
                    final_url = response.url
                    # Most members set no cookie: skip building an empty SimpleCookie per answer.
                    cookies = (
                        {name: morsel.value for name, morsel in response.cookies.items()}
                        if "Set-Cookie" in response_headers else {}
                    )
            except aiohttp.ClientConnectorError as exc:
                raise ConnectError(f"cannot connect: {exc.os_error or exc}", member=member) from None
            except _SentOnce as wrapped:
                raise _lost_or_not_sent(progress, f"connection broken mid-answer: {wrapped.error}", member) from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
                raise _lost_or_not_sent(progress, f"connection broken mid-answer: {exc}", member) from None
            except aiohttp.ClientError as exc:
                raise _lost_or_not_sent(progress, f"HTTP client error: {exc}", member) from None
            finally:
                slot.release()
        finally:
            _ATTEMPT.reset(attempt)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if status >= 400:
            raise TargetHTTPError(status, f"HTTP {status} from member", member=member, body=body)
        return HttpResponse(final_url, status, response_headers, body, elapsed_ms, cookies)


def _lost_or_not_sent(progress: _Progress, message: str, member: str) -> TargetUnreachable:
    return AnswerLost(message, member=member) if progress.connected else ConnectError(message, member=member)


def _read_at_once(response: aiohttp.ClientResponse, cap: int, member: str) -> bool:
    """Whether the body may be read in one `read()`; ResponseTooLarge when its declared length is over the cap.

    aiohttp's parser stops at Content-Length, so the cap already holds: one read, not a chunk
    iterator (an async iterator per answer is measurable at 0 hits). A compressed body is counted
    chunk by chunk (`_read_chunks`): it may inflate far past its declared length.
    """
    declared = response.content_length
    if declared is not None and declared > cap:
        raise ResponseTooLarge(f"body of {declared} bytes exceeds the {cap}-byte cap", member=member)
    return declared is not None and "Content-Encoding" not in response.headers


async def _read_chunks(response: aiohttp.ClientResponse, cap: int, member: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise ResponseTooLarge(f"body exceeds the {cap}-byte cap", member=member)
        chunks.append(chunk)
    return b"".join(chunks)
