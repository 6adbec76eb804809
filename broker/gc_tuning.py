"""Keep the garbage collector's full collections short: freeze what start-up built.

A full (generation 2) collection walks every container object the process tracks. Once the broker has
started, ~90k of them (modules, classes, functions, pydantic validators, the consortium) live until
exit, and each full collection walked them all: 25 ms of CPU each (bench/progressive.py measured
gen2 pauses of 75-170 ms wall on a loaded 2-core machine, the p99 of session delivery). `gc.freeze()`
moves them to the permanent generation, which no collection visits; the collector then walks only
what was made since (searches, sessions). Collected first, so that no garbage is frozen with them;
what start-up built and later drops is still freed by reference counting (a frozen reference cycle
would stay until exit: start-up builds no cycles it later drops).
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> int:
    """Collect, then freeze every object alive now; how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
