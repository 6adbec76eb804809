"""What the broker memoizes for searches, and forgetting it after a long idle (issue 12).

A search fills bounded caches: the ingest pool's record cache (parsed answers by their bytes'
hash), the deduplication's text features, names and titles (functools.lru_cache, 8-16k entries
each), the SRU query strings, yarl's URL caches. Each is bounded, but its entries are written
during load, so they lie scattered over the pages a burst allocated, and a few kept entries keep
their pages resident after the burst has gone (broker/allocator.py). bench/soak.py, Dec 2026:
objects allocated after warm-up and alive after 60 s idle were 38,080 blocks, 3.5 MB, most of
them these caches' entries; on jemalloc they held about 15 MiB of pages.

After a long idle (`IdleTrimmer`'s pass at 4 × its idle time, 40 s by default) the broker drops
them, and the trim that follows hands their pages back. What that costs is one recomputation per
record on the first searches after the idle, while the machine has nothing else to do.
Small caches of fixed configuration (status words, calendars: maxsize below 256) are kept.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, Protocol

import yarl

# Modules whose lru caches grow with the records and queries seen.
_MEMO_MODULES = (
    "index.features", "index.names", "index.text", "index.titles", "index.volume", "index.editions",
    "connectors.sru", "yokodan.terms",
)  # fmt: skip
_SMALLEST_RELEASED = 256  # maxsize below this: fixed configuration, not data (kept)


class _Clearable(Protocol):
    def clear(self) -> int: ...


@cache
def _lru_caches() -> tuple[Any, ...]:
    """The data-sized lru caches of `_MEMO_MODULES` (found once: functions do not come and go)."""
    found = []
    for name in _MEMO_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            info: Callable[[], Any] | None = getattr(value, "cache_info", None)
            if info is not None and callable(getattr(value, "cache_clear", None)):
                maxsize = info().maxsize
                if (maxsize is None or maxsize >= _SMALLEST_RELEASED) and value not in found:
                    found.append(value)  # (a function imported by another listed module is found twice)
    return tuple(found)


def held_lru_entries() -> int:
    """Entries the lru caches that `release_memo_caches` drops hold now."""
    return sum(function.cache_info().currsize for function in _lru_caches())


def release_memo_caches(record_caches: Iterable[_Clearable] = ()) -> int:
    """Drop every memoized entry (record caches, lru caches, yarl's); returns how many were held."""
    dropped = sum(cache.clear() for cache in record_caches) + held_lru_entries()
    for function in _lru_caches():
        function.cache_clear()
    dropped += sum(info.currsize for info in yarl.cache_info().values())
    yarl.cache_clear()
    return dropped
