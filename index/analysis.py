"""whoosh analyzers for Japanese catalogue text: folded character bigrams, Latin words.

There is no morphological analyser here (no MeCab/Sudachi dependency, no dictionary to
ship): Japanese titles are indexed as overlapping character bigrams, the approach of
Lucene's CJKAnalyzer, which needs no dictionary, never mis-segments a name and matches
any substring of two or more characters.

Pipeline, identical at index and query time (whoosh passes mode="index" / "query"):

1. `index.text.fold` on each line of the value: NFKC (half-width ｿﾌﾄｳｪｱ -> ソフトウエア,
   full-width ＡＢＣ -> abc), casefold, hiragana -> katakana, small kana -> large,
   word-final ー dropped, old kanji -> new. The project's one definition of "the same
   text"; dedup keys use it too, so the index and the clusterer agree.
2. Split into runs (`yokodan.terms.RUNS`, the definition member queries use too): CJK runs
   (kanji and kana) and word runs (Latin letters, digits, other scripts); punctuation and
   symbols are never part of a term. A CJK run continues across spaces and punctuation (・, comma, colon), so
   'ナツメ, ソウセキ' indexes the bigram 'メソ' and a query typed without the space
   ('夏目漱石', 'ねこである') still finds it; a word run or a line break ends it.
3. CJK runs become bigrams. With `unigrams=True` (titles, authors) every *kanji* is also
   indexed as a unigram, so a one-character query (猫, 森, 林) finds 吾輩は猫である. Kana
   unigrams are not indexed: a lone kana is a particle (の, は) or a typo, never worth
   searching, and they were the largest posting lists (whoosh pays per posting). At query
   time a run of two or more characters gives bigrams only; a run of one character gives
   its unigram if it is a kanji and nothing if it is a kana (a query 'こころ の 旅' is
   'こころ' AND '旅'). A one-character run at index time is always indexed as itself.
4. Word runs become one lowercase token each (fold has already casefolded and dropped
   Latin diacritics: Sōseki == soseki).

Callers split a query on whitespace first and analyse each word on its own (the words are
ANDed), so '入門 コンピュータ' does not need the bigram '門コ' that no title has.

The reading analyzer is the same with one more fold: every ー is dropped, as `key` does.
Readings are written by hand in each OPAC and disagree on long vowels (ハーモニー /
ハアモニー is rare, but 'ビール' typed as 'びーる' or 'びいる' is common); a reading match is
a recall aid, the title field decides the ranking.

Multi-valued fields (several titles, authors) are passed joined with '\\n': `fold` would
collapse the newline, so each line is folded on its own and a line break is a hard run
boundary (no bigram spans two authors).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from whoosh.analysis import Token, Tokenizer

from index.text import fold
from yokodan.terms import RUNS

# Runs of term characters: the project's one definition (yokodan.terms), shared with the
# member queries the connectors build, so the index and the members cut a query alike.
_RUNS = RUNS
_KANA = re.compile(r"[\u3041-\u30ff\u31f0-\u31ff]")


def segments(text: str) -> Iterator[tuple[bool, str]]:
    """(is_cjk, run) pairs of folded text; adjacent CJK runs separated only by
    spaces/punctuation are joined into one run. Lines are separate."""
    for line in text.split("\n"):
        folded = fold(line)
        if not folded:
            continue
        pending: list[str] = []
        for match in _RUNS.finditer(folded):
            cjk = match.group(1)
            if cjk is not None:
                pending.append(cjk)
                continue
            if pending:
                yield True, "".join(pending)
                pending = []
            yield False, match.group(2)
        if pending:
            yield True, "".join(pending)


def terms(text: str, *, mode: str = "query", unigrams: bool = True, drop_long_vowels: bool = False) -> list[str]:
    """The term texts `JapaneseTokenizer` produces for `text` (for tests and query building)."""
    tokenizer = JapaneseTokenizer(unigrams=unigrams, drop_long_vowels=drop_long_vowels)
    return [t.text for t in tokenizer(text, mode=mode)]


class JapaneseTokenizer(Tokenizer):
    """fold -> CJK bigrams (+ kanji unigrams at index time) and lowercase words. See the module doc."""

    def __init__(self, *, unigrams: bool = True, drop_long_vowels: bool = False) -> None:
        self.unigrams = unigrams
        self.drop_long_vowels = drop_long_vowels

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, JapaneseTokenizer)
            and other.__class__ is self.__class__
            and other.unigrams == self.unigrams
            and other.drop_long_vowels == self.drop_long_vowels
        )

    def __hash__(self) -> int:
        return hash((self.__class__.__name__, self.unigrams, self.drop_long_vowels))

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: object,
    ) -> Iterator[Token]:
        # One Token object, re-yielded with new attributes: whoosh's convention (object
        # creation per token is the analyzer's main cost). Character offsets refer to the
        # folded text (folding can shorten it); nothing here highlights, so that is enough.
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        token.boost = 1.0
        token.stopped = False
        if not tokenize:
            token.original = token.text = value
            token.pos = start_pos
            token.startchar, token.endchar = start_char, start_char + len(value)
            yield token
            return
        querying = mode == "query"
        with_unigrams = self.unigrams and not querying
        pos = start_pos
        offset = start_char
        for is_cjk, run in segments(value):
            if not is_cjk:
                token.text = run
                if keeporiginal:
                    token.original = run
                token.pos = pos
                token.startchar, token.endchar = offset, offset + len(run)
                pos += 1
                offset += len(run) + 1
                yield token
                continue
            if self.drop_long_vowels and "ー" in run:
                run = run.replace("ー", "")
                if not run:
                    continue
            n = len(run)
            if n == 1:
                if querying and _KANA.match(run):
                    continue  # a lone kana: never indexed as a unigram inside a run
                texts: list[str] = [run]
            elif with_unigrams:
                # Kanji unigram i (if any) then bigram i, so the stream stays position-ordered.
                texts = []
                for i in range(n - 1):
                    if not _KANA.match(run[i]):
                        texts.append(run[i])
                    texts.append(run[i : i + 2])
                if not _KANA.match(run[-1]):
                    texts.append(run[-1])
            else:
                texts = [run[i : i + 2] for i in range(n - 1)]
            for text in texts:
                token.text = text
                if keeporiginal:
                    token.original = text
                token.pos = pos
                token.startchar, token.endchar = offset, offset + len(text)
                pos += 1
                offset += 1
                yield token
            offset += 1


def JapaneseAnalyzer(*, unigrams: bool = True) -> JapaneseTokenizer:
    """Titles, authors (unigrams=True), publishers (False): fold + CJK bigrams + Latin words."""
    return JapaneseTokenizer(unigrams=unigrams)


def ReadingAnalyzer() -> JapaneseTokenizer:
    """Katakana readings (ヨミ): fold + bigrams, no unigrams, every ー dropped on both sides."""
    return JapaneseTokenizer(unigrams=False, drop_long_vowels=True)
