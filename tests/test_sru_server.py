"""Yokodan's own SRU server (/sru) over real sockets, with the Okayama sandbox members behind it.

Clients: aiohttp + lxml (every answer is parsed as XML), Debian's yaz-client over SRU, and
Yokodan's own SRU connector (a Yokodan federating a Yokodan).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
import pytest
from lxml import etree

from broker.api import build_app
from broker.consortium import Consortium
from broker.cql import MAX_ALTERNATIVES, plan
from broker.http_server import bound_port, start_server
from connectors import HttpClient
from connectors.cql import CQLError
from connectors.settings import TargetSettings
from connectors.sru import SRUConnector
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from yokodan import Availability, SearchQuery

SRW = "http://www.loc.gov/zing/srw/"
SRU2 = "http://docs.oasis-open.org/ns/search-ws/sruResponse"
DIAG12 = "http://www.loc.gov/zing/srw/diagnostic/"
MARC = "http://www.loc.gov/MARC21/slim"
DC = "http://purl.org/dc/elements/1.1/"
ZEEREX = "http://explain.z3950.org/dtd/2.0/"
NS = {"srw": SRW, "sru": SRU2, "m": MARC, "dc": DC, "z": ZEEREX, "d": DIAG12, "yk": "info:yokodan/sru/targets"}
KOKORO_ISBN = "9784101010137"


@dataclass
class Broker:
    url: str
    sandbox: SandboxedConsortium


@pytest.fixture
async def broker(okayama_sandbox: SandboxedConsortium) -> AsyncIterator[Broker]:
    runner = await start_server(build_app(okayama_sandbox.consortium), "127.0.0.1", 0)
    try:
        yield Broker(f"http://127.0.0.1:{bound_port(runner)}", okayama_sandbox)
    finally:
        await runner.cleanup()


async def sru(broker: Broker, **params: str) -> etree._Element:
    """One SRU request; long queries go as a POST form (a URL is limited to 8 KB)."""
    long = sum(len(v) for v in params.values()) > 1000
    async with aiohttp.ClientSession() as session, (
        session.post(f"{broker.url}/sru", data=params) if long else session.get(f"{broker.url}/sru", params=params)
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/xml"
        return etree.fromstring(await response.read())


async def api_search(broker: Broker, **params: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(f"{broker.url}/api/v1/search", params=params) as response:
        assert response.status == 200
        return orjson.loads(await response.read())


def ids(root: etree._Element) -> list[str]:
    return root.xpath("//m:record/m:controlfield[@tag='001']/text()", namespaces=NS)


def diagnostic_uris(root: etree._Element) -> list[str]:
    return root.xpath("//srw:diagnostics/*/*[local-name()='uri']/text() | //sru:diagnostics/*/*[local-name()='uri']/text()", namespaces=NS)


def subfields(field: etree._Element) -> dict[str, str]:
    return {s.get("code"): s.text for s in field.iterfind("m:subfield", NS)}


def copies_in_api(work: dict) -> list[tuple[str, str, str]]:
    """(branch name, call number, member's status word) of each copy the JSON API shows."""
    return sorted(
        (branch["branch_name"], copy["call_number"], copy["status_text"] or copy["availability"])
        for member in work["holdings"]
        for branch in member["branches"]
        for copy in branch["copies"]
    )


# --------------------------------------------------------------------------- explain


@pytest.mark.parametrize(("version", "namespace"), [("1.2", SRW), ("2.0", SRU2)])
async def test_explain_is_zeerex_naming_indexes_and_schemas(broker: Broker, version: str, namespace: str) -> None:
    root = await sru(broker, operation="explain", version=version)
    assert root.tag == f"{{{namespace}}}explainResponse"
    assert root.findtext(f"{{{namespace}}}version") == version
    explain = root.find(f".//{{{ZEEREX}}}explain")
    assert explain is not None
    assert explain.findtext("z:databaseInfo/z:title", namespaces=NS) == broker.sandbox.consortium.name
    indexes = explain.xpath("z:indexInfo/z:index/z:title/text()", namespaces=NS)
    assert indexes == ["title", "author", "isbn", "any", "year"]
    assert explain.xpath("z:schemaInfo/z:schema/@name", namespaces=NS) == ["marcxml", "dc"]
    assert explain.findtext("z:serverInfo/z:port", namespaces=NS) == broker.url.rsplit(":", 1)[1]


async def test_no_operation_and_no_query_is_explain(broker: Broker) -> None:
    root = await sru(broker)
    assert root.tag == f"{{{SRU2}}}explainResponse"


# --------------------------------------------------------------------------- searchRetrieve


async def test_search_retrieve_gives_the_merged_work_with_one_852_per_copy(broker: Broker) -> None:
    root = await sru(broker, operation="searchRetrieve", version="1.2", query="title=こころ", maximumRecords="5")
    assert root.tag == f"{{{SRW}}}searchRetrieveResponse"
    api = await api_search(broker, title="こころ")
    assert root.findtext("srw:numberOfRecords", namespaces=NS) == str(api["work_count"]) == "1"
    (record,) = root.findall(".//m:record", NS)
    assert record.xpath("m:datafield[@tag='245']/m:subfield[@code='a']/text()", namespaces=NS) == ["こころ"]
    assert record.xpath("m:datafield[@tag='020']/m:subfield[@code='a']/text()", namespaces=NS) == [KOKORO_ISBN]
    assert record.xpath("m:datafield[@tag='100']/m:subfield[@code='a']/text()", namespaces=NS) == ["夏目, 漱石"]
    assert record.xpath("m:datafield[@tag='264']/m:subfield[@code='c']/text()", namespaces=NS) == ["2004"]
    holdings = [subfields(f) for f in record.findall("m:datafield[@tag='852']", NS)]
    # Every copy the JSON API shows for the work, once, with the member's own word in $z.
    assert sorted((h["a"], h["h"], h["z"]) for h in holdings) == copies_in_api(api["works"][0])
    branch_member = {b.name: m.id for m in broker.sandbox.consortium.members for b in m.branches}
    assert len({branch_member[h["a"]] for h in holdings}) >= 3  # copies of several members
    assert {h["x"] for h in holdings} <= {a.value for a in Availability}
    assert {"available", "on_loan"} <= {h["x"] for h in holdings}
    assert any(h["z"] == "貸出中" and h["x"] == "on_loan" for h in holdings)
    targets = root.xpath("//yk:target/@member", namespaces=NS)
    assert sorted(targets) == sorted(m.id for m in broker.sandbox.consortium.members)


async def test_failing_member_is_named_in_extra_response_data_and_the_rest_answer(broker: Broker) -> None:
    broker.sandbox.host.set_faults("bizen-city", FaultConfig(http_status=500))
    root = await sru(broker, version="1.2", query="title=こころ")
    target = root.xpath("//yk:target[@member='bizen-city']", namespaces=NS)[0]
    assert (target.get("state"), target.get("reason")) == ("error", "http_500")
    locations = root.xpath("//m:datafield[@tag='852']/m:subfield[@code='a']/text()", namespaces=NS)
    assert locations and not any(name.startswith("備前") for name in locations)


async def test_no_member_answering_is_diagnostic_1_not_zero_hits(broker: Broker) -> None:
    for member in broker.sandbox.consortium.members:
        broker.sandbox.host.set_faults(member.id, FaultConfig(http_status=503))
    root = await sru(broker, version="1.2", query="title=こころ")
    assert diagnostic_uris(root) == ["info:srw/diagnostic/1/1"]
    details = root.findtext(".//d:details", namespaces=NS)
    assert details.startswith("no member answered: ") and "okayama-city http_503" in details


async def test_post_is_answered_like_get(broker: Broker) -> None:
    got = await sru(broker, version="1.2", query="title=こころ")
    async with aiohttp.ClientSession() as session:
        form = {"operation": "searchRetrieve", "version": "1.2", "query": "title=こころ"}
        async with session.post(f"{broker.url}/sru", data=form) as response:
            assert (response.status, response.content_type) == (200, "text/xml")
            posted = etree.fromstring(await response.read())
    assert ids(posted) == ids(got) != []
    count_852 = "count(//m:datafield[@tag='852'])"
    assert posted.xpath(count_852, namespaces=NS) == got.xpath(count_852, namespaces=NS)


async def test_dublin_core_in_sru_2(broker: Broker) -> None:
    root = await sru(broker, query="dc.title=こころ", recordSchema="dc")
    assert root.tag == f"{{{SRU2}}}searchRetrieveResponse"
    assert root.findtext(".//sru:recordSchema", namespaces=NS) == "info:srw/schema/1/dc-v1.1"
    assert root.findtext(".//sru:recordXMLEscaping", namespaces=NS) == "xml"
    assert root.xpath("//dc:title/text()", namespaces=NS) == ["こころ"]
    assert root.xpath("//dc:creator/text()", namespaces=NS) == ["夏目, 漱石"]
    assert f"urn:isbn:{KOKORO_ISBN}" in root.xpath("//dc:identifier/text()", namespaces=NS)
    names = {m.id: m.name for m in broker.sandbox.consortium.members}
    api = await api_search(broker, title="こころ")
    assert root.xpath("//dc:source/text()", namespaces=NS) == [names[h["member"]] for h in api["works"][0]["holdings"]]


async def test_record_packing_string_escapes_the_record(broker: Broker) -> None:
    root = await sru(broker, version="1.2", query="title=こころ", recordPacking="string")
    data = root.find(".//srw:recordData", NS)
    assert len(data) == 0  # no child elements: the record is text
    record = etree.fromstring(data.text.encode())
    assert record.tag == f"{{{MARC}}}record"
    assert record.findall("m:datafield[@tag='852']", NS)


async def test_indexes_and_relations_reach_the_members(broker: Broker) -> None:
    by_title = ids(await sru(broker, version="1.2", query='title="こころ"'))
    assert ids(await sru(broker, version="1.2", query=f"bath.isbn={KOKORO_ISBN}")) == by_title
    assert ids(await sru(broker, version="1.2", query="title=こころ and dc.date=2004")) == by_title
    assert ids(await sru(broker, version="1.2", query="title=こころ and year=1999")) == []
    assert ids(await sru(broker, version="1.2", query="title all こころ and dc.creator=夏目漱石")) == by_title
    serverchoice = ids(await sru(broker, version="1.2", query="cql.serverChoice=こころ", maximumRecords="50"))
    assert by_title[0] in serverchoice
    assert ids(await sru(broker, version="1.2", query="isbn=not-an-isbn")) == []


async def all_ids(broker: Broker, query: str) -> list[str]:
    root = await sru(broker, version="1.2", query=query, maximumRecords="50")
    found = ids(root)
    assert root.findtext("srw:numberOfRecords", namespaces=NS) == str(len(found))
    return found


async def test_or_is_the_union_of_the_searches_without_repeats(broker: Broker) -> None:
    kokoro = await all_ids(broker, "title=こころ")
    botchan = await all_ids(broker, "title=坊っちゃん")
    assert kokoro and botchan and not set(kokoro) & set(botchan)
    either = await all_ids(broker, "title=こころ or title=坊っちゃん")
    assert sorted(either) == sorted(kokoro + botchan)
    assert sorted(await all_ids(broker, 'title any "こころ 坊っちゃん"')) == sorted(either)
    # The same work found by both alternatives is one record, each copy once.
    single = await sru(broker, version="1.2", query="title=こころ")
    both = await sru(broker, version="1.2", query=f"title=こころ or isbn={KOKORO_ISBN}")
    assert ids(both) == ids(single)
    count_852 = "count(//m:datafield[@tag='852'])"
    assert both.xpath(count_852, namespaces=NS) == single.xpath(count_852, namespaces=NS) > 0


async def test_not_removes_the_works_that_match_the_excluded_clause(broker: Broker) -> None:
    soseki = await all_ids(broker, "author=夏目漱石")
    kokoro = await all_ids(broker, "title=こころ")
    assert set(kokoro) < set(soseki)
    assert await all_ids(broker, "author=夏目漱石 not title=こころ") == [i for i in soseki if i not in kokoro]
    assert await all_ids(broker, f"author=夏目漱石 not isbn={KOKORO_ISBN}") == [i for i in soseki if i not in kokoro]


async def test_paging_walks_the_merged_list_with_next_record_position(broker: Broker) -> None:
    everything = await all_ids(broker, "author=夏目漱石")
    assert len(everything) >= 5
    seen: list[str] = []
    start = 1
    while True:
        root = await sru(broker, version="1.2", query="author=夏目漱石", startRecord=str(start), maximumRecords="2")
        page = ids(root)
        positions = root.xpath("//srw:record/srw:recordPosition/text()", namespaces=NS)
        assert positions == [str(p) for p in range(start, start + len(page))]
        seen.extend(page)
        following = root.findtext("srw:nextRecordPosition", namespaces=NS)
        if following is None:
            break
        assert int(following) == start + 2
        start = int(following)
    assert seen == everything
    counted = await sru(broker, version="1.2", query="author=夏目漱石", maximumRecords="0")
    assert counted.findtext("srw:numberOfRecords", namespaces=NS) == str(len(everything))
    assert counted.find("srw:records", NS) is None


# --------------------------------------------------------------------------- diagnostics


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"query": "title=(("}, "10"),
        ({"query": 'title="unterminated'}, "10"),
        ({"query": "subject=猫"}, "16"),
        ({"query": "foo.title=猫"}, "16"),
        ({"query": "year>2000"}, "19"),
        ({"query": "title=/fuzzy 猫"}, "20"),
        ({"query": "title=猫", "recordSchema": "mods"}, "66"),
        ({"query": "title=猫", "startRecord": "0"}, "6"),
        ({"query": "title=猫", "startRecord": "one"}, "6"),
        ({"query": "title=猫", "maximumRecords": "-1"}, "6"),
        ({"query": "title=こころ", "startRecord": "2"}, "61"),
        ({"operation": "scan", "scanClause": "title=猫"}, "4"),
        ({"operation": "searchRetrieve"}, "7"),
        ({"query": "title=猫", "version": "3.0"}, "5"),
        ({"query": "title=猫", "recordPacking": "json"}, "71"),
        ({"query": "not title=猫"}, "10"),
        ({"query": "cql.allRecords=1 not title=猫"}, "48"),
        ({"query": "title=猫 not (title=犬 and title=鳥)", "version": "1.2"}, None),
        ({"query": "year=二千"}, "36"),
        ({"query": "title=猫 prox title=犬"}, "37"),
        ({"query": "(" * 2000 + "title=猫" + ")" * 2000}, "10"),
        ({"query": " and ".join(["title=猫"] * 300)}, "36"),
        ({"query": "title=" + "猫" * 501}, "36"),
    ],
)
async def test_each_bad_request_is_its_sru_diagnostic(broker: Broker, params: dict[str, str], code: str | None) -> None:
    root = await sru(broker, **{"version": "1.2", **params})
    assert root.findtext("srw:version", namespaces=NS) or root.findtext("sru:version", namespaces=NS)
    if code is None:
        assert diagnostic_uris(root) == []
        return
    assert diagnostic_uris(root) == [f"info:srw/diagnostic/1/{code}"]
    if root.tag.endswith("searchRetrieveResponse"):
        assert root.findtext("srw:numberOfRecords", namespaces=NS) == "0"
        assert root.find("srw:records", NS) is None


