"""An HTML OPAC's search form state (JSF's javax.faces.ViewState), read once and reused until stale.

A JSF OPAC wants every search POST to echo a hidden field from its form page. Reading that page
before each search doubles the requests of a search without hits (form page, result list): in
bench/soak.py's burst the wopc member's form pages were 1 of the ~18 member requests a search
sends, each also an HTML page parsed by the broker. A browser does not reload the form
either: it submits the form on the page it is on, which carries a fresh state. So this keeps one
state per connector:

- the first search reads the form page; searches arriving meanwhile share that read (one request);
- every result page that carries the state fields renews it (the newest view, which a server
  keeping a bounded number of views forgets last);
- it is dropped after `max_age_s` (a backstop against a server that expires views by age only);
- a search whose answer is the profile's stale-state page (`state_expired_marker`) drops it, reads
  the form page once more (shared with the other searches that met the same page) and asks again,
  once. Only a state still the current one is dropped: a newer one another search brought stays.

Anonymous search only: login, hold and cancel forms belong to a patron's session and are read
before each action (connectors.html_account).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

State = dict[str, str]


class FormState:
    """`await forms.get()`: the current state, read with `read()` when there is none or it is too old."""

    def __init__(self, read: Callable[[], Awaitable[State]], max_age_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._clock = clock
        self._state: State | None = None
        self._since = 0.0  # clock() when the state was read or last renewed
        self._reading: asyncio.Task[State] | None = None
        self.reads = 0  # form pages read (a test and an operator see the reuse)

    async def get(self) -> State:
        state = self._state
        if state is not None and self._clock() - self._since < self.max_age_s:
            return state
        return await self._refresh()

    async def renew_stale(self, stale: State) -> State:
        """The answer to `stale` said it expired: a fresh state (read once for every caller that met it)."""
        if self._state is stale:
            self._state = None
        return await self.get()

    def saw(self, fresh: State) -> None:
        """A result page carried the state fields: they are the newest view; reuse those."""
        self._state = fresh
        self._since = self._clock()

    async def _refresh(self) -> State:
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read_once())
            # Every waiter may be gone (their deadlines) when a read fails: mark its error seen.
            self._reading.add_done_callback(lambda task: task.cancelled() or task.exception())
        # shield: one caller's cancellation (its member deadline) must not cancel the others' read
        return await asyncio.shield(self._reading)

    async def _read_once(self) -> State:
        try:
            state = await self._read()
            self.reads += 1
            self.saw(state)
            return state
        finally:
            self._reading = None
