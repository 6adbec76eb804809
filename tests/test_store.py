"""The union index (index.store) on each engine, and its Japanese analyzers (index.analysis).

Every test that takes the `engine` fixture (directly or through `store`, `open_index`,
`ndl_index`) runs twice: on whoosh (a directory under tmp_path) and on PostgreSQL (a private
schema, tests/index_stores.py). Tests of one engine's own machinery (whoosh's files and locks,
PostgreSQL's schemas and shared owners) take neither and say so.

Real NDL records (ndl_jpmarc21_enju_233.csv from ../shared/data) are clustered into Works
by index.dedup and indexed; tests that need them skip with a message when the data
directory is absent, and fail instead when CI=="true".
"""

from __future__ import annotations

import ast
import asyncio
import csv
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from yokodan import isbn as isbn_tools
from yokodan import Availability, Holding, Record, SearchQuery, Work
from index.analysis import terms
from index.dedup import WorkClusterer
from broker.members import MemberRegistry
from broker.search import SearchService
from broker.views import cached_view, facets_view
from connectors import HttpClient
from index.facets import Facets, facets_of, work_ndc, work_year
from index.store import MERGE_FACTOR, UnionIndex, UnionIndexError, UnionIndexInUse
from tests.conftest import SandboxedConsortium
from tests.index_stores import IndexStore, engine, postgres_admin, store  # noqa: F401  (fixtures)
from tests.writer_hooks import CommitGate
from index.years import parse_year

ROOT = Path(__file__).resolve().parents[1]
NDL_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bibliographic" / "ndl_jpmarc21_enju_233.csv"
MEMBERS = {"okayama-city": "岡山市", "kurashiki": "倉敷市", "tamano": "玉野市"}


# --- helpers -----------------------------------------------------------------------------


def _holding(member: str, branch: str, availability: Availability, word: str) -> Holding:
    return Holding(member=member, branch_id=f"{member}/{branch}", availability=availability, status_text=word)


def make_work(work_id: str, title: str, *, member: str = "okayama-city", available: bool = True, **fields: Any) -> Work:
    """A Work of one record with one copy, the way WorkClusterer builds them."""
    holding = (
        _holding(member, "chuo", Availability.AVAILABLE, "貸出可")
        if available
        else _holding(member, "chuo", Availability.ON_LOAN, "貸出中")
    )
    record_fields = {k: v for k, v in fields.items() if k in Record.model_fields}
    record = Record(member=member, local_id=work_id, title=title, holdings=[holding], **record_fields)
    work_fields = {k: v for k, v in fields.items() if k in Work.model_fields}
    return Work(work_id=work_id, title=title, records=[record], **work_fields)


# A real record (新潮文庫 吾輩は猫である), as the NDL catalogues it.
WAGAHAI = make_work(
    "9784101010014",
    "吾輩は猫である",
    title_reading="ワガハイ ワ ネコ デ アル",
    authors=["夏目, 漱石, 1867-1916"],
    author_readings=["ナツメ, ソウセキ, 1867-1916"],
    publisher="新潮社",
    year=2003,
    isbns=["9784101010014"],
    ndc="913.6",
)


@pytest.fixture
def open_index(store: IndexStore) -> Iterator[Callable[..., UnionIndex]]:
    """Opens UnionIndexes of the test's engine (short batch delay) and closes them after the test."""
    opened: list[UnionIndex] = []

    def _open(name: str = "ix", **kwargs: Any) -> UnionIndex:
        kwargs.setdefault("batch_delay_s", 0.01)
        ix = store.open(name, **kwargs)
        opened.append(ix)
        return ix

    yield _open
    for ix in opened:
        ix.close(timeout=5)


def indexed(ix: UnionIndex, works: list[Work], municipalities: dict[str, str] | None = None) -> UnionIndex:
    ix.submit(works, municipalities if municipalities is not None else MEMBERS)
    assert ix.flush(10), ix.stats()
    assert ix.stats().last_error is None, ix.stats().last_error
    return ix


def ids(ix: UnionIndex, **query: Any) -> list[str]:
    return [w.work_id for w in ix.search(SearchQuery(**query), limit=500).works]


# --- real NDL records ------------------------------------------------------------------------


def _ndl_rows() -> list[dict[str, str]]:
    if not NDL_CSV.is_file():
        message = f"shared data not found at {NDL_CSV} (expected ../shared/data beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with NDL_CSV.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _ndl_record(row: dict[str, str], n: int) -> Record:
    """One NDL row as a member's record, with one copy at one of three members."""
    member = list(MEMBERS)[n % 3]
    availability = Availability.AVAILABLE if n % 2 == 0 else Availability.ON_LOAN
    return Record(
        member=member,
        local_id=row["ndl_bib_id"],
        title=row["title"],
        title_reading=row["title_kana"] or None,
        authors=[a for a in row["authors"].split(" | ") if a],
        author_readings=[a for a in row["authors_kana"].split(" | ") if a],
        publisher=row["publisher"] or None,
        year=parse_year(row["date_statement"]),
        isbns=[row["isbn"]] if row["isbn"] and isbn_tools.to_isbn13(row["isbn"]) else [],
        ndc=row["ndc"] or None,
        jpno=row["jpno"] or None,
        holdings=[_holding(member, "chuo", availability, "貸出可" if n % 2 == 0 else "貸出中")],
    )


@pytest.fixture(scope="module")
def ndl_rows() -> list[dict[str, str]]:
    return _ndl_rows()


