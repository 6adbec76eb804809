"""Request coalescing: identical requests in flight at once share one run.

Used for whole searches (broker.api: one fan-out) and for an HTML OPAC's detail pages
(connectors.html_opac: one read of a record's holdings for every search that lists it).

A popular title on a busy Saturday, or a portal retrying, asks every member the same thing many
times over; members answer the same records each time. Callers whose key (the normalised query,
the members in order and `near`) matches a search already running await that run's outcome
instead of starting their own. The run is a task of its own, so a caller that goes away (client
disconnect) does not cancel the search for the others; it ends when the members' deadlines do.
Only concurrent searches share: a finished run is forgotten at once (caching is the union index's job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """`await coalescer.run(key, start)`: start() once per key in flight; every caller gets its result."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[T]] = {}
        self.started = 0  # runs started (a test and an operator see how much was shared)
        self.joined = 0  # callers that joined a run already in flight

    async def run(self, key: Hashable, start: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(start())
            self._running[key] = task
            self.started += 1
            task.add_done_callback(lambda done, key=key: self._forget(key, done))
        else:
            self.joined += 1
        # shield: one caller's cancellation must not cancel the others' search
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # mark an error retrieved: every waiter may have gone

    def in_flight(self) -> int:
        return len(self._running)
