"""The fan-out behind one session: SearchService.stream's events applied to the session as versions.

Runs as a task of its own (the session outlives the request that created it), inside a place of the
same admission gate as /api/v1/search; cancelling the task (expiry, DELETE, shutdown) closes the
stream, which cancels every member request still running (broker.search.SearchService.stream).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

from broker.admission import SearchGate
from broker.search import SearchEvent, SearchService
from broker.sessions.changelog import SearchSession, progressive_homes, record_homes
from broker.sessions.work_bytes import WorkBytes, status_bytes
from broker.views import DisplayNames
from yokodan import SearchQuery, TargetStatus

log = logging.getLogger(__name__)

__all__ = ["run_fanout"]


class _Statuses:
    """Which member statuses an event changed: the search replaces a status object when it changes,
    so an identity check per member finds them without serialising sixty statuses per event."""

    def __init__(self, names: DisplayNames) -> None:
        self.names = names
        self._seen: dict[str, TargetStatus] = {}

    def changed(self, statuses: list[TargetStatus]) -> list[tuple[TargetStatus, bytes]]:
        out = []
        for status in statuses:
            if self._seen.get(status.member) is not status:
                self._seen[status.member] = status
                out.append((status, status_bytes(status, self.names)))
        return out


async def run_fanout(
    session: SearchSession,
    service: SearchService,
    gate: SearchGate,
    names: DisplayNames,
    admitted: asyncio.Future[None],
    query: SearchQuery,
    members: list[str],
    near: tuple[float, float] | None,
) -> None:
    """Run the search into `session`; `admitted` gets None once a gate place is held (or BrokerBusy)."""
    try:
        async with gate.place():
            admitted.set_result(None)
            await _fan_out(session, service, names, query, members, near)
        await session.pack()  # done: its place at the gate is free for the next search meanwhile
    except asyncio.CancelledError:
        if not admitted.done():  # ended while waiting at the gate
            admitted.cancel()
        raise
    except Exception as exc:
        if not admitted.done():  # refused at the gate (BrokerBusy): the POST answers 503
            admitted.set_exception(exc)
            return
        log.exception("search session fan-out failed")  # no query, no id: the query may be private
        session.fail()


async def _fan_out(session: SearchSession, service: SearchService, names: DisplayNames,
                   query: SearchQuery, members: list[str], near: tuple[float, float] | None) -> None:  # fmt: skip
    serial = WorkBytes(names)
    statuses = _Statuses(names)
    session.start(statuses.changed([TargetStatus(member=m) for m in service.chosen(members)]))
    homes: dict[str, tuple[str, str]] = {}  # progressive work id -> one of its records
    async with aclosing(service.stream(query, members or None, near=near)) as events:
        async for event in events:
            if event.final:
                _finish(session, serial, statuses, event, homes)
                break
            works = [] if event.cached is not None else event.works  # the union index's answer is not a version
            homes.update(progressive_homes(works))
            session.apply([serial.serialise(w) for w in works], statuses.changed(event.statuses))
    serial.forget()  # a finished session keeps only its works' bytes


def _finish(session: SearchSession, serial: WorkBytes, statuses: _Statuses, event: SearchEvent,
            homes: dict[str, tuple[str, str]]) -> None:  # fmt: skip
    ranked = event.works  # settled by dedup, ranked, second-stage marks applied
    session.finish([serial.serialise(w) for w in ranked], record_homes(ranked), homes, statuses.changed(event.statuses))
