"""Member status words -> `Availability`, as data (`status_words.toml`).

An unknown word maps to `unknown`: the raw word stays on the holding and is
counted (`connectors.unknown_words`: per registry, bounded), so operators can
see which words a member uses that we lack.
"""

from __future__ import annotations

import tomllib
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from yokodan import Availability, HoldState
from connectors.unknown_words import UnknownWords, bound_counter

_VOCABULARY_FILE = Path(__file__).with_name("status_words.toml")


def normalize_word(word: str) -> str:
    """NFKC, casefold, no whitespace: the form words are compared in."""
    return "".join(unicodedata.normalize("NFKC", word).casefold().split())


@lru_cache(maxsize=1)
def _vocabulary_file() -> dict[str, dict[str, str]]:
    with _VOCABULARY_FILE.open("rb") as handle:
        return tomllib.load(handle)


@lru_cache(maxsize=1)
def shared_vocabulary() -> Mapping[str, Availability]:
    """Copy words -> Availability."""
    return {normalize_word(word): Availability(state) for word, state in _vocabulary_file()["words"].items()}


@lru_cache(maxsize=1)
def shared_hold_words() -> Mapping[str, HoldState]:
    """Hold words -> HoldState; members layer their own words on these."""
    return {normalize_word(word): HoldState(state) for word, state in _vocabulary_file()["hold_words"].items()}


class StatusMapper:
    """Maps one member's words, with its overrides layered on the shared vocabulary."""

    def __init__(self, member: str, overrides: Mapping[str, Availability] | None = None) -> None:
        self.member = member
        self._words = dict(shared_vocabulary())
        for word, state in (overrides or {}).items():
            self._words[normalize_word(word)] = Availability(state)
        self._cache: dict[str, Availability] = {}
        self.unknown_words: UnknownWords = bound_counter()

    def __call__(self, word: str) -> Availability:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        state = self._words.get(normalize_word(word), Availability.UNKNOWN)
        if state is Availability.UNKNOWN and word.strip():
            self.unknown_words.record(self.member, word.strip())
        else:
            # Unknown words are not cached, so every sighting is counted.
            self._cache[word] = state
        return state

