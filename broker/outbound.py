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
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable
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


class OutboundGate:
    """`async with gate.slot(flow):` around one member request; `flow` is the search it belongs to."""

    def __init__(self, settings: FanoutSettings | None = None) -> None:
        self.settings = settings or FanoutSettings()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiting: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()
        self._started_this_tick = 0
        self._tick_scheduled = False

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._waiting.values())

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
            if future.done():  # cancelled while waiting
                continue
            self._start()
            future.set_result(None)

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
