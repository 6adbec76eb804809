"""SRU envelope + MARCXML mapping on recorded bodies (no network): field by field."""

from datetime import date
from pathlib import Path

import pytest

from yokodan import Availability
from connectors.settings import TargetSettings
from connectors.errors import HostileDocument, MalformedResponse, ProtocolDiagnostic, UndecodableResponse
from connectors.http import HttpClient
from connectors.sru import SRUConnector, build_cql, cql_term
from yokodan import SearchQuery

DATA = Path(__file__).parent / "data"


@pytest.fixture
def connector() -> SRUConnector:
    settings = TargetSettings(
        member="okayama-city",
        kind="sru",
        endpoint="http://127.0.0.1:1/sru",
        branch_codes={"中央図書館": "okayama-city/chuo", "SAIWAI": "okayama-city/saiwai"},
    )
    return SRUConnector(settings, HttpClient())


def test_marcxml_record_fields(connector: SRUConnector) -> None:
    result = connector.parse_response((DATA / "sru-marcxml-ndl.xml").read_bytes())
    assert result.hits == 42
    ndl, kokoro = result.records
    assert ndl.local_id == "029455884"
    assert ndl.title == "これからの本の話をしよう"
    assert ndl.title_reading == "コレカラ ノ ホン ノ ハナシ オ シヨウ"
    assert ndl.authors == ["萩野, 正昭"]
    assert ndl.author_readings == ["ハギノ, マサアキ"]
    assert (ndl.publisher, ndl.year, ndl.ndc, ndl.jpno) == ("晶文社", 2019, "023", "23173255")
    assert ndl.isbns == ["9784794970756"]
    # LoC practice: romanised 245 with the original script in 880 -> the original is the title
    assert kokoro.title == "こころ" and kokoro.title_reading is None
    assert kokoro.isbns == ["9784101010137"] and kokoro.year == 2004


def test_holdings_852_and_952(connector: SRUConnector) -> None:
    holdings = connector.parse_response((DATA / "sru-marcxml-ndl.xml").read_bytes()).records[0].holdings
    by_item = {h.item_id: h for h in holdings}
    chuo = by_item["T0001"]
    assert (chuo.branch_id, chuo.call_number, chuo.availability, chuo.status_text) == (
        "okayama-city/chuo", "023/ハ", Availability.ON_LOAN, "貸出中"
    )
    on_loan = by_item["T0002"]
    assert on_loan.branch_id == "okayama-city/saiwai"
    assert on_loan.availability is Availability.ON_LOAN and on_loan.due_date == date(2026, 12, 1)
    assert by_item["T0003"].availability is Availability.LIBRARY_USE_ONLY
    unknown = holdings[-1]
    assert unknown.availability is Availability.UNKNOWN and unknown.status_text == "謎の状態"
    assert unknown.branch_id is None and unknown.location == "分室"
    assert connector.mapper.status.unknown_words.count("okayama-city", "謎の状態") == 1


def test_sru_20_namespace_and_dc(connector: SRUConnector) -> None:
    body = """<?xml version="1.0"?>
<sruResponse:searchRetrieveResponse xmlns:sruResponse="http://docs.oasis-open.org/ns/search-ws/sruResponse">
<sruResponse:numberOfRecords>1</sruResponse:numberOfRecords>
<sruResponse:records><sruResponse:record><sruResponse:recordData>
<srw_dc:dc xmlns:srw_dc="info:srw/schema/1/dc-schema" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>吾輩は猫である /</dc:title><dc:creator>夏目漱石</dc:creator><dc:publisher>新潮社</dc:publisher>
<dc:date>2003</dc:date><dc:identifier>URN:ISBN:978-4-10-101001-4</dc:identifier></srw_dc:dc>
</sruResponse:recordData></sruResponse:record></sruResponse:records>
</sruResponse:searchRetrieveResponse>""".encode()
    record = connector.parse_response(body).records[0]
    assert (record.title, record.authors, record.year, record.isbns, record.source_format) == (
        "吾輩は猫である", ["夏目漱石"], 2003, ["9784101010014"], "dc"
    )


def test_fatal_diagnostic(connector: SRUConnector) -> None:
    body = b"""<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:version>1.2</zs:version>
<zs:diagnostics xmlns:diag="http://www.loc.gov/zing/srw/diagnostic/"><diag:diagnostic>
<diag:uri>info:srw/diagnostic/1/10</diag:uri><diag:message>Query syntax error</diag:message></diag:diagnostic></zs:diagnostics>
</zs:searchRetrieveResponse>"""
    with pytest.raises(ProtocolDiagnostic) as caught:
        connector.parse_response(body)
    assert caught.value.diagnostics[0].code == "10"
    assert caught.value.reason == "diagnostic"


def test_out_of_range_page_is_not_a_failure(connector: SRUConnector) -> None:
    body = b"""<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:numberOfRecords>80</zs:numberOfRecords>
<zs:diagnostics xmlns:diag="http://www.loc.gov/zing/srw/diagnostic/"><diag:diagnostic>
<diag:uri>info:srw/diagnostic/1/61</diag:uri></diag:diagnostic></zs:diagnostics></zs:searchRetrieveResponse>"""
    result = connector.parse_response(body, start=81)
    assert result.records == [] and result.hits == 80 and result.diagnostics[0].code == "61"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:numberOfRecords>&lol3;</zs:numberOfRecords></zs:searchRetrieveResponse>"""


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (BILLION_LAUGHS, HostileDocument),
        (b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://evil.example/x.dtd"><x/>', HostileDocument),
        (b"<zs:searchRetrieveResponse xmlns:zs='http://www.loc.gov/zing/srw/'><zs:numberOf", MalformedResponse),
        (b"", MalformedResponse),
        (b"<html><body>Maintenance</body></html>", MalformedResponse),
        ('<?xml version="1.0" encoding="UTF-8"?><x>貸出中</x>'.encode("shift_jis"), UndecodableResponse),
    ],
    ids=["billion-laughs", "external-dtd", "truncated", "empty", "html-not-sru", "wrong-charset"],
)
def test_bad_bodies_get_named_errors(connector: SRUConnector, body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        connector.parse_response(body)


def test_cql_from_structured_query() -> None:
    indexes = {"text": "any", "title": "title", "author": "author", "isbn": "isbn", "year": "year"}
    query = SearchQuery(text='夏目 "猫"*', isbn="4101010137", year=2003)
    assert build_cql(query, indexes) == (
        'any="夏目" and any="猫" and isbn="9784101010137" and year="2003"'
    )
    assert cql_term("a?b") == '"a\\?b"'
