"""One bibliographic work of the sandbox's shared catalogue, before any member catalogues it.

A `CatalogueWork` is the "true" book; each member's record of it (ISBN written
its own way, reading sometimes left out, its own copies) is derived from it in
`sandbox.holdings` and `sandbox.marc`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yokodan import isbn as isbn_tools
from yokodan import MaterialType


@dataclass(frozen=True, slots=True)
class Author:
    name: str  # as printed on the title page (245$c): "夏目漱石", "J.R.R. Tolkien"
    heading: str  # catalogue heading (100/700 $a): "夏目, 漱石", "Tolkien, J. R. R."
    reading: str | None = None  # katakana heading (880 $a): "ナツメ, ソウセキ"
    role: str = "著"  # 著 / 訳 / 作 / 絵 / 編; "" for Western statements of responsibility


@dataclass(frozen=True, slots=True)
class Isbn:
    """An ISBN kept in its parts, so it can be written hyphenated as well as compact."""

    group: str  # "4" for Japan, "0" for English-language
    registrant: str  # publisher prefix: "10" 新潮社, "480" 筑摩書房 …
    publication: str  # the title number; group + registrant + publication = 9 digits
    prefix: str = "978"
    check_digit: str = field(init=False)
    isbn13: str = field(init=False)
    isbn10: str | None = field(init=False)

    def __post_init__(self) -> None:
        body = self.prefix + self.group + self.registrant + self.publication
        if len(body) != 12 or not body.isdigit():
            raise ValueError(f"ISBN parts must make 9 digits after the prefix: {self}")
        # yokodan.isbn keeps its check-digit arithmetic private; asking its public
        # validator which digit fits keeps one implementation of the rule.
        check = next(d for d in "0123456789" if isbn_tools.is_valid_isbn13(body + d))
        # Computed once: holdings and search fields of every member read these.
        object.__setattr__(self, "check_digit", check)
        object.__setattr__(self, "isbn13", body + check)
        object.__setattr__(self, "isbn10", isbn_tools.to_isbn10(body + check))

    @property
    def hyphenated(self) -> str:
        return "-".join((self.prefix, self.group, self.registrant, self.publication, self.check_digit))


@dataclass(frozen=True, slots=True)
class CatalogueWork:
    work_id: str  # stable across seeds for core works ("soseki-kokoro"), "g00042" for filler
    title: str  # 245$a without ISBD punctuation
    title_reading: str | None  # katakana, words separated by spaces (NDL style); None for Western titles
    authors: tuple[Author, ...]  # first is the main entry (100), the rest added entries (700)
    publisher: str
    place: str  # 264/260 $a
    year: int
    isbn: Isbn | None  # None for pre-ISBN books, most serials and AV
    ndc: str  # Nippon Decimal Classification, 9th ed.: "913.6", "E" for picture books
    language: str  # MARC language code: "jpn", "eng"
    material_type: MaterialType
    collection: str  # shelf collection: 一般 / 文庫 / 児童 / 参考 / 視聴覚 / 雑誌
    popularity: float  # ~1 on average; decides how many members hold it
    volume: str | None = None  # 245$n: 上 / 下 / 第1巻 / BOOK1
    edition: str | None = None  # 250$a: 改版 / 新訳版 / 第7版
    set_id: str | None = None  # volumes of one set share it: a library holds the whole set or none

    @property
    def isbn13(self) -> str | None:
        return self.isbn.isbn13 if self.isbn else None

    @property
    def holding_key(self) -> str:
        """What holding decisions hash on: the set for series volumes, else the work."""
        return self.set_id or self.work_id

    @property
    def responsibility(self) -> str:
        """The 245$c statement: "ジョージ・オーウェル 著 ; 高橋和久 訳"."""
        return " ; ".join(f"{a.name} {a.role}".strip() for a in self.authors)
