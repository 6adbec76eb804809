"""Member status words -> `Availability`, as data (`status_words.toml`).

A word is classified by rules, in order: the member's own words (exact), the shared
[words] (exact), then the shared ordered [[rules]] (normalised prefix / contains:
貸出可* and 利用可* -> available, 貸出中* -> on_loan, 禁帯* -> library use only ...).
An unknown word maps to `unknown`: the raw word stays on the holding and is
counted (`connectors.unknown_words`: per registry, bounded), so operators can
see which words a member uses that we lack.
"""

from __future__ import annotations

import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from yokodan import Availability, HoldState
from connectors.unknown_words import UnknownWords, bound_counter

_VOCABULARY_FILE = Path(__file__).with_name("status_words.toml")


def normalize_word(word: str) -> str:
    """NFKC, casefold, no whitespace: the form words are compared in."""
    return "".join(unicodedata.normalize("NFKC", word).casefold().split())


def rule_form(word: str) -> str:
    """`normalize_word` without punctuation: the form [[rules]] patterns are matched in.

    Symbols stay (○ × △ are S*, not P*): a mark must never look like an empty word.
    """
    return "".join(ch for ch in normalize_word(word) if not unicodedata.category(ch).startswith("P"))


@dataclass(frozen=True, slots=True)
class StatusRule:
    """One ordered pattern of `status_words.toml` [[rules]]."""

    pattern: str  # in rule_form
    state: Availability
    kind: str  # "prefix" | "contains"

    def matches(self, form: str) -> bool:
        return form.startswith(self.pattern) if self.kind == "prefix" else self.pattern in form


def _rules_from(entries: list[dict[str, str]]) -> tuple[StatusRule, ...]:
    rules: list[StatusRule] = []
    for n, entry in enumerate(entries):
        kinds = [k for k in ("prefix", "contains") if k in entry]
        if len(kinds) != 1 or "state" not in entry:
            raise ValueError(f"{_VOCABULARY_FILE.name}: rules[{n}] needs exactly one of prefix/contains, and a state")
        pattern = rule_form(entry[kinds[0]])
        if not pattern:
            raise ValueError(f"{_VOCABULARY_FILE.name}: rules[{n}].{kinds[0]} is empty after normalising")
        rules.append(StatusRule(pattern, Availability(entry["state"]), kinds[0]))
    return tuple(rules)


@lru_cache(maxsize=1)
def _vocabulary_file() -> dict[str, Any]:
    with _VOCABULARY_FILE.open("rb") as handle:
        return tomllib.load(handle)


@lru_cache(maxsize=1)
def shared_vocabulary() -> Mapping[str, Availability]:
    """Copy words -> Availability."""
    return {normalize_word(word): Availability(state) for word, state in _vocabulary_file()["words"].items()}


@lru_cache(maxsize=1)
def shared_rules() -> tuple[StatusRule, ...]:
    """The ordered [[rules]] for copy words the exact tables lack."""
    return _rules_from(_vocabulary_file().get("rules", []))


@lru_cache(maxsize=1)
def shared_hold_words() -> Mapping[str, HoldState]:
    """Hold words -> HoldState; members layer their own words on these."""
    return {normalize_word(word): HoldState(state) for word, state in _vocabulary_file()["hold_words"].items()}


# Bounds of one mapper's cache of classified words (one mapper per member connector).
MAX_CACHED_WORDS = 4096
MAX_CACHED_WORD_CHARS = 80


class StatusMapper:
    """Maps one member's words, with its overrides layered on the shared vocabulary."""

    def __init__(self, member: str, overrides: Mapping[str, Availability] | None = None) -> None:
        self.member = member
        self._words = dict(shared_vocabulary())
        for word, state in (overrides or {}).items():
            self._words[normalize_word(word)] = Availability(state)  # a member's word beats the shared one
        self._rules = shared_rules()
        self._cache: dict[str, Availability] = {}
        self.unknown_words: UnknownWords = bound_counter()

    def classify(self, word: str) -> Availability:
        """The state for `word` by the ordered rules (no counting, no cache)."""
        state = self._words.get(normalize_word(word))
        if state is not None:
            return state
        form = rule_form(word)
        for rule in self._rules:
            if rule.matches(form):
                return rule.state
        return Availability.UNKNOWN

    def __call__(self, word: str) -> Availability:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        state = self.classify(word)
        if state is Availability.UNKNOWN and word.strip():
            self.unknown_words.record(self.member, word.strip())
        elif len(word) <= MAX_CACHED_WORD_CHARS:
            # Unknown words are not cached, so every sighting is counted.
            if len(self._cache) >= MAX_CACHED_WORDS:
                # Words carry dates and queue numbers ("貸出中（12/01まで）"): a member's distinct
                # words grow without end. Starting over costs one re-classification per word.
                self._cache.clear()
            self._cache[word] = state
        return state

