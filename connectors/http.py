"""The one outbound HTTP client every connector shares.

One `aiohttp.ClientSession` per process (MEASUREMENTS.md: aiohttp costs ~1/13 of
httpx's CPU per request in a 60-target fan-out), kept alive so member
connections stay warm. Everything a member sends is untrusted, so this layer
enforces the two limits no parser can: a total deadline that includes reading
the body (a slow-drip body cannot hold a search hostage) and a size cap (a
50 MB answer is cut off at the cap, never buffered whole).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from connectors.errors import (
    ResponseTooLarge,
    TargetHTTPError,
    TargetTimeout,
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


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TargetUnreachable):
        return True
    return isinstance(exc, TargetHTTPError) and exc.status in RETRYABLE_STATUSES


@dataclass(slots=True)
class HttpResponse:
    url: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    elapsed_ms: float
    cookies: dict[str, str] = field(default_factory=dict)  # Set-Cookie of this answer only

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
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.member_concurrency = member_concurrency
        self._total_connections = total_connections
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
            connector = aiohttp.TCPConnector(
                limit=self._total_connections,
                limit_per_host=0,
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

    async def get(
        self,
        url: str,
        *,
        member: str,
        timeout_s: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_body_bytes: int | None = None,
        attempts: int = DEFAULT_READ_ATTEMPTS,
    ) -> HttpResponse:
        """GET, retried on transient failures within the one deadline (reads are idempotent)."""
        return await self.request(
            "GET", url, member=member, timeout_s=timeout_s, params=params, headers=headers,
            max_body_bytes=max_body_bytes, attempts=attempts,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        member: str,
        timeout_s: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | bytes | None = None,
        json: Any = None,
        max_body_bytes: int | None = None,
        attempts: int = 1,
    ) -> HttpResponse:
        """One exchange; the whole of it (queueing, connect, retries, body) within `timeout_s`.

        `attempts` > 1 only for idempotent requests: a hold placement is sent once and
        never blindly again (ARCHITECTURE.md). Raises TargetTimeout, TargetUnreachable,
        TargetHTTPError (status >= 400) or ResponseTooLarge.
        """
        try:
            async with asyncio.timeout(timeout_s):
                if attempts <= 1:
                    return await self._once(method, url, member, params, headers, data, json, max_body_bytes)
                retrying = AsyncRetrying(
                    stop=stop_after_attempt(attempts),
                    wait=wait_random_exponential(multiplier=0.05, max=0.5),  # jittered: no thundering herd
                    retry=retry_if_exception(_is_transient),
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        return await self._once(method, url, member, params, headers, data, json, max_body_bytes)
        except TimeoutError:
            raise TargetTimeout(f"no complete answer within {timeout_s:g} s", member=member) from None
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _once(
        self,
        method: str,
        url: str,
        member: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | bytes | None,
        json: Any,
        max_body_bytes: int | None,
    ) -> HttpResponse:
        if self._session is None:
            await self.start()
        assert self._session is not None
        cap = max_body_bytes or self.max_body_bytes
        started = time.perf_counter()
        try:
            async with self._slot(member):
                async with self._session.request(
                    method, url, params=params, headers=headers, data=data, json=json
                ) as response:
                    body = await _read_capped(response, cap, member)
                    status = response.status
                    response_headers = response.headers
                    final_url = str(response.url)
                    cookies = {name: morsel.value for name, morsel in response.cookies.items()}
        except aiohttp.ClientConnectorError as exc:
            raise TargetUnreachable(f"cannot connect: {exc.os_error or exc}", member=member) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise TargetUnreachable(f"connection broken mid-answer: {exc}", member=member) from None
        except aiohttp.ClientError as exc:
            raise TargetUnreachable(f"HTTP client error: {exc}", member=member) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        if status >= 400:
            raise TargetHTTPError(status, f"HTTP {status} from member", member=member, body=body)
        return HttpResponse(final_url, status, response_headers, body, elapsed_ms, cookies)


async def _read_capped(response: aiohttp.ClientResponse, cap: int, member: str) -> bytes:
    declared = response.content_length
    if declared is not None and declared > cap:
        raise ResponseTooLarge(f"body of {declared} bytes exceeds the {cap}-byte cap", member=member)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise ResponseTooLarge(f"body exceeds the {cap}-byte cap", member=member)
        chunks.append(chunk)
    return b"".join(chunks)
