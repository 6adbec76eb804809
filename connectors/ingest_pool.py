"""Parsing and mapping member answers on both cores: a small process pool and a record cache.

lxml and the XSLT flatten hold the GIL, so a thread gives a burst of records no second core
(measured 0.99×, issue 14). Answers of `min_bytes` or more (a page of records; a 0-hit answer
is ~1 KB and stays on the loop, where the hop would cost more than the parse) are parsed and
mapped in worker processes. What comes back is compact (tuples of plain values, see
`compact_result`), not pickled pydantic models: unpickling a Record with its holdings costs
several times its tuple, and the loop rebuilds models with `yokodan.trusted`.

Workers map with a placeholder member (`WORKER_MEMBER`); the loop puts the real one back. The
cache below is keyed by the answer's bytes and what the mapping depends on apart from the member
(branch codes, status words): a repeated answer (a popular query, paging back, the same search
from another node's registry) is not parsed again, nor is a source shared by members with the
same tables. Members of one consortium have their own branch ids, so sharing across *them*
would need the branch look-up moved to the loop (not done: see the issue 14 note).

Failure is never a hang: a worker that dies breaks the pool (`BrokenProcessPool` for every
pending call); the caller parses inline instead and the pool is started afresh for the next
burst. A hostile document is refused in the worker by the same parser (`connectors.xml`) and
comes back as a named error (`compact_error`), raised on the loop as the same class.

Measured with `python3 bench/fanout.py --cpu` (2 vCPU, shared): a burst of 60 answers × 20
records costs the loop's process ~69 µs per record through the pool (hop, unpickling, rebuild)
against ~187 µs parsed inline; the workers spend ~187 µs per record. Compared and not kept:
threads (lxml/XSLT hold the GIL: 0.99×) and pickled Records (the hop back costs about what the
parse saves, bench/parse_stall.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import multiprocessing
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from yokodan import Availability, Diagnostic, Holding, MaterialType, Record, trusted
from connectors.errors import (
    ConnectorError,
    HostileDocument,
    MalformedResponse,
    ProtocolDiagnostic,
    ResponseTooLarge,
    UndecodableResponse,
)

log = logging.getLogger(__name__)

# The member a worker maps with; never a real member id (consortium ids are slugs).
WORKER_MEMBER = "\x00"
_FALLBACK_PREFIX = WORKER_MEMBER + ":"

_RECORD_FIELDS = tuple(Record.model_fields)
_HOLDING_FIELDS = tuple(Holding.model_fields)
_R_HOLDINGS = _RECORD_FIELDS.index("holdings")
_R_MATERIAL = _RECORD_FIELDS.index("material_type")
_H_AVAILABILITY = _HOLDING_FIELDS.index("availability")
_MATERIAL = MaterialType._value2member_map_
_AVAILABILITY = Availability._value2member_map_
# Errors a worker names; anything else raised there is a bug and travels as an exception.
_NAMED_ERRORS: dict[str, type[ConnectorError]] = {
    cls.__name__: cls for cls in (MalformedResponse, HostileDocument, UndecodableResponse, ResponseTooLarge)
}


class IngestSettings(BaseModel):
    """`[search.ingest]`: where member answers are parsed (consortium file or serve flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Worker processes; 0 parses on the event loop as before (a thread for answers of 256 KB+).
    # Started on the first burst, not at start-up, so the embedded demo starts as fast as ever.
    workers: int = Field(default=0, ge=0, le=32)
    # Answers smaller than this stay on the loop (0-hit answers, diagnostics).
    min_bytes: int = Field(default=8 * 1024, ge=0)
    # Bound of the content-keyed cache, in bytes of the answers it was built from; 0: no cache.
    cache_bytes: int = Field(default=32 * 1024 * 1024, ge=0)


class PoolUnavailable(ConnectorError):
    """The ingest pool broke (a worker died) or is shut down; the caller parses inline."""


# --- what crosses the process boundary ------------------------------------------------------


def compact_record(record: Record) -> tuple[Any, ...]:
    values = record.__dict__
    out = [values[name] for name in _RECORD_FIELDS]
    out[_R_MATERIAL] = out[_R_MATERIAL].value
    out[_R_HOLDINGS] = tuple(_compact_holding(h) for h in out[_R_HOLDINGS])
    return tuple(out)


def _compact_holding(holding: Holding) -> tuple[Any, ...]:
    values = holding.__dict__
    out = [values[name] for name in _HOLDING_FIELDS]
    out[_H_AVAILABILITY] = out[_H_AVAILABILITY].value
    return tuple(out)


def compact_diagnostics(diagnostics: list[Diagnostic]) -> tuple[tuple[str, str | None, str | None], ...]:
    return tuple((d.uri, d.message, d.details) for d in diagnostics)


def diagnostics_from(compact: tuple[tuple[str, str | None, str | None], ...]) -> list[Diagnostic]:
    return [trusted(Diagnostic, {"uri": uri, "message": message, "details": details}) for uri, message, details in compact]


def compact_error(error: ConnectorError) -> tuple[Any, ...]:
    """("error", class name, message, diagnostics): a named outcome, rebuilt by `raise_compact_error`."""
    diagnostics = error.diagnostics if isinstance(error, ProtocolDiagnostic) else []
    return ("error", type(error).__name__, error.message, compact_diagnostics(diagnostics))


def raise_compact_error(compact: tuple[Any, ...], member: str) -> None:
    _, name, message, diagnostics = compact
    if name == ProtocolDiagnostic.__name__:
        raise ProtocolDiagnostic(diagnostics_from(diagnostics), member=member)
    raise _NAMED_ERRORS.get(name, MalformedResponse)(message, member=member)


def records_from(compact: tuple[tuple[Any, ...], ...], member: str) -> list[Record]:
    """Records for `member` from a worker's (or the cache's) compact tuples, without validation."""
    records: list[Record] = []
    for values in compact:
        fields = dict(zip(_RECORD_FIELDS, values))
        fields["member"] = member
        local_id = fields["local_id"]
        if local_id.startswith(_FALLBACK_PREFIX):
            fields["local_id"] = member + local_id[len(WORKER_MEMBER) :]
        fields["material_type"] = _MATERIAL[fields["material_type"]]
        # Lists, as validation would give: every rebuild gets its own (a cache entry is shared).
        for name in ("authors", "author_readings", "isbns", "isbn_invalid"):
            fields[name] = list(fields[name])
        holdings = []
        for holding_values in fields["holdings"]:
            holding = dict(zip(_HOLDING_FIELDS, holding_values))
            holding["member"] = member
            holding["availability"] = _AVAILABILITY[holding["availability"]]
            holdings.append(trusted(Holding, holding))
        fields["holdings"] = holdings
        records.append(trusted(Record, fields))
    return records


# --- the record cache -----------------------------------------------------------------------


class RecordCache:
    """Bounded LRU: (hash of an answer's bytes, mapping key) -> the compact result.

    Weighed by the answer's size, a fair stand-in for its compact result's, so the bound holds
    in bytes, not in entries (one 4 MB answer must not keep a thousand small ones out).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[int, tuple[Any, ...]]] = OrderedDict()
        self.size = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(body: bytes, mapping: Hashable) -> Hashable:
        return (hashlib.blake2b(body, digest_size=16).digest(), mapping)

    def get(self, key: Hashable) -> tuple[Any, ...] | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, weight: int, value: tuple[Any, ...]) -> None:
        if weight > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[0]
        self._entries[key] = (weight, value)
        self.size += weight
        while self.size > self.max_bytes:
            _, (dropped, _) = self._entries.popitem(last=False)
            self.size -= dropped

    def clear(self) -> int:
        """Drop every entry (after a long idle: broker.memo_caches); returns how many there were."""
        dropped = len(self._entries)
        self._entries.clear()
        self.size = 0
        return dropped

    def __len__(self) -> int:
        return len(self._entries)


# --- the pool -------------------------------------------------------------------------------


def _preload(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def _warm() -> int:
    """Run once per worker at start: imports done before the first burst, and the pid reported."""
    return os.getpid()


# A pool broken this recently is not restarted for each search (a worker that crashes on every
# answer would otherwise cost a process start per member); answers parse inline meanwhile.
_RESTART_AFTER_S = 1.0


class IngestPool:
    """The app's ingest workers and record cache; `async with IngestPool(settings):` or start/close."""

    def __init__(self, settings: IngestSettings | None = None, *, preload: tuple[str, ...] = ("connectors.sru",)) -> None:
        self.settings = settings or IngestSettings()
        self.cache = RecordCache(self.settings.cache_bytes)
        self._preload = list(preload)
        self._executor: ProcessPoolExecutor | None = None
        self._broken_at = 0.0
        self._closed = False
        self.restarts = 0
        self.inline_fallbacks = 0
        self.parsed_in_workers = 0

    async def __aenter__(self) -> IngestPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def enabled(self) -> bool:
        return self.settings.workers > 0 and not self._closed

    def worker_pids(self) -> list[int]:
        """The live workers' process ids (tests kill one; the pool must recover)."""
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return [p.pid for p in processes.values() if p.is_alive()]

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn: fresh interpreters, not copies of the broker with its sockets, threads and
            # event loop (fork); and unlike forkserver no server process outlives the pool, so
            # shutting the pool down leaves nothing running. Each worker imports the parsers once.
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=self.settings.workers, mp_context=context, initializer=_preload, initargs=(self._preload,)
            )
        return self._executor

    async def warm(self) -> list[int]:
        """Start every worker now and answer their pids (a bench or a test; the app leaves it to the first burst)."""
        loop = asyncio.get_running_loop()
        pool = self._pool()
        await asyncio.gather(*(loop.run_in_executor(pool, _warm) for _ in range(self.settings.workers)))
        return self.worker_pids()

    async def run(self, function: Callable[..., tuple[Any, ...]], body: bytes, *args: Any) -> tuple[Any, ...]:
        """`function(body, *args)` in a worker; PoolUnavailable when the pool is broken or closed."""
        if self._closed:
            raise PoolUnavailable("ingest pool closed")
        if self._executor is None and time.monotonic() - self._broken_at < _RESTART_AFTER_S:
            raise PoolUnavailable("ingest pool restarting after a worker died")
        pool = self._pool()
        try:
            result = await asyncio.get_running_loop().run_in_executor(pool, function, body, *args)
        except (BrokenProcessPool, RuntimeError) as error:  # RuntimeError: submit after shutdown
            self._discard(pool, error)
            raise PoolUnavailable(f"ingest pool unavailable: {error}") from None
        self.parsed_in_workers += 1
        return result

    def _discard(self, pool: ProcessPoolExecutor, error: BaseException) -> None:
        if self._executor is pool:
            log.warning("ingest worker pool broke (%s); parsing inline until it restarts", type(error).__name__)
            self._executor = None
            self._broken_at = time.monotonic()
            self.restarts += 1
            pool.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        """Shut the workers down and wait for them (off the loop): no process is left behind."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