async def test_diagnostics_in_sru_2_use_the_oasis_namespaces(broker: Broker) -> None:
    root = await sru(broker, query="subject=猫")
    assert root.tag == f"{{{SRU2}}}searchRetrieveResponse"
    uri = root.find("sru:diagnostics/{http://docs.oasis-open.org/ns/search-ws/diagnostic}diagnostic", NS)
    assert uri is not None
    assert uri.findtext("{http://docs.oasis-open.org/ns/search-ws/diagnostic}uri") == "info:srw/diagnostic/1/16"


def test_plan_is_the_disjunctive_normal_form() -> None:
    (one,) = plan("title=猫 not (title=犬 or author=鳥)", page_size=100)
    assert one.query is not None and one.query.title == "猫"
    assert [(c.index, c.term) for c in one.excluded] == [("title", "犬"), ("author", "鳥")]
    alternatives = plan("(title=a or title=b) and (author=c or author=d)", page_size=100)
    assert [(a.query.title, a.query.author) for a in alternatives if a.query] == [("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")]
    # x AND NOT (a AND NOT b) = (x AND NOT a) OR (x AND b)
    nested = plan("title=x not (title=a not title=b)", page_size=100)
    assert [(a.query.title, [c.term for c in a.excluded]) for a in nested if a.query] == [("x", ["a"]), ("x b", [])]
    assert [a.query for a in plan("title=x and isbn=123", page_size=100)] == [None]  # not an ISBN: nothing
    wide = " ".join(f"w{i}" for i in range(MAX_ALTERNATIVES + 1))
    with pytest.raises(CQLError) as caught:
        plan(f'title any "{wide}"', page_size=100)
    assert caught.value.code == 48


