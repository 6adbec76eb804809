"""A CQL subset, parsed and evaluated the way Zebra 2.2.7 / YAZ do it.

`parse()` (connectors/cql.py, shared with the broker's SRU server) produces an AST;
`compile_query()` turns the AST into a predicate over `SearchFields` with every term normalised once.

Behaviour copied from Zebra (shared/catalogue-servers/README.md):
* text is normalised with NFKC, case folding and Latin diacritic folding;
  punctuation separates words; every CJK character is a word of its own, so a
  multi-character Japanese term is a phrase, i.e. a substring search
  (京都 also matches 東京都: a false positive Zebra gives by design);
* booleans have equal precedence and associate to the left (CQL's rule);
* an index and relation carry over to juxtaposed terms and parenthesised
  sub-queries, as in YAZ: `title=cat hat` = `title=cat and title=hat`;
* `foo*` / `*foo` truncate, `*` inside a term is diagnostic 28 (`\\*` is a literal star);
* a term that starts with punctuation or a symbol (`(スリー)`, `「EPUB」`, `"猫"`) matches
  nothing, and one of punctuation only matches nothing either: clients must send terms;
* ISBN search ignores hyphens and matches ISBN-10 and ISBN-13 forms alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from connectors.cql import BooleanNode, CQLError, Node, SearchClause, parse
from yokodan import isbn as isbn_tools

__all__ = [
    "BooleanNode",
    "CQLError",
    "Node",
    "SearchClause",
    "SearchFields",
    "compile_query",
    "normalise",
    "parse",
]


# --- normalisation ----------------------------------------------------------


def _fold_latin(char: str) -> str:
    # Only Latin letters lose their marks: decomposing kana would strip dakuten (ガ -> カ).
    if "\u00c0" <= char <= "\u024f" or "\u1e00" <= char <= "\u1eff":
        return "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
    return char


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """Text as a space-padded word sequence: 'Sōseki's 吾輩' -> ' sosekis 吾 輩 '.

    Padding makes `needle in haystack` a whole-word (phrase) test.
    """
    words: list[str] = []
    current: list[str] = []
    for char in unicodedata.normalize("NFKC", text).casefold():
        if char in "'’":  # apostrophes join: O'Connor -> oconnor
            continue
        char = _fold_latin(char)
        category = unicodedata.category(char)
        if category[0] in "LNM" and not _is_wide(char):
            current.append(char)
            continue
        if current:
            words.append("".join(current))
            current = []
        if category[0] in "LNM":  # a CJK character (or ー, 々) is a word by itself
            words.append(char)
    if current:
        words.append("".join(current))
    return " " + " ".join(words) + " " if words else ""


# --- evaluation -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchFields:
    """One record's searchable text, normalised once when the member's catalogue is built."""

    title: str  # normalised title fields joined by "\n" so phrases never span two fields
    title_exact: frozenset[str]
    author: str
    author_exact: frozenset[str]
    any: str
    isbns: frozenset[str]  # compact ISBN-13 and ISBN-10 forms
    year: int | None

    @classmethod
    def build(
        cls,
        *,
        titles: Iterable[str],
        authors: Iterable[str],
        isbns: Iterable[str],
        year: int | None,
        other: Iterable[str] = (),
    ) -> SearchFields:
        """`isbns`: the record's ISBNs in every compact form a query may use (13 and 10 digits)."""
        forms = frozenset(isbns)
        title_words = [normalise(t) for t in titles if t]
        author_words = [normalise(a) for a in authors if a]
        any_words = title_words + author_words + [normalise(o) for o in other if o] + [f" {i} " for i in sorted(forms)]
        if year is not None:
            any_words.append(f" {year} ")
        return cls(
            title="\n".join(title_words),
            title_exact=frozenset(title_words),
            author="\n".join(author_words),
            author_exact=frozenset(author_words),
            any="\n".join(any_words),
            isbns=forms,
            year=year,
        )