@pytest.fixture(scope="module")
def ndl_works(ndl_rows: list[dict[str, str]]) -> list[Work]:
    clusterer = WorkClusterer()
    clusterer.add(_ndl_record(row, n) for n, row in enumerate(ndl_rows))
    return clusterer.works()


@pytest.fixture(scope="module")
def ndl_index(engine: str, tmp_path_factory: pytest.TempPathFactory, ndl_works: list[Work]) -> Iterator[UnionIndex]:
    """The real records and 吾輩は猫である, indexed once (per engine) for the read-only tests."""
    stores = IndexStore(engine, tmp_path_factory.mktemp("ndl"))
    try:
        with stores.open("ndl", batch_delay_s=0.01) as ix:
            yield indexed(ix, [*ndl_works, WAGAHAI])
    finally:
        stores.drop()


# --- the package's shape -------------------------------------------------------------------

# whoosh names that are internals (snapshots, TOC files, crash recovery): one adapter only.
_WHOOSH_INTERNALS = frozenset({"TOC", "clean_files", "MultiReader", "EmptyReader", "FileIndex", "FileStorage"})


def _whoosh_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "whoosh":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "whoosh")
    return names


def test_whoosh_stays_behind_the_adapter() -> None:
    modules = sorted((ROOT / "index" / "store").glob("*.py"))
    engine_free = [p.name for p in modules if not p.name.startswith("whoosh_") and _whoosh_imports(p)]
    internals = {p.name: _whoosh_imports(p) & _WHOOSH_INTERNALS for p in modules}
    assert engine_free == []
    assert {name for name, used in internals.items() if used} == {"whoosh_backend.py"}


def _imports_of(path: Path, package: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == package:
            return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == package for a in node.names):
            return True
    return False


def test_psycopg_stays_behind_the_postgres_modules() -> None:
    modules = sorted((ROOT / "index" / "store").glob("*.py"))
    users = {p.name for p in modules if _imports_of(p, "psycopg") or _imports_of(p, "psycopg_pool")}
    assert users == {"postgres_backend.py"}
    assert not any(_imports_of(p, "whoosh") for p in modules if p.name.startswith("postgres_"))


# --- the analyzers ---------------------------------------------------------------------------


class TestAnalysis:
    def test_kanji_bigrams_and_index_time_unigrams(self) -> None:
        assert terms("電子書籍") == ["電子", "子書", "書籍"]
        assert terms("電子書籍", mode="index") == ["電", "電子", "子", "子書", "書", "書籍", "籍"]

    def test_single_cjk_character_is_a_unigram(self) -> None:
        assert terms("猫") == ["猫"]

    def test_latin_words_lowercased_and_runs_split(self) -> None:
        assert terms("CNNニュース") == ["cnn", "ニユ", "ユー", "ース"]
        assert terms("Ｍａｃ＆Office") == ["mac", "office"]

    def test_folding_matches_both_ways(self) -> None:
        assert terms("コンピューター") == terms("コンピュータ") == terms("こんぴゅーた")
        assert terms("ｿﾌﾄｳｪｱ") == terms("ソフトウェア") == terms("そふとうぇあ")

    def test_cjk_runs_bridge_spaces_and_punctuation_but_not_lines(self) -> None:
        assert "目漱" in terms("夏目, 漱石", mode="index")
        assert "イワ" in terms("ワガハイ ワ ネコ", mode="index")
        assert "目漱" not in terms("夏目\n漱石", mode="index")

    def test_reading_analyzer_drops_long_vowels(self) -> None:
        assert terms("びーる", drop_long_vowels=True) == terms("ビル", drop_long_vowels=True) == ["ビル"]
        assert terms("びーる") == ["ビー", "ール"]  # titles keep the medial ー (ビール != ビル)

    def test_query_terms_are_index_terms(self, ndl_rows: list[dict[str, str]]) -> None:
        """What a query for a whole title asks for is always among what the title indexed."""
        for row in ndl_rows:
            for text in (row["title"], row["title_kana"]):
                assert set(terms(text)) <= set(terms(text, mode="index")), text


