"""Counting the status words a member uses that no vocabulary knows, bounded and per owner.

A member's words are untrusted input: a catalogue that puts free text (or a new
word per copy) in its status field must not grow the broker's memory without end.
So at most `max_keys` distinct (member, word) pairs are kept, a word is cut at
`MAX_WORD_CHARS`, and sightings of pairs beyond the bound are counted per member
as overflow. One `UnknownWords` belongs to one member registry (one app), never
to the process: two brokers in one process (tests, a portal embedding two
consortia) keep their own counts.

Connectors build their `StatusMapper`s in their own constructors, so the counter
reaches them through `counting_into(...)`, which `connectors.connector_for`
scopes around the construction: no family constructor has to thread it through.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_MAX_KEYS = 1_000
MAX_WORD_CHARS = 80


class UnknownWords:
    """(member, raw word) -> sightings, for at most `max_keys` distinct pairs."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.max_keys = max_keys
        self._counts: dict[tuple[str, str], int] = {}
        self._overflow: dict[str, int] = {}

    def record(self, member: str, word: str) -> None:
        key = (member, word[:MAX_WORD_CHARS])
        if key in self._counts:
            self._counts[key] += 1
        elif len(self._counts) < self.max_keys:
            self._counts[key] = 1
        else:
            # Member ids come from the consortium file, so this dict is bounded by it.
            self._overflow[member] = self._overflow.get(member, 0) + 1

    def count(self, member: str, word: str) -> int:
        return self._counts.get((member, word[:MAX_WORD_CHARS]), 0)

    def words_of(self, member: str) -> dict[str, int]:
        """The member's unknown words with their sightings, most seen first."""
        words = [(word, n) for (m, word), n in self._counts.items() if m == member]
        return dict(sorted(words, key=lambda item: (-item[1], item[0])))

    def overflow_of(self, member: str) -> int:
        """Sightings of this member's words that were not kept because the bound was reached."""
        return self._overflow.get(member, 0)

    def __len__(self) -> int:
        return len(self._counts)


_BOUND: contextvars.ContextVar[UnknownWords | None] = contextvars.ContextVar("unknown_words", default=None)


@contextmanager
def counting_into(counter: UnknownWords) -> Iterator[UnknownWords]:
    """Status mappers built inside this block count into `counter`."""
    token = _BOUND.set(counter)
    try:
        yield counter
    finally:
        _BOUND.reset(token)


def bound_counter() -> UnknownWords:
    """The counter of the enclosing `counting_into`, else a fresh one private to the caller."""
    bound = _BOUND.get()
    return UnknownWords() if bound is None else bound