Predicate = Callable[[SearchFields], bool]


def compile_query(node: Node) -> Predicate:
    """A predicate over `SearchFields` for the AST; terms are normalised here, once."""
    if isinstance(node, BooleanNode):
        left, right = compile_query(node.left), compile_query(node.right)
        if node.op == "and":
            return lambda f: left(f) and right(f)
        if node.op == "or":
            return lambda f: left(f) or right(f)
        return lambda f: left(f) and not right(f)
    if node.index == "allrecords":
        return lambda f: True
    if node.index == "year":
        return _year_predicate(node)
    if node.index == "isbn":
        return _combine(node.relation, [_isbn_predicate(word) for word in _words(node.term)])
    return _text_predicate(node)


def _words(term: str) -> list[str]:
    words = term.split()
    if not words:
        raise CQLError(27, "Empty term unsupported", None)
    return words


def _combine(relation: str, predicates: list[Predicate]) -> Predicate:
    if relation == "any":
        return lambda f: any(p(f) for p in predicates)
    return lambda f: all(p(f) for p in predicates)


def _year_predicate(node: SearchClause) -> Predicate:
    try:
        wanted = int(node.term.strip())
    except ValueError:
        raise CQLError(36, "Term in invalid format for index or relation", node.term) from None
    compare: Callable[[int], bool] = {
        "=": lambda y: y == wanted,
        "==": lambda y: y == wanted,
        "<": lambda y: y < wanted,
        "<=": lambda y: y <= wanted,
        ">": lambda y: y > wanted,
        ">=": lambda y: y >= wanted,
    }[node.relation]
    return lambda f: f.year is not None and compare(f.year)


def _isbn_predicate(word: str) -> Predicate:
    compact = isbn_tools.compact(word)
    if compact.endswith("*"):
        prefix = compact.rstrip("*")
        return lambda f: any(i.startswith(prefix) for i in f.isbns)
    wanted = isbn_tools.to_isbn13(compact) or compact
    return lambda f: wanted in f.isbns


def _needle(word: str) -> str:
    """The phrase a word must appear as, with truncation (`cat*`, `*cat`) opening an edge."""
    left, right = word.startswith("*"), word.endswith("*") and not word.endswith("\\*")
    if re.search(r"(?<!\\)\*", word[left : len(word) - right]):
        raise CQLError(28, "Masking character not supported", word)
    literal = word.strip("*").replace("\\", "")
    if literal[:1] and not _is_term_char(literal[0]):
        # Zebra 2.2.7: a term that *starts* with punctuation or a symbol matches nothing
        # (`title="(スリー)"`, `title="「EPUB」"` find 0 records; `title="スリー)"` finds them).
        return ""
    core = normalise(literal).strip()
    if not core:
        return ""
    return ("" if left else " ") + core + ("" if right else " ")


def _is_term_char(char: str) -> bool:
    return unicodedata.category(unicodedata.normalize("NFKC", char)[:1] or " ")[0] in "LNM"


def _text_predicate(node: SearchClause) -> Predicate:
    field = {"title": "title", "author": "author", "any": "any"}[node.index]
    if node.relation == "==":
        wanted = normalise(node.term.replace("\\", ""))
        exact = {"title": "title_exact", "author": "author_exact"}[field]
        return lambda f: wanted in getattr(f, exact)
    words = [node.term] if node.relation == "adj" else _words(node.term)
    predicates = [_word_predicate(field, word) for word in words]
    return _combine(node.relation, predicates)


def _word_predicate(field: str, word: str) -> Predicate:
    needle = _needle(word)
    if not needle:  # a term of punctuation only matches nothing, as in Zebra
        return lambda f: False
    if field == "any" and (isbn13 := isbn_tools.to_isbn13(word)) is not None:
        # A bare ISBN in a keyword search finds the book however it was hyphenated.
        return lambda f: needle in f.any or isbn13 in f.isbns
    return lambda f: needle in getattr(f, field)
