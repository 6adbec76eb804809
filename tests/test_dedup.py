"""WorkClusterer: records from several members -> works, with real NDL / CiNii records.

The last tests cluster the real CSVs from ../shared/data and skip (with a message) when the
directory is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from yokodan import isbn as isbn_tools
from yokodan import Record
from index.dedup import WorkClusterer
from index.years import parse_year

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bibliographic"
needs_data = pytest.mark.shared_data("data/bibliographic")  # skips with a message, fails under CI (conftest)

_serial = iter(range(1_000_000))


def rec(member: str = "ndl", **fields: Any) -> Record:
    fields.setdefault("local_id", f"id{next(_serial)}")
    return Record(member=member, **fields)


# Real records (NDL SRU / OpenSearch, ndl_cinii_records_from_enju_fixtures.csv and
# ndl_jpmarc21_enju_233.csv), as the NDL sends them.
ANGOU: dict[str, Any] = {
    "title": "暗号技術入門 : 秘密の国のアリス",
    "title_reading": "アンゴウ ギジュツ ニュウモン : ヒミツ ノ クニ ノ アリス",
    "authors": ["結城, 浩, 1963-"],
    "author_readings": ["ユウキ, ヒロシ, 1963-"],
    "publisher": "ソフトバンククリエイティブ",
    "year": parse_year("2008.12"),
    "isbns": ["978-4-7973-5099-9"],
    "jpno": "21512298",
}
TENCHI_2009: dict[str, Any] = {
    "title": "天地明察",
    "title_reading": "テンチ メイサツ",
    "authors": ["冲方, 丁, 1977-"],
    "publisher": "角川書店 / 角川グループパブリッシング (発売)",
    "year": 2009,
    "isbns": ["978-4-04-874013-5"],
}
TENCHI_2012 = dict(TENCHI_2009, year=2012, isbns=["978-4-04-100292-6"])
KOKUU_UPPER: dict[str, Any] = {
    "title": "虚空の冠 : 覇者たちの電子書籍戦争. 上巻",
    "title_reading": "コクウ ノ カン : ハシャタチ ノ デンシ ショセキ センソウ",
    "authors": ["楡, 周平"],
    "publisher": "新潮社",
    "year": 2013,
    "isbns": ["978-4-10-133575-9"],
}
KOKUU_LOWER = dict(KOKUU_UPPER, title="虚空の冠 : 覇者たちの電子書籍戦争. 下巻", isbns=["978-4-10-133576-6"])


class TestIdentifiers:
    def test_isbn10_and_isbn13_merge(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add([rec(**ANGOU)])
        clusterer.add([rec("okayama", title="暗号技術入門", authors=["結城浩 著"], isbns=["4797350997"], year=2008)])
        [work] = clusterer.works()
        assert len(work.records) == 2
        assert work.isbns == ["9784797350999"]
        assert work.match_reasons == ["isbn"]

    def test_isbn_with_hyphens_or_fullwidth(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add([rec(**ANGOU), rec("kumamoto", title="ANGOU", isbns=["９７８４７９７３５０９９９"])])
        assert len(clusterer.works()) == 1

    def test_jpno(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add([rec(**ANGOU), rec("aomori", title="暗号技術入門", jpno="JP 21512298")])
        [work] = clusterer.works()
        assert work.match_reasons == ["jpno"]

    def test_same_isbn_but_other_volume_does_not_merge(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add(
            [
                rec(title="ノルウェイの森 上", isbns=["9784062748681"]),
                rec(title="ノルウェイの森 下", isbns=["9784062748681"]),
            ]
        )
        assert len(clusterer.works()) == 2


class TestVolumes:
    def test_upper_and_lower_never_merge(self) -> None:
        """Same title, author, year and publisher: only the volume differs (real NDL pair)."""
        clusterer = WorkClusterer()
        clusterer.add([rec(**KOKUU_UPPER), rec(**KOKUU_LOWER)])
        # Re-catalogued copies without ISBN: the volume in the field, in brackets, or numbered.
        clusterer.add(
            [
                rec("okayama", title="虚空の冠", volume="下", authors=["楡周平 著"], year=2013, publisher="新潮社"),
                rec("kumamoto", title="虚空の冠 (上)", authors=["楡周平 著"], year=2013, publisher="新潮社"),
                rec("aomori", title="虚空の冠 : 覇者たちの電子書籍戦争", volume="1", authors=["楡, 周平"], year=2013),
            ]
        )
        works = clusterer.works()
        assert len(works) == 2
        for work in works:
            volumes = {r.volume or r.title[-2:] for r in work.records}
            assert ("下" in str(volumes)) != ("上" in str(volumes) or "1" in volumes)

    def test_edo_volumes_never_merge(self) -> None:
        # Real Ishikawa records: いきじもの 上 / 下, same compiler, publisher and year.
        common: dict[str, Any] = {
            "authors": ["車大∥編"],
            "publisher": "橘栄堂勝田善助",
            "year": 1808,
            "title_reading": "イキジモノ",
        }
        clusterer = WorkClusterer()
        clusterer.add([rec(title="いきじもの 上", **common), rec(title="いきじもの 下", **common)])
        clusterer.add(
            [rec("b", title="いきじもの", volume="上巻", **common), rec("b", title="いきじもの (下)", **common)]
        )
        works = clusterer.works()
        assert sorted(len(w.records) for w in works) == [2, 2]
        assert {w.volume for w in works} == {"上", "下"}

    def test_set_record_is_not_a_volume(self) -> None:
        # Real NDL: '一休ばなし : 4巻' (the set) and its digitised volume '[1]'.
        clusterer = WorkClusterer()
        clusterer.add([rec(title="一休ばなし : 4巻", year=1837), rec(title="一休ばなし : 4巻 [1]", year=1837)])
        assert len(clusterer.works()) == 2

    def test_shared_set_isbn(self) -> None:
        set_isbn = "9784101001999"  # hypothetical ISBN of the boxed set
        upper = dict(KOKUU_UPPER, isbns=[KOKUU_UPPER["isbns"][0], set_isbn])
        lower = dict(KOKUU_LOWER, isbns=[KOKUU_LOWER["isbns"][0], set_isbn])
        clusterer = WorkClusterer()
        clusterer.add([rec(**upper), rec(**lower)])
        # A member that catalogued the upper volume with the set's ISBN only.
        clusterer.add([rec("okayama", title="虚空の冠. 上巻", authors=["楡周平 著"], year=2013, isbns=[set_isbn])])
        works = clusterer.works()
        assert len(works) == 2
        upper_work = next(w for w in works if w.volume == "上")
        assert len(upper_work.records) == 2
        assert upper_work.match_reasons == ["isbn"]


class TestEditions:
    def test_hardback_and_bunko_are_separate_manifestations(self) -> None:
        """天地明察 2009 and its 2012 文庫 (real NDL OpenSearch records)."""
        clusterer = WorkClusterer()
        clusterer.add([rec(**TENCHI_2009), rec(**TENCHI_2012)])
        clusterer.add([rec("okayama", title="天地明察", authors=["冲方丁 著"], year=2012, edition="文庫")])
        works = clusterer.works()
        assert len(works) == 2
        assert sorted(len(w.records) for w in works) == [1, 2]

    def test_group_editions(self) -> None:
        clusterer = WorkClusterer(group_editions=True)
        clusterer.add([rec(**TENCHI_2009), rec(**TENCHI_2012)])
        clusterer.add([rec("okayama", title="天地明察", authors=["冲方丁 著"], year=2012, edition="文庫")])
        [work] = clusterer.works()
        assert len(work.records) == 3
        assert "title+author+edition" in work.match_reasons
        assert sorted(work.isbns) == ["9784041002926", "9784048740135"]

    def test_group_editions_still_keeps_volumes_apart(self) -> None:
        clusterer = WorkClusterer(group_editions=True)
        clusterer.add([rec(**KOKUU_UPPER), rec(**KOKUU_LOWER)])
        assert len(clusterer.works()) == 2

    def test_edition_hints_conflict(self) -> None:
        clusterer = WorkClusterer()
        base: dict[str, Any] = {"title": "ノルウェイの森", "authors": ["村上, 春樹, 1949-"], "year": 2004}
        clusterer.add([rec(edition="新装版", **base), rec("b", edition="愛蔵版", **base), rec("c", **base)])
        assert len(clusterer.works()) == 2  # the record without an edition statement joins one of them

    def test_braille_edition_is_another_manifestation(self) -> None:
        """Real NDL pair: the print book and its braille production, same title/author/year."""
        print_book: dict[str, Any] = {
            "title": "障害者の読書と電子書籍 : 見えない、見えにくい人の「読む権利」を求めて",
            "authors": ["日本盲人社会福祉施設協議会"],
            "publisher": "小学館",
            "year": 2015,
        }
        braille = dict(print_book, title="障害者の読書と電子書籍 見えない、見えにくい人の「読む権利」を求めて")
        braille["publisher"] = "日本点字図書館 (製作)"
        clusterer = WorkClusterer()
        clusterer.add([rec(**print_book), rec(**braille)])
        assert len(clusterer.works()) == 2


class TestFuzzy:
    def test_variant_without_isbn(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add([rec(**ANGOU)])
        variant = rec(
            "takarazuka",
            title="暗号技術入門：秘密の国のアリス /",
            title_reading="あんごう ぎじゅつ にゅうもん",
            authors=["結城浩 著"],
            publisher="ｿﾌﾄﾊﾞﾝｸｸﾘｴｲﾃｨﾌﾞ",
            year=parse_year("平成20年"),
        )
        clusterer.add([variant])
        [work] = clusterer.works()
        assert work.match_reasons == ["title+author+year"]

    def test_subtitle_dropped_and_year_off_by_one(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add([rec(**ANGOU)])
        clusterer.add(
            [rec("b", title="暗号技術入門", authors=["Yuki, Hiroshi"], author_readings=["ユウキ ヒロシ"], year=2009)]
        )
        assert len(clusterer.works()) == 1

    def test_years_far_apart_do_not_merge(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add([rec(**ANGOU)])
        clusterer.add([rec("b", title="暗号技術入門", authors=["結城浩 著"], year=2015)])
        assert len(clusterer.works()) == 2

    def test_same_title_other_author(self) -> None:
        # Real NDL OpenSearch records: three different books called アルベール・カミュ.
        clusterer = WorkClusterer()
        clusterer.add(
            [
                rec(title="アルベール・カミュ : 生きることへの愛", authors=["三野, 博司, 1949-"], year=2024),
                rec(title="アルベール=カミュ", authors=["井上, 正, 1953-"], year=2016),
                rec(title="アルベール・カミュ", authors=["Thody, Philip Malcolm Waller, 1928-"], year=1968),
            ]
        )
        assert len(clusterer.works()) == 3

    def test_other_subtitle_is_another_book(self) -> None:
        # Real NDL: two different books called キンドル・アンリミテッドの衝撃 in 2016.
        clusterer = WorkClusterer()
        clusterer.add(
            [
                rec(
                    title="キンドル・アンリミテッドの衝撃 : 読み放題サービスの出現で、出版社・企業・個人の稼ぎ方はこう変わる!",
                    authors=["IT研究会"],
                    year=2016,
                ),
                rec(
                    title="キンドル・アンリミテッドの衝撃 : あなたの読書生活に革命が起きる!",
                    authors=["IT研究会"],
                    year=2016,
                ),
            ]
        )
        assert len(clusterer.works()) == 2

    def test_annual_parts_do_not_merge(self) -> None:
        # Real NDL: one report per year, no ISBN, same publisher.
        common: dict[str, Any] = {
            "publisher": "インプレスR&Dインターネットメディア総合研究所 ; インプレスコミュニケーションズ (発売)"
        }
        clusterer = WorkClusterer()
        clusterer.add([rec(title=f"電子書籍ビジネス調査報告書. {y}", year=y, **common) for y in (2007, 2008, 2009)])
        clusterer.add([rec("b", title=f"電子書籍ビジネス調査報告書 {y}", year=y, **common) for y in (2007, 2008, 2009)])
        assert sorted(len(w.records) for w in clusterer.works()) == [2, 2, 2]


class TestIncremental:
    def test_ids_are_stable_across_batches(self) -> None:
        clusterer = WorkClusterer()
        first = clusterer.add([rec(**ANGOU), rec(**TENCHI_2009)])
        assert len(first) == 2
        ids_before = {w.work_id: len(w.records) for w in clusterer.works()}
        changed = clusterer.add([rec("b", title="天地明察", authors=["冲方丁 著"], year=2009), rec(**KOKUU_UPPER)])
        ids_after = {w.work_id for w in clusterer.works()}
        assert set(ids_before) <= ids_after  # nothing renamed
        tenchi = next(w for w in clusterer.works() if w.title == "天地明察")
        assert tenchi.work_id in changed and len(tenchi.records) == 2
        assert len(changed) == 2  # the changed 天地明察 and the new 虚空の冠

    def test_same_input_same_ids(self) -> None:
        batches = [
            [rec(**ANGOU), rec(**KOKUU_UPPER)],
            [rec(**KOKUU_LOWER), rec("b", title="暗号技術入門", year=2008, authors=["結城浩 著"])],
        ]
        runs = []
        for _ in range(2):
            clusterer = WorkClusterer()
            for batch in batches:
                clusterer.add(batch)
            runs.append([w.work_id for w in clusterer.works()])
        assert runs[0] == runs[1]
        assert len(set(runs[0])) == 3

    def test_work_lookup(self) -> None:
        clusterer = WorkClusterer()
        [work_id] = clusterer.add([rec(**ANGOU)])
        assert clusterer.work(work_id).title == "暗号技術入門 : 秘密の国のアリス"
        with pytest.raises(KeyError):
            clusterer.work("nope")

    def test_work_fields_from_the_best_record(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add([rec("b", title="暗号技術入門", authors=["結城浩 著"], year=2008, isbns=["4797350997"])])
        clusterer.add([rec(**ANGOU)])
        [work] = clusterer.works()
        assert work.title == ANGOU["title"]  # the record with a reading and an ISBN speaks for the work
        assert work.title_reading == ANGOU["title_reading"]
        assert work.members == ["b", "ndl"]

    def test_volume_shown_apart_from_the_title(self) -> None:
        clusterer = WorkClusterer()
        clusterer.add(
            [rec(title="地のはてから. 上", title_reading="チ ノ ハテ カラ", authors=["乃南, アサ, 1960-"], year=2010)]
        )
        [work] = clusterer.works()
        assert (work.title, work.volume) == ("地のはてから", "上")


# --- real CSVs ----------------------------------------------------------------------------
def _second_member_copy(row: dict[str, str], n: int) -> Record:
    """How another library re-keys an NDL record: ISBN-10, no reading, '結城浩 著', 全角, era year."""
    isbn13 = isbn_tools.to_isbn13(row["isbn"]) if row["isbn"] else None
    isbns = [isbn_tools.to_isbn10(isbn13) or isbn13] if isbn13 and n % 3 else []
    authors = []
    for heading in row["authors"].split(" | ")[:1]:
        parts = [p.strip() for p in heading.split(",")]
        if len(parts) < 2:
            authors.append(heading)
        elif parts[0].isascii():
            authors.append(f"{parts[1]} {parts[0]}")  # 'Stephen Windwalker'
        else:
            authors.append(f"{parts[0]}{parts[1]} 著")  # '結城浩 著'
    title = row["title"].translate({c: c + 0xFEE0 for c in range(0x21, 0x7F) if chr(c).isalnum()})
    if n % 4 == 0 and " : " in title and ". " not in title:
        head, rest = title.split(" : ", 1)
        last = rest.rsplit(" ", 1)[-1]
        title = f"{head} {last}" if any(ch.isdigit() for ch in last) and last != rest else head
    year = int(row["year_008"])
    date = f"平成{year - 1988}年" if 1989 <= year <= 2018 else str(year)
    return Record(
        member="okayama",
        local_id=row["ndl_bib_id"],
        title=title,
        authors=authors,
        publisher=row["publisher"].split(" ; ")[0] or None,
        year=parse_year(date),
        isbns=isbns,
    )


def _ndl_record(row: dict[str, str]) -> Record:
    return Record(
        member="ndl",
        local_id=row["ndl_bib_id"],
        title=row["title"],
        title_reading=row["title_kana"] or None,
        authors=[a for a in row["authors"].split(" | ") if a],
        author_readings=[a for a in row["authors_kana"].split(" | ") if a],
        publisher=row["publisher"] or None,
        year=parse_year(row["date_statement"]),
        isbns=[row["isbn"]] if row["isbn"] and isbn_tools.to_isbn13(row["isbn"]) else [],
        jpno=row["jpno"] or None,
    )


@needs_data
def test_real_ndl_records_and_their_copies() -> None:
    """233 real NDL records, each also sent by a second member re-keyed: 233 works of 2 records.

    The set contains same-title pairs that must stay apart (本と暮らせば 2014 / 2018 文庫,
    脳を創る読書 2011 / 2017, annual 電子書籍ビジネス調査報告書, CNN issues, 虚空の冠 上巻 / 下巻).
    """
    with (DATA / "ndl_jpmarc21_enju_233.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    clusterer = WorkClusterer()
    clusterer.add(_ndl_record(row) for row in rows)
    for start in range(0, len(rows), 20):
        clusterer.add(_second_member_copy(row, n) for n, row in enumerate(rows[start : start + 20], start))
    works = clusterer.works()
    mixed = [w for w in works if len({r.local_id for r in w.records}) != 1]
    assert not mixed, [[r.title for r in w.records] for w in mixed]
    assert len(works) == len(rows)
    assert all(len(w.records) == 2 for w in works)


@needs_data
def test_real_edo_volumes_stay_apart() -> None:
    """Old-book rows that list volumes ('X 上; X 下', 'X [1]; X [2]'): one record per entry."""
    with (DATA / "ndl_sru_edo_literature_grouped_758.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    clusterer = WorkClusterer()
    expected_distinct = 0
    for index, row in enumerate(rows):
        main = row["title_main"].split("; ")[0]
        entries = [e for e in row["title_full"].split("; ") if e.startswith(main + " ") and e != main]
        designations = {e[len(main) :].strip() for e in entries}
        if len(designations) < 2 or not all(d in ("上", "中", "下") or d.isdigit() for d in designations):
            continue
        expected_distinct += len(designations)
        common: dict[str, Any] = {
            "authors": row["creators_name"].split("; ")[:1] if row["creators_name"] else [],
            "publisher": row["publisher_name"].split("; ")[0] or None,
            "year": parse_year(row["issued"].split("; ")[0]),
        }
        clusterer.add(
            Record(member="ishikawa", local_id=f"{index}:{d}", title=f"{main} {d}", **common) for d in designations
        )
    works = clusterer.works()
    assert expected_distinct > 100
    assert len(works) == expected_distinct  # not one volume merged into another


# --- arrival order --------------------------------------------------------------------------
def _member_answers() -> list[list[Record]]:
    """Four members' answers over the real NDL CSV: the NDL records, a re-keyed copy (no
    reading, ISBN-10 or none, 全角, era years), and two sparse re-keyings (title, author and
    year only) that can join more than one candidate, the case where greedy clustering
    depends on who answered first."""
    with (DATA / "ndl_jpmarc21_enju_233.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ndl = [_ndl_record(row) for row in rows]
    okayama = [_second_member_copy(row, n) for n, row in enumerate(rows)]
    sparse_a = [r.model_copy(update={"member": "kurashiki", "isbns": [], "publisher": None}) for r in okayama]
    sparse_b = [
        r.model_copy(update={"member": "tamano", "isbns": [], "year": None, "title": r.title.split(" : ")[0]})
        for r in okayama
    ]
    return [ndl, okayama, sparse_a, sparse_b]


def _answer(works: list[Any]) -> list[tuple[str, list[tuple[str, str]], list[str]]]:
    return [(w.work_id, [(r.member, r.local_id) for r in w.records], w.match_reasons) for w in works]


@needs_data
def test_final_works_identical_over_20_arrival_orders() -> None:
    """Members answer in any order, in pages of 20: the settled works are the same list
    (ids, records in order, reasons), while the progressive clustering did differ."""
    import random

    pages = [answer[i : i + 20] for answer in _member_answers() for i in range(0, len(answer), 20)]
    finals, progressive = [], set()
    for seed in range(20):
        order = list(pages)
        random.Random(seed).shuffle(order)
        clusterer = WorkClusterer()
        for page in order:
            clusterer.add(page)
        finals.append(_answer(clusterer.works()))
        progressive.add(frozenset(frozenset((r.member, r.local_id) for r in w.records) for w in clusterer.progressive_works()))
    assert all(final == finals[0] for final in finals[1:])
    assert len(progressive) > 1, "the arrival orders never changed the progressive works: the test proves nothing"
    works = finals[0]
    # no two NDL manifestations (volumes, editions, annual parts) over-merged into one work
    assert all(sum(m == "ndl" for m, _ in records) == 1 for _, records, _ in works if any(m == "ndl" for m, _ in records))
    # the NDL record and its re-keyed copy always end in one work
    for local_id in {lid for _, records, _ in works for m, lid in records if m == "ndl"}:
        homes = [wid for wid, records, _ in works if ("ndl", local_id) in records or ("okayama", local_id) in records]
        assert len(homes) == 1, local_id


def test_settled_works_follow_later_answers() -> None:
    """works() is recomputed after each add, and work(id) still answers for progressive ids."""
    clusterer = WorkClusterer()
    [first] = clusterer.add([rec(**ANGOU)])
    assert [w.work_id for w in clusterer.works()] == [first]
    clusterer.add([rec(**TENCHI_2009)])
    assert len(clusterer.works()) == 2
    assert clusterer.work(first).title == ANGOU["title"]
