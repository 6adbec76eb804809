"""A global cap on member requests in flight, with a fair queue between searches.

At national scale one search asks 1,700 members. Starting them all at once would open 1,700
sockets (past many processes' descriptor limit) and, worse for the patron, spend the first few
hundred milliseconds of the event loop building requests before it reads the first answer. So:

- at most `max_in_flight` member requests run at once in the process (every search together);
- waiting searches are served round-robin, one request each in turn, so a 12-member consortium
  search is not queued behind a national one's 1,700 (each search is one `flow`);
- at most `burst` requests start per event-loop iteration: between bursts the loop polls its
  sockets, so the fastest members' answers are read while the slow ones are still being sent.

asyncio.Semaphore is FIFO over everyone, which is exactly the unfairness between searches this
avoids; aiohttp's connector limit queues inside the request, after its CPU is spent; neither
paces starts. Hence this small class.

Two ways to wait: `acquire` (a coroutine, for one request) and `submit` (a callback run when the
slot is granted, for a search's members). A national search submits 1,700 members: as waiting
tasks they cost a task, a timer and a future each before the first answer could be read; as
submissions they cost a queue entry, and their task is created when their turn comes (measured
with bench/national.py at 1,700: first results at the fastest member + 24 ms instead of + 47 ms). A flow's submissions that wait past their
deadline are expired by one timer per flow, not one per member.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from yokodan.errors import ConfigError

__all__ = ["DEFAULT_BURST", "DEFAULT_MAX_IN_FLIGHT", "FanoutSettings", "FanoutSettingsError", "OutboundGate"]


DEFAULT_MAX_IN_FLIGHT = 256  # below the HTTP client's default connection cap (512): every request has a socket
DEFAULT_BURST = 16  # requests started per event-loop iteration (~16 × 0.3 ms of CPU between socket polls)


class FanoutSettingsError(ConfigError):
    """A fan-out setting that cannot be used."""


@dataclass(frozen=True, slots=True)
class FanoutSettings:
    """How many member requests run at once, and how fast they start (one broker process)."""

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    burst: int = DEFAULT_BURST

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.burst < 1:
            raise FanoutSettingsError(f"max_in_flight and burst must be >= 1, got {self.max_in_flight}, {self.burst}")


class Submission:
    """A request waiting in the gate: `start()` once granted, or `expire()` at `deadline` (loop time)."""

    __slots__ = ("deadline", "expire", "start", "waiting")

    def __init__(self, start: Callable[[], None], expire: Callable[[], None], deadline: float) -> None:
        self.start = start
        self.expire = expire
        self.deadline = deadline
        self.waiting = True  # False once started, expired or withdrawn

    def done(self) -> bool:
        return not self.waiting


_Waiter = asyncio.Future[None] | Submission


class OutboundGate:
    """`async with gate.slot(flow):` around one member request; `flow` is the search it belongs to."""

    def __init__(self, settings: FanoutSettings | None = None) -> None:
        self.settings = settings or FanoutSettings()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiting: OrderedDict[Hashable, deque[_Waiter]] = OrderedDict()
        self._started_this_tick = 0
        self._tick_scheduled = False
        self._expiry: dict[Hashable, asyncio.TimerHandle] = {}  # per flow with submissions: its one timer

    @property
    def queued(self) -> int:
        return sum(not w.done() for q in self._waiting.values() for w in q)

    @asynccontextmanager
    async def slot(self, flow: Hashable) -> AsyncIterator[None]:
        await self.acquire(flow)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, flow: Hashable) -> None:
        """Wait for a slot (FIFO within the flow, round-robin between flows); pair with `release`."""
        if not self._waiting and self._may_start():
            self._start()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(flow, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled in the same breath: give the slot back
            else:
                self._forget(flow, future)
            raise

    def submit(self, flow: Hashable, start: Callable[[], None], expire: Callable[[], None], deadline: float) -> Submission:
        """Call `start()` when a slot is granted (at once if one is free), or `expire()` at `deadline`.

        `start` runs inside the gate's bookkeeping: it must only create the request's task, which
        owns the slot and calls `release()` when done. `deadline` is the event loop's time.
        """
        submission = Submission(start, expire, deadline)
        if not self._waiting and self._may_start():
            self._start()
            submission.waiting = False
            start()
            return submission
        self._waiting.setdefault(flow, deque()).append(submission)
        expiry = self._expiry.get(flow)
        if expiry is None or deadline < expiry.when():
            self._arm(flow, deadline)
        return submission

    def withdraw(self, flow: Hashable) -> list[Submission]:
        """Forget the flow's waiting submissions (its search ended); they are neither started nor expired."""
        expiry = self._expiry.pop(flow, None)
        if expiry is not None:
            expiry.cancel()
        queue = self._waiting.pop(flow, None) or ()
        withdrawn = [w for w in queue if isinstance(w, Submission) and w.waiting]
        for submission in withdrawn:
            submission.waiting = False
        futures = [w for w in queue if not isinstance(w, Submission)]
        if futures:  # the flow's acquire() callers keep their places
            self._waiting[flow] = deque(futures)
        return withdrawn

    def _arm(self, flow: Hashable, deadline: float) -> None:
        old = self._expiry.get(flow)
        if old is not None:
            old.cancel()
        self._expiry[flow] = asyncio.get_running_loop().call_at(deadline, self._expire, flow)

    def _expire(self, flow: Hashable) -> None:
        """The flow's earliest deadline came: expire every submission past its own, re-arm for the rest."""
        del self._expiry[flow]
        queue = self._waiting.get(flow)
        if queue is None:
            return
        now = asyncio.get_running_loop().time()
        kept: deque[_Waiter] = deque()
        expired: list[Submission] = []
        for waiter in queue:
            if isinstance(waiter, Submission) and waiter.waiting and waiter.deadline <= now:
                waiter.waiting = False
                expired.append(waiter)
            elif not waiter.done():
                kept.append(waiter)
        if kept:
            self._waiting[flow] = kept
            later = [w.deadline for w in kept if isinstance(w, Submission)]
            if later:
                self._arm(flow, min(later))
        else:
            del self._waiting[flow]
        for submission in expired:
            submission.expire()

    def _may_start(self) -> bool:
        return self.in_flight < self.settings.max_in_flight and self._started_this_tick < self.settings.burst

    def _start(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self._started_this_tick += 1
        if not self._tick_scheduled:
            # Runs in the next loop iteration, after the loop has polled its sockets once.
            self._tick_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_tick)

    def _next_tick(self) -> None:
        self._tick_scheduled = False
        self._started_this_tick = 0
        self._grant()

    def release(self) -> None:
        self.in_flight -= 1
        self._grant()

    def _grant(self) -> None:
        """Wake waiters, one per search in turn, while slots and this tick's starts allow."""
        while self._waiting and self._may_start():
            flow, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            if queue:
                self._waiting.move_to_end(flow)  # its next request waits for the other searches' turns
            else:
                del self._waiting[flow]
            if future.done():  # cancelled (or, a submission, expired) while waiting
                continue
            self._start()
            if isinstance(future, Submission):
                future.waiting = False
                future.start()
            else:
                future.set_result(None)
        if not self._waiting and self._expiry:  # every submission started: no expiry timer is needed
            for expiry in self._expiry.values():
                expiry.cancel()
            self._expiry.clear()

    def _forget(self, flow: Hashable, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(flow)
        if queue is None:
            return
        try:
            queue.remove(future)
        except ValueError:
            pass
        if not queue:
            del self._waiting[flow]
