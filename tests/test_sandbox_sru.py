"""The sandbox SRU server over real sockets: protocol, holdings, determinism and faults."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from lxml import etree

from sandbox import (
    STATUS_VOCABULARIES,
    FaultConfig,
    SandboxBranch,
    SandboxHost,
    SandboxMember,
    holdings_for,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

NS = {
    "zs": "http://www.loc.gov/zing/srw/",
    "diag": "http://www.loc.gov/zing/srw/diagnostic/",
    "marc": "http://www.loc.gov/MARC21/slim",
    "srw_dc": "info:srw/schema/1/dc-schema",
    "dc": "http://purl.org/dc/elements/1.1/",
}
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
CATALOGUE_SIZE = 600

MEMBERS = [
    SandboxMember(
        id="alpha",
        name="アルファ市立図書館",
        branches=[
            SandboxBranch(id="alpha/chuo", name="アルファ市立中央図書館", code="CHUO"),
            SandboxBranch(id="alpha/kita", name="アルファ市立北図書館", code="KITA"),
        ],
        holdings_field="852",
        status_style="standard",
        isbn_style="13",
        catalogue_share=0.9,
    ),
    SandboxMember(
        id="beta",
        name="ベータ市立図書館",
        branches=[
            SandboxBranch(id="beta/main", name="ベータ市立図書館", code="BMAIN"),
            SandboxBranch(id="beta/east", name="ベータ市立東分館", code="BEAST"),
        ],
        holdings_field="952",
        status_style="tos",
        isbn_style="hyphenated13",
        catalogue_share=0.5,
    ),
    SandboxMember(
        id="gamma",
        name="ガンマ町立図書館",
        branches=[SandboxBranch(id="gamma/main", name="ガンマ町立図書館", code="GAMMA")],
        holdings_field="852",
        status_style="legacy",
        isbn_style="10",
        catalogue_share=0.2,
    ),
]

Fetch = Callable[..., Awaitable[tuple[int, bytes]]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host() -> AsyncIterator[SandboxHost]:
    async with SandboxHost(MEMBERS, seed=7, catalogue_size=CATALOGUE_SIZE, admin=True) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def sru(host: SandboxHost, session: aiohttp.ClientSession) -> Fetch:
    async def fetch(member: str, **params: str | int) -> tuple[int, bytes]:
        query = {"version": "1.2", "operation": "searchRetrieve", **{k: str(v) for k, v in params.items()}}
        async with session.get(host.endpoint(member), params=query) as response:
            return response.status, await response.read()

    return fetch


@pytest.fixture
def faulty(host: SandboxHost) -> Iterator[Callable[..., None]]:
    """Set faults on gamma for one test; they are cleared afterwards."""
    yield lambda **faults: host.set_faults("gamma", FaultConfig(**faults))
    host.set_faults("gamma", FaultConfig())


def xml(body: bytes) -> etree._Element:
    return etree.fromstring(body, SAFE_PARSER)


def diagnostic(body: bytes) -> tuple[int, str | None] | None:
    uri = xml(body).findtext(".//diag:diagnostic/diag:uri", namespaces=NS)
    if uri is None:
        return None
    return int(uri.rsplit("/", 1)[1]), xml(body).findtext(".//diag:diagnostic/diag:details", namespaces=NS)


def hit_count(body: bytes) -> int | None:
    text = xml(body).findtext("zs:numberOfRecords", namespaces=NS)
    return None if text is None else int(text)


def positions(body: bytes) -> list[int]:
    return [int(p) for p in xml(body).xpath("//zs:record/zs:recordPosition/text()", namespaces=NS)]


def marc_records(body: bytes) -> list[etree._Element]:
    return xml(body).xpath("//zs:recordData/marc:record", namespaces=NS)


def subfields(record: etree._Element, tag: str, code: str) -> list[str]:
    return record.xpath(f"marc:datafield[@tag='{tag}']/marc:subfield[@code='{code}']/text()", namespaces=NS)


# --- searchRetrieve -----------------------------------------------------------


async def test_finds_a_core_work_by_title(sru: Fetch) -> None:
    status, body = await sru("alpha", query="title=こころ")
    assert status == 200
    records = marc_records(body)
    assert hit_count(body) == len(records) >= 1
    assert any(subfields(r, "245", "a")[0].startswith("こころ") for r in records)


async def test_response_headers_and_echo(host: SandboxHost, session: aiohttp.ClientSession) -> None:
    params = {"version": "1.2", "operation": "searchRetrieve", "query": "title=猫", "maximumRecords": "3"}
    async with session.get(host.endpoint("alpha"), params=params) as response:
        assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
        root = xml(await response.read())
    assert root.tag == "{http://www.loc.gov/zing/srw/}searchRetrieveResponse"
    assert root.findtext("zs:version", namespaces=NS) == "1.2"
    assert root.findtext("zs:echoedSearchRetrieveRequest/zs:query", namespaces=NS) == "title=猫"


async def test_post_form_works_like_get(host: SandboxHost, session: aiohttp.ClientSession, sru: Fetch) -> None:
    form = {"version": "1.2", "operation": "searchRetrieve", "query": "author=夏目漱石"}
    async with session.post(host.endpoint("alpha"), data=form) as response:
        posted = await response.read()
    _, got = await sru("alpha", query="author=夏目漱石")
    assert posted == got


async def test_marc_record_shape(sru: Fetch) -> None:
    _, body = await sru("alpha", query="isbn=9784101010014")
    (record,) = marc_records(body)
    assert record.findtext("marc:leader", namespaces=NS).startswith("00000nam")
    assert record.findtext("marc:controlfield[@tag='008']", namespaces=NS)[7:11] == "2003"
    assert subfields(record, "020", "a") == ["9784101010014"]
    assert subfields(record, "084", "a") == ["913.6"] and subfields(record, "084", "2") == ["njb/9"]
    assert subfields(record, "100", "a") == ["夏目, 漱石"]
    assert subfields(record, "245", "a") == ["吾輩は猫である /"]
    assert subfields(record, "245", "6") == ["880-01"]
    readings = dict(zip(subfields(record, "880", "6"), subfields(record, "880", "a"), strict=True))
    assert readings["245-01/$1"] == "ワガハイ ワ ネコ デ アル"
    assert readings["100-02/$1"] == "ナツメ, ソウセキ"


async def test_series_volumes_are_separate_records(sru: Fetch) -> None:
    _, body = await sru("alpha", query="title=竜馬がゆく", maximumRecords=20)
    records = marc_records(body)
    volumes = [subfields(r, "245", "n")[0].rstrip(" /") for r in records]
    assert volumes == [f"第{n}巻" for n in range(1, 9)]
    assert len({subfields(r, "020", "a")[0] for r in records}) == 8


async def test_isbn_written_in_each_members_style(sru: Fetch) -> None:
    _, beta = await sru("beta", query="cql.allRecords=1", maximumRecords=30)
    _, gamma = await sru("gamma", query="cql.allRecords=1", maximumRecords=30)
    beta_isbns = [i for r in marc_records(beta) for i in subfields(r, "020", "a")]
    gamma_isbns = [i for r in marc_records(gamma) for i in subfields(r, "020", "a")]
    assert beta_isbns and all(i.startswith("978-") and i.count("-") == 4 for i in beta_isbns)
    assert gamma_isbns and all(len(i) == 10 for i in gamma_isbns)


async def test_paging_with_start_and_maximum_records(sru: Fetch) -> None:
    _, first = await sru("alpha", query="title=の", maximumRecords=10)
    total = hit_count(first)
    assert total is not None and total > 25
    assert positions(first) == list(range(1, 11))
    assert xml(first).findtext("zs:nextRecordPosition", namespaces=NS) == "11"
    _, second = await sru("alpha", query="title=の", startRecord=11, maximumRecords=10)
    assert positions(second) == list(range(11, 21))
    ids = lambda body: [r.findtext("marc:controlfield[@tag='001']", namespaces=NS) for r in marc_records(body)]  # noqa: E731
    assert not set(ids(first)) & set(ids(second))
    _, last = await sru("alpha", query="title=の", startRecord=total - 2, maximumRecords=10)
    assert positions(last) == [total - 2, total - 1, total]
    assert xml(last).find("zs:nextRecordPosition", NS) is None


async def test_default_and_capped_maximum_records(sru: Fetch) -> None:
    _, default = await sru("alpha", query="cql.allRecords=1")
    assert len(positions(default)) == 10
    _, capped = await sru("alpha", query="cql.allRecords=1", maximumRecords=500)
    assert len(positions(capped)) == 100
    _, count_only = await sru("alpha", query="cql.allRecords=1", maximumRecords=0)
    assert hit_count(count_only) == hit_count(default) and positions(count_only) == []


async def test_dublin_core_schema(sru: Fetch) -> None:
    _, body = await sru("alpha", query="isbn=9784101010014", recordSchema="dc")
    (dc,) = xml(body).xpath("//zs:recordData/srw_dc:dc", namespaces=NS)
    assert dc.findtext("dc:title", namespaces=NS) == "吾輩は猫である"
    assert dc.findtext("dc:creator", namespaces=NS) == "夏目, 漱石"
    assert dc.findtext("dc:publisher", namespaces=NS) == "新潮社"
    assert dc.findtext("dc:date", namespaces=NS) == "2003"
    assert dc.findtext("dc:identifier", namespaces=NS) == "URN:ISBN:9784101010014"
    assert xml(body).findtext(".//zs:recordSchema", namespaces=NS) == "info:srw/schema/1/dc-v1.1"
    assert b"852" not in body


async def test_marcxml_schema_uri_is_accepted(sru: Fetch) -> None:
    _, body = await sru("alpha", query="title=猫", recordSchema="info:srw/schema/1/marcxml-v1.1")
    assert diagnostic(body) is None and marc_records(body)


async def test_explain(host: SandboxHost, session: aiohttp.ClientSession) -> None:
    async with session.get(host.endpoint("beta"), params={"version": "1.2", "operation": "explain"}) as response:
        root = xml(await response.read())
    assert root.tag == "{http://www.loc.gov/zing/srw/}explainResponse"
    assert "ベータ市立図書館" in etree.tostring(root, encoding="unicode")


# --- diagnostics ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code", "details"),
    [
        ({"query": "title=(computer"}, 10, None),
        ({"query": "foo=bar"}, 16, "foo"),
        ({"query": "title<computer"}, 19, "<"),
        ({"query": "title=猫", "recordSchema": "mods"}, 66, "mods"),
        ({"query": "title=猫", "startRecord": "0"}, 6, "startRecord"),
        ({"query": "title=猫", "maximumRecords": "-1"}, 6, "maximumRecords"),
        ({"query": "title=猫", "startRecord": "abc"}, 6, "startRecord"),
        ({"query": "title=猫", "recordPacking": "string"}, 71, "string"),
        ({"query": "title=猫", "httpAccept": "text/xml"}, 8, "httpAccept"),
        ({}, 7, "query"),
    ],
)
async def test_diagnostics_come_with_http_200_and_no_count(
    sru: Fetch, params: dict[str, str], code: int, details: str | None
) -> None:
    status, body = await sru("alpha", **params)
    assert status == 200
    found = diagnostic(body)
    assert found is not None and found[0] == code
    if details is not None:
        assert found[1] == details
    assert hit_count(body) is None


async def test_first_record_out_of_range_keeps_the_count(sru: Fetch) -> None:
    _, body = await sru("alpha", query="title=竜馬がゆく", startRecord=9)
    assert diagnostic(body) == (61, "9")
    assert hit_count(body) == 8


async def test_unknown_member_is_http_404_html(host: SandboxHost, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{host.base_url}/nosuch/sru", params={"query": "猫"}) as response:
        assert response.status == 404
        assert response.content_type == "text/html"


# --- holdings --------------------------------------------------------------------


async def test_852_holdings_use_branch_names_and_the_members_words(sru: Fetch) -> None:
    _, body = await sru("alpha", query="cql.allRecords=1", maximumRecords=100)
    records = marc_records(body)
    assert all(subfields(r, "852", "p") for r in records)  # every record has at least one copy
    names = {n for r in records for n in subfields(r, "852", "a")}
    assert names <= {b.name for b in MEMBERS[0].branches} and len(names) == 2
    words = {w for r in records for w in subfields(r, "852", "z")}
    assert words <= set(STATUS_VOCABULARIES["standard"].values())
    assert {"貸出可", "貸出中"} <= words
    assert all(subfields(r, "852", "h")[0].startswith(subfields(r, "084", "a")[0] + "/") for r in records)
    assert not any(r.xpath("marc:datafield[@tag='952']", namespaces=NS) for r in records)


async def test_952_holdings_are_koha_style(sru: Fetch) -> None:
    _, body = await sru("beta", query="cql.allRecords=1", maximumRecords=100)
    items = xml(body).xpath("//marc:datafield[@tag='952']", namespaces=NS)
    assert items and not xml(body).xpath("//marc:datafield[@tag='852']", namespaces=NS)
    words = set()
    for item in items:
        sub = {s.get("code"): s.text for s in item}
        assert sub["a"] in {"BMAIN", "BEAST"} and sub["o"] and sub["p"]
        words.add(sub["z"])
        if sub["z"] == "貸出中":
            assert len(sub["q"]) == 10 and sub["q"][4] == "-"  # due date YYYY-MM-DD
        if sub["z"] == "館内のみ":
            assert sub["7"] == "1"
    assert words <= set(STATUS_VOCABULARIES["tos"].values())
    assert {"利用可能", "貸出中"} <= words


async def test_holdings_overlap_between_members(host: SandboxHost, sru: Fetch) -> None:
    holders: dict[str, set[str]] = {}
    for member in MEMBERS:
        for held in holdings_for(member, host.catalogue):
            holders.setdefault(held.work.work_id, set()).add(member.id)
    assert len(holders["soseki-kokoro"]) >= 2  # popular core work
    unique = next(w for w in host.catalogue.works if holders.get(w.work_id) == {"beta"} and w.isbn)
    counts = [hit_count((await sru(m.id, query=f"isbn={unique.isbn13}"))[1]) for m in MEMBERS]
    assert counts == [0, 1, 0]
    kokoro = [hit_count((await sru(m, query="isbn=4101010137"))[1]) for m in sorted(holders["soseki-kokoro"])]
    assert kokoro == [1] * len(holders["soseki-kokoro"])


async def test_same_seed_same_bytes(sru: Fetch, session: aiohttp.ClientSession) -> None:
    queries = ["title=の", "author=村上春樹", "cql.allRecords=1"]
    async with SandboxHost(MEMBERS, seed=7, catalogue_size=CATALOGUE_SIZE) as twin:
        for member in ("alpha", "beta", "gamma"):
            for query in queries:
                params = {"version": "1.2", "operation": "searchRetrieve", "query": query, "maximumRecords": "20"}
                async with session.get(twin.endpoint(member), params=params) as response:
                    twin_body = await response.read()
                _, body = await sru(member, query=query, maximumRecords=20)
                assert twin_body == body, (member, query)


async def test_other_seed_other_catalogue(host: SandboxHost) -> None:
    other = SandboxHost(MEMBERS, seed=8, catalogue_size=CATALOGUE_SIZE)
    assert other.catalogue.works[:10] == host.catalogue.works[:10]  # the core never changes
    assert other.catalogue.works != host.catalogue.works


# --- faults ----------------------------------------------------------------------


async def test_http_status_fault(sru: Fetch, faulty: Callable[..., None]) -> None:
    faulty(http_status=500)
    status, body = await sru("gamma", query="title=猫")
    assert status == 500 and b"<html" in body
    faulty(http_status=404)
    assert (await sru("gamma", query="title=猫"))[0] == 404


async def test_malformed_xml_fault(sru: Fetch, faulty: Callable[..., None]) -> None:
    faulty(malformed_xml=True)
    status, body = await sru("gamma", query="cql.allRecords=1")
    assert status == 200
    with pytest.raises(etree.XMLSyntaxError):
        xml(body)


async def test_hang_fault_times_out_the_client(
    host: SandboxHost, session: aiohttp.ClientSession, faulty: Callable[..., None]
) -> None:
    faulty(hang=True)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(
            host.endpoint("gamma"), params={"query": "猫"}, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    assert 0.25 < time.monotonic() - started < 1.0


async def test_entity_bomb_fault(sru: Fetch, faulty: Callable[..., None]) -> None:
    faulty(entity_bomb=True)
    status, body = await sru("gamma", query="title=猫")
    assert status == 200 and b"<!DOCTYPE" in body
    assert body.count(b"<!ENTITY") == 10 and b"&lol9;" in body  # 10^9 "lol"s once expanded


async def test_wrong_charset_fault(
    host: SandboxHost, session: aiohttp.ClientSession, faulty: Callable[..., None]
) -> None:
    faulty(wrong_charset=True)
    async with session.get(host.endpoint("gamma"), params={"query": "cql.allRecords=1"}) as response:
        assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
        body = await response.read()
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert "図書館" in body.decode("cp932")


async def test_slow_drip_fault(sru: Fetch, faulty: Callable[..., None]) -> None:
    _, normal = await sru("gamma", query="cql.allRecords=1")
    faulty(slow_drip_s=0.6)
    started = time.monotonic()
    status, body = await sru("gamma", query="cql.allRecords=1")
    assert status == 200 and body == normal
    assert 0.5 < time.monotonic() - started < 2.0


async def test_huge_body_fault(sru: Fetch, faulty: Callable[..., None]) -> None:
    faulty(huge_body_mb=2)
    status, body = await sru("gamma", query="cql.allRecords=1")
    assert status == 200
    assert 2 * 1024 * 1024 <= len(body) < 2 * 1024 * 1024 + 100_000
    assert len(marc_records(body)) > 100  # valid-looking: it parses, with records over and over


async def test_error_rate_fault_fails_some_requests(sru: Fetch, faulty: Callable[..., None]) -> None:
    faulty(error_rate=0.5, seed=3)
    statuses = [(await sru("gamma", query="title=猫"))[0] for _ in range(20)]
    assert set(statuses) == {200, 500}
    faulty(error_rate=0.5, seed=3)  # the same seed fails the same requests again
    assert [(await sru("gamma", query="title=猫"))[0] for _ in range(20)] == statuses


async def test_delay_fault(sru: Fetch, faulty: Callable[..., None]) -> None:
    faulty(delay_ms=200, jitter_ms=50)
    started = time.monotonic()
    assert (await sru("gamma", query="title=猫"))[0] == 200
    assert time.monotonic() - started >= 0.2


async def test_admin_fault_endpoint(host: SandboxHost, session: aiohttp.ClientSession, sru: Fetch) -> None:
    url = f"{host.base_url}/_admin/beta/faults"
    try:
        async with session.put(url, json={"http_status": 503}) as response:
            assert response.status == 200 and (await response.json())["http_status"] == 503
        async with session.get(url) as response:
            assert (await response.json())["http_status"] == 503
        assert (await sru("beta", query="title=猫"))[0] == 503
        async with session.put(url, json={"error_rate": 2}) as response:
            assert response.status == 400 and response.content_type == "application/problem+json"
        async with session.put(f"{host.base_url}/_admin/nosuch/faults", json={}) as response:
            assert response.status == 404
    finally:
        async with session.put(url, json={}) as response:
            assert response.status == 200
    assert (await sru("beta", query="title=猫"))[0] == 200


async def test_health(host: SandboxHost, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{host.base_url}/_admin/health") as response:
        assert response.status == 200
        assert (await response.json())["members"] == ["alpha", "beta", "gamma"]


# --- separate process ------------------------------------------------------------


async def test_python_m_sandbox_serves_until_sigterm(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    spec = tmp_path / "members.json"
    spec.write_text("[" + MEMBERS[2].model_dump_json() + "]", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox",
        "--spec",
        str(spec),
        "--port",
        "0",
        "--catalogue-size",
        "200",
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode().strip()  # type: ignore[union-attr]
        assert line.startswith("READY http://127.0.0.1:")
        base_url = line.split()[1]
        async with session.get(f"{base_url}/gamma/sru", params={"query": "cql.allRecords=1"}) as response:
            assert response.status == 200 and hit_count(await response.read())
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
