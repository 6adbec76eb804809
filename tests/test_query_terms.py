"""Query terms a member can match (yokodan.terms): punctuation separates, never reaches a member.

Against real servers: sandbox members of every query-building family (SRU, whose matching
copies Zebra's, both HTML OPAC products and Koha-style REST) serving punctuated NDL titles;
every member holding a title finds it by the title as a patron types it. The same against
Debian's Zebra with the 233 real NDL records is in tests/test_zebra_sru.py.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator

import pytest

from yokodan import MaterialType, SearchQuery
from yokodan.terms import RUNS, TermRules, member_terms
from connectors.errors import UnsupportedQuery
from connectors.http import HttpClient
from connectors.base import Connector
from connectors.html_opac import HtmlOpacConnector
from connectors.ils_rest import ILSRestConnector, build_query
from connectors.query_terms import term_rules
from connectors.settings import TargetSettings
from connectors.sru import SRUConnector, build_cql
from index.analysis import terms as index_terms
from sandbox import SandboxBranch, SandboxHost, SandboxMember
from sandbox.catalogue import Catalogue
from sandbox.works import Author, CatalogueWork, Isbn
from tests.zebra_server import NDL_CSV

INDEXES = {"text": "any", "title": "title", "author": "author", "isbn": "isbn", "year": "date"}

# (NDL bib id, the title as a patron types or pastes it): brackets, &, :, ・, quotes, ! + /,
# full-width punctuation and full-width letters.
PUNCTUATED = [
    ("023335588", "EPUB 3 (スリー) スタンダード・デザインガイド"),
    ("023335588", "ＥＰＵＢ ３（スリー）スタンダード・デザインガイド"),
    ("024397235", "iPad & iPad miniを100倍楽しむ本"),
    ("024397235", "iPad ＆ iPad miniを100倍楽しむ本"),
    ("027513958", "EPUB戦記 : 電子書籍の国際標準化バトル"),
    ("027513958", '"EPUB戦記"：電子書籍の国際標準化バトル'),
    ("027513958", "「EPUB戦記」"),
]


# ------------------------------------------------------------------ the terms themselves


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EPUB 3 (スリー)", ["EPUB", "3", "スリー"]),
        ("iPad & iPad mini", ["iPad", "mini"]),  # '&' is no term; a repeated term is sent once
        ("EPUB戦記 : 電子書籍", ["EPUB戦記", "電子書籍"]),
        ("スタンダード・デザインガイド", ["スタンダード", "デザインガイド"]),
        ('"猫"*', ["猫"]),
        ("「こころ」（新潮文庫）", ["こころ", "新潮文庫"]),
        ("ＥＰＵＢ　３！", ["EPUB", "3"]),  # full-width letters, space and ! folded by NFKC
        ("ｿﾌﾄｳｪｱ", ["ソフトウェア"]),
        ("O'Reilly", ["OReilly"]),  # apostrophes join, as Zebra's ICU chain does
        ("& : ・ ()", []),
        ("", []),
    ],
)
def test_member_terms(text: str, expected: list[str]) -> None:
    assert member_terms(text) == expected


def test_member_and_index_agree_on_what_a_term_character_is() -> None:
    """One definition: every character the index keeps is in a member term, punctuation in neither."""
    text = "EPUB 3 (スリー) スタンダード・デザインガイド & iPad"
    assert RUNS.pattern and [m.group(0) for m in RUNS.finditer(text)] == [
        "EPUB", "3", "スリー", "スタンダード", "デザインガイド", "iPad",
    ]  # fmt: skip
    member_chars = set("".join(member_terms(text)).lower())
    index_chars = set("".join(index_terms(text)).replace("ー", "")) - set("ーﾞ")
    assert index_chars - member_chars <= {"ー"}
    assert not (set("()&・") & (member_chars | index_chars))


def test_family_rules_are_data() -> None:
    # SQL LIKE members: an apostrophe separates, since "O'Reilly" contains neither 'OReilly'...
    assert member_terms("O'Reilly", term_rules("ils_rest")) == ["O", "Reilly"]
    assert member_terms("O'Reilly", term_rules("sru")) == ["OReilly"]
    # ...and a member's own options layer over its family's
    keeps_hyphen = term_rules("sru", {"keep": "-"}, member="m")
    assert member_terms("C-3PO (robot)", keeps_hyphen) == ["C-3PO", "robot"]
    raw = term_rules("sru", {"fold_width": False}, member="m")
    assert member_terms("ＥＰＵＢ（３）", raw) == ["ＥＰＵＢ", "３"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keeps": "-"}, "unknown key 'keeps'"),
        ({"fold_width": "yes"}, r"query_terms.fold_width: expected bool"),
        ({"keep": "'"}, "both kept and joined"),
        ("keep", "must be a table"),
    ],
)
def test_broken_term_rules_name_the_member_and_field(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        term_rules("sru", options, member="kurashiki")
    assert "kurashiki" in str(caught.value)


def test_cql_never_carries_brackets_or_quotes_and_kept_ones_are_escaped() -> None:
    cql = build_cql(SearchQuery(title='EPUB 3 (スリー) "標準"', author="林, 拓也"), INDEXES)
    assert cql == 'title="EPUB" and title="3" and title="スリー" and title="標準" and author="林" and author="拓也"'
    kept = TermRules(keep='"\\*')
    assert build_cql(SearchQuery(title='a"b c\\d e*'), INDEXES, kept) == 'title="a\\"b" and title="c\\\\d" and title="e\\*"'


def test_a_query_of_punctuation_only_is_refused_not_sent() -> None:
    with pytest.raises(UnsupportedQuery, match="empty query"):
        build_cql(SearchQuery(title="「」 & ・"), INDEXES)
    with pytest.raises(UnsupportedQuery, match="empty query"):
        build_query(SearchQuery(title="( & )"))


# ------------------------------------------------------------------ against Zebra


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient() as client:
        yield client


def _sru(member: str, endpoint: str, http: HttpClient) -> SRUConnector:
    settings = TargetSettings(
        member=member, kind="sru", endpoint=endpoint, timeout_s=5, max_records=20, options={"cql_indexes": INDEXES}
    )
    return SRUConnector(settings, http)


# The same titles against Debian's Zebra serving the real NDL records are in
# tests/test_zebra_sru.py (test_zebra_finds_punctuated_titles ...), beside the other Zebra tests.


# ------------------------------------------------------------------ against sandbox members


def _ndl_rows() -> dict[str, dict[str, str]]:
    if not NDL_CSV.is_file():
        pytest.skip(f"../shared/data is not beside the repository (looked for {NDL_CSV})")
    with NDL_CSV.open(encoding="utf-8", newline="") as handle:
        return {row["ndl_bib_id"]: row for row in csv.DictReader(handle)}


def _catalogue_work(row: dict[str, str]) -> CatalogueWork:
    digits = row["isbn"].replace("-", "")
    return CatalogueWork(
        work_id=f"ndl-{row['ndl_bib_id']}",
        title=row["title"],
        title_reading=row["title_kana"] or None,
        authors=(Author(name=row["authors"].split(" | ")[0] or "不明", heading=row["authors"].split(" | ")[0] or "不明"),),
        publisher=row["publisher"],
        place="東京",
        year=int(row["year_008"]),
        isbn=Isbn(digits[3:4], digits[4:8], digits[8:12]) if len(digits) == 13 else None,
        ndc="023",
        language="jpn",
        material_type=MaterialType.BOOK,
        collection="一般",
        popularity=50.0,  # every member holds it
    )


def _sandbox_member(member: str, protocol: str = "sru", **options: str) -> SandboxMember:
    return SandboxMember(
        id=member, name=f"{member}図書館", branches=[SandboxBranch(id=f"{member}/main", name="本館", code="MAIN")],
        status_style="tos" if options.get("style") == "tos" else "standard", catalogue_share=1.0,
        protocol=protocol, protocol_options=options,  # type: ignore[arg-type]
    )  # fmt: skip


# One member per query-building family the sandbox speaks: SRU (852 and 952 holdings),
# both HTML OPAC products (tos: Shift_JIS GET forms; wopc: UTF-8 JSF POST) and Koha-style REST.
SANDBOX_MEMBERS = [
    _sandbox_member("alpha"),
    _sandbox_member("beta").model_copy(update={"holdings_field": "952", "isbn_style": "10"}),
    _sandbox_member("tos-opac", "html_opac", style="tos"),
    _sandbox_member("wopc-opac", "html_opac", style="wopc"),
    _sandbox_member("rest", "ils_rest"),
]


def _connector(member: SandboxMember, base_url: str, http: HttpClient) -> Connector:
    if member.protocol == "sru":
        return _sru(member.id, f"{base_url}/{member.id}/sru", http)
    if member.protocol == "html_opac":
        settings = TargetSettings(
            member=member.id, kind="html_opac", endpoint=f"{base_url}/{member.id}/opac/", timeout_s=5, max_records=20,
            options={"profile": member.protocol_options["style"]},
        )  # fmt: skip
        return HtmlOpacConnector(settings, http)
    settings = TargetSettings(member=member.id, kind="ils_rest", endpoint=f"{base_url}/{member.id}/api/v1", timeout_s=5, max_records=20)
    return ILSRestConnector(settings, http)


async def test_every_sandbox_member_holding_a_punctuated_title_finds_it(http: HttpClient) -> None:
    rows = _ndl_rows()
    works = tuple(_catalogue_work(rows[bib_id]) for bib_id in dict.fromkeys(b for b, _ in PUNCTUATED))
    async with SandboxHost(SANDBOX_MEMBERS, catalogue=Catalogue(seed=0, works=works)) as host:
        for member in SANDBOX_MEMBERS:
            conn = _connector(member, host.base_url, http)
            for bib_id, typed in PUNCTUATED:
                result = await conn.search(SearchQuery(title=typed))
                titles = [r.title for r in result.records]
                wanted = rows[bib_id]["title"].split(" = ")[0].split(" : ")[0]
                assert any(t.startswith(wanted) for t in titles), (member.id, typed, titles)


async def test_sandbox_sru_finds_nothing_for_terms_sent_as_typed(http: HttpClient) -> None:
    rows = _ndl_rows()
    works = (_catalogue_work(rows["023335588"]),)
    async with SandboxHost(SANDBOX_MEMBERS[:1], catalogue=Catalogue(seed=0, works=works)) as host:
        conn = _sru("alpha", host.endpoint("alpha"), http)
        assert (await conn.search(SearchQuery(title="EPUB 3 (スリー)"))).hits == 1
        assert (await conn.search_cql('title="EPUB" and title="3" and title="(スリー)"', maximum=5)).hits == 0
