"""Which segments a commit merges: a log-structured policy, independent of the engine.

whoosh's default MERGE_SMALL only merges segments of a few documents (its Fibonacci test
compares cumulative counts against fib(i+5)), so every batch commit left one more segment
behind and a query pays per segment (~1.5 ms each at 30k works: term lookups in every
field of every segment). Instead segments are levelled by size (level 0 below
MERGE_MIN_DOCS, then one level per factor MERGE_FACTOR) and a level holding MERGE_FACTOR
segments is merged into one of the next level. Each work is rewritten about once per level
(4 levels up to 200k works); whoosh merges cost ~2 ms per work, so this trades ~8 ms of
writer CPU per work over its life for a bounded segment count (at most MERGE_FACTOR-1 per
level). A segment with a third of its documents deleted (updated or evicted works) is
rewritten too, to drop them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EXPUNGE_DELETED_RATIO", "MERGE_FACTOR", "MERGE_MIN_DOCS", "SegmentSize", "merge_level", "segments_to_merge"]

MERGE_FACTOR = 6
MERGE_MIN_DOCS = 200
EXPUNGE_DELETED_RATIO = 1 / 3


@dataclass(frozen=True, slots=True)
class SegmentSize:
    live: int  # documents not deleted
    deleted: int


def merge_level(live_docs: int) -> int:
    if live_docs < MERGE_MIN_DOCS:
        return 0
    return 1 + int(math.log(live_docs / MERGE_MIN_DOCS, MERGE_FACTOR))


def segments_to_merge(segments: Sequence[SegmentSize]) -> list[int]:
    """Indexes (into `segments`) of the segments to merge: full levels and deletion-heavy ones."""
    levels: dict[int, list[int]] = {}
    chosen: list[int] = []
    for n, segment in enumerate(segments):
        total = segment.live + segment.deleted
        if total and segment.deleted / total >= EXPUNGE_DELETED_RATIO:
            chosen.append(n)
        else:
            levels.setdefault(merge_level(segment.live), []).append(n)
    for members in levels.values():
        if len(members) >= MERGE_FACTOR:
            chosen.extend(members)
    return sorted(chosen)
