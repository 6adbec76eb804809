"""The check sessions behind `/api/v1/check` (broker/calil_check.py): Calil's polling, answered by a consortium.

One session is a set of ISBNs × systems (members). Starting it runs one federated ISBN search
per ISBN over the session's members in the background (the app's SearchService, under the
search gate like any search); each (ISBN, system) entry is `Running` until that member has
answered, then `OK` with its `libkey` map (branch -> Calil's word) or `Error`. A member that
answered with copies is final at once; one that answered with none waits for the search's end,
because the second stage (broker/second_stage.py) may still ask it by title.

Calil's words come from our availability (the reverse of how connectors/status_words.toml reads
them): 貸出可, 館内のみ, 貸出中, 予約中, 準備中, 休館中, and 蔵書あり for a copy whose state we do not
know. A branch with several copies shows the best one (one on the shelf wins), as Calil shows one
word per branch; a member without a copy answers `OK` with an empty `libkey`, as Calil does.

Sessions are bounded: at most `max_sessions` are kept, each forgotten `idle_s` after its last poll
(or its end); beyond the cap a new one is refused with 503 + Retry-After (`BrokerBusy`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from broker.admission import BrokerBusy, SearchGate
from broker.consortium import Consortium
from broker.search import SearchService
from yokodan import Holding, SearchQuery, TargetState, Work
from connectors.calil import CALIL_WORDS

log = logging.getLogger(__name__)

# Which word a branch shows when its copies differ: the most useful to a patron first.
_PREFERENCE = ["貸出可", "館内のみ", "蔵書あり", "貸出中", "予約中", "準備中", "休館中"]
_FINISHED_OK = (TargetState.OK, TargetState.CACHED)


@dataclass(frozen=True, slots=True)
class CheckSettings:
    max_sessions: int = 1000
    idle_s: float = 300.0  # a session nobody polled for this long is forgotten
    first_answer_wait_s: float = 0.5  # the first answer waits this long for members that answer fast
    busy_retry_after_s: int = 5


@dataclass
class Entry:
    status: str = "Running"  # Running | OK | Error (Calil's Cache is never used: every answer is live)
    libkey: dict[str, str] = field(default_factory=dict)
    held: bool = False


@dataclass
class CheckSession:
    id: str
    isbns: dict[str, str]  # ISBN as sent -> ISBN-13
    systems: dict[str, str]  # systemid as sent -> member id
    entries: dict[tuple[str, str], Entry]  # (ISBN as sent, systemid as sent) -> entry
    seen_at: float
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return all(e.status != "Running" for e in self.entries.values())


class CheckSessions:
    def __init__(
        self,
        consortium: Consortium,
        service: SearchService,
        gate: SearchGate,
        settings: CheckSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or CheckSettings()
        self.service = service
        self.gate = gate
        self.clock = clock
        self._sessions: dict[str, CheckSession] = {}
        self._libkeys = {b.id: b.calil_libkey or b.name for b in consortium.branches()}
        self._member_names = {m.id: m.name for m in consortium.members}

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, isbns: dict[str, str], systems: dict[str, str]) -> CheckSession:
        self._forget_idle()
        if len(self._sessions) >= self.settings.max_sessions:
            raise BrokerBusy(self.settings.busy_retry_after_s)
        session_id = secrets.token_hex(16)  # Calil's sessions are 32 hex digits too
        entries = {(isbn, system): Entry() for isbn in isbns for system in systems}
        session = CheckSession(session_id, isbns, systems, entries, self.clock())
        self._sessions[session_id] = session
        members = list(dict.fromkeys(systems.values()))
        for sent, isbn13 in isbns.items():
            task = asyncio.create_task(self._run(session, sent, isbn13, members), name=f"calil-check:{session_id}")
            session.tasks.append(task)
        return session

    def get(self, session_id: str) -> CheckSession | None:
        self._forget_idle()
        session = self._sessions.get(session_id)
        if session is not None:
            session.seen_at = self.clock()
        return session

    async def close(self) -> None:
        tasks = [t for s in self._sessions.values() for t in s.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sessions.clear()

    def _forget_idle(self) -> None:
        now = self.clock()
        for session_id, session in list(self._sessions.items()):
            if now - session.seen_at > self.settings.idle_s:
                for task in session.tasks:
                    task.cancel()
                del self._sessions[session_id]

    async def _run(self, session: CheckSession, sent: str, isbn13: str, members: Sequence[str]) -> None:
        works: dict[str, Work] = {}
        try:
            async with self.gate.place():
                async with aclosing(self.service.stream(SearchQuery(isbn=isbn13), members)) as events:
                    async for event in events:
                        for work in event.works if not event.final else []:
                            works[work.work_id] = work
                        if event.final:
                            works = {w.work_id: w for w in event.works}
                            self._settle_all(session, sent, event.statuses, works)
                        elif event.answer is not None:
                            self._settle_one(session, sent, event.answer.status, works)
        except BrokerBusy:
            self._fail(session, sent)
        except Exception:
            log.exception("calil check: an ISBN search failed")  # no ISBN or member in the line: just the failure
            self._fail(session, sent)
        finally:
            session.seen_at = self.clock()  # the idle time counts from the end too
            if session.finished:
                session.done.set()

    def _systems_of(self, session: CheckSession, member: str) -> list[str]:
        return [system for system, m in session.systems.items() if m == member]

    def _settle_one(self, session: CheckSession, sent: str, status: Any, works: dict[str, Work]) -> None:
        for system in self._systems_of(session, status.member):
            entry = session.entries[(sent, system)]
            if entry.status != "Running":
                continue
            if status.state in _FINISHED_OK:
                libkey = self._libkey(status.member, works.values())
                if libkey:  # copies found: final now; none yet: the second stage may still find some
                    session.entries[(sent, system)] = Entry("OK", libkey, held=True)
            elif status.state is not TargetState.PENDING:
                session.entries[(sent, system)] = Entry("Error")

    def _settle_all(self, session: CheckSession, sent: str, statuses: Sequence[Any], works: dict[str, Work]) -> None:
        by_member = {s.member: s for s in statuses}
        for system, member in session.systems.items():
            if session.entries[(sent, system)].status != "Running":
                continue
            status = by_member.get(member)
            if status is not None and status.state in _FINISHED_OK:
                libkey = self._libkey(member, works.values())
                session.entries[(sent, system)] = Entry("OK", libkey, held=bool(libkey))
            else:
                session.entries[(sent, system)] = Entry("Error")

    def _fail(self, session: CheckSession, sent: str) -> None:
        for system in session.systems:
            if session.entries[(sent, system)].status == "Running":
                session.entries[(sent, system)] = Entry("Error")

    def _libkey(self, member: str, works: Any) -> dict[str, str]:
        words: dict[str, list[str]] = {}
        for work in works:
            for holding in work.holdings:
                if holding.member == member:
                    words.setdefault(self._branch_key(holding), []).append(CALIL_WORDS[holding.availability])
        return {branch: min(found, key=_PREFERENCE.index) for branch, found in words.items()}

    def _branch_key(self, holding: Holding) -> str:
        if holding.branch_id and holding.branch_id in self._libkeys:
            return self._libkeys[holding.branch_id]
        return holding.location or self._member_names.get(holding.member, holding.member)
