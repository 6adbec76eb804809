"""HTML OPAC connector against the sandbox's tos (Shift_JIS ASP) and wopc (UTF-8 JSF) OPACs, on real sockets."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from broker.consortium import load_consortium
from broker.demo import sandbox_member
from yokodan import Availability, HoldRequest, HoldState, PatronCredentials, RefusalReason, SearchQuery
from yokodan.holds import CancelOutcome, HoldIntent, Placed
from connectors.settings import TargetSettings
from connectors.errors import (
    AuthenticationFailed,
    HoldRefused,
    MalformedResponse,
    OutcomeUnknown,
    PatronNotFound,
    ReadTimeout,
    SessionExpired,
    TargetHTTPError,
    UndecodableResponse,
    UnsupportedQuery,
)
from connectors.html_opac import HtmlOpacConnector
from connectors.options import HtmlOpacOptions
from connectors.html_page import decode_page
from connectors.html_profile import OpacProfileError, load_profile_file
from connectors.http import HttpClient
from sandbox.accounts import OVERDUE_CARD
from sandbox.holdings import HeldWork
from sandbox.host import SandboxHost
from sandbox.html_opac_server import OPAC_STATES
from sandbox.html_state import OpacState
from sandbox.member import MemberSystem
from sandbox.spec import FaultConfig
from sandbox.sru_server import MEMBERS

CONSORTIUM = load_consortium()
# member id -> (profile, sandbox protocol options, sandbox status vocabulary)
MEMBERS_UNDER_TEST = {
    "tsuyama-city": ("tos", {"style": "tos"}, "tos"),  # 利用可能 for "on the shelf"
    "tamano-city": ("tos", {"style": "tos", "empty_available": "1"}, "tos"),  # an empty cell for it
    "misaki-town": ("wopc", {"style": "wopc"}, "standard"),
}
STYLES = ["tsuyama-city", "misaki-town"]  # one member per product
PATRON = PatronCredentials(card_number="10000001", pin=SecretStr("1234"))
KOKORO_ISBN = "9784101010137"  # 夏目漱石『こころ』(新潮文庫), a core work every member holds
_keys = itertools.count(1)


@dataclass
class Opac:
    host: SandboxHost
    http: HttpClient

    def system(self, member_id: str) -> MemberSystem:
        return self.host.app[MEMBERS][member_id]

    def state(self, member_id: str) -> OpacState:
        return self.host.app[OPAC_STATES][member_id]

    def settings(self, member_id: str, timeout_s: float = 3.0, **options: Any) -> TargetSettings:
        profile = MEMBERS_UNDER_TEST[member_id][0]
        return CONSORTIUM.target_settings(member_id).model_copy(
            update={
                "kind": "html_opac",
                "endpoint": f"{self.host.base_url}/{member_id}/opac/",
                "timeout_s": timeout_s,
                "options": HtmlOpacOptions(profile=profile, **options),  # model_copy does not validate a dict
            }
        )

    def connector(self, member_id: str, timeout_s: float = 3.0, **options: Any) -> HtmlOpacConnector:
        return HtmlOpacConnector(self.settings(member_id, timeout_s, **options), self.http)

    def holdable(self, member_id: str, skip: int = 0) -> HeldWork:
        """A record with a loanable copy (reference-only records refuse holds)."""
        loanable = [
            h for h in self.system(member_id).held
            if any(c.availability not in (Availability.LIBRARY_USE_ONLY, Availability.NOT_FOR_LOAN) for c in h.copies)
        ]
        return loanable[skip]

    def request(self, member_id: str, record: HeldWork) -> HoldRequest:
        pickup = CONSORTIUM.member(member_id).branches[-1].id
        return HoldRequest(member=member_id, record_id=record.local_id, pickup_branch_id=pickup, idempotency_key=f"test-key-{next(_keys):04d}")


@pytest.fixture
async def opac() -> AsyncIterator[Opac]:
    specs = [
        sandbox_member(CONSORTIUM.member(member_id), latency_ms=0).model_copy(
            update={"protocol": "html_opac", "protocol_options": options, "status_style": words}
        )
        for member_id, (_, options, words) in MEMBERS_UNDER_TEST.items()
    ]
    async with SandboxHost(specs, admin=True) as host, HttpClient() as http:
        yield Opac(host, http)


def expected_availability(copy_availability: Availability) -> Availability:
    # Both sandbox vocabularies word "not for loan" like "library use only" (館内のみ / 禁帯出).
    return Availability.LIBRARY_USE_ONLY if copy_availability is Availability.NOT_FOR_LOAN else copy_availability


# --- search -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("member_id", STYLES)
async def test_search_by_title_author_and_isbn(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id)
    held = {h.local_id: h for h in opac.system(member_id).held}
    branch_ids = {b.id for b in CONSORTIUM.member(member_id).branches}

    by_author = await connector.search(SearchQuery(author="夏目漱石"))
    assert by_author.hits == len(by_author.records) >= 3
    assert all(any("夏目" in a for a in r.authors) for r in by_author.records)
    kokoro = next(r for r in by_author.records if r.title == "こころ")
    assert kokoro.isbns == [KOKORO_ISBN] and kokoro.publisher == "新潮社" and kokoro.year == 2004
    assert kokoro.source_format == "html"

    by_title = await connector.search(SearchQuery(title="こころ"))
    assert kokoro.local_id in {r.local_id for r in by_title.records}
    by_isbn = await connector.search(SearchQuery(isbn=KOKORO_ISBN))
    assert [r.local_id for r in by_isbn.records] == [kokoro.local_id] and by_isbn.hits == 1

    # Holdings come from the detail pages: every copy, its branch mapped, its word kept and understood.
    record = by_isbn.records[0]
    copies = {c.barcode: c for c in held[record.local_id].copies}
    assert {h.item_id for h in record.holdings} == set(copies)
    for holding in record.holdings:
        assert holding.item_id is not None
        copy = copies[holding.item_id]
        assert holding.branch_id == copy.branch.id and holding.branch_id in branch_ids
        assert holding.status_text == copy.status_word
        assert holding.availability is expected_availability(copy.availability)
        assert holding.call_number == copy.call_number and holding.due_date == copy.due_date


@pytest.mark.parametrize("member_id", STYLES)
async def test_paging_reads_the_pages_a_window_spans(opac: Opac, member_id: str) -> None:
    system = opac.system(member_id)
    truth = [system.held[p].local_id for p in system.search('title="の"')]
    assert len(truth) > 40, "enough hits to need several OPAC pages"
    # tos shows 10 rows a page (page numbers), wopc 20 (row offsets): rows 8-27 span 3 and 2 pages.
    no_details = {"search": {"max_detail_pages": 0}}
    result = await opac.connector(member_id, profile_overrides=no_details).search(SearchQuery(title="の", start=8, page_size=20))
    assert result.hits == len(truth)
    assert [r.local_id for r in result.records] == truth[7:27]


async def test_a_window_that_starts_mid_page_has_the_holdings_of_every_row(opac: Opac) -> None:
    system, state = opac.system("tsuyama-city"), opac.state("tsuyama-city")
    truth = [system.held[p].local_id for p in system.search('title="の"')]
    before = state.served.copy()
    # Rows 8-12: three on the first tos page (read with their details), two on the second.
    result = await opac.connector("tsuyama-city").search(SearchQuery(title="の", start=8, page_size=5))
    assert [r.local_id for r in result.records] == truth[7:12]
    held = {h.local_id: {c.barcode for c in h.copies} for h in system.held}
    assert [{h.item_id for h in r.holdings} for r in result.records] == [held[r.local_id] for r in result.records]
    assert dict(state.served - before) == {"search": 2, "detail": 5} and result.diagnostics == []


@pytest.mark.parametrize("member_id", STYLES)
async def test_a_result_that_fits_one_page_reads_one_result_page(opac: Opac, member_id: str) -> None:
    system, state = opac.system(member_id), opac.state(member_id)
    truth = [system.held[p].local_id for p in system.search('author="夏目漱石"')]
    assert 1 < len(truth) <= 10, "fewer hits than one tos page holds"
    before = state.served.copy()
    # A window of 20 rows spans two tos pages; the first page's hit count says the second is empty.
    result = await opac.connector(member_id).search(SearchQuery(author="夏目漱石", page_size=20))
    assert [r.local_id for r in result.records] == truth and all(r.holdings for r in result.records)
    form_page = 1 if member_id == "misaki-town" else 0  # wopc reads its form (ViewState) first
    assert dict(state.served - before) == {"search": 1 + form_page, "detail": len(truth)}


@pytest.mark.parametrize("member_id", STYLES)
async def test_concurrent_searches_listing_a_record_read_its_detail_page_once(opac: Opac, member_id: str) -> None:
    system, state = opac.system(member_id), opac.state(member_id)
    opac.host.set_faults(member_id, FaultConfig(delay_ms=100))  # every page in flight for a while
    connector = opac.connector(member_id)
    kokoro = system.held[system.search(f'isbn="{KOKORO_ISBN}"')[0]]
    before = state.served.copy()
    by_isbn, by_title = await asyncio.gather(
        connector.search(SearchQuery(isbn=KOKORO_ISBN)), connector.search(SearchQuery(title="こころ"))
    )
    titled = [system.held[p].local_id for p in system.search('title="こころ"')]
    assert [r.local_id for r in by_isbn.records] == [kokoro.local_id] and kokoro.local_id in titled
    assert [r.local_id for r in by_title.records] == titled
    # Both hold the record's copies, each its own objects, from one read of its detail page.
    shared = next(r for r in by_title.records if r.local_id == kokoro.local_id)
    assert shared.holdings == by_isbn.records[0].holdings and shared.holdings[0] is not by_isbn.records[0].holdings[0]
    assert {c.barcode for c in kokoro.copies} == {h.item_id for h in shared.holdings}
    form_pages = 1 if member_id == "misaki-town" else 0  # wopc: both share one read of the form page
    assert dict(state.served - before) == {"search": 2 + form_pages, "detail": len(titled)}
    # Once read, a page is not kept: the next search reads the holdings live again.
    before = state.served.copy()
    await connector.search(SearchQuery(isbn=KOKORO_ISBN))
    assert (state.served - before)["detail"] == 1


async def test_shift_jis_pages_and_forms(opac: Opac) -> None:
    url = f"{opac.host.base_url}/tsuyama-city/opac/toslist.asp?titlekey1=%82%B1%82%B1%82%EB"  # こころ in Shift_JIS
    response = await opac.http.get(url, member="raw", timeout_s=3)
    assert response.charset == "shift_jis"
    with pytest.raises(UnicodeDecodeError):
        response.body.decode("utf-8")
    assert "該当件数" in response.body.decode("cp932") and "こころ" in response.body.decode("cp932")
    # The connector sends kanji Shift_JIS-encoded and reads kanji back (the search above, by author).
    records = (await opac.connector("tsuyama-city").search(SearchQuery(title="吾輩は猫である"))).records
    assert records and records[0].title == "吾輩は猫である" and records[0].title_reading == "ワガハイ ワ ネコ デ アル"
    with pytest.raises(UnsupportedQuery, match="cp932"):  # a character Shift_JIS cannot carry is refused, not mangled
        await opac.connector("tsuyama-city").search(SearchQuery(title="猫 한"))


@pytest.mark.parametrize("member_id", STYLES)
async def test_wrong_charset_is_undecodable_not_mojibake(opac: Opac, member_id: str) -> None:
    opac.host.set_faults(member_id, FaultConfig(wrong_charset=True))
    with pytest.raises(UndecodableResponse, match="UTF-8|not valid"):
        await opac.connector(member_id).search(SearchQuery(author="夏目漱石"))


async def test_empty_status_cell_means_available_where_the_profile_says_so(opac: Opac) -> None:
    held = next(h for h in opac.system("tamano-city").held if any(c.availability is Availability.AVAILABLE for c in h.copies))
    copies = {c.barcode: c for c in held.copies}
    plain = await opac.connector("tamano-city").holdings(held.local_id)
    overridden = await opac.connector(
        "tamano-city", profile_overrides={"status": {"empty_status_means": "available"}}
    ).holdings(held.local_id)
    for without, with_override in zip(plain, overridden, strict=True):
        assert with_override.item_id is not None
        copy = copies[with_override.item_id]
        if copy.availability is Availability.AVAILABLE:
            assert without.status_text == with_override.status_text == ""
            assert without.availability is Availability.UNKNOWN, "an empty cell means nothing unless the profile says"
            assert with_override.availability is Availability.AVAILABLE
        else:
            assert with_override.status_text == copy.status_word
            assert with_override.availability is expected_availability(copy.availability)


async def test_detail_pages_per_search_are_capped(opac: Opac) -> None:
    result = await opac.connector("misaki-town", profile_overrides={"search": {"max_detail_pages": 2}}).search(
        SearchQuery(author="夏目漱石")
    )
    assert [bool(r.holdings) for r in result.records] == [True, True] + [False] * (len(result.records) - 2)
    assert [d.code for d in result.diagnostics] == ["holdings_capped"]


async def test_unmapped_query_field_is_unsupported(opac: Opac) -> None:
    with pytest.raises(UnsupportedQuery, match="no year search"):
        await opac.connector("tsuyama-city").search(SearchQuery(title="こころ", year=2004))


# --- broken pages and profiles ----------------------------------------------------------------------


@pytest.mark.parametrize("member_id", STYLES)
async def test_page_without_the_expected_table_is_malformed(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id, profile_overrides={"search": {"rows": "//table[@id='no-such-table']//tr"}})
    with pytest.raises(MalformedResponse, match=r"no rows matching search\.rows .*no-such-table.* reports \d+ hits"):
        await connector.search(SearchQuery(author="夏目漱石"))
    opac.host.set_faults(member_id, FaultConfig(malformed_xml=True))  # for HTML: a truncated page
    with pytest.raises(MalformedResponse, match="truncated"):
        await opac.connector(member_id).search(SearchQuery(author="夏目漱石"))


async def test_jsf_post_needs_the_current_view_state(opac: Opac) -> None:
    url = f"{opac.host.base_url}/misaki-town/opac/wopc/pc/pages/SearchDetail.jsp"
    bare = await opac.http.request("POST", url, member="raw", timeout_s=3, data={"searchDetailForm:author": "夏目漱石"})
    assert "ViewExpiredException" in bare.body.decode() and "resultList" not in bare.body.decode()
    forgetful = opac.connector("misaki-town", profile_overrides={"search": {"state_fields": [], "state_max_age_s": 0}})
    with pytest.raises(MalformedResponse, match="ViewExpiredException"):
        await forgetful.search(SearchQuery(author="夏目漱石"))


async def test_jsf_searches_reuse_the_form_state_and_keep_it_fresh_from_result_pages(opac: Opac) -> None:
    state = opac.state("misaki-town")
    connector = opac.connector("misaki-town")
    before = state.served.copy()
    for title in ("の", "こころ", "猫"):
        assert len((await connector.search(SearchQuery(title=title, page_size=1))).records) == 1
    # One form page for three searches; each result page's own view state is echoed next.
    assert dict(state.served - before) == {"search": 1 + 3, "detail": 3}
    assert connector.form_state is not None and connector.form_state.reads == 1
    newest = next(reversed(state.view_states))  # the last result page's form
    assert connector.form_state._state == {"javax.faces.ViewState": newest}
    # Searches arriving together before any state is known share one read of the form page.
    fresh = opac.connector("misaki-town")
    await asyncio.gather(*(fresh.search(SearchQuery(author="夏目漱石", page_size=1)) for _ in range(5)))
    assert fresh.form_state is not None and fresh.form_state.reads == 1


async def test_a_stale_jsf_form_state_is_read_again_once_and_the_search_asked_again(opac: Opac) -> None:
    state = opac.state("misaki-town")
    system = opac.system("misaki-town")
    truth = [system.held[p].local_id for p in system.search('author="夏目漱石"')]
    connector = opac.connector("misaki-town")
    await connector.search(SearchQuery(author="宮沢賢治", page_size=1))
    state.view_states.clear()  # the OPAC forgot every view (evicted, restarted): the reused one is stale
    before = state.served.copy()
    results = await asyncio.gather(*(connector.search(SearchQuery(author="夏目漱石")) for _ in range(3)))
    assert all([r.local_id for r in result.records] == truth for result in results)
    # Three stale answers, one form page shared by the three, three searches asked again.
    assert (state.served - before)["search"] == 3 + 1 + 3
    assert connector.form_state is not None and connector.form_state.reads == 2


async def test_a_jsf_form_state_older_than_its_max_age_is_read_again(opac: Opac) -> None:
    state = opac.state("misaki-town")
    connector = opac.connector("misaki-town", profile_overrides={"search": {"state_max_age_s": 0.2}})
    await connector.search(SearchQuery(author="宮沢賢治", page_size=1))
    await connector.search(SearchQuery(author="宮沢賢治", page_size=1))
    assert connector.form_state is not None and connector.form_state.reads == 1
    await asyncio.sleep(0.3)
    before = state.served.copy()
    await connector.search(SearchQuery(author="宮沢賢治", page_size=1))
    assert (state.served - before)["search"] == 2 and connector.form_state.reads == 2


async def test_a_failed_form_page_read_is_shared_by_its_waiters_and_not_kept(opac: Opac) -> None:
    state = opac.state("misaki-town")
    connector = opac.connector("misaki-town")
    opac.host.set_faults("misaki-town", FaultConfig(http_status=404))  # not retried: one read, one answer
    before = state.served.copy()
    failures = await asyncio.gather(*(connector.search(SearchQuery(title="の")) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(f, TargetHTTPError) for f in failures), failures
    assert (state.served - before)["search"] == 1 and connector.form_state is not None and connector.form_state.reads == 0
    opac.host.set_faults("misaki-town", FaultConfig())
    assert (await connector.search(SearchQuery(title="の", page_size=1))).records
    assert connector.form_state.reads == 1


def test_form_state_reuse_needs_a_marker_for_stale_states() -> None:
    with pytest.raises(OpacProfileError, match="state_expired_marker"):
        load_profile_file(
            Path(__file__).parents[1] / "connectors" / "opac_profiles" / "wopc.toml",
            {"search": {"state_expired_marker": None}},
        )


def test_broken_profile_names_the_file_and_every_field(tmp_path: Path) -> None:
    good = (Path(__file__).parents[1] / "connectors" / "opac_profiles" / "tos.toml").read_text(encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text(
        good.replace("rows = \"//table[@summary='検索結果一覧']/tr[td]\"", 'rows = "//table[@summary="')
        .replace('reason = "already_held"', 'reason = "already_hold"')
        .replace("page_size = 10", "page_size = 10\nrowz = 3")
        .replace('passwd = "{pin}"', 'passwd = "{password}"'),
        encoding="utf-8",
    )
    with pytest.raises(OpacProfileError) as caught:
        load_profile_file(broken)
    message = str(caught.value)
    assert all(line.startswith(f"{broken}: ") for line in message.splitlines())
    for expected in (
        "search.rows: Value error, not a valid XPath",
        "search.rowz: Extra inputs are not permitted",
        "refusals[4]: Value error, reason 'already_hold' is not one of",
        "login: Value error, fields.passwd: unknown placeholder(s) ['password']",
    ):
        assert expected in message, message
    broken.write_text("name = [", encoding="utf-8")
    with pytest.raises(OpacProfileError, match="TOML syntax error"):
        load_profile_file(broken)


async def test_bad_member_override_names_the_member(opac: Opac) -> None:
    with pytest.raises(OpacProfileError, match=r"tos\.toml \(member tamano-city with its profile_overrides\): status\.empty_status_means"):
        opac.connector("tamano-city", profile_overrides={"status": {"empty_status_means": "on_the_shelf"}})
    with pytest.raises(OpacProfileError, match="no profile named 'okalib'"):
        HtmlOpacConnector(opac.settings("tsuyama-city").model_copy(update={"options": HtmlOpacOptions(profile="okalib")}), opac.http)


# --- patrons and holds ------------------------------------------------------------------------------


@pytest.mark.parametrize("member_id", STYLES)
async def test_hold_lifecycle(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id)
    ledger = opac.system(member_id).ledger
    record = opac.holdable(member_id)
    request = opac.request(member_id, record)
    options = await connector.pickup_locations(PATRON, record.local_id)
    assert request.pickup_branch_id in {o.branch_id for o in options if o.allowed}

    intent = await connector.prepare_hold(PATRON, request)
    assert intent.holds_before == frozenset()
    hold = await connector.place_hold(PATRON, request, intent=intent)
    assert (hold.record_id, hold.pickup_branch_id, hold.state, hold.status_text) == (
        record.local_id, request.pickup_branch_id, HoldState.WAITING, "予約中"
    )
    assert hold.queue_position == 1 and hold.idempotency_key == request.idempotency_key
    assert [h.hold_id for h in ledger.holds_of(PATRON.card_number)] == [hold.hold_id]
    assert await connector.find_hold(PATRON, intent) == hold
    assert await connector.list_holds(PATRON) == [hold.model_copy(update={"idempotency_key": None})]
    assert (await connector.hold_status(PATRON, hold.hold_id)).state is HoldState.WAITING
    status = await connector.lookup_patron(PATRON)
    assert (status.blocked, status.holds_count, status.hold_record_ids) == (False, 1, [record.local_id])

    cancelled = await connector.cancel_hold(PATRON, hold.hold_id)
    assert cancelled.state is HoldState.CANCELLED and ledger.holds[hold.hold_id].state is HoldState.CANCELLED
    with pytest.raises(HoldRefused) as gone:
        await connector.hold_status(PATRON, hold.hold_id)
    assert gone.value.reason == "hold_not_found"


@pytest.mark.parametrize("member_id", STYLES)
async def test_refusals_are_named(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id)
    ledger = opac.system(member_id).ledger
    request = opac.request(member_id, opac.holdable(member_id, skip=1))

    async def reason_of(call: Any) -> str:
        with pytest.raises(HoldRefused) as refused:
            await call
        assert refused.value.message, "the OPAC's own words are kept"
        return refused.value.reason

    blocked = PatronCredentials(card_number=OVERDUE_CARD, pin=SecretStr("1234"))
    assert await reason_of(connector.place_hold(blocked, request)) == "patron_blocked"
    assert (await connector.lookup_patron(blocked)).block_reasons == ["overdue"]
    wrong_pin = PatronCredentials(card_number="10000002", pin=SecretStr("9999"))
    with pytest.raises(AuthenticationFailed) as bad_pin:  # bad credentials: their own error, not a refusal
        await connector.place_hold(wrong_pin, request)
    assert type(bad_pin.value) is AuthenticationFailed and bad_pin.value.message
    with pytest.raises(PatronNotFound):
        await connector.lookup_patron(PatronCredentials(card_number="99999999", pin=SecretStr("1234")))

    elsewhere = request.model_copy(update={"pickup_branch_id": "okayama-city/chuo"})  # another member's library
    assert await reason_of(connector.place_hold(PATRON, elsewhere)) == "invalid_pickup"
    unknown = request.model_copy(update={"record_id": "0000000000"})
    assert await reason_of(connector.place_hold(PATRON, unknown)) == "record_not_found"

    first = await connector.place_hold(PATRON, request)
    again = request.model_copy(update={"idempotency_key": f"test-key-{next(_keys):04d}"})
    assert await reason_of(connector.place_hold(PATRON, again)) == "already_held"
    ledger.advance(first.hold_id, HoldState.SECURED)
    assert (await connector.hold_status(PATRON, first.hold_id)).state is HoldState.SECURED
    assert await reason_of(connector.cancel_hold(PATRON, first.hold_id)) == "not_cancellable"
    assert len(ledger.holds_of(PATRON.card_number)) == 1


# --- sessions ---------------------------------------------------------------------------------------


def count_logins(connector: HtmlOpacConnector) -> list[int]:
    account = connector.account
    assert account is not None
    calls = [0]
    login = account._login

    async def counted(patron: PatronCredentials) -> Any:
        calls[0] += 1
        return await login(patron)

    account._login = counted  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("member_id", STYLES)
async def test_expired_login_is_renewed_once(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id)
    logins = count_logins(connector)
    await connector.lookup_patron(PATRON)
    await connector.lookup_patron(PATRON)
    assert logins == [1], "a login is reused while it lasts"

    expired = await opac.http.request("POST", f"{opac.host.base_url}/_admin/{member_id}/opac/expire-sessions", member="admin", timeout_s=3)
    assert expired.body == b'{"expired": 1}'
    status = await connector.lookup_patron(PATRON)  # tos: redirect to the login page; wopc: an expiry page
    assert status.member == member_id and logins == [2]

    opac.state(member_id).ttl_s = 0  # the OPAC now ends every login at once: one retry, then the error
    opac.state(member_id).expire_all()
    with pytest.raises(SessionExpired):
        await connector.lookup_patron(PATRON)
    assert logins == [3]


@pytest.mark.parametrize("member_id", STYLES)
async def test_session_ending_before_the_hold_post_places_it_once(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id)
    account = connector.account
    assert account is not None
    state = opac.state(member_id)
    hold_form = account._hold_form
    forms = []

    async def form_then_timeout(*args: Any) -> Any:
        forms.append(await hold_form(*args))
        if len(forms) == 1:
            state.expire_all()  # the patron's login times out between the form and its submission
        return forms[-1]

    account._hold_form = form_then_timeout  # type: ignore[method-assign,assignment]
    request = opac.request(member_id, opac.holdable(member_id))
    hold = await connector.place_hold(PATRON, request)
    assert hold.record_id == request.record_id
    assert state.hold_posts == 2 and len(forms) == 2, "the refused POST, then, once the lookup found nothing, one more"
    assert len(opac.system(member_id).ledger.holds_of(PATRON.card_number)) == 1


@pytest.mark.parametrize("member_id", STYLES)
async def test_placed_hold_with_lost_answer_is_not_sent_again(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id)
    state = opac.state(member_id)
    state.after_next_hold = "expire"  # the OPAC places the hold, then answers "session expired"
    request = opac.request(member_id, opac.holdable(member_id))
    hold = await connector.place_hold(PATRON, request)
    assert (hold.record_id, hold.idempotency_key) == (request.record_id, request.idempotency_key)
    assert state.hold_posts == 1, "found by the lookup: never re-sent"
    assert [h.hold_id for h in opac.system(member_id).ledger.holds_of(PATRON.card_number)] == [hold.hold_id]


@pytest.mark.parametrize("member_id", STYLES)
async def test_find_hold_survives_a_restart_of_the_connector(opac: Opac, member_id: str) -> None:
    before = await opac.connector(member_id).place_hold(PATRON, opac.request(member_id, opac.holdable(member_id, skip=2)))
    request = opac.request(member_id, opac.holdable(member_id))
    first = opac.connector(member_id)
    intent = await first.prepare_hold(PATRON, request)
    assert intent.holds_before == frozenset({before.hold_id})
    stored = intent.model_dump_json()  # what the ledger keeps
    hold = await first.place_hold(PATRON, request, intent=intent)
    del first
    restarted = opac.connector(member_id)  # a new process: no memory of the placement
    found = await restarted.find_hold(PATRON, HoldIntent.model_validate_json(stored))
    assert found == hold and found.hold_id != before.hold_id
    ledger = opac.system(member_id).ledger
    assert [h.record_id for h in ledger.holds_of(PATRON.card_number)] == [before.record_id, request.record_id]
    never_placed = opac.request(member_id, opac.holdable(member_id, skip=3))
    assert await restarted.find_hold(PATRON, HoldIntent(request=never_placed)) is None


@pytest.mark.parametrize("member_id", STYLES)
async def test_pickup_options_name_the_default_and_the_exclusions(opac: Opac, member_id: str) -> None:
    system = opac.system(member_id)
    branches = CONSORTIUM.member(member_id).branches
    system.ledger.pickup_codes.discard(branches[-1].codes[0])  # the member stops delivering to one branch
    pickup = [b for b in branches if b.codes and b.codes[0] in system.ledger.pickup_codes]
    assert 2 <= len(pickup) < len(branches)
    system.spec.protocol_options["closed_pickup"] = pickup[1].codes[0]  # greyed out in the form
    connector = opac.connector(member_id)
    record = opac.holdable(member_id)
    options = await connector.pickup_locations(PATRON, record.local_id)
    expected = (
        [(pickup[0].id, True, None)]
        + [(b.id, False, None) for b in pickup[2:]]
        + [(pickup[1].id, False, RefusalReason.BRANCH_CLOSED)]
        + [(b.id, False, RefusalReason.INVALID_PICKUP) for b in branches if b not in pickup]
    )
    assert [(o.branch_id, o.is_default, o.excluded_reason) for o in options] == expected
    assert all(o.label for o in options)
    closed = HoldRequest(member=member_id, record_id=record.local_id, pickup_branch_id=pickup[1].id, idempotency_key="key-closed-001")
    with pytest.raises(HoldRefused) as refused:
        await connector.place_hold(PATRON, closed)
    assert refused.value.reason == "branch_closed" and opac.state(member_id).hold_posts == 0
    assert (await connector.check_hold(PATRON, closed)).reasons == [RefusalReason.BRANCH_CLOSED]


@pytest.mark.parametrize("member_id", STYLES)
async def test_batch_cancel_answers_per_item(opac: Opac, member_id: str) -> None:
    connector = opac.connector(member_id)
    ledger = opac.system(member_id).ledger
    waiting = await connector.place_hold(PATRON, opac.request(member_id, opac.holdable(member_id, skip=0)))
    secured = await connector.place_hold(PATRON, opac.request(member_id, opac.holdable(member_id, skip=1)))
    ledger.advance(secured.hold_id, HoldState.SECURED)
    results = await connector.cancel_holds(PATRON, [waiting.hold_id, secured.hold_id, "nope"])
    assert [(r.hold_id, r.outcome, r.reason) for r in results] == [
        (waiting.hold_id, CancelOutcome.CANCELLED, None),
        (secured.hold_id, CancelOutcome.REFUSED, RefusalReason.NOT_CANCELLABLE),
        ("nope", CancelOutcome.REFUSED, RefusalReason.HOLD_NOT_FOUND),
    ]
    assert [ledger.holds[h].state for h in (waiting.hold_id, secured.hold_id)] == [HoldState.CANCELLED, HoldState.SECURED]


async def test_a_placement_whose_answer_and_lookup_both_fail_is_outcome_unknown(opac: Opac) -> None:
    connector = opac.connector("tsuyama-city", timeout_s=0.5)
    request = opac.request("tsuyama-city", opac.holdable("tsuyama-city"))
    intent = await connector.prepare_hold(PATRON, request)
    opac.state("tsuyama-city").after_next_hold = "hang"
    account = connector.account
    assert account is not None
    looked: list[HoldIntent] = []

    async def member_gone(patron: PatronCredentials, intent: HoldIntent) -> None:
        looked.append(intent)
        opac.host.set_faults("tsuyama-city", FaultConfig(http_status=503))  # down by the time we look
        return await type(account).find_hold(account, patron, intent)  # type: ignore[return-value]

    account.find_hold = member_gone  # type: ignore[method-assign,assignment]
    result = await connector.place(PATRON, intent)
    assert result.outcome == "unknown" and looked == [intent]
    with pytest.raises(OutcomeUnknown) as unknown:  # the same as an error, with what lies beneath
        opac.host.set_faults("tsuyama-city", FaultConfig())
        opac.state("tsuyama-city").after_next_hold = "hang"
        other = opac.request("tsuyama-city", opac.holdable("tsuyama-city", skip=1))
        await connector.place_hold(PATRON, other)
    assert isinstance(unknown.value.cause, ReadTimeout)
    opac.host.set_faults("tsuyama-city", FaultConfig())
    restarted = opac.connector("tsuyama-city")
    found = await restarted.find_hold(PATRON, intent)
    assert found is not None and found.record_id == request.record_id  # the ledger reconciles: it was placed
    assert len(opac.system("tsuyama-city").ledger.holds_of(PATRON.card_number)) == 2


async def test_placement_as_a_typed_result(opac: Opac) -> None:
    connector = opac.connector("misaki-town")
    request = opac.request("misaki-town", opac.holdable("misaki-town"))
    placed = await connector.place(PATRON, await connector.prepare_hold(PATRON, request))
    assert isinstance(placed, Placed) and placed.hold.record_id == request.record_id
    again = request.model_copy(update={"idempotency_key": "test-key-again1"})
    refused = await connector.place(PATRON, await connector.prepare_hold(PATRON, again))
    assert refused.outcome == "refused" and refused.reason is RefusalReason.ALREADY_HELD


async def test_placement_timeout_is_resolved_by_lookup(opac: Opac) -> None:
    connector = opac.connector("tsuyama-city", timeout_s=0.5)
    state = opac.state("tsuyama-city")
    state.after_next_hold = "hang"  # placed, and the answer never comes
    request = opac.request("tsuyama-city", opac.holdable("tsuyama-city"))
    hold = await connector.place_hold(PATRON, request)
    assert hold.record_id == request.record_id and state.hold_posts == 1
    assert len(opac.system("tsuyama-city").ledger.holds_of(PATRON.card_number)) == 1


def test_charset_comes_from_profile_then_header_then_meta() -> None:
    sjis = '<html><head><meta charset="Shift_JIS"></head><body>こころ</body></html>'.encode("cp932")
    assert "こころ" in decode_page(sjis, profile_codec=None, header_charset=None, member="m")  # <meta>
    assert "こころ" in decode_page(sjis, profile_codec=None, header_charset="shift_jis", member="m")  # header
    assert "こころ" in decode_page(sjis, profile_codec="cp932", header_charset="utf-8", member="m")  # profile wins
    with pytest.raises(UndecodableResponse, match="not valid utf-8"):
        decode_page(sjis, profile_codec=None, header_charset="utf-8", member="m")
    with pytest.raises(UndecodableResponse, match="not guessed with"):  # ISO-8859-1 would decode anything: refused
        decode_page(sjis, profile_codec=None, header_charset="iso-8859-1", member="m")
    # UTF-8 read as Shift_JIS decodes without error into mojibake (蜷ｾ霈ｩ縺ｯ…): caught all the same.
    utf8 = "<html><body>吾輩は猫である</body></html>".encode()
    with pytest.raises(UndecodableResponse, match="its bytes are UTF-8"):
        decode_page(utf8, profile_codec="cp932", header_charset=None, member="m")
