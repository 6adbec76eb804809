"""The open search sessions of one process: ids, the cap, idle expiry, and ending their fan-outs.

Memory stays bounded by the cap (`max_sessions`, then SessionsFull → 429 with Retry-After) and by
expiry: a session nobody polled for `idle_expiry_s` (and that no SSE stream holds) is closed, its
fan-out cancelled if still running (members released), and its id answers 404 from then on.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable

from broker.sessions.changelog import SearchSession
from broker.sessions.settings import SessionSettings
from yokodan.errors import YokodanError

__all__ = ["SessionNotFound", "SessionStore", "SessionsFull"]


class SessionNotFound(YokodanError):
    """No such session: never created, expired after its idle time, or deleted (HTTP 404)."""


class SessionsFull(YokodanError):
    """The process holds as many sessions as its cap (HTTP 429 + Retry-After)."""

    def __init__(self, cap: int, retry_after_s: int) -> None:
        super().__init__(f"{cap} search sessions are open on this broker; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class SessionStore:
    def __init__(self, settings: SessionSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._sessions: dict[str, SearchSession] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.expired = 0  # sessions ended by idle expiry since start (for tests and operators)

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self) -> SearchSession:
        if len(self._sessions) >= self.settings.max_sessions:
            # The soonest a place frees up by itself: when the longest-idle session expires.
            idlest = max((s.idle_s() for s in self._sessions.values()), default=0.0)
            raise SessionsFull(self.settings.max_sessions, max(1, math.ceil(self.settings.idle_expiry_s - idlest)))
        token = secrets.token_urlsafe(12)
        session_id = f"{self.settings.node}.{token}" if self.settings.node else token
        session = SearchSession(session_id, keep_versions=self.settings.keep_versions, clock=self.clock)
        self._sessions[session_id] = session
        return session

    def get(self, session_id: str) -> SearchSession:
        session = self._sessions.get(session_id)
        if session is None or session.closed:
            raise SessionNotFound(f"no search session {session_id!r} (never created, expired after "
                                  f"{self.settings.idle_expiry_s:g} s without a poll, or deleted)")  # fmt: skip
        return session

    async def end(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            raise SessionNotFound(f"no search session {session_id!r}")
        await _close(session)

    def forget(self, session: SearchSession) -> None:
        """Drop a session that never started (refused at the admission gate)."""
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        session.close()

    async def sweep(self) -> int:
        """End every session idle longer than the setting; how many were ended."""
        limit = self.settings.idle_expiry_s
        idle = [s for s in self._sessions.values() if s.idle_s() > limit]
        for session in idle:
            del self._sessions[session.id]
        await asyncio.gather(*(_close(s) for s in idle))
        self.expired += len(idle)
        return len(idle)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            await self.sweep()

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._run(), name="search-session-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(_close(s) for s in sessions))


async def _close(session: SearchSession) -> None:
    session.close()
    task = session.task
    if task is not None and not task.done():
        task.cancel()  # closes the stream: its member requests are cancelled, their slots freed
        await asyncio.gather(task, return_exceptions=True)