# --------------------------------------------------------------------------- yaz-client


def _yaz_client() -> str:
    path = shutil.which("yaz-client")
    if path is None:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail("yaz-client is not installed (scripts/test.sh installs Debian's yaz)")
        pytest.skip("yaz-client is not installed (scripts/test.sh installs Debian's yaz)")
    return path


@pytest.mark.parametrize("method", ["get", "post"])
async def test_yaz_client_searches_sru_and_gets_marcxml_with_852(broker: Broker, method: str) -> None:
    client = _yaz_client()
    script = f"sru {method} 1.2\nfind title=こころ\nshow 1\nquit\n"
    process = await asyncio.create_subprocess_exec(
        client, "-u", "anonymous", f"{broker.url}/sru",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(script.encode()), timeout=60)
    text = output.decode()
    assert process.returncode == 0, text
    assert "Received SRW SearchRetrieve Response" in text
    assert "Number of hits: 1" in text
    assert "pos=1 schema=info:srw/schema/1/marcxml-v1.1" in text
    marc = etree.fromstring(text[text.index('<record xmlns="http://www.loc.gov/MARC21/slim"') : text.index("</record>") + 9].encode())
    api = await api_search(broker, title="こころ")
    holdings = [subfields(f) for f in marc.findall("m:datafield[@tag='852']", NS)]
    assert sorted((h["a"], h["h"], h["z"]) for h in holdings) == copies_in_api(api["works"][0])


