"""Where a delivery's time goes, measured inside the broker process of bench/progressive.py.

Bench-only instruments, put on the broker's classes and module functions before the app is built
(nothing here is imported by the broker). Every stamp is time.monotonic(), the clock the portal
process stamps receipts with (CLOCK_MONOTONIC is system-wide on Linux), so one member answer's
stages line up across the two processes:

  answered   the member's connector returned its parsed records (SRUConnector.search)
  committed  the session logged the version that holds the member's status (SearchSession.apply)
  woken      the session's poller or SSE stream came out of wait_newer at that version or later
  sent       the bytes of a diff at that version or later were about to be written to the socket
  received   the portal process read them (bench/progressive_portal.py)

Beside them: the event loop's lag (a 2 ms ticker's overshoot), gc pauses (gc.callbacks), how long
each search's final settle took, and the cost of an answer against the works its session holds.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import gc
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

import broker.sessions.fanout as fanout
import broker.sessions.routes as routes
import broker.sessions.sse as sse
from broker.sessions.changelog import SearchSession
from connectors.sru import SRUConnector
from yokodan import TargetState

_SESSION: contextvars.ContextVar[str] = contextvars.ContextVar("bench_session")  # the fan-out's session
_SSE_SESSION: contextvars.ContextVar[str] = contextvars.ContextVar("bench_sse_session")  # an SSE handler's session
TICK_S = 0.002
STALL_MS = 5.0  # loop lags and gc pauses longer than this are kept as intervals, to match against slow deliveries


@dataclass
class Probes:
    answered: dict[tuple[str, str], float] = field(default_factory=dict)
    # time, version, works the session held, works the answer changed
    committed: dict[tuple[str, str], tuple[float, int, int, int]] = field(default_factory=dict)
    woken: dict[str, tuple[list[int], list[float]]] = field(default_factory=lambda: defaultdict(lambda: ([], [])))
    sent: dict[str, tuple[list[int], list[float]]] = field(default_factory=lambda: defaultdict(lambda: ([], [])))
    lags_ms: list[float] = field(default_factory=list)
    gc_ms: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of lags and gc pauses > STALL_MS
    settle_ms: list[float] = field(default_factory=list)  # the whole final event: dedup's settle, rank, serialise, log
    finish_ms: list[float] = field(default_factory=list)  # of which the session's part (SearchSession.finish: its log)
    diff_ms: list[tuple[int, float]] = field(default_factory=list)  # works held, time to assemble one diff
    diff_bytes: list[int] = field(default_factory=list)  # size of each diff handed out
    diff_version: dict[str, int] = field(default_factory=dict)  # session -> version of the last diff assembled
    _gc_started: float = 0.0
    _ticker: asyncio.Task[None] | None = None

    # --- stage stamps --------------------------------------------------------------------------
    def stage(self, session_id: str, member: str, received: float) -> dict[str, float] | None:
        """One delivery's stages (ms), or None when the broker never saw that answer."""
        answered = self.answered.get((session_id, member))
        committed = self.committed.get((session_id, member))
        if answered is None or committed is None:
            return None
        at, version, held, _ = committed
        woken = _first_at(self.woken.get(session_id), version, at)
        sent = _first_at(self.sent.get(session_id), version, at)
        return {
            "total": (received - answered) * 1000,
            "commit": (at - answered) * 1000,
            "wake": (woken - at) * 1000,
            "send": (sent - woken) * 1000,
            "wire": (received - sent) * 1000,
            "works": float(held),
            "stalled": self.stalled_ms(answered, received),
        }

    def stalled_ms(self, start: float, end: float) -> float:
        """How much of [start, end] the loop spent in stalls (lags and gc pauses over STALL_MS)."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.stalls) * 1000

    # --- loop lag and gc -----------------------------------------------------------------------
    def start_watching(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def stop_watching(self) -> None:
        gc.callbacks.remove(self._on_gc)
        if self._ticker is not None:
            self._ticker.cancel()

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK_S)
            lag_ms = (time.monotonic() - before - TICK_S) * 1000
            self.lags_ms.append(lag_ms)
            if lag_ms > STALL_MS:
                self.stalls.append((before + TICK_S, before + TICK_S + lag_ms / 1000))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._gc_started = now
            return
        pause_ms = (now - self._gc_started) * 1000
        self.gc_ms[info["generation"]].append(pause_ms)
        if pause_ms > STALL_MS:
            self.stalls.append((self._gc_started, now))


def _first_at(stamps: tuple[list[int], list[float]] | None, version: int, after: float) -> float:
    """The first stamp at `version` or later (the stamps of one session are in time order)."""
    if stamps is None:
        return after
    versions, times = stamps
    i = bisect.bisect_left(versions, version)
    return times[i] if i < len(times) else after


@contextmanager
def installed(probes: Probes) -> Iterator[None]:
    """The stamps on the broker's code while the block runs (enter before build_app: the routes are
    looked up there); the originals are put back after, so a later run measures the broker bare."""
    originals = [(owner, name, getattr(owner, name)) for owner, name in _PATCHED]
    try:
        _install(probes)
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


_PATCHED = [
    (SRUConnector, "search"), (routes, "run_fanout"), (SearchSession, "apply"),
    (SearchSession, "wait_newer"), (SearchSession, "diff"), (SearchSession, "finish"), (sse, "_write"), (sse, "events_handler"),
    (fanout, "_finish"),
]  # fmt: skip


def _install(probes: Probes) -> None:
    search = SRUConnector.search

    async def timed_search(self, query):  # type: ignore[no-untyped-def]
        result = await search(self, query)
        session_id = _SESSION.get(None)
        if session_id is not None:
            probes.answered[(session_id, self.member)] = time.monotonic()
        return result

    SRUConnector.search = timed_search  # type: ignore[method-assign]

    run_fanout = routes.run_fanout

    async def named_fanout(session: SearchSession, *args, **kwargs):  # type: ignore[no-untyped-def]
        _SESSION.set(session.id)  # the member tasks the fan-out starts inherit it
        return await run_fanout(session, *args, **kwargs)

    routes.run_fanout = named_fanout  # type: ignore[assignment]

    apply = SearchSession.apply

    def timed_apply(self: SearchSession, works, statuses) -> None:  # type: ignore[no-untyped-def]
        apply(self, works, statuses)
        now = time.monotonic()
        for status, _ in statuses:
            if status.state is not TargetState.PENDING:
                probes.committed[(self.id, status.member)] = (now, self.version, len(self._works), len(works))

    SearchSession.apply = timed_apply  # type: ignore[method-assign]

    wait_newer = SearchSession.wait_newer

    async def timed_wait(self: SearchSession, version: int, timeout_s: float) -> None:
        await wait_newer(self, version, timeout_s)
        versions, times = probes.woken[self.id]
        versions.append(self.version)
        times.append(time.monotonic())

    SearchSession.wait_newer = timed_wait  # type: ignore[method-assign]

    diff = SearchSession.diff

    def timed_diff(self: SearchSession, since: int) -> bytes:
        started = time.monotonic()
        data = diff(self, since)
        probes.diff_version[self.id] = self.version
        probes.diff_bytes.append(len(data))
        probes.diff_ms.append((len(self._works), (time.monotonic() - started) * 1000))
        return data

    SearchSession.diff = timed_diff  # type: ignore[method-assign]

    write = sse._write

    async def timed_write(response, data: bytes) -> None:  # type: ignore[no-untyped-def]
        if data.startswith(b"id: "):
            _stamp(probes.sent[_SSE_SESSION.get()], int(data[4 : data.index(b"\r")]))
        await write(response, data)

    sse._write = timed_write  # type: ignore[assignment]

    events_handler = sse.events_handler

    async def named_events(request: web.Request) -> web.StreamResponse:
        _SSE_SESSION.set(request.match_info["search_id"])
        return await events_handler(request)

    sse.events_handler = named_events  # type: ignore[assignment]

    settle = fanout._finish

    def timed_settle(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        settle(*args, **kwargs)
        probes.settle_ms.append((time.monotonic() - started) * 1000)

    fanout._finish = timed_settle  # type: ignore[assignment]

    finish = SearchSession.finish

    def timed_finish(self: SearchSession, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        finish(self, *args, **kwargs)
        probes.finish_ms.append((time.monotonic() - started) * 1000)

    SearchSession.finish = timed_finish  # type: ignore[method-assign]


def stamp_poll_sent(probes: Probes) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An on_response_prepare signal: a long-poll's diff is about to be written."""

    async def sent(request: web.Request, response: web.StreamResponse) -> None:
        session_id = request.match_info.get("search_id")
        if request.method == "GET" and session_id in probes.diff_version and not request.path.endswith("/events"):
            _stamp(probes.sent[session_id], probes.diff_version[session_id])

    return sent


def _stamp(stamps: tuple[list[int], list[float]], version: int) -> None:
    versions, times = stamps
    versions.append(version)
    times.append(time.monotonic())
