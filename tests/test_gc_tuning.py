"""freeze_startup_heap: what start-up built leaves the collector's walks; garbage is collected, not frozen."""

from __future__ import annotations

import gc
import weakref

from broker.gc_tuning import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


def test_freezing_takes_the_live_heap_out_of_collections_and_collects_garbage_first() -> None:
    kept = [[n] for n in range(1000)]  # containers: tracked by the collector
    garbage = _Node()
    garbage.peer = _Node()
    garbage.peer.peer = garbage  # a cycle only a collection frees
    gone = weakref.ref(garbage)
    del garbage
    try:
        frozen = freeze_startup_heap()
        assert gone() is None, "the cycle was collected, not frozen"
        assert frozen == gc.get_freeze_count() >= len(kept)
        later = [[n] for n in range(3)]
        walked = {id(o) for o in gc.get_objects()}
        assert [id(k) in walked for k in kept] == [False] * len(kept)
        assert [id(o) in walked for o in later] == [True] * len(later)
    finally:
        gc.unfreeze()  # the rest of the test process collects as usual