async def test_yaz_client_gets_a_diagnostic_for_an_unknown_index(broker: Broker) -> None:
    process = await asyncio.create_subprocess_exec(
        _yaz_client(), "-u", "anonymous", f"{broker.url}/sru",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(b"sru get 1.2\nfind subject=cat\nquit\n"), timeout=60)
    assert "info:srw/diagnostic/1/16" in output.decode()


# --------------------------------------------------------------------------- Yokodan federating a Yokodan


async def test_yokodan_sru_connector_searches_another_yokodan(broker: Broker) -> None:
    inner = broker.sandbox.consortium
    settings = TargetSettings(
        member="okayama-network",
        kind="sru",
        endpoint=f"{broker.url}/sru",
        timeout_s=10,
        max_records=50,
        branch_codes={b.name: b.id for b in inner.branches()},
        options={"sru_version": "1.2", "record_schema": "marcxml"},
    )
    async with HttpClient() as http:
        result = await SRUConnector(settings, http).search(SearchQuery(title="こころ"))
    api = await api_search(broker, title="こころ")
    assert result.hits == 1 and result.diagnostics == []
    (record,) = result.records
    assert (record.title, record.authors, record.isbns, record.year) == ("こころ", ["夏目, 漱石"], [KOKORO_ISBN], 2004)
    assert record.local_id == api["works"][0]["work_id"]
    inner_copies = sorted(
        (branch["branch_id"], copy["call_number"], copy["availability"])
        for member in api["works"][0]["holdings"]
        for branch in member["branches"]
        for copy in branch["copies"]
    )
    # Branch ids mapped from 852 $a, availability from the members' own words in $z.
    assert sorted((h.branch_id, h.call_number, h.availability.value) for h in record.holdings) == inner_copies


