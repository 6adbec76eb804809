"""Typed per-family connector options (connectors/options.py) and how TargetSettings and the connectors use them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from yokodan import HoldState, RefusalReason, SearchQuery
from connectors import CONNECTOR_KINDS, HttpClient
from connectors.base import pickup_codes
from connectors.calil import CalilConnector
from connectors.ncip import NCIPConnector
from connectors.opensearch import OpenSearchConnector
from connectors.options import (
    OPTIONS_BY_KIND,
    CalilOptions,
    HtmlOpacOptions,
    IlsRestOptions,
    NcipOptions,
    OpenSearchOptions,
    SruOptions,
)
from connectors.settings import TargetSettings
from connectors.sru import SRUConnector

ROOT = Path(__file__).resolve().parents[1]
# What a family needs before any other option can be tried (calil's required ones).
REQUIRED: dict[str, dict[str, Any]] = {
    "calil": {"systemid": "Okayama_Pref", "appkey": "k"},
    "html_opac": {"profile": "tos"},
}


def settings(kind: str, options: object = None, *, endpoint: str = "http://m.invalid/", **fields: Any) -> TargetSettings:
    return TargetSettings(member="m", kind=kind, endpoint=endpoint, options=options, **fields)


# --- one model per family, the kinds the connectors know ------------------------------------------


def test_every_connector_kind_has_an_options_model_and_no_more() -> None:
    assert sorted(OPTIONS_BY_KIND) == sorted(CONNECTOR_KINDS)
    for kind, model in OPTIONS_BY_KIND.items():
        assert model.kind == kind


def test_defaults_are_what_the_connectors_used() -> None:
    assert SruOptions().model_dump() == {
        "sru_version": "1.2",
        "record_schema": "marcxml",
        "cql_indexes": {"text": "any", "title": "title", "author": "author", "isbn": "isbn", "year": "year"},
        "extra_params": {},
        "query_terms": None,
    }
    assert OpenSearchOptions().model_dump() == {
        "params": {
            "text": "any", "title": "title", "author": "creator", "isbn": "isbn",
            "year_from": "from", "year_until": "until", "count": "cnt", "start": "idx",
        },
        "paging": "index",
        "extra_params": {},
        "query_terms": None,
    }
    assert NcipOptions().model_dump() == {
        "pickup_codes": {}, "agency_id": "yokodan", "member_agency_id": None, "hold_words": {}, "problem_reasons": {},
        "update_request_item": False,
    }
    assert IlsRestOptions().model_dump() == {"pickup_codes": {}, "query_terms": None}
    assert CalilOptions(systemid="X", appkey="k").poll_interval_s == 2.0
    assert HtmlOpacOptions(profile="tos").model_dump() == {"query_terms": None, "profile": "tos", "profile_file": None, "profile_overrides": {}}


def test_connectors_apply_defaults_and_given_options() -> None:
    http = HttpClient()
    default = SRUConnector(settings("sru"), http)
    assert (default.version, default.record_schema, default.extra_params) == ("1.2", "marcxml", {})
    given = SRUConnector(settings("sru", {"sru_version": "2.0", "cql_indexes": {"year": "date"}}), http)
    assert given.version == "2.0"
    # A given index replaces only its own default.
    assert given.indexes == {"text": "any", "title": "title", "author": "author", "isbn": "isbn", "year": "date"}
    ncip = NCIPConnector(settings("ncip"), http)
    assert (ncip.agency_id, ncip.member_agency_id) == ("yokodan", "m")  # the member id by default
    ncip = NCIPConnector(settings("ncip", {"agency_id": "okayama-hub", "member_agency_id": "JP-OKA"}), http)
    assert (ncip.agency_id, ncip.member_agency_id) == ("okayama-hub", "JP-OKA")
    calil = CalilConnector(settings("calil", {"systemid": "Okayama_Pref", "appkey": "k", "poll_interval_s": 0.5}), http)
    assert (calil.systemid, calil.appkey, calil.poll_interval_s) == ("Okayama_Pref", "k", 0.5)


def test_typed_values_arrive_as_their_types() -> None:
    ncip = settings("ncip", {"hold_words": {"予約中": "waiting"}, "problem_reasons": {"予約上限": "too_many_holds"}}).options
    assert isinstance(ncip, NcipOptions)
    assert ncip.hold_words == {"予約中": HoldState.WAITING}
    assert ncip.problem_reasons == {"予約上限": RefusalReason.TOO_MANY_HOLDS}
    # TOML writes numbers as numbers; as URL parameters they are text.
    assert settings("sru", {"extra_params": {"x-count": 20}}).options == SruOptions(extra_params={"x-count": "20"})


# --- refused: unknown names, wrong types, unknown kinds --------------------------------------------


@pytest.mark.parametrize("kind", sorted(OPTIONS_BY_KIND))
def test_an_unknown_option_is_refused_naming_the_allowed_ones(kind: str) -> None:
    with pytest.raises(ValueError) as info:
        settings(kind, {**REQUIRED.get(kind, {}), "sru_verison": "2.0"})
    message = str(info.value)
    allowed = ", ".join(sorted(OPTIONS_BY_KIND[kind].model_fields))
    assert f"options.sru_verison: unknown {kind} option (allowed: {allowed})" in message


@pytest.mark.parametrize(
    ("kind", "options", "path"),
    [
        ("sru", {"sru_version": 2.0}, "options.sru_version"),
        ("sru", {"sru_version": "3.0"}, "options.sru_version"),
        ("sru", {"record_schema": ""}, "options.record_schema"),
        ("sru", {"cql_indexes": {"titel": "ti"}}, "options.cql_indexes.titel"),
        ("sru", {"cql_indexes": "title"}, "options.cql_indexes"),
        ("sru", {"extra_params": {"x-debug": True}}, "options.extra_params.x-debug"),
        ("opensearch", {"paging": "pages"}, "options.paging"),
        ("opensearch", {"params": {"creator": "author"}}, "options.params.creator"),
        ("opensearch", {"extra_params": ["format", "rss"]}, "options.extra_params"),
        ("html_opac", {}, "options: give exactly one of profile"),
        ("html_opac", {"profile": "tos", "profile_file": "/etc/opac.toml"}, "options: give exactly one of profile"),
        ("html_opac", {"profile": "tos", "profile_overrides": "strict"}, "options.profile_overrides"),
        ("ils_rest", {"pickup_codes": {"m/main": 1}}, "options.pickup_codes.m/main"),
        ("ncip", {"hold_words": {"予約中": "pending"}}, "options.hold_words.予約中"),
        ("ncip", {"problem_reasons": {"x": "no_such_reason"}}, "options.problem_reasons.x"),
        ("ncip", {"agency_id": ""}, "options.agency_id"),
        ("calil", {"systemid": "X"}, "options.appkey: Field required"),
        ("calil", {"appkey": "k"}, "options.systemid: Field required"),
        ("calil", {**REQUIRED["calil"], "poll_interval_s": 0}, "options.poll_interval_s"),
        ("calil", {**REQUIRED["calil"], "poll_interval_s": "soon"}, "options.poll_interval_s"),
    ],
)
def test_a_wrong_type_or_value_is_refused(kind: str, options: dict[str, Any], path: str) -> None:
    with pytest.raises(ValueError) as info:
        settings(kind, options)
    assert path in str(info.value)


def test_an_unknown_kind_is_refused_naming_the_allowed_kinds() -> None:
    with pytest.raises(ValueError, match=r"unknown connector kind 'z3950' \(allowed: calil, html_opac, ils_rest, ncip, opensearch, sru\)"):
        settings("z3950")


def test_another_familys_options_are_refused() -> None:
    with pytest.raises(ValueError, match="SruOptions given to a ncip connector"):
        settings("ncip", SruOptions())
    # A connector handed another family's settings says so instead of reading the wrong fields.
    with pytest.raises(TypeError, match="member m: a sru connector cannot use opensearch settings"):
        SRUConnector(settings("opensearch"), HttpClient())


# --- settings stay plain data -----------------------------------------------------------------------


def test_settings_round_trip_through_a_dump() -> None:
    original = settings("opensearch", {"paging": "page", "params": {"start": "p"}, "extra_params": {"format": "rss"}})
    dumped = original.model_dump()
    assert dumped["options"]["paging"] == "page"  # the family's fields, not the empty base class's
    assert TargetSettings.model_validate(dumped) == original


def test_the_calil_appkey_stays_out_of_reprs() -> None:
    calil = settings("calil", {"systemid": "Okayama_Pref", "appkey": "s3cret-app-key"})
    assert "s3cret-app-key" not in repr(calil) and "s3cret-app-key" not in str(calil.model_dump(mode="json"))


def test_pickup_codes_come_from_the_option_or_the_member_codes() -> None:
    member_codes = {"m/main": "MAIN", "m/east": "EAST"}
    assert pickup_codes(settings("ils_rest", {"pickup_codes": {"m/main": "001"}}, member_codes=member_codes)) == {"m/main": "001"}
    assert pickup_codes(settings("ncip", {}, member_codes=member_codes)) == member_codes
    assert pickup_codes(settings("sru", {}, member_codes=member_codes)) == member_codes  # a family without the option


def test_no_connector_reads_options_as_a_dict() -> None:
    dict_read = re.compile(r"\boptions(\.get\(|\[)")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("connectors", "broker", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if dict_read.search(line)
    ]
    assert offenders == []


# --- the options reach the wire ---------------------------------------------------------------------

_EMPTY_SRU = (
    b'<?xml version="1.0"?><searchRetrieveResponse xmlns="http://www.loc.gov/zing/srw/">'
    b"<version>1.2</version><numberOfRecords>0</numberOfRecords></searchRetrieveResponse>"
)


@dataclass
class Recorder:
    base_url: str = ""
    queries: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    """An SRU endpoint on a real socket that answers "no records" and keeps each request's parameters."""
    state = Recorder()

    async def answer(request: web.Request) -> web.Response:
        state.queries.append(dict(request.query))
        return web.Response(body=_EMPTY_SRU, content_type="text/xml")

    app = web.Application()
    app.router.add_get("/sru", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.base_url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_sru_sends_its_defaults(recorder: Recorder) -> None:
    async with HttpClient() as http:
        await SRUConnector(settings("sru", endpoint=f"{recorder.base_url}/sru"), http).search(
            SearchQuery(title="こころ", year=1914)
        )
    assert recorder.queries == [
        {
            "operation": "searchRetrieve",
            "version": "1.2",
            "query": 'title="こころ" and year="1914"',
            "startRecord": "1",
            "maximumRecords": "20",
            "recordSchema": "marcxml",
            "recordPacking": "xml",
        }
    ]


async def test_sru_sends_the_options_it_was_given(recorder: Recorder) -> None:
    options = {"sru_version": "2.0", "record_schema": "dc", "cql_indexes": {"year": "date"}, "extra_params": {"x-debug": 1}}
    async with HttpClient() as http:
        await SRUConnector(settings("sru", options, endpoint=f"{recorder.base_url}/sru"), http).search(
            SearchQuery(title="こころ", year=1914)
        )
    assert recorder.queries == [
        {
            "operation": "searchRetrieve",
            "version": "2.0",
            "query": 'title="こころ" and date="1914"',
            "startRecord": "1",
            "maximumRecords": "20",
            "recordSchema": "dc",
            "x-debug": "1",
        }
    ]


def test_opensearch_paging_and_params_from_options() -> None:
    cinii = OpenSearchConnector(
        settings("opensearch", {"params": {"text": "q", "count": "count", "start": "p", "title": ""}, "paging": "page"}),
        HttpClient(),
    )
    assert cinii.build_params(SearchQuery(text="図書館", start=21), 10) == {"q": "図書館", "count": "10", "p": "3"}
