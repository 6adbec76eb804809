"""Per-member operation slots with a short, bounded FIFO queue.

A member takes at most `capacity` operations at once (a politeness bound: a library's OPAC is
not ours to flood). A burst of searches beyond that must *wait* for the member, briefly and in
arrival order, instead of timing the member out: the member is healthy, the broker is merely
asking a lot at once. Two bounds keep the wait short and the memory flat: at most `max_waiting`
callers queue, each for at most `max_wait_s` (or less, when the caller's own deadline is nearer).
Beyond either the caller gets `MemberBusy` at once: the member is reported `skipped` with
reason `member_busy`, never fed to its circuit breaker.

Written here rather than on `asyncio.Semaphore`: a semaphore neither says how many wait (the
queue's bound) nor promises FIFO hand-over under cancellation; a deque of futures does both in a
few lines, and a slot released while callers wait goes straight to the oldest of them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from yokodan.errors import YokodanError

MEMBER_BUSY_REASON = "member_busy"


class MemberBusy(YokodanError):
    """No slot of the member came free within the queue's bounds; the member was not contacted."""

    def __init__(self, member: str, message: str) -> None:
        super().__init__(f"member {member}: {message}")
        self.member = member
        self.reason = MEMBER_BUSY_REASON
        self.message = message


@dataclass(frozen=True, slots=True)
class SlotLimits:
    """One member's operation bounds (from its connector table: `max_operations`, `queue_length`, `queue_wait_s`)."""

    capacity: int = 8
    max_waiting: int = 64
    max_wait_s: float = 4.0


class MemberSlots:
    """`async with slots.acquire(wait_s=…)`: one of `capacity` slots, after a bounded FIFO wait."""

    def __init__(self, member: str, limits: SlotLimits) -> None:
        if limits.capacity < 1 or limits.max_waiting < 0 or limits.max_wait_s < 0:
            raise ValueError("capacity must be >= 1, max_waiting and max_wait_s >= 0")
        self.member = member
        self.limits = limits
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.queued_total = 0  # callers that had to wait (an operator sees the queue working)
        self.refused_total = 0  # callers turned away as member_busy

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self, wait_s: float | None = None) -> _SlotHold:
        """`async with slots.acquire(...) as queued_s:` holds a slot for the block (the seconds spent queued).

        `wait_s` caps the wait below `max_wait_s` (the caller's own deadline); MemberBusy when the
        queue is full or the wait runs out.
        """
        return _SlotHold(self, self.limits.max_wait_s if wait_s is None else min(wait_s, self.limits.max_wait_s))

    def _take_free(self) -> bool:
        """Take a free slot at once if there is one and nobody queues before us."""
        if self.in_use < self.limits.capacity and not self._waiters:
            self.in_use += 1
            return True
        return False

    async def _queue(self, wait_s: float) -> float:
        """Wait for a slot (no free one was there: `_take_free` said so); the seconds spent queued."""
        if len(self._waiters) >= self.limits.max_waiting or wait_s <= 0:
            self.refused_total += 1
            raise MemberBusy(
                self.member,
                f"{self.in_use} operations in flight and {len(self._waiters)} waiting (at most "
                f"{self.limits.max_waiting}); not contacted",
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.queued_total += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(wait_s):
                await waiter  # _release hands its slot over by resolving this future: in_use is ours already
        except TimeoutError:
            self._give_up(waiter)
            self.refused_total += 1
            raise MemberBusy(
                self.member, f"no slot of {self.limits.capacity} came free within {wait_s:.3g} s; not contacted"
            ) from None
        except BaseException:  # cancelled while queued (the caller went away)
            self._give_up(waiter)
            raise
        return time.perf_counter() - started

    def _give_up(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled():
            self._release()  # the slot was handed over just as we gave up: pass it on
        else:
            waiter.cancel()
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to the oldest waiter; in_use stays
                return
        self.in_use -= 1


class _SlotHold:
    """One hold on a member's slot, as an async context manager.

    A class rather than @asynccontextmanager: it is entered for every member of every search, and
    the generator machinery (an async generator and its wrapper per hold) is per-target cost.
    """

    __slots__ = ("_slots", "_wait_s")

    def __init__(self, slots: MemberSlots, wait_s: float) -> None:
        self._slots = slots
        self._wait_s = wait_s

    async def __aenter__(self) -> float:
        # A free slot (the usual case) without the queueing coroutine's frame.
        return 0.0 if self._slots._take_free() else await self._slots._queue(self._wait_s)

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots._release()