class TestJapaneseSearch:
    def test_one_character_query(self, ndl_index: UnionIndex) -> None:
        assert ids(ndl_index, text="猫") == [WAGAHAI.work_id]

    def test_hiragana_query_finds_kanji_title_through_its_reading(self, ndl_index: UnionIndex) -> None:
        # 吾輩は猫である has no ネコ in its title; its reading ワガハイ ワ ネコ デ アル has.
        assert "ネコ" not in terms(WAGAHAI.title, mode="index")
        assert ids(ndl_index, text="ねこ") == [WAGAHAI.work_id]
        assert ids(ndl_index, text="ネコ") == [WAGAHAI.work_id]
        assert ids(ndl_index, text="ねこである") == [WAGAHAI.work_id]  # typed without the spaces
        assert ids(ndl_index, title="わがはい") == [WAGAHAI.work_id]

    def test_long_vowel_variants_match(self, open_index: Callable[..., UnionIndex], ndl_works: list[Work]) -> None:
        ix = indexed(open_index(), [*ndl_works, make_work("pc", "はじめてのコンピューター", year=2020)])
        assert "pc" in ids(ix, text="コンピュータ")
        # Real NDL titles write コンピュータ; the query with the final ー finds them too.
        real = [w.work_id for w in ndl_works if "コンピュータ" in w.title]
        assert len(real) == 2
        assert sorted(ids(ix, text="コンピューター")) == sorted([*real, "pc"])

    def test_half_width_katakana_matches_full_width(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = indexed(open_index(), [make_work("sw", "ソフトウェア工学の基礎"), make_work("hw", "ハードウェア入門")])
        assert ids(ix, text="ｿﾌﾄｳｪｱ") == ["sw"]
        assert ids(ix, text="ソフトウエア 工学") == ["sw"]

    def test_author_and_author_reading(self, ndl_index: UnionIndex) -> None:
        assert ids(ndl_index, author="夏目漱石") == [WAGAHAI.work_id]
        assert ids(ndl_index, author="なつめ") == [WAGAHAI.work_id]
        assert ids(ndl_index, text="漱石 猫") == [WAGAHAI.work_id]

    def test_words_are_anded(self, ndl_index: UnionIndex, ndl_works: list[Work]) -> None:
        both = ids(ndl_index, text="電子書籍 図書館")
        library = ids(ndl_index, text="図書館")
        assert both and len(both) < len(library)
        # Exactly the works both words find, each once.
        assert sorted(both) == sorted(w for w in ids(ndl_index, text="電子書籍") if w in set(library))
        assert ids(ndl_index, text="電子書籍 猫") == []

    def test_year_filter(self, ndl_index: UnionIndex, ndl_works: list[Work]) -> None:
        expected = [w.work_id for w in ndl_works if w.year == 2013 and "電子書籍" in w.title]
        assert expected
        found = ndl_index.search(SearchQuery(text="電子書籍", year=2013), limit=100).works
        assert sorted(w.work_id for w in found if w.work_id in expected) == sorted(expected)
        assert [w.work["year"] for w in found] == [2013] * len(found)

    def test_unsearchable_query_gives_nothing(self, ndl_index: UnionIndex) -> None:
        result = ndl_index.search(SearchQuery(text="・・・ ："))
        assert result.works == [] and result.total == 0


class TestIsbn:
    def test_isbn_13_and_10(self, ndl_index: UnionIndex, ndl_works: list[Work]) -> None:
        work = next(w for w in ndl_works if w.isbns)
        isbn13 = work.isbns[0]
        isbn10 = isbn_tools.to_isbn10(isbn13)
        assert isbn10 is not None
        for value in (isbn13, isbn10, f"{isbn13[:3]}-{isbn13[3]}-{isbn13[4:12]}-{isbn13[12]}"):
            assert ids(ndl_index, isbn=value) == [work.work_id]

    def test_isbn_typed_as_text_comes_first(self, ndl_index: UnionIndex) -> None:
        assert ids(ndl_index, text="4101010013")[0] == WAGAHAI.work_id
        assert ids(ndl_index, text="978-4-10-101001-4")[0] == WAGAHAI.work_id


class TestRanking:
    def test_exact_title_first(self, open_index: Callable[..., UnionIndex]) -> None:
        decoys = [
            make_work("d1", "こころの旅 : こころの旅"),
            make_work("d2", "こころと体のこころえ"),
            make_work("d3", "「こころ」を読む"),
        ]
        ix = indexed(open_index(), [*decoys, make_work("kokoro", "こころ", title_reading="ココロ")])
        assert ids(ix, text="こころ")[0] == "kokoro"
        assert ids(ix, title="ココロ")[0] == "kokoro"

    def test_exact_main_title_first_among_real_records(self, ndl_index: UnionIndex) -> None:
        # 156 NDL titles contain 電子書籍; one is 電子書籍の制作と販売 : 出版社は、どう作り…
        found = ndl_index.search(SearchQuery(text="電子書籍の制作と販売"), limit=5).works
        assert found[0].work["title"].startswith("電子書籍の制作と販売 :")
        assert found[0].score > 2 * (found[1].score if len(found) > 1 else 0)

    def test_title_outranks_publisher(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = indexed(
            open_index(),
            [make_work("pub", "料理の本", publisher="新潮社"), make_work("title", "新潮社の百年", publisher="新潮社")],
        )
        assert ids(ix, text="新潮社") == ["title", "pub"]


class TestFacets:
    def test_counts_over_all_matches(self, open_index: Callable[..., UnionIndex]) -> None:
        a = Work(
            work_id="a",
            title="図書館の歴史",
            year=2003,
            records=[
                Record(member="okayama-city", local_id="a1", title="図書館の歴史", ndc="010.2", year=2003,
                       holdings=[_holding("okayama-city", "chuo", Availability.AVAILABLE, "貸出可")]),
                Record(member="kurashiki", local_id="a2", title="図書館の歴史", ndc="010.2", year=2003,
                       holdings=[_holding("kurashiki", "chuo", Availability.ON_LOAN, "貸出中")]),
            ],
        )
        b = make_work("b", "図書館と電子書籍", member="kurashiki", available=False, year=1995, ndc="913.6")
        c = make_work("c", "学校図書館", member="tamano", available=False)
        ix = indexed(open_index(), [a, b, c, make_work("x", "関係のない本")])
        result = ix.search(SearchQuery(text="図書館"), limit=1)
        assert result.total == 3 and len(result.works) == 1
        facets = result.facets
        assert facets is not None
        assert facets.members == {"kurashiki": 2, "okayama-city": 1, "tamano": 1}
        assert facets.municipalities == {"倉敷市": 2, "岡山市": 1, "玉野市": 1}
        assert facets.decades == {1990: 1, 2000: 1}
        assert facets.ndc_classes == {"0": 1, "9": 1}
        assert facets.available_now == 1
        held = ix.search(SearchQuery(text="図書館"), members=["tamano", "okayama-city"])
        assert sorted(w.work_id for w in held.works) == ["a", "c"] and held.total == 2
        assert ix.search(SearchQuery(text="図書館"), facets=False).facets is None

    def test_blob_renders_a_result_line(self, ndl_index: UnionIndex) -> None:
        [hit] = ndl_index.search(SearchQuery(text="吾輩は猫である")).works
        line = hit.work
        assert line["title"] == "吾輩は猫である" and line["title_reading"] == "ワガハイ ワ ネコ デ アル"
        assert line["isbns"] == ["9784101010014"] and line["year"] == 2003 and line["members"] == ["okayama-city"]
        [branch] = line["holdings"]["okayama-city"]["branches"]
        assert branch["availability"] == "available" and branch["status_text"] == "貸出可"
        assert line["holdings"]["okayama-city"]["municipality"] == "岡山市"
        assert 0 <= hit.age_seconds < 60

    def test_real_records_ndc_classes(self, ndl_index: UnionIndex, ndl_rows: list[dict[str, str]]) -> None:
        result = ndl_index.search(SearchQuery(text="電子書籍"), limit=1)
        assert result.facets is not None and result.total >= 150
        classes = result.facets.ndc_classes
        assert max(classes, key=classes.__getitem__) == "0"  # 情報科学・図書館 (NDC 0xx)
        assert set(classes) <= {row["ndc"][:1] for row in ndl_rows if row["ndc"]}


def _facet_works() -> list[Work]:
    """Works that tell the facet rules apart: copies vs works, 禁帯出, picture books (E), a
    member with no municipality, a year only on a record, records disagreeing on the NDC."""
    a = Work(
        work_id="a",
        title="図書館の歴史",
        year=2003,
        records=[
            Record(member="okayama-city", local_id="a1", title="図書館の歴史", ndc="010.2", year=2003,
                   holdings=[_holding("okayama-city", "chuo", Availability.AVAILABLE, "貸出可"),
                             _holding("okayama-city", "kita", Availability.AVAILABLE, "貸出可")]),
            Record(member="kurashiki", local_id="a2", title="図書館の歴史", ndc="010.2", year=2003,
                   holdings=[_holding("kurashiki", "chuo", Availability.ON_LOAN, "貸出中")]),
        ],
    )
    b = Work(
        work_id="b",
        title="としょかんの えほん",
        records=[Record(member="kurashiki", local_id="b1", title="としょかんの えほん 図書館", ndc="E", year=1995,
                        holdings=[_holding("kurashiki", "chuo", Availability.LIBRARY_USE_ONLY, "禁帯出")])],
    )
    c = make_work("c", "図書館のひみつ", member="outside", available=False, year=2011, ndc="913.6")
    d = Work(
        work_id="d",
        title="学校図書館",
        year=1988,
        records=[
            Record(member=m, local_id=f"d{n}", title="学校図書館", ndc=ndc, holdings=[_holding(m, "chuo", Availability.ON_LOAN, "貸出中")])
            for n, (m, ndc) in enumerate([("tamano", "913"), ("okayama-city", "017"), ("kurashiki", "017")])
        ],
    )
    return [a, b, c, d]


class TestOneFacetDefinition:
    def test_live_and_cached_facets_of_the_same_works_are_equal(self, open_index: Callable[..., UnionIndex]) -> None:
        works = _facet_works()
        ix = indexed(open_index(), [*works, make_work("x", "関係のない本")])
        cached = ix.search(SearchQuery(text="図書館"), limit=1)
        assert cached.total == 4
        live = facets_of(works, MEMBERS)
        assert cached.facets == live
        assert cached_view(cached)["facets"] == facets_view(works, MEMBERS)
        # The values, so that the equality is not two equal mistakes: works, not copies.
        assert live == Facets(
            members={"kurashiki": 3, "okayama-city": 2, "outside": 1, "tamano": 1},
            municipalities={"倉敷市": 3, "岡山市": 2, "玉野市": 1},  # 'outside' has none: not counted as a town
            decades={1980: 1, 1990: 1, 2000: 1, 2010: 1},
            ndc_classes={"0": 2, "9": 1, "E": 1},
            available_now=2,  # a (on the shelf) and b (禁帯出: readable in the library today)
        )

    def test_work_rules_do_not_depend_on_record_order(self) -> None:
        d = _facet_works()[3]
        reversed_d = d.model_copy(update={"records": d.records[::-1]})
        assert work_ndc(d) == work_ndc(reversed_d) == "017"  # two records of three, whichever came first
        b = _facet_works()[1]
        assert work_year(b) == 1995

    async def test_live_search_and_its_cached_answer_have_equal_facets(
        self, okayama_sandbox: SandboxedConsortium, http: HttpClient, store: IndexStore
    ) -> None:
        consortium = okayama_sandbox.consortium
        municipalities = {m.id: m.municipality for m in consortium.members}
        with store.open("ix", batch_delay_s=0.0) as index:
            live = await SearchService(MemberRegistry(consortium, http), index=index).search(SearchQuery(author="夏目漱石"))
            assert len(live.works) > 1
            assert index.flush(10)
            cached = index.search(SearchQuery(author="夏目漱石"), limit=100)
            assert sorted(c.work_id for c in cached.works) == sorted(w.work_id for w in live.works)
            assert cached_view(cached)["facets"] == facets_view(live.works, municipalities)


class TestWriteBehind:
    def test_submit_and_search_never_wait_for_a_commit(
        self, open_index: Callable[..., UnionIndex], ndl_works: list[Work], tmp_path: Path
    ) -> None:
        gate = CommitGate(tmp_path / "gate")
        ix = indexed(open_index(before_commit=gate), ndl_works)
        gate.arm()
        ix.submit([WAGAHAI])
        assert gate.wait_in_commit(10), "the writer never reached its commit"
        try:
            started = time.perf_counter()
            ix.submit([make_work("later", "後で来た本")])
            result = ix.search(SearchQuery(text="電子書籍"))
            elapsed = time.perf_counter() - started
            assert elapsed < 0.05, f"submit + search took {elapsed * 1000:.1f} ms during a commit"
            assert result.total >= 150
            assert ids(ix, text="猫") == []  # a snapshot: the batch being committed is not visible yet
            assert ix.stats().queue_depth == 1
        finally:
            gate.release()
        assert ix.flush(10)
        assert ids(ix, text="猫") == [WAGAHAI.work_id]
        assert ids(ix, text="後で来た本") == ["later"]

    def test_full_queue_drops_oldest_batch(self, open_index: Callable[..., UnionIndex], tmp_path: Path) -> None:
        gate = CommitGate(tmp_path / "gate", armed=True)
        ix = open_index(before_commit=gate, max_queue_batches=2)
        ix.submit([make_work("w0", "最初の本")])
        assert gate.wait_in_commit(10)
        for n in range(1, 5):  # w1 and w2 are dropped, w3 and w4 stay queued
            ix.submit([make_work(f"w{n}", f"本その{n}")])
        stats = ix.stats()
        assert stats.dropped_batches == 2 and stats.queue_depth == 2
        gate.release()
        assert ix.flush(10)
        assert [w for n in range(5) for w in ids(ix, text=f"本その{n}")] == ["w3", "w4"]

    def test_batches_are_merged_into_one_commit(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = open_index(batch_delay_s=0.3, batch_size=1000)
        for n in range(20):
            ix.submit([make_work(f"w{n}", f"合同の本{n}")])
        assert ix.flush(10)
        stats = ix.stats()
        assert stats.committed_batches == 20 and stats.commits == 1 and stats.doc_count == 20

    def test_segments_stay_few_under_many_small_commits(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = open_index()
        for n in range(15):
            indexed(ix, [make_work(f"w{n}", f"小さな本{n}")])
            assert ix.stats().segments <= MERGE_FACTOR
        assert ix.stats().doc_count == 15 and ix.stats().commits == 15
        assert len(ids(ix, text="小さな本")) == 15

    def test_seen_again_merges_members(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = indexed(open_index(), [make_work("w", "銀河鉄道の夜", member="okayama-city")])
        indexed(ix, [make_work("w", "銀河鉄道の夜", member="kurashiki", available=False)])
        [hit] = ix.search(SearchQuery(text="銀河鉄道")).works
        assert hit.work["members"] == ["kurashiki", "okayama-city"]  # this answer's first, then what was kept
        assert ix.stats().doc_count == 1


    @pytest.mark.parametrize("others", [0, 9], ids=["alone", "among-9-others"])
    def test_resubmitted_work_is_listed_once(self, open_index: Callable[..., UnionIndex], others: int) -> None:
        """Issue 11 item 6: submit, search, resubmit, search listed the work twice (doc_count 1).

        Alone, the resubmit leaves its old segment wholly deleted and merged away; among 9
        others it stays with one deletion: a reader kept across the commit must see both."""
        ix = indexed(open_index(), [make_work(f"o{n}", f"別の本{n}") for n in range(others)] + [make_work("w", "銀河鉄道の夜")])
        assert ids(ix, text="銀河鉄道") == ["w"]
        held_by = {"okayama-city"}
        for member in ["okayama-city", "kurashiki", "tamano"]:
            indexed(ix, [make_work("w", "銀河鉄道の夜", member=member)])
            held_by.add(member)
            result = ix.search(SearchQuery(text="銀河鉄道"))
            assert [w.work_id for w in result.works] == ["w"] and result.total == 1, member
            assert ix.stats().doc_count == others + 1
            assert result.facets is not None and result.facets.members == {m: 1 for m in held_by}
        if others:
            assert sorted(ids(ix, text="別の本")) == [f"o{n}" for n in range(others)]

    def test_every_thread_sees_a_resubmitted_work_once(self, open_index: Callable[..., UnionIndex]) -> None:
        ix = indexed(open_index(), [make_work(f"o{n}", f"別の本{n}") for n in range(9)] + [make_work("w", "銀河鉄道の夜")])
        seen: list[list[str]] = []
        ready, go = threading.Barrier(3), threading.Event()

        def reader() -> None:
            ids(ix, text="銀河鉄道")  # this thread's snapshot, from before the resubmit
            ready.wait(5)
            go.wait(5)
            seen.append(ids(ix, text="銀河鉄道"))

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        ready.wait(5)
        indexed(ix, [make_work("w", "銀河鉄道の夜", member="kurashiki")])
        go.set()
        for thread in threads:
            thread.join(5)
        assert seen == [["w"], ["w"]]


class TestBounds:
    def test_size_bound_evicts_least_recently_updated(self, open_index: Callable[..., UnionIndex]) -> None:
        now = [1_800_000_000.0]
        ix = open_index(max_works=10, clock=lambda: now[0])
        for start in range(0, 15, 5):
            indexed(ix, [make_work(f"w{n:02d}", f"蔵書{n:02d} 共通") for n in range(start, start + 5)])
            now[0] += 60
        stats = ix.stats()
        assert stats.doc_count <= 10 and stats.evicted >= 5
        kept = sorted(ids(ix, text="共通"))
        assert len(kept) == stats.doc_count and len(set(kept)) == len(kept)
        assert kept[-5:] == [f"w{n:02d}" for n in range(10, 15)]
        assert not set(kept) & {f"w{n:02d}" for n in range(5)}

    def test_age_bound(self, open_index: Callable[..., UnionIndex]) -> None:
        now = [1_800_000_000.0]
        ix = indexed(open_index(max_age_days=30, clock=lambda: now[0]), [make_work("old", "古い本")])
        now[0] += 31 * 86400
        indexed(ix, [make_work("new", "新しい本")])
        assert ids(ix, text="本") == ["new"]
        assert ix.stats().evicted == 1

    def test_idle_sweep_removes_aged_works(self, open_index: Callable[..., UnionIndex]) -> None:
        now = [1_800_000_000.0]
        ix = indexed(open_index(max_age_days=1, evict_interval_s=0.05, clock=lambda: now[0]), [make_work("w", "本")])
        now[0] += 2 * 86400
        deadline = time.monotonic() + 5
        while ix.stats().doc_count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ix.stats().doc_count == 0


class TestPersistence:
    def test_reopen_non_empty_index(self, store: IndexStore, ndl_works: list[Work]) -> None:
        with store.open("ix", batch_delay_s=0.01) as ix:
            indexed(ix, [*ndl_works, WAGAHAI])
            before = ix.search(SearchQuery(text="電子書籍"), limit=5)
        with store.open("ix", batch_delay_s=0.01) as ix:
            assert ix.stats().doc_count == len(ndl_works) + 1
            after = ix.search(SearchQuery(text="電子書籍"), limit=5)
            assert [w.work_id for w in after.works] == [w.work_id for w in before.works]
            assert after.total == before.total
            indexed(ix, [make_work("added", "再開後の本")])
            assert ids(ix, text="再開後") == ["added"]

    def test_second_owner_is_refused_at_once(self, tmp_path: Path) -> None:
        """whoosh only: a directory has one owner (PostgreSQL's are shared: TestSharedPostgres)."""
        with UnionIndex.open(tmp_path / "ix"):
            started = time.perf_counter()
            with pytest.raises(UnionIndexInUse, match="in use by a live process"):
                UnionIndex.open(tmp_path / "ix")
            assert time.perf_counter() - started < 1.0, "open waited for the owner (it must leave waiting to open_async)"

    def test_open_never_sleeps(self, store: IndexStore, monkeypatch: pytest.MonkeyPatch) -> None:
        """Opening an index (on whoosh: one a killed writer left, stale lock file and temp TOC) never calls time.sleep."""
        with store.open("ix", batch_delay_s=0.01) as ix:
            indexed(ix, [WAGAHAI])
        if store.engine == "whoosh":
            (store.tmp_path / "ix" / "MAIN_WRITELOCK").write_text("")  # nobody holds it: a SIGKILLed writer's
            (store.tmp_path / "ix" / "_MAIN_9.toc.tmp1").write_bytes(b"half")

        def no_sleep(seconds: float) -> None:
            raise AssertionError(f"time.sleep({seconds}) while opening the union index")

        monkeypatch.setattr(time, "sleep", no_sleep)
        with store.open("ix", batch_delay_s=0.01) as ix:
            assert ids(ix, text="猫") == [WAGAHAI.work_id]
            assert not (store.tmp_path / "ix" / "_MAIN_9.toc.tmp1").exists()

    async def test_open_async_waits_for_the_owner_without_blocking_the_loop(self, tmp_path: Path) -> None:
        """whoosh only: a PostgreSQL index has no owner to wait for."""
        first = UnionIndex.open(tmp_path / "ix", batch_delay_s=0.01)
        indexed(first, [WAGAHAI])
        loop = asyncio.get_running_loop()
        gaps: list[float] = []

        async def ticker() -> None:
            last = loop.time()
            while True:
                await asyncio.sleep(0.01)
                gaps.append(loop.time() - last)
                last = loop.time()

        ticking = asyncio.create_task(ticker())
        releaser = threading.Timer(0.3, first.close)  # the previous owner shuts down meanwhile
        releaser.start()
        started = loop.time()
        try:
            second = await UnionIndex.open_async(tmp_path / "ix", wait_s=5, batch_delay_s=0.01)
        finally:
            ticking.cancel()
            releaser.join(5)
        try:
            assert 0.25 <= loop.time() - started < 3
            assert len(gaps) > 10 and max(gaps) < 0.25, f"the loop stalled {max(gaps) * 1000:.0f} ms"
            assert ids(second, text="猫") == [WAGAHAI.work_id]
        finally:
            second.close()

    async def test_cancelled_open_async_releases_the_directory(self, store: IndexStore) -> None:
        """cleanup_ctx cancelled mid-open (a shutdown during startup): the thread's index is closed."""
        opening = asyncio.create_task(store.open_async("ix"))
        await asyncio.sleep(0)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        reopened = await store.open_async("ix", wait_s=5)
        reopened.close()

    async def test_open_async_gives_up_after_wait_s(self, tmp_path: Path) -> None:
        """whoosh only: nothing owns a PostgreSQL index, so there is no owner to wait for."""
        with UnionIndex.open(tmp_path / "ix"):
            started = time.monotonic()
            with pytest.raises(UnionIndexInUse):
                await UnionIndex.open_async(tmp_path / "ix", wait_s=0.3)
            assert 0.25 <= time.monotonic() - started < 3


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from yokodan import Work
    from index.store import UnionIndex

    where, mode, schema = sys.argv[1], sys.argv[2], sys.argv[3]
    path = where if where.startswith("postgresql") else Path(where)
    options = {"schema": schema} if schema else {}
    state = {"committed": False}

    def hook():
        if mode == "in-commit" and state["committed"]:
            print("in-commit", flush=True)
            time.sleep(60)

    def works(start, n):
        return [Work(work_id=f"k{i}", title=f"耐障害性試験の本 第{i}巻", authors=["試験, 太郎"]) for i in range(start, start + n)]

    ix = UnionIndex.open(path, batch_delay_s=0.01, before_commit=hook, writer="thread", **options)  # the engine's own crash safety
    ix.submit(works(0, 50))
    assert ix.flush(30)
    state["committed"] = True
    print("committed", flush=True)
    start = 50
    while True:
        ix.submit(works(start, 400))
        start += 400
        ix.flush(30)
    """
)


class TestCrashSafety:
    @pytest.mark.parametrize("when", ["in-commit", "random"])
    def test_sigkilled_writer_leaves_a_usable_index(self, store: IndexStore, tmp_path: Path, when: str) -> None:
        script = tmp_path / "writer.py"
        script.write_text(_KILLED_WRITER)
        where, options = store.location("ix")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        child = subprocess.Popen(
            [sys.executable, str(script), str(where), when, options.get("schema", "")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "committed"
            if when == "in-commit":
                assert child.stdout.readline().strip() == "in-commit"  # lock held, segment half written
            else:
                time.sleep(random.uniform(0.05, 1.5))  # lands in add_document, the commit or between
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)

        with UnionIndex.open(where, batch_delay_s=0.01, lock_timeout_s=2, **options) as ix:
            if store.engine == "whoosh":
                # The dead writer's pool directory, temp TOC and unfinished segment files are gone.
                path = Path(where)
                assert not (path / "MAIN.tmp").exists()
                assert {f.suffix for f in path.iterdir()} <= {".seg", ".toc", ".json", ""}, sorted(path.iterdir())
            assert ids(ix, text="耐障害性試験 第0巻") == ["k0"]
            count = ix.stats().doc_count
            assert count >= 50 and (count - 50) % 400 == 0  # whole batches only
            assert ix.search(SearchQuery(text="耐障害性試験")).total == count
            indexed(ix, [make_work("after", "復旧後の本")])
            assert ids(ix, text="復旧後") == ["after"]
            assert ix.stats().doc_count == count + 1


class TestDamage:
    """whoosh's directory and files; PostgreSQL's schemas: TestPostgresSchema."""

    def test_path_is_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "ix").write_text("not an index")
        with pytest.raises(UnionIndexError, match="not a directory"):
            UnionIndex.open(tmp_path / "ix")

    def test_foreign_directory(self, tmp_path: Path) -> None:
        (tmp_path / "ix").mkdir()
        (tmp_path / "ix" / "notes.txt").write_text("mine")
        with pytest.raises(UnionIndexError, match="not a Yokodan union index"):
            UnionIndex.open(tmp_path / "ix")

    def _built(self, tmp_path: Path) -> Path:
        with UnionIndex.open(tmp_path / "ix", batch_delay_s=0.01) as ix:
            indexed(ix, [WAGAHAI, make_work("w", "壊れる前の本")])
        return tmp_path / "ix"

    def test_garbage_toc(self, tmp_path: Path) -> None:
        path = self._built(tmp_path)
        [toc] = path.glob("_MAIN_*.toc")
        toc.write_bytes(b"\x00garbage" * 10)
        with pytest.raises(UnionIndexError, match="unreadable"):
            UnionIndex.open(path)

    def test_truncated_segment(self, tmp_path: Path) -> None:
        path = self._built(tmp_path)
        for segment in path.glob("MAIN_*.seg"):
            segment.write_bytes(segment.read_bytes()[:40])
        with pytest.raises(UnionIndexError, match="unreadable"):
            UnionIndex.open(path)

    def test_other_schema_version(self, tmp_path: Path) -> None:
        path = self._built(tmp_path)
        (path / "yokodan-union-index.json").write_text('{"schema_version": 0}')
        with pytest.raises(UnionIndexError, match="schema version"):
            UnionIndex.open(path)



# --- PostgreSQL only: a schema of its own, several owners at once --------------------------


@pytest.fixture
def pg_store(tmp_path: Path) -> Iterator[IndexStore]:
    stores = IndexStore("postgresql", tmp_path)
    try:
        yield stores
    finally:
        stores.drop()


class TestSharedPostgres:
    def test_two_indexes_on_one_schema_see_each_others_works(self, pg_store: IndexStore) -> None:
        """Two broker nodes' indexes: what one commits the other finds, merged, not duplicated."""
        with pg_store.open("shared", batch_delay_s=0.01) as a, pg_store.open("shared", batch_delay_s=0.01) as b:
            indexed(a, [make_work("w", "銀河鉄道の夜", member="okayama-city")])
            assert ids(b, text="銀河鉄道") == ["w"]
            indexed(b, [make_work("w", "銀河鉄道の夜", member="kurashiki", available=False)])
            [hit] = a.search(SearchQuery(text="銀河鉄道")).works
            assert hit.work["members"] == ["kurashiki", "okayama-city"]  # b merged what a had written
            assert a.stats().doc_count == b.stats().doc_count == 1

    def test_concurrent_writers_never_lose_a_members_holdings(self, pg_store: IndexStore) -> None:
        """Both nodes merge the same works at once: the advisory lock serialises their merges."""
        titles = [f"共有の本{n}" for n in range(60)]
        with pg_store.open("shared", batch_delay_s=0.0) as a, pg_store.open("shared", batch_delay_s=0.0) as b:
            for round_ in range(5):
                a.submit([make_work(f"w{n}", t, member="okayama-city") for n, t in enumerate(titles)], MEMBERS)
                b.submit([make_work(f"w{n}", t, member="kurashiki") for n, t in enumerate(titles)], MEMBERS)
            assert a.flush(20) and b.flush(20)
            assert a.stats().last_error is None and b.stats().last_error is None
            found = a.search(SearchQuery(text="共有の本"), limit=100)
            assert found.total == 60
            assert {tuple(sorted(w.work["members"])) for w in found.works} == {("kurashiki", "okayama-city")}

    def test_searches_and_writes_survive_the_server_dropping_connections(self, pg_store: IndexStore) -> None:
        ix = pg_store.open("ix", batch_delay_s=0.01)
        indexed(ix, [WAGAHAI])
        assert ids(ix, text="猫") == [WAGAHAI.work_id]
        _, options = pg_store.location("ix")
        admin = postgres_admin()
        try:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE %s",
                (f"yokodan-index:{options['schema']}:%",),
            ).fetchone()[0]
        finally:
            admin.close()
        assert dropped >= 2  # the writer's connection and the search pool's
        try:
            assert ids(ix, text="猫") == [WAGAHAI.work_id]  # retried on a fresh connection
            indexed(ix, [make_work("after", "再接続後の本")])  # the writer reconnected: no batch lost
            assert ids(ix, text="再接続後") == ["after"]
            assert ix.stats().failed_batches == 0
        finally:
            ix.close()

    def test_nodes_starting_together_create_the_schema_once(self, pg_store: IndexStore) -> None:
        """Four nodes open a fresh schema at the same moment: the migration lock lets one create it."""
        opened: list[UnionIndex] = []
        failures: list[BaseException] = []
        go = threading.Barrier(4)

        def start() -> None:
            go.wait(5)
            try:
                opened.append(pg_store.open("fresh", batch_delay_s=0.01))
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        try:
            assert failures == [] and len(opened) == 4
            indexed(opened[0], [WAGAHAI])
            assert [ids(ix, text="猫") for ix in opened] == [[WAGAHAI.work_id]] * 4
        finally:
            for ix in opened:
                ix.close()

    def test_a_hung_database_costs_a_search_about_two_seconds(self, pg_store: IndexStore) -> None:
        """The broker awaits the cached answer before streaming members: a blocked table must not hang it."""
        ix = pg_store.open("ix", batch_delay_s=0.01)
        indexed(ix, [WAGAHAI])
        _, options = pg_store.location("ix")
        admin = postgres_admin()
        try:
            with admin.transaction():  # an operator's migration holding the table
                admin.execute(f'LOCK TABLE "{options["schema"]}".works IN ACCESS EXCLUSIVE MODE')
                started = time.perf_counter()
                with pytest.raises(UnionIndexError, match="search failed: QueryCanceled"):
                    ix.search(SearchQuery(text="猫"))
                elapsed = time.perf_counter() - started
            assert 1.5 <= elapsed < 3.5, f"the search waited {elapsed:.1f} s"
            assert ids(ix, text="猫") == [WAGAHAI.work_id]  # the lock is gone: searches work again
        finally:
            admin.close()
            ix.close()

    def test_a_closed_index_refuses_searches(self, pg_store: IndexStore) -> None:
        ix = pg_store.open("ix", batch_delay_s=0.01)
        indexed(ix, [WAGAHAI])
        ix.close()
        with pytest.raises(UnionIndexError, match="closed"):
            ix.search(SearchQuery(text="猫"))


class TestPostgresSchema:
    def test_foreign_schema_is_refused(self, pg_store: IndexStore) -> None:
        where, options = pg_store.location("foreign")
        admin = postgres_admin()
        try:
            admin.execute(f'CREATE SCHEMA "{options["schema"]}"')
            admin.execute(f'CREATE TABLE "{options["schema"]}".notes (body text)')
        finally:
            admin.close()
        with pytest.raises(UnionIndexError, match="not a Yokodan union index"):
            UnionIndex.open(where, **options)

    def test_other_schema_version(self, pg_store: IndexStore) -> None:
        with pg_store.open("ix", batch_delay_s=0.01) as ix:
            indexed(ix, [WAGAHAI])
        where, options = pg_store.location("ix")
        admin = postgres_admin()
        try:
            admin.execute(f'UPDATE "{options["schema"]}".index_meta SET value = 0 WHERE key = \'analysis_version\'')
        finally:
            admin.close()
        with pytest.raises(UnionIndexError, match="schema version"):
            UnionIndex.open(where, **options)

    def test_bad_schema_name(self) -> None:
        with pytest.raises(UnionIndexError, match="lower-case SQL identifier"):
            UnionIndex.open("postgresql://127.0.0.1/test", schema='x"; DROP TABLE y; --')

    def test_unreachable_server_fails_at_once_without_the_password(self) -> None:
        started = time.perf_counter()
        with pytest.raises(UnionIndexError, match="cannot be used") as failure:
            UnionIndex.open("postgresql://yokodan:s3cret@127.0.0.1:9/test")  # port 9: nothing listens
        assert time.perf_counter() - started < 5
        assert "s3cret" not in str(failure.value) and "yokodan:***@127.0.0.1:9" in str(failure.value)
