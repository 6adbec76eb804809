"""The SRU connector against a real catalogue server: Index Data Zebra 2.2.7 (Debian).

Two servers (session fixtures from tests/zebra_server.py):
* `zebra`     - our 17 records in tests/zebra/records/japanese-holdings.marcxml
                (夏目漱石 x5 incl. 明暗 上/下, twelve 図書館 titles, 852 and 952 holdings);
* `zebra_ndl` - the 233 real NDL MARC21 records of ../shared/data, checked against
                the flattened CSV of the same records.
Both skip locally without `zebrasrv` / ../shared/data and fail on CI (CI=true).
The last tests search `zebra_ndl` by punctuated titles as patrons type them (issue 11:
brackets, &, :, ・, quotes, full-width punctuation), through yokodan.terms.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from datetime import date

import pytest

from yokodan import isbn as isbnlib
from yokodan import Availability, Holding, Record, SearchQuery
from connectors.settings import TargetSettings
from connectors.errors import ProtocolDiagnostic
from connectors.http import HttpClient
from connectors.sru import SRUConnector, build_cql
from tests.test_query_terms import PUNCTUATED
from tests.zebra_server import NDL_CSV, ZebraServer

pytestmark = pytest.mark.zebra

INDEXES = {"title": "title", "author": "author", "isbn": "isbn", "text": "any", "year": "date"}
BRANCHES = {
    "中央図書館": "zebra/chuo",
    "CENTRAL": "zebra/chuo",
    "東図書館": "zebra/higashi",
    "EAST": "zebra/higashi",
    # 西分室 / WEST are deliberately unmapped
}
LIBRARY_TITLE_IDS = [f"YKD01{n:02d}" for n in range(1, 13)]  # the twelve 図書館 titles
SOSEKI_IDS = [f"YKD000{n}" for n in range(1, 6)]


def settings_for(server: ZebraServer, *, max_records: int = 5, **options: object) -> TargetSettings:
    return TargetSettings(
        member="zebra",
        kind="sru",
        endpoint=server.sru_url,
        timeout_s=5,
        max_records=max_records,
        branch_codes=BRANCHES,
        options={"cql_indexes": INDEXES, **options},
    )


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient() as client:
        yield client


@pytest.fixture
def conn(zebra: ZebraServer, http: HttpClient) -> SRUConnector:  # noqa: F811
    return SRUConnector(settings_for(zebra), http)


async def only(conn: SRUConnector, query: SearchQuery) -> Record:
    result = await conn.search(query)
    assert result.hits == 1, (query, result.hits, [r.local_id for r in result.records])
    assert len(result.records) == 1
    return result.records[0]


async def by_id(conn: SRUConnector, local_id: str) -> Record:
    result = await conn.search_cql(f"rec.id={local_id}", start=1, maximum=2)
    assert result.hits == 1, (local_id, result.hits)
    return result.records[0]


# ------------------------------------------------------------------ the server itself


async def test_fixture_serves_every_record(zebra: ZebraServer, conn: SRUConnector) -> None:  # noqa: F811
    assert zebra.sru_url == f"http://127.0.0.1:{zebra.port}/Default"
    assert zebra.records == 17
    # A bound against a hung indexer only: how fast Zebra starts is not this suite's to time (a loaded machine took 4 s)
    assert zebra.startup_s < 30.0, f"Zebra took {zebra.startup_s:.2f}s to index and start"
    result = await conn.search_cql("cql.allRecords=1", start=1, maximum=20)
    assert result.hits == 17
    assert sorted(r.local_id for r in result.records) == sorted(SOSEKI_IDS + LIBRARY_TITLE_IDS)


# ------------------------------------------------------------------ searching


async def test_japanese_title_substring(conn: SRUConnector) -> None:
    record = await only(conn, SearchQuery(title="猫", page_size=5, start=1))
    assert record.local_id == "YKD0001"
    assert record.member == "zebra"
    assert record.title == "吾輩は猫である"
    # NDL style: the katakana reading is the 880 linked to 245 with "$6 245-01/$1"
    assert record.title_reading == "ワガハイ ワ ネコ デ アル"
    assert record.source_format == "marcxml"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("輩は猫", "YKD0001"),  # a substring from the middle of the title
        ("猫である", "YKD0001"),
        ("コンピュータ", "YKD0101"),  # small kana and ー are tokens of their own: matches コンピューター
        ("ピュー", "YKD0101"),
        ("ワガハイ", "YKD0001"),  # the 880 reading is indexed as title too
        ("坊っちゃん", "YKD0003"),
    ],
)
async def test_title_substrings(conn: SRUConnector, title: str, expected: str) -> None:
    record = await only(conn, SearchQuery(title=title))
    assert record.local_id == expected


async def test_author_search(conn: SRUConnector) -> None:
    result = await conn.search(SearchQuery(author="夏目漱石", page_size=5))
    assert result.hits == 5
    assert sorted(r.local_id for r in result.records) == SOSEKI_IDS
    for record in result.records:
        # 100 $a "夏目, 漱石," (the record's punctuation); the search ignored it
        assert record.authors == ["夏目, 漱石"], record.authors
        assert record.author_readings == ["ナツメ, ソウセキ"], record.author_readings


async def test_author_and_year(conn: SRUConnector) -> None:
    result = await conn.search(SearchQuery(author="夏目漱石", year=2016))
    assert result.hits == 2
    assert sorted(r.local_id for r in result.records) == ["YKD0004", "YKD0005"]
    assert {r.year for r in result.records} == {2016}


async def test_text_search_all_words(conn: SRUConnector) -> None:
    result = await conn.search(SearchQuery(text="図書館 歴史"))
    assert sorted(r.local_id for r in result.records) == ["YKD0110", "YKD0111"]


@pytest.mark.parametrize(
    ("as_10", "as_13", "local_id", "catalogued"),
    [
        ("4910301011", "9784910301013", "YKD0001", "978-4-910301-01-3 (hyphenated ISBN-13)"),
        ("491030102X", "9784910301020", "YKD0002", "4-910301-02-X (hyphenated ISBN-10)"),
        ("4910301038", "9784910301037", "YKD0003", "4910301038 (ISBN-10)"),
        ("4-902861-02-x", "978-4-902861-02-0", "YKD0104", "4-902861-02-x (ISBN-10, lower-case check digit)"),
        ("4902861062", "9784902861068", "YKD0106", "9784902861068 (pbk.) (ISBN-13 with a qualifier)"),
    ],
)
async def test_isbn_10_and_13_find_the_same_record(
    conn: SRUConnector, as_10: str, as_13: str, local_id: str, catalogued: str
) -> None:
    expected = isbnlib.to_isbn13(as_13)
    assert isbnlib.to_isbn13(as_10) == expected  # the query model stores both as ISBN-13
    found_by_10 = await only(conn, SearchQuery(isbn=as_10))
    found_by_13 = await only(conn, SearchQuery(isbn=as_13))
    assert found_by_10.local_id == found_by_13.local_id == local_id, catalogued
    assert found_by_10.isbns == [expected], catalogued
    assert found_by_10.isbn_invalid == []


async def test_isbn_form_sent_to_zebra_does_not_matter(conn: SRUConnector) -> None:
    # Zebra indexes both forms, so the raw ISBN-10 (not what the connector sends) matches too.
    for cql in ("isbn=491030102X", "isbn=9784910301020", 'isbn="4-910301-02-x"'):
        result = await conn.search_cql(cql, start=1, maximum=5)
        assert [r.local_id for r in result.records] == ["YKD0002"], cql


async def test_no_hits(conn: SRUConnector) -> None:
    result = await conn.search(SearchQuery(title="存在しない書名"))
    assert result.hits == 0
    assert result.records == []


# ------------------------------------------------------------------ paging


async def test_paging_three_pages_of_five(conn: SRUConnector) -> None:
    # Zebra never sends nextRecordPosition: paging is computed from numberOfRecords.
    reference = await conn.search_cql('title="図書館"', start=1, maximum=20)
    assert reference.hits == 12
    order = [r.local_id for r in reference.records]
    assert sorted(order) == LIBRARY_TITLE_IDS

    pages = []
    for start in (1, 6, 11):
        result = await conn.search(SearchQuery(title="図書館", page_size=5, start=start))
        assert result.hits == 12, start
        pages.append([r.local_id for r in result.records])
    assert [len(p) for p in pages] == [5, 5, 2]
    seen = [local_id for page in pages for local_id in page]
    assert len(seen) == len(set(seen)) == 12, pages
    # positions: page k holds exactly records start..start+4 of the server's order
    assert pages == [order[0:5], order[5:10], order[10:12]]


async def test_page_size_capped_by_max_records(conn: SRUConnector) -> None:
    result = await conn.search(SearchQuery(title="図書館", page_size=20))
    assert result.hits == 12
    assert len(result.records) == 5  # settings.max_records


async def test_page_past_the_end_is_empty_not_an_error(conn: SRUConnector) -> None:
    # Zebra answers diagnostic 61 "First record position out of range" with numberOfRecords.
    result = await conn.search(SearchQuery(title="図書館", page_size=5, start=16))
    assert result.records == []
    assert result.hits == 12
    assert [d.code for d in result.diagnostics] == ["61"]


# ------------------------------------------------------------------ diagnostics


async def test_bad_cql_is_a_protocol_diagnostic(conn: SRUConnector) -> None:
    with pytest.raises(ProtocolDiagnostic) as caught:
        await conn.search_cql("title=(computer", start=1, maximum=5)
    error = caught.value
    assert error.diagnostics[0].code == "10"
    assert error.diagnostics[0].uri == "info:srw/diagnostic/1/10"
    assert error.diagnostics[0].message == "Query syntax error"
    assert error.reason == "diagnostic"
    assert error.member == "zebra"


@pytest.mark.parametrize(
    ("cql", "code"),
    [
        ("nosuchindex=猫", "16"),  # unsupported index
        ("title<猫", "19"),  # unsupported relation (only date supports < > on Zebra)
        ("title=吾*猫", "28"),  # masking in the middle of a term
        ("location==中央図書館", "16"),  # == only on indexes with a complete-field (p) form
    ],
)
async def test_other_fatal_diagnostics(conn: SRUConnector, cql: str, code: str) -> None:
    with pytest.raises(ProtocolDiagnostic) as caught:
        await conn.search_cql(cql, start=1, maximum=5)
    assert caught.value.diagnostics[0].code == code


async def test_complete_field_relation(conn: SRUConnector) -> None:
    # YAZ knows CQL == (not CQL 1.1 "exact"): whole 245 $a$b$n$p without punctuation
    whole = await conn.search_cql("title==吾輩は猫である", start=1, maximum=5)
    assert [r.local_id for r in whole.records] == ["YKD0001"]
    part = await conn.search_cql("title==吾輩", start=1, maximum=5)
    assert part.hits == 0


# ------------------------------------------------------------------ record fields


async def test_record_fields(conn: SRUConnector) -> None:
    record = await by_id(conn, "YKD0001")
    assert record.title == "吾輩は猫である"
    assert record.isbns == ["9784910301013"]  # catalogued as 978-4-910301-01-3
    assert record.year == 2003
    assert record.publisher == "新潮社"  # 264 $b "新潮社,"
    assert record.ndc == "913.6"  # 084 $2 njb/9
    assert record.jpno == "20401001"  # 015 $2 jnb
    assert record.volume is None

    record = await by_id(conn, "YKD0002")
    assert record.title == "こころ"
    assert record.title_reading == "ココロ"
    assert record.isbns == ["9784910301020"]  # catalogued as ISBN-10 4-910301-02-X
    assert record.year == 1991
    assert record.publisher == "岩波書店"  # 260 $b (older practice, as NDL)

    record = await by_id(conn, "YKD0108")  # corporate author, no ISBN
    assert record.authors == ["岡山市立中央図書館"]
    assert record.isbns == []
    assert record.year == 2008


@pytest.mark.parametrize(
    ("title", "ids", "reading"),
    [
        ("明暗", ["YKD0004", "YKD0005"], "メイアン"),
        ("図書館の歴史", ["YKD0110", "YKD0111"], "トショカン ノ レキシ"),
    ],
)
async def test_volumes_are_separate_records(conn: SRUConnector, title: str, ids: list[str], reading: str) -> None:
    result = await conn.search(SearchQuery(title=title))
    assert result.hits == 2
    records = sorted(result.records, key=lambda r: r.local_id)
    assert [r.local_id for r in records] == ids
    assert [r.volume for r in records] == ["上", "下"]  # 245 $n
    assert [r.title for r in records] == [title, title]  # the volume is not part of the title
    assert {r.title_reading for r in records} == {reading}
    assert len({r.isbns[0] for r in records}) == 2


async def test_dublin_core_schema(zebra: ZebraServer, http: HttpClient) -> None:  # noqa: F811
    conn = SRUConnector(settings_for(zebra, record_schema="dc"), http)
    record = await only(conn, SearchQuery(title="猫"))
    assert record.source_format == "dc"
    assert record.title == "吾輩は猫である"  # dc:title "吾輩は猫である /"
    assert record.isbns == ["9784910301013"]  # dc:identifier "URN:ISBN:978-4-910301-01-3"
    assert record.year == 2003  # dc:date "2003."
    assert record.publisher == "新潮社"  # dc:publisher "新潮社,"


# ------------------------------------------------------------------ holdings


def holding(record: Record, item_id: str) -> Holding:
    matches = [h for h in record.holdings if h.item_id == item_id]
    assert len(matches) == 1, (item_id, record.holdings)
    return matches[0]


async def test_holdings_from_852(conn: SRUConnector) -> None:
    record = await by_id(conn, "YKD0001")
    assert len(record.holdings) == 2
    chuo = holding(record, "YK0000101")
    assert chuo.member == "zebra"
    assert chuo.branch_id == "zebra/chuo"  # 852 $a 中央図書館 through branch_codes
    assert chuo.location == "中央図書館"
    assert chuo.collection == "文庫"  # 852 $b
    assert chuo.call_number == "913.6/ナ"  # 852 $h
    assert chuo.status_text == "貸出可"  # 852 $z, kept as sent
    assert chuo.availability is Availability.AVAILABLE
    higashi = holding(record, "YK0000102")
    assert higashi.branch_id == "zebra/higashi"
    assert higashi.status_text == "貸出中"
    assert higashi.availability is Availability.ON_LOAN


async def test_holdings_from_952(conn: SRUConnector) -> None:
    record = await by_id(conn, "YKD0002")
    assert len(record.holdings) == 2
    central = holding(record, "YK0000201")
    assert central.branch_id == "zebra/chuo"  # 952 $a/$b CENTRAL through branch_codes
    assert central.location == "CENTRAL"
    assert central.collection == "BUNKO"  # 952 $c
    assert central.call_number == "913.6/ナ"  # 952 $o
    assert central.status_text == "貸出中"  # 952 $z
    assert central.availability is Availability.ON_LOAN
    assert central.due_date == date(2030, 2, 15)  # 952 $q
    east = holding(record, "YK0000202")
    assert east.branch_id == "zebra/higashi"
    assert east.status_text == "貸出可"
    assert east.availability is Availability.AVAILABLE
    assert east.due_date is None


@pytest.mark.parametrize(("local_id", "item_id"), [("YKD0003", "YK0000301"), ("YKD0106", "YK0100005")])
async def test_library_use_only(conn: SRUConnector, local_id: str, item_id: str) -> None:
    # YKD0003: 852 $z 禁帯出; YKD0106: 952 $z 禁帯出 with $7 1 (Koha not-for-loan)
    copy = holding(await by_id(conn, local_id), item_id)
    assert copy.status_text == "禁帯出"
    assert copy.availability is Availability.LIBRARY_USE_ONLY
    assert copy.branch_id == "zebra/chuo"


@pytest.mark.parametrize(
    ("local_id", "item_id", "label"), [("YKD0103", "YK0100002", "西分室"), ("YKD0104", "YK0100003", "WEST")]
)
async def test_unmapped_branch_keeps_the_label(conn: SRUConnector, local_id: str, item_id: str, label: str) -> None:
    copy = holding(await by_id(conn, local_id), item_id)
    assert copy.branch_id is None
    assert copy.location == label


async def test_every_status_word_is_kept_and_mapped(conn: SRUConnector) -> None:
    expected = {
        "貸出可": Availability.AVAILABLE,
        "貸出中": Availability.ON_LOAN,
        "禁帯出": Availability.LIBRARY_USE_ONLY,
    }
    result = await conn.search_cql("cql.allRecords=1", start=1, maximum=20)
    copies = [h for r in result.records for h in r.holdings]
    assert len(copies) == 19
    assert {h.status_text for h in copies} == set(expected)
    for copy in copies:
        assert copy.availability is expected[copy.status_text], copy


# ------------------------------------------------------------------ real NDL records


def ndl_rows() -> list[dict[str, str]]:
    if not NDL_CSV.is_file():
        return []
    with NDL_CSV.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def has_katakana(text: str) -> bool:
    return any("ァ" <= ch <= "ヺ" for ch in text)


@pytest.fixture
def ndl(zebra_ndl: ZebraServer, http: HttpClient) -> SRUConnector:  # noqa: F811
    settings = TargetSettings(
        member="ndl",
        kind="sru",
        endpoint=zebra_ndl.sru_url,
        timeout_s=5,
        max_records=100,
        options={"cql_indexes": INDEXES},
    )
    return SRUConnector(settings, http)


@pytest.fixture(scope="module")
def ndl_csv(zebra_ndl: ZebraServer) -> dict[str, dict[str, str]]:  # noqa: F811
    return {row["ndl_bib_id"]: row for row in ndl_rows()}


async def all_ndl_records(ndl: SRUConnector) -> dict[str, Record]:
    records: dict[str, Record] = {}
    start = 1
    while True:
        result = await ndl.search_cql("cql.allRecords=1", start=start, maximum=100)
        records.update((r.local_id, r) for r in result.records)
        start += len(result.records)
        if not result.records or start > (result.hits or 0):
            return records



@pytest.mark.shared_data
async def test_ndl_fixture(zebra_ndl: ZebraServer, ndl: SRUConnector) -> None:  # noqa: F811
    assert zebra_ndl.records == 233
    assert zebra_ndl.startup_s < 30.0, f"Zebra took {zebra_ndl.startup_s:.2f}s to index 233 NDL records"
    result = await ndl.search_cql("cql.allRecords=1", start=1, maximum=0)
    assert result.hits == 233


@pytest.mark.shared_data
async def test_ndl_title_word(ndl: SRUConnector, ndl_csv: dict[str, dict[str, str]]) -> None:
    row = ndl_csv["024422362"]
    assert row["title"].startswith("図書館に通う")
    record = await only(ndl, SearchQuery(title="図書館に通う"))
    assert record.local_id == "024422362"
    assert record.title.startswith("図書館に通う")
    assert record.title_reading == "トショカン ニ カヨウ"  # 880 $6 245-01/$1 $a
    assert row["title_kana"].startswith(record.title_reading)
    assert record.isbns == [isbnlib.to_isbn13(row["isbn"])]
    assert record.year == int(row["year_008"])
    assert record.jpno == row["jpno"]
    assert record.holdings == []  # NDL bibliographic records carry no 852


@pytest.mark.shared_data
async def test_ndl_title_word_finds_every_csv_title(ndl: SRUConnector, ndl_csv: dict[str, dict[str, str]]) -> None:
    expected = {bib_id for bib_id, row in ndl_csv.items() if "図書館" in row["title"]}
    assert len(expected) >= 10
    result = await ndl.search(SearchQuery(title="図書館", page_size=100))
    found = {r.local_id: r for r in result.records}
    # the title index also covers series/740 titles, so Zebra may find a few more
    assert result.hits is not None and result.hits >= len(expected)
    assert expected <= set(found), expected - set(found)
    missing_reading = sorted(
        (bib_id, ndl_csv[bib_id]["title_kana"])
        for bib_id in expected
        if has_katakana(ndl_csv[bib_id]["title_kana"]) and not found[bib_id].title_reading
    )
    assert not missing_reading, f"kana reading (880 245-01/$1) not returned for {missing_reading}"


def _isbn_cases() -> list[tuple[str, str]]:
    """(ndl_bib_id, ISBN in the *other* form than catalogued): ISBN-10 for 978- ISBN-13s and vice versa."""
    cases = []
    rows = [r for r in ndl_rows() if r["isbn"]]
    thirteen = [r for r in rows if len(isbnlib.compact(r["isbn"])) == 13 and r["isbn"].startswith("978")]
    ten = [r for r in rows if len(isbnlib.compact(r["isbn"])) == 10]
    for row in thirteen[:4] + [r for r in thirteen if "図書館" in r["title"]][:2]:
        cases.append((row["ndl_bib_id"], isbnlib.to_isbn10(row["isbn"]) or ""))
    for row in ten:
        cases.append((row["ndl_bib_id"], isbnlib.to_isbn13(row["isbn"]) or ""))
    return cases or [("no-shared-data", "")]


@pytest.mark.shared_data
@pytest.mark.parametrize(("bib_id", "other_form"), _isbn_cases())
async def test_ndl_isbn_in_the_other_form(
    ndl: SRUConnector, ndl_csv: dict[str, dict[str, str]], bib_id: str, other_form: str
) -> None:
    row = ndl_csv[bib_id]
    record = await only(ndl, SearchQuery(isbn=other_form))
    assert record.local_id == bib_id
    assert record.isbns == [isbnlib.to_isbn13(row["isbn"])]


@pytest.mark.shared_data
async def test_ndl_every_record_matches_the_csv(ndl: SRUConnector, ndl_csv: dict[str, dict[str, str]]) -> None:
    records = await all_ndl_records(ndl)
    assert set(records) == set(ndl_csv)
    problems: list[str] = []
    for bib_id, row in ndl_csv.items():
        record = records[bib_id]
        if row["isbn"] and record.isbns != [isbnlib.to_isbn13(row["isbn"])]:
            problems.append(f"{bib_id} isbn {record.isbns} != {row['isbn']}")
        if row["year_008"].isdigit() and record.year != int(row["year_008"]):
            problems.append(f"{bib_id} year {record.year} != {row['year_008']}")
        if row["jpno"] and record.jpno != row["jpno"]:
            problems.append(f"{bib_id} jpno {record.jpno} != {row['jpno']}")
        if has_katakana(row["title_kana"]):
            reading = record.title_reading
            if not reading or not row["title_kana"].startswith(reading):
                problems.append(f"{bib_id} title_reading {reading!r}; CSV title_kana {row['title_kana']!r}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ punctuated titles (issue 11)
def _sru(server: ZebraServer, http: HttpClient) -> SRUConnector:
    settings = TargetSettings(
        member="ndl", kind="sru", endpoint=server.sru_url, timeout_s=5, max_records=20, options={"cql_indexes": INDEXES}
    )
    return SRUConnector(settings, http)


@pytest.mark.zebra
@pytest.mark.shared_data
@pytest.mark.parametrize(("bib_id", "typed"), PUNCTUATED)
async def test_zebra_finds_punctuated_titles(zebra_ndl: ZebraServer, http: HttpClient, bib_id: str, typed: str) -> None:  # noqa: F811
    conn = _sru(zebra_ndl, http)
    result = await conn.search(SearchQuery(title=typed))
    assert bib_id in [r.local_id for r in result.records], (typed, build_cql(SearchQuery(title=typed), INDEXES))


@pytest.mark.zebra
@pytest.mark.shared_data
@pytest.mark.parametrize("raw", ['title="(スリー)"', 'title="「EPUB戦記」"', 'title="iPad" and title="&"'])
async def test_zebra_finds_nothing_for_terms_sent_as_typed(zebra_ndl: ZebraServer, http: HttpClient, raw: str) -> None:  # noqa: F811
    """Why the terms matter: the same words as typed (the old query building) find nothing."""
    result = await _sru(zebra_ndl, http).search_cql(raw, maximum=5)
    assert result.hits == 0
