"""What the broker and its writer process say to each other over their pipe (one frame each).

Broker -> writer:  {"op": "commit", "unit", "now", "municipalities", "chunks": k} + k frames
                   (each a JSON array of Works); {"op": "sweep", "unit", "now"}; {"op": "stop"}
Writer -> broker:  {"op": "ready", "pid"} | {"op": "unusable", "error"} (then it exits);
                   {"op": "done", "unit", "commits", "evicted", "commit_ms"} |
                   {"op": "failed", "unit", "error"}; {"op": "stopped"}

The works travel raw (pydantic's JSON, ~9 µs of broker CPU per work) and are analysed in the
writer: building and analysing the documents in the broker instead costs ~310 µs per work
(bench/union_index.py prints both), and the merge with the stored blob needs the writer's
view of the index anyway. The works are sent in chunks of CHUNK_WORKS so that no single
serialisation call holds the broker's GIL for more than about half a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from pydantic import TypeAdapter

from yokodan import Work

__all__ = ["CHUNK_WORKS", "decode", "decode_works", "encode", "encode_works"]

CHUNK_WORKS = 50
_WORKS = TypeAdapter(list[Work])


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def decode(frame: bytes) -> dict[str, Any]:
    message = orjson.loads(frame)
    if not isinstance(message, dict) or "op" not in message:
        raise ValueError(f"not a writer message: {frame[:80]!r}")
    return message


def encode_works(works: Sequence[Work]) -> Iterator[bytes]:
    """The works as chunk frames; len(range(0, len(works), CHUNK_WORKS)) of them."""
    for start in range(0, len(works), CHUNK_WORKS):
        yield _WORKS.dump_json(list(works[start : start + CHUNK_WORKS]))


def decode_works(frame: bytes) -> list[Work]:
    return _WORKS.validate_json(frame)
