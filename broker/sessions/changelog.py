"""One search session's state and change log: the diff since any version it still keeps.

Every member answer that the fan-out applies is one new version. The session keeps the current
state (each work's serialised bytes, each member's status bytes) and a log of which works and
members each version touched. A diff since version N is read off the log entries after N (the works
they name, at their current bytes; a work the client has comes with the holdings of the members that
changed alone), never by comparing result lists; when N is older than the log
keeps (or newer than the session has), the answer is the whole state with `reset: true`, never a
wrong diff. Assembled diffs are cached per (N, current version), so every poller and SSE listener
at the same version shares one bytes object.

The last version (`done`) is the search's settled answer: dedup re-clusters every record in an
arrival-free order (index.dedup.WorkClusterer.works), which may merge, split or rename the works
shown while members answered; `finish` compares those once with the progressive works and logs the
works inserted, updated and removed (with the work each one's records went to). A done session
changes no more and is read rarely, so it keeps its works zlib-packed and no assembled diff.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import orjson

from broker.sessions.work_bytes import SerialisedWork, compact
from yokodan import TargetState, TargetStatus, Work

__all__ = ["Change", "SearchSession"]


@dataclass(slots=True)
class Change:
    """What one version touched, while it is being applied (the log keeps it as a `_Logged`)."""

    version: int
    works: dict[str, tuple[str, ...]] = field(default_factory=dict)  # work id -> members whose holdings changed
    members: list[str] = field(default_factory=list)  # members whose status changed


# A version in the log: (version, work ids, the members whose holdings changed in each of those works,
# members whose status changed). Tuples of str and int only, like the statuses' (data, running) pairs:
# the collector stops tracking such tuples (CPython untracks a tuple of untracked values; never one
# holding a dict or a list), so the logs and statuses of thousands of open sessions cost the full
# collections nothing; as objects they were ~180 of the ~260 objects each open 60-member session added
# to every full collection. Two parallel tuples rather than (work, members) pairs: a pair per logged
# work cost 64 bytes, three times the dict it replaced (tracemalloc).
_Logged = tuple[int, tuple[str, ...], tuple[tuple[str, ...], ...], tuple[str, ...]]


DIFFS_CACHED = 2  # assembled diffs kept per session: the pollers and listeners at the newest versions share them


@dataclass(slots=True)
class _Removed:
    born: int
    version: int
    merged_into: str | None


def _running(status: TargetStatus) -> bool:
    second = status.second_stage
    return status.state is TargetState.PENDING or (second is not None and second.state is TargetState.PENDING)


class SearchSession:
    """State, log and waiters of one progressive search (one per POST /api/v1/searches)."""

    def __init__(self, session_id: str, *, keep_versions: int, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.id = session_id
        self.keep_versions = keep_versions
        self.clock = clock
        self.created = self.last_seen = clock()
        self.version = 0
        self.done = False
        self.closed = False  # expired or deleted: waiters wake and give up
        self.listeners = 0  # SSE streams connected now (a connected stream keeps the session alive)
        self.task: asyncio.Task[None] | None = None  # the fan-out
        self._works: dict[str, SerialisedWork] = {}  # while members answer (emptied into _packed when done)
        self._packed: dict[str, bytes] = {}  # a done session's works, zlib-packed (str -> bytes: untracked by gc)
        self._born: dict[str, int] = {}  # every work it has -> the version that inserted it, in insertion order
        self._removed: dict[str, _Removed] = {}
        self._statuses: dict[str, tuple[bytes, bool]] = {}  # member -> its status JSON, and whether it still runs
        self._log: deque[_Logged] = deque(maxlen=keep_versions)
        self._order: bytes | None = None  # ranked work ids, once done
        self._diffs: OrderedDict[int, bytes] = OrderedDict()  # since -> assembled diff at the current version
        self._changed = asyncio.Event()
        self._member_sets: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per distinct set, shared by the log

    # --- writing (the fan-out task) -------------------------------------------------------------
    def start(self, statuses: list[tuple[TargetStatus, bytes]]) -> None:
        """Version 0: every member planned, with its pending (or skipped) status."""
        for status, data in statuses:
            self._statuses[status.member] = (data, _running(status))

    def apply(self, works: list[SerialisedWork], statuses: list[tuple[TargetStatus, bytes]]) -> None:
        """One member answered: the works its records created or changed, and the statuses that changed."""
        change = Change(self.version + 1)
        for work in works:
            self._put(change, work)
        for status, data in statuses:
            self._set_status(change, status, data)
        if change.works or change.members:
            self._commit(change)

    def finish(self, ranked: list[SerialisedWork], record_homes: dict[tuple[str, str], str],
               progressive_records: dict[str, tuple[str, str]], statuses: list[tuple[TargetStatus, bytes]]) -> None:  # fmt: skip
        """The settled answer: works as dedup settled them, in ranked order, and every final status.

        `record_homes` maps (member, local id) to the settled work holding it; `progressive_records`
        one (member, local id) of each progressive work, to say where a removed work went.
        """
        change = Change(self.version + 1)
        settled = {w.work_id: w for w in ranked}
        for work_id in [w for w in self._works if w not in settled]:
            del self._works[work_id]
            home = progressive_records.get(work_id)
            self._removed[work_id] = _Removed(self._born.pop(work_id), change.version, record_homes.get(home) if home else None)
            change.works[work_id] = ()
        for work in ranked:
            if self._put(change, work):
                self._removed.pop(work.work_id, None)
        for status, data in statuses:
            previous = self._statuses.get(status.member)
            if previous is None or previous[0] != data:
                self._set_status(change, status, data)
        self._order = compact(orjson.dumps([w.work_id for w in ranked]))
        self.done = True
        self._commit(change)

    def _put(self, change: Change, work: SerialisedWork) -> bool:
        """Log `work` in `change` unless the session has it as it is; whether it was new or changed."""
        previous = self._works.get(work.work_id)
        if previous is not None and previous.same_as(work):
            return False
        change.works[work.work_id] = self._shared(work.members_changed_since(previous))
        self._works[work.work_id] = work
        self._born.setdefault(work.work_id, change.version)
        return True

    async def pack(self) -> None:
        """Once done: keep the works compressed. A done session is read rarely (a client's last poll, a
        late reconnect) and may stay open long; JSON of holdings packs about 5:1, unpacked when a diff is
        assembled. Compressed in a thread (zlib lets go of the GIL): 2-10 ms per 60-member search that
        the event loop, delivering other sessions' answers, need not wait for. As a dict of str -> bytes,
        which the collector does not track: a done session's works cost the full collections nothing."""
        works = self._works  # a done session changes no more: the thread reads what nothing writes
        self._packed = await asyncio.to_thread(_packed, works)
        self._works = {}

    def _data(self, work_id: str) -> bytes:
        """A work's whole WorkView JSON."""
        packed = self._packed.get(work_id)
        return zlib.decompress(packed) if packed is not None else self._works[work_id].data

    def fail(self) -> None:
        """The fan-out broke after the session began: end it with what it has (the error is logged)."""
        change = Change(self.version + 1)
        self._order = orjson.dumps(list(self._born))
        self.done = True
        self._commit(change)

    def _shared(self, members: list[str]) -> tuple[str, ...]:
        # A 60-member search logs thousands of (work, members) pairs, nearly all one member each:
        # sharing the tuples keeps the log to a pointer per pair.
        key = tuple(members)
        return self._member_sets.setdefault(key, key)

    def _set_status(self, change: Change, status: TargetStatus, data: bytes) -> None:
        self._statuses[status.member] = (data, _running(status))
        change.members.append(status.member)

    def _commit(self, change: Change) -> None:
        works = change.works
        self._log.append((change.version, tuple(works), tuple(works.values()), tuple(change.members)))
        self.version = change.version
        self._diffs.clear()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    # --- reading (pollers, SSE listeners) -----------------------------------------------------------
    def touch(self) -> None:
        self.last_seen = self.clock()

    def idle_s(self) -> float:
        return 0.0 if self.listeners else self.clock() - self.last_seen

    async def wait_newer(self, version: int, timeout_s: float) -> None:
        """Return when the session is past `version`, done, closed, or after `timeout_s`."""
        if timeout_s <= 0 or self.version != version or self.done or self.closed:
            return
        changed = self._changed
        try:
            async with asyncio.timeout(timeout_s):
                await changed.wait()
        except TimeoutError:
            pass

    def keeps(self, since: int) -> bool:
        """Whether the log holds every change after `since` (so a diff, not a reset, can be given)."""
        if since == 0 or since == self.version:
            return True
        if since > self.version or not self._log:
            return False
        return self._log[0][0] <= since + 1

    def diff(self, since: int) -> bytes:
        """The diff since `since` as JSON bytes (a `SearchDiff`), assembled once per version and `since`."""
        if not self.keeps(since) or self.done:  # a reset (`since` may be anything), or a done session read
            return self._assemble(since)     # rarely: not kept, or it would hold the unpacked state
        cached = self._diffs.get(since)  # cleared on each version
        if cached is None:
            cached = self._diffs[since] = self._assemble(since)
            if len(self._diffs) > DIFFS_CACHED:
                self._diffs.popitem(last=False)
        return cached

    def _update(self, work_id: str, members: list[str]) -> bytes:
        """A WorkUpdate: while members answer, the work's header and the holdings of the members that
        changed (a popular work gains one member per answer: resending its sixty members' holdings each
        time made every diff carry the whole result); a done session's works, settled and regrouped by
        dedup, go whole."""
        if self.done:
            whole, work = b"true", self._data(work_id)
        else:
            current = self._works[work_id]
            whole, work = b"false", current.with_holdings(current.holdings_of(members))
        return b'{"members":' + orjson.dumps(members) + b',"whole":' + whole + b',"work":' + work + b"}"

    def nbytes(self) -> int:
        """Bytes of serialised state this session holds (works, statuses, order): the bulk of its memory."""
        works = sum(map(len, self._packed.values())) + sum(len(w.data) for w in self._works.values())
        return works + sum(len(data) for data, _ in self._statuses.values()) + len(self._order or b"")

    def _assemble(self, since: int) -> bytes:
        reset = not self.keeps(since)
        if reset or since == 0:
            inserted = [self._data(w) for w in self._born]
            updated: list[bytes] = []
            removed: list[bytes] = []
            finished = [data for data, running in self._statuses.values() if not running]
        else:
            touched: dict[str, list[str]] = {}
            members: dict[str, None] = {}
            for version, work_ids, member_sets, changed_statuses in self._log:
                if version <= since:
                    continue
                for work_id, changed_members in zip(work_ids, member_sets):
                    touched.setdefault(work_id, []).extend(changed_members)
                members.update(dict.fromkeys(changed_statuses))
            inserted, updated, removed = [], [], []
            for work_id, changed_members in touched.items():
                born = self._born.get(work_id)
                if born is not None:
                    if born > since:
                        inserted.append(self._data(work_id))
                    else:
                        updated.append(self._update(work_id, list(dict.fromkeys(changed_members))))
                    continue
                gone = self._removed.get(work_id)
                if gone is not None and gone.born <= since:  # a work born and gone since N is no news
                    removed.append(orjson.dumps({"work_id": work_id, "merged_into": gone.merged_into}))
            finished = [data for data, running in map(self._statuses.__getitem__, members) if not running]
        running = [m for m, (_, still) in self._statuses.items() if still]
        head = orjson.dumps(
            {"id": self.id, "version": self.version, "since": since, "reset": reset, "done": self.done, "running": running}
        )
        return b"".join(
            (
                head[:-1],
                b',"inserted":[', b",".join(inserted),
                b'],"updated":[', b",".join(updated),
                b'],"removed":[', b",".join(removed),
                b'],"finished":[', b",".join(finished),
                b'],"order":', self._order if self.done and self._order is not None else b"null",
                b"}",
            )
        )  # fmt: skip


def _packed(works: dict[str, SerialisedWork]) -> dict[str, bytes]:
    return {work_id: zlib.compress(work.data, 1) for work_id, work in works.items()}


def progressive_homes(works: list[Work]) -> dict[str, tuple[str, str]]:
    """One (member, local id) of each work: where its records went when dedup settled."""
    return {w.work_id: (w.records[0].member, w.records[0].local_id) for w in works if w.records}


def record_homes(works: list[Work]) -> dict[tuple[str, str], str]:
    return {(r.member, r.local_id): w.work_id for w in works for r in w.records}