async def test_a_yokodan_broker_federates_a_yokodan_through_sru(broker: Broker) -> None:
    inner = broker.sandbox.consortium
    branches = [
        {**b.model_dump(exclude_none=True, exclude={"calendar"}), "id": "network/" + b.id.replace("/", "-"), "codes": []}
        for b in inner.branches()
    ]
    outer = Consortium.model_validate(
        {
            "id": "okayama-federation",
            "name": "岡山県域横断",
            "kind": "prefectural_hub",
            "members": [
                {
                    "id": "network",
                    "name": inner.name,
                    "municipality": "岡山県",
                    "connector": {"kind": "sru", "endpoint": f"{broker.url}/sru", "timeout_s": 10, "max_records": 50},
                    "branches": branches,
                }
            ],
        }
    )
    runner = await start_server(build_app(outer), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{bound_port(runner)}/api/v1/search"
            async with session.get(url, params={"title": "こころ"}) as response:
                body = orjson.loads(await response.read())
    finally:
        await runner.cleanup()
    assert [t["state"] for t in body["targets"]] == ["ok"]
    (work,) = body["works"]
    inner_work = (await api_search(broker, title="こころ"))["works"][0]
    outer_copies = sorted(
        (branch["branch_name"], copy["availability"]) for m in work["holdings"] for branch in m["branches"] for copy in branch["copies"]
    )
    inner_copies = sorted(
        (branch["branch_name"], copy["availability"]) for m in inner_work["holdings"] for branch in m["branches"] for copy in branch["copies"]
    )
    assert outer_copies == inner_copies
