"""Parsing large member answers off the event loop.

Measured with `bench/parse_stall.py` (asyncio's slow-callback log, 2 vCPU): parsing
and mapping a 4.5 MB SRU MARCXML answer on the loop stalls every other request for
~1.1 s; in a worker thread the worst stall drops to ~0.23 s (lxml still holds the
GIL through its XSLT pass, so it is not zero) for ~17 % more wall time on that one
answer. A process pool stalls less still (~45 ms) but doubles that answer's time
(the Records are pickled back) and needs a pool with its own lifecycle, so it is
not used. Small answers (the usual 20–50 KB) stay on the loop: the hop to a thread
would cost more than it saves.

Issue 14 revisited the process pool with compact results instead of pickled Records
(`connectors/ingest_pool.py`): measured there, a burst of 60 × 20 records costs the loop's
process ~69 µs per record instead of ~187 µs inline. This module stays the path for
apps without ingest workers and for answers under the pool's `min_bytes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

# From about here parsing on the loop costs more than ~50 ms (≈ 240 ms per MB of MARCXML).
OFF_LOOP_PARSE_BYTES = 256 * 1024

T = TypeVar("T")


async def parse_off_loop(parse: Callable[..., T], body: bytes, /, *args: Any, **kwargs: Any) -> T:
    """`parse(body, *args, **kwargs)`, in a worker thread when the body is large.

    `parse` must touch no event-loop state. When the caller is cancelled the
    thread still finishes its (size-capped) parse and the result is dropped.
    """
    if len(body) < OFF_LOOP_PARSE_BYTES:
        return parse(body, *args, **kwargs)
    return await asyncio.to_thread(parse, body, *args, **kwargs)
