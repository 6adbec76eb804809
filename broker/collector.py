"""The cyclic garbage collector's settings for a serving broker process (`yokodan serve`).

A search allocates a few hundred container objects per member (tasks, futures, aiohttp's request
and response, the parsed tree's proxies, statuses); nearly all die by reference count within the
search. CPython's default young-generation threshold (700 allocations) still runs a collection
every few members, and each promotes survivors that the older generations then traverse again.
What start-up built (the consortium model, each member's connectors, breakers and slots: ~14 KB a
member, 1,700 members at national scale) is alive for the whole process, yet every full collection
walks it: ~90k objects, 25 ms of CPU per full collection at the demo's size (bench/progressive.py
saw gen-2 pauses of 75-170 ms wall on a loaded machine, the p99 of search-session delivery; in
bench/soak.py's burst of 200 searches the collector took 0.43 s of the broker's 1.6 s of CPU, 0.10 s
once start-up was frozen).

The requests in flight are alive, young and traversed by every young collection until their
search ends, so the collector's share grows with the fan-out: measured with valgrind's instruction
counts on bench/fanout.py's 0-hit search, per member and search: 60 members (20 searches), CPython's
defaults 739k (70k of them the collector's own), start-up frozen + threshold 5,000 677k; 60 members
(50 searches), 5,000 657k, 50,000 655k; 600 members (5 searches), 5,000 744k, 20,000 732k, 50,000 698k. At 1,700 members, with start-up's objects frozen the median
search's wall time fell from ~1.5 s to ~1.1 s (bench/national.py): full collections no longer
walk the registry. The price: cyclic garbage waits for up to 50,000 allocations (a few MB).
"""

from __future__ import annotations

import gc

# Allocations between young-generation collections (CPython's default: 700).
YOUNG_THRESHOLD = 50_000


def tune_for_serving() -> int:
    """Freeze what exists now (call once start-up has built the app) and collect the young less often.

    Frozen objects are never traversed again (they are still freed by reference count); a cycle
    among them would not be collected, which is why this runs once, after a full collection, in a
    process that serves until it exits, and never in a test process that builds many apps.
    """
    gc.collect()  # first, so that no garbage is frozen with the live heap
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
