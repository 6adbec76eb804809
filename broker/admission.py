"""Admission control for federated searches: one client, or one burst, must not sink the others.

- `SearchGate`: at most `max_searches` fan-outs run at once per process; a search beyond that
  waits in a queue for a place. A 503 (+ Retry-After) is only right when the wait would outlast
  what the caller can use, so `queue_wait_s` is about one member deadline; the gate keeps a
  moving average of how long searches take, which sets Retry-After (the expected wait beyond
  `queue_wait_s`). Refusing beyond that keeps a backlog from turning into timeouts that members
  would be blamed for.
- `ClientRateLimiter`: a token bucket per client key (429 + Retry-After and RateLimit-* headers):
  per address for anonymous callers, and in a second instance per portal key, each key with its own
  burst and rate (`take(key, burst=…, rate_per_s=…)`; broker/portals). Written here rather than taken from `limits`/`aiolimiter`: those wait
  for a token or keep windows with a timer thread, where this needs a non-blocking "may I, and
  when next?" over a bounded number of keys.
- `LagMonitor`: a task that sleeps `lag_interval_s` and measures how late it wakes. While the loop
  lags more than `lag_threshold_s` (and for `saturation_hold_s` after, since timeouts reported now
  began earlier), the broker is saturated: member timeouts then say nothing about members
  (`MemberRegistry.broker_saturated`).

Every number is in `AdmissionSettings`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from yokodan.errors import YokodanError


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """Admission and fairness settings of one broker process."""

    # Concurrent fan-outs (each asks every member once). Beyond the point where the broker's CPU
    # is saturated more only interleaves searches (everyone slower, none sooner); members' own
    # slots and queues (broker.member_slots) and the outbound gate bound what reaches members.
    # A search mostly waits for members: with members at 200 ms one takes 0.5-0.8 s for 6-9 ms of
    # the broker's CPU, so the CPU saturates only past ~100 at once. 48 queued a burst of 200 in
    # four rounds (bench/soak.py: p95 3.7 s, 96: 2.7 s, 200: 2.2 s, same run).
    max_searches: int = 256
    # How long a search may wait for a place: the time a caller can still use an answer (a
    # patron's page, a portal's request timeout), about one member deadline (8 s).
    queue_wait_s: float = 8.0
    busy_retry_after_s: int = 2  # Retry-After of the 503
    client_burst: int = 40  # searches a client may make at once (bucket size)
    client_rate_per_s: float = 5.0  # sustained searches per second per client (refill)
    max_tracked_clients: int = 10_000  # buckets kept; the least recently seen is dropped first
    lag_interval_s: float = 0.05
    lag_threshold_s: float = 0.2
    saturation_hold_s: float = 10.0  # > the longest member deadline a lagging loop may have hurt

    def __post_init__(self) -> None:
        if self.max_searches < 1 or self.client_burst < 1 or self.max_tracked_clients < 1:
            raise AdmissionSettingsError("max_searches, client_burst and max_tracked_clients must be >= 1")
        if min(self.queue_wait_s, self.client_rate_per_s, self.lag_interval_s, self.lag_threshold_s) <= 0:
            raise AdmissionSettingsError("queue_wait_s, client_rate_per_s and the lag settings must be > 0")


class AdmissionSettingsError(YokodanError):
    """An admission setting that cannot be used."""


class BrokerBusy(YokodanError):
    """No search place came free within the queue wait (HTTP 503)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the broker is busy; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


# Weight of the newest search in the moving average of search durations.
_DURATION_WEIGHT = 0.1


class SearchGate:
    """At most `settings.max_searches` searches at once; a wait of up to `queue_wait_s`, then BrokerBusy."""

    def __init__(self, settings: AdmissionSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._places = asyncio.Semaphore(settings.max_searches)
        self.running = 0
        self.waiting = 0
        self.queued = 0  # searches that found every place taken and waited (then ran or were refused)
        self.refused = 0
        self.mean_duration_s: float | None = None  # moving average of admitted searches' durations

    def expected_wait_s(self) -> float:
        """How long a search arriving now would wait for a place (0 with one free)."""
        if self.running < self.settings.max_searches or self.mean_duration_s is None:
            return 0.0
        return (self.waiting + 1) / self.settings.max_searches * self.mean_duration_s

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        self.queued += self._places.locked()
        self.waiting += 1
        try:
            async with asyncio.timeout(self.settings.queue_wait_s):
                await self._places.acquire()
        except TimeoutError:
            self.refused += 1
            # Not refused at once on the expected wait: one slow search would skew the average
            # and turn away searches that would have fitted. The estimate sets Retry-After.
            retry = max(self.settings.busy_retry_after_s, math.ceil(self.expected_wait_s() - self.settings.queue_wait_s))
            raise BrokerBusy(retry) from None
        finally:
            self.waiting -= 1
        self.running += 1
        started = self.clock()
        try:
            yield
        finally:
            self.running -= 1
            self._places.release()
            took = self.clock() - started
            mean = self.mean_duration_s
            self.mean_duration_s = took if mean is None else mean + _DURATION_WEIGHT * (took - mean)


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until one token (0 when allowed)
    rate_per_s: float = 0.0  # the bucket's refill (RateLimit-Policy's window is limit / rate)
    policy: str = "address"  # whose bucket: 'address' (anonymous) or 'key' (a portal key)

    @property
    def window_s(self) -> int:
        """The time a full bucket takes to refill from empty: the policy's window."""
        return max(1, math.ceil(self.limit / self.rate_per_s)) if self.rate_per_s > 0 else 1


class ClientRateLimiter:
    """A token bucket per client key, holding at most `max_tracked_clients` buckets."""

    def __init__(self, settings: AdmissionSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, *, burst: int | None = None, rate_per_s: float | None = None, policy: str = "address") -> RateDecision:
        """One token from `key`'s bucket; `burst`/`rate_per_s` override the settings for this bucket
        (a portal key's own numbers; a changed number applies from the next request on)."""
        burst = burst or self.settings.client_burst
        rate = rate_per_s or self.settings.client_rate_per_s
        now = self.clock()
        tokens, at = self._buckets.pop(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)  # most recently seen last
        if len(self._buckets) > self.settings.max_tracked_clients:
            self._buckets.popitem(last=False)  # a dropped client starts again with a full bucket
        return RateDecision(
            allowed=allowed,
            limit=burst,
            remaining=int(tokens),
            reset_s=math.ceil((burst - tokens) / rate),
            retry_after_s=0 if allowed else max(1, math.ceil((1.0 - tokens) / rate)),
            rate_per_s=rate,
            policy=policy,
        )

    def tracked(self) -> int:
        return len(self._buckets)


class LagMonitor:
    """Measures event-loop lag; `saturated()` while it is over the threshold (and a hold after)."""

    def __init__(self, settings: AdmissionSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.last_lag_s = 0.0
        self.max_lag_s = 0.0
        self._saturated_until = -math.inf
        self._task: asyncio.Task[None] | None = None

    def saturated(self) -> bool:
        return self.clock() < self._saturated_until

    def observe(self, lag_s: float) -> None:
        """One measurement (the monitor's own, or a test's)."""
        self.last_lag_s = lag_s
        self.max_lag_s = max(self.max_lag_s, lag_s)
        if lag_s > self.settings.lag_threshold_s:
            self._saturated_until = self.clock() + self.settings.saturation_hold_s

    async def _run(self) -> None:
        interval = self.settings.lag_interval_s
        while True:
            started = self.clock()
            await asyncio.sleep(interval)
            self.observe(max(0.0, self.clock() - started - interval))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
