"""What a search term is: the one definition the union index and every member query share.

A term is a stretch of letters, digits and CJK characters (kanji, kana, ー, 々, 〆, 〇);
everything else — spaces, punctuation, brackets, quotes, symbols such as & + / : ・ 「」
（） and their full-width forms — separates terms and is never part of one. So the query
`EPUB 3 (スリー)` is the terms EPUB, 3, スリー and `iPad & iPad mini` is iPad, iPad, mini:
a member whose index tokenises punctuation away (Zebra's ICU chain, most OPACs) matches
every term, and a term that was only punctuation (`&`) is gone instead of matching nothing.

`index.analysis` cuts folded text into runs with `RUNS` (CJK runs apart from word runs, for
its bigrams); connectors cut a patron's query into member terms with `member_terms`, which
keeps a stretch such as `EPUB戦記` or `100倍楽しむ本` whole (a phrase is what the patron
typed, and every member's index can match it) and applies the member family's `TermRules`.

Members differ in a few ways, kept as data (pazpar2's cclmap idea; connectors read them
from `connectors/query_terms.toml` and a member's `options.query_terms`):
* `joiners`: characters an index deletes inside a word (ICU chains and Zebra drop
  apostrophes: O'Reilly is `oreilly`); elsewhere they separate (a SQL LIKE over the stored
  title finds O'Reilly by `O` and `Reilly`, never by `OReilly`);
* `keep`: punctuation a member's index does keep inside terms (sent, escaped by the
  connector's own quoting);
* `fold_width`: NFKC before cutting (full-width ＥＰＵＢ and half-width ｶﾅ as the member's
  index stores them); off only for a member that indexes raw forms.
No dependency: the connectors (which may import only yokodan) and the index share it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Kana (hiragana listed too, for unfolded input), the long-vowel mark and iteration marks,
# CJK ideographs (ext. A, URO, compatibility, ext. B-F), 〆 and 〇. U+30FB (・, katakana
# middle dot) is *not* in the class: it separates words.
CJK = "\u3041-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# A CJK run, or a word run (letters/digits that are not CJK); anything else separates.
RUNS = re.compile(rf"([{CJK}]+)|((?:(?![{CJK}])[^\W_])+)")

DEFAULT_JOINERS = "'\u2019\u02bc"


@dataclass(frozen=True, slots=True)
class TermRules:
    """How one member's index cuts text into terms (see the module doc)."""

    fold_width: bool = True
    joiners: str = DEFAULT_JOINERS
    keep: str = ""

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, base: TermRules | None = None, where: str = "query_terms") -> TermRules:
        """Rules from config data layered on `base`; a wrong key or type is a ValueError naming it."""
        start = base or cls()
        fields = {"fold_width": start.fold_width, "joiners": start.joiners, "keep": start.keep}
        for key, value in values.items():
            if key not in fields:
                raise ValueError(f"{where}: unknown key {key!r} (expected one of {sorted(fields)})")
            expected = bool if key == "fold_width" else str
            if not isinstance(value, expected):
                raise ValueError(f"{where}.{key}: expected {expected.__name__}, got {type(value).__name__}")
            fields[key] = value
        rules = cls(**fields)
        if overlap := set(rules.keep) & set(rules.joiners):
            raise ValueError(f"{where}: {''.join(sorted(overlap))!r} cannot be both kept and joined")
        return rules


DEFAULT_RULES = TermRules()


@lru_cache(maxsize=64)
def _term_pattern(keep: str) -> re.Pattern[str]:
    return re.compile(rf"(?:[^\W_]|[{CJK}]{'|[' + re.escape(keep) + ']' if keep else ''})+")


@lru_cache(maxsize=64)
def _joiner_table(joiners: str) -> dict[int, None]:
    return dict.fromkeys(map(ord, joiners))


def member_terms(text: str | None, rules: TermRules = DEFAULT_RULES) -> list[str]:
    """The distinct terms of `text` a member can match, in order (a member ANDs them)."""
    if not text:
        return []
    if rules.fold_width:
        text = unicodedata.normalize("NFKC", text)
    if rules.joiners:
        text = text.translate(_joiner_table(rules.joiners))
    return list(dict.fromkeys(_term_pattern(rules.keep).findall(text)))
