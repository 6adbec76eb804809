"""Giving freed memory back to the system after a burst (glibc's malloc_trim, or jemalloc's purge).

CPython frees small objects into its own arenas and larger blocks into glibc's malloc; glibc
keeps freed heap pages (in every thread's arena: the executor threads that search the union index
have arenas of their own) until something asks it to return them. After a burst the broker's RSS
therefore stays near its peak although the objects are gone. `malloc_trim(0)` returns the free
pages at the top of each arena and, since glibc 2.8, unused whole pages inside them (madvise).

`IdleTrimmer` runs once the broker has been idle for `idle_s` after activity, and again at 2×, 4×,
8× and 16× that idle time (memory freed later, as keep-alive connections close 30 s after their
last request, is then given back too: in bench/soak.py a pass after the member connections had
closed gave back 3.6 MiB more than the first). Each pass is first a full garbage collection
(whoosh's readers live in reference cycles, and an idle process allocates nothing that would
trigger the collector's oldest generation, so closed readers and the memory maps of deleted
segment files would wait for the next burst), then the trim, off the event loop.
Never during load: both walk the whole heap. On a libc without malloc_trim (musl, macOS) only the
collection runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable
from functools import cache

from broker.allocator import purge_jemalloc

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_native_heap() -> bool:
    """Ask the allocator to return freed memory to the system now; False where it cannot.

    On jemalloc (broker/allocator.py) its arenas are purged; glibc's malloc_trim would find
    nothing of ours in glibc's heap."""
    if purge_jemalloc():
        return True
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


_PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4 / 1024


def resident_mib() -> float | None:
    """This process's resident memory (RSS) in MiB; None where /proc is not there."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return round(int(statm.read().split()[1]) * _PAGE_MIB, 1)
    except (OSError, ValueError, IndexError):
        return None


# Passes after each stretch of activity, at idle_s × 1, 2, 4, 8, 16.
_PASSES = 5
# From the pass at idle_s × 4 on (40 s by default), memoized data is released before the trim.
# Client connections (15 s keep-alive) have closed by then; member connections (30 s) close 30-45 s
# into idle (aiohttp's connector sweeps once per keep-alive period), and what they free after the
# pass jemalloc's decay hands back a second later (broker/allocator.py).
_RELEASE_FROM_PASS = 2


class IdleTrimmer:
    """Collects and trims after each stretch of activity, when `idle_s` passed without any, then
    when twice, four, eight and sixteen times that passed; from the pass at four times on, calls
    `release` first (once per idle: broker.memo_caches drops the search caches).

    `touch()` marks activity (a search started); the task checks every `idle_s / 2`.
    """

    def __init__(
        self, idle_s: float = 10.0, *, release: Callable[[], int] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if idle_s <= 0:
            raise ValueError("idle_s must be > 0")
        self.idle_s = idle_s
        self.clock = clock
        self.release = release
        self.trims = 0
        self.releases = 0
        self._last_activity = clock()
        self._passes_left = 0  # passes still due since the last activity
        self._released = True  # nothing to release before the first activity
        self._task: asyncio.Task[None] | None = None

    def touch(self) -> None:
        self._last_activity = self.clock()
        self._passes_left = _PASSES
        self._released = False

    async def trim_if_idle(self) -> bool:
        done = _PASSES - self._passes_left  # passes already run since the last activity
        due_after_s = self.idle_s * 2**done
        if not self._passes_left or self.clock() - self._last_activity < due_after_s:
            return False
        self._passes_left -= 1
        if self.release is not None and done >= _RELEASE_FROM_PASS and not self._released:
            self._released = True
            self.release()
            self.releases += 1
        gc.collect()
        if await asyncio.to_thread(trim_native_heap):
            self.trims += 1
            return True
        return False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.idle_s / 2)
            try:
                await self.trim_if_idle()
            except Exception:  # never let housekeeping take the broker down
                log.exception("malloc_trim failed")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="idle-heap-trim")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
