"""The Koha-style REST connector against the sandbox REST API on real sockets."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from pydantic import SecretStr

from yokodan import Availability, HoldRequest, HoldState, PatronCredentials, RefusalReason, SearchQuery
from yokodan.holds import CancelOutcome, HoldIntent, Placed, Refused, Unknown
from connectors.settings import TargetSettings
from connectors import HttpClient
from connectors.base import Capability
from connectors.errors import (
    AnswerLost,
    AuthenticationFailed,
    HoldRefused,
    MalformedResponse,
    OutcomeUnknown,
    PatronNotFound,
    ReadTimeout,
    ResponseTooLarge,
    TargetHTTPError,
    TargetTimeout,
    UndecodableResponse,
)
from connectors.ils_rest import ILSRestConnector, build_query, like
from sandbox import FaultConfig, SandboxBranch, SandboxHost, SandboxMember
from sandbox.ils_rest_server import ACCESS_LOG
from sandbox.member import MemberSystem
from sandbox.sru_server import MEMBERS

PIN = "1234"
PATRON = PatronCredentials(card_number="10000001", pin=SecretStr(PIN))
OTHER_PATRON = PatronCredentials(card_number="10000002", pin=SecretStr(PIN))
BRANCHES = [
    SandboxBranch(id="alpha/chuo", name="アルファ市立中央図書館", code="CHUO"),
    SandboxBranch(id="alpha/kita", name="アルファ市立北図書館", code="KITA"),
    SandboxBranch(id="alpha/minami", name="アルファ市立南分室", code="MINAMI"),  # not a pickup point
]


def rest_member(member_id: str, **options: str) -> SandboxMember:
    return SandboxMember(
        id=member_id,
        name="アルファ市立図書館",
        branches=[b.model_copy(update={"id": b.id.replace("alpha", member_id)}) for b in BRANCHES],
        holdings_field="952",
        status_style="standard",
        catalogue_share=0.9,
        protocol="ils_rest",
        protocol_options={"pickup_codes": "CHUO,KITA", **options},
    )


def settings_for(host: SandboxHost, member_id: str, timeout_s: float = 2.0) -> TargetSettings:
    # As the consortium builds them: every label of a branch (id, name, codes) -> its id.
    labels = {}
    codes = {}
    for branch in BRANCHES:
        branch_id = branch.id.replace("alpha", member_id)
        for label in (branch_id, branch.name, branch.code, branch.name[-5:]):
            labels[label] = branch_id
        codes[branch_id] = branch.code
    return TargetSettings(
        member=member_id,
        kind="ils_rest",
        endpoint=f"{host.base_url}/{member_id}/api/v1",
        timeout_s=timeout_s,
        branch_codes=labels,
        member_codes=codes,
    )


@dataclass
class Rest:
    host: SandboxHost
    connector: ILSRestConnector
    system: MemberSystem

    def log(self) -> list[str]:
        log: deque[str] = self.host.app[ACCESS_LOG]
        return list(log)

    def request(
        self, record_id: str, key: str, pickup: str = "alpha/kita", item_id: str | None = None, member: str = "alpha"
    ) -> HoldRequest:
        return HoldRequest(member=member, record_id=record_id, item_id=item_id, pickup_branch_id=pickup, idempotency_key=key)

    def record_id(self, index: int = 0) -> str:
        return holdable(self.system, index)


def intent(request: HoldRequest) -> HoldIntent:
    return HoldIntent(request=request)


def holdable(system: MemberSystem, index: int = 0) -> str:
    """The id of the index-th record with a copy on the shelf (the ledger refuses reference-only ones)."""
    return [h.local_id for h in system.held if any(c.availability is Availability.AVAILABLE for c in h.copies)][index]


@pytest.fixture
async def rest(http: HttpClient) -> AsyncIterator[Rest]:
    async with SandboxHost([rest_member("alpha"), rest_member("hangs", lose_hold_answer="hang"), rest_member("drops", lose_hold_answer="drop")], catalogue_size=300) as host:
        yield Rest(host, ILSRestConnector(settings_for(host, "alpha"), http), host.app[MEMBERS]["alpha"])


# --- search and copies -----------------------------------------------------------------------


async def test_search_maps_biblios_with_their_items(rest: Rest) -> None:
    result = await rest.connector.search(SearchQuery(author="夏目漱石"))
    assert result.records and result.hits == len(result.records)
    held = {h.local_id: h for h in rest.system.held}
    for record in result.records:
        truth = held[record.local_id]
        assert record.member == "alpha" and record.source_format == "json"
        assert record.title == truth.work.title
        assert record.year == truth.work.year
        assert record.isbns == ([truth.work.isbn13] if truth.isbn_text else [])
        assert [h.item_id for h in record.holdings] == [c.barcode for c in truth.copies]
        for holding, copy in zip(record.holdings, truth.copies):
            assert holding.status_text == copy.status_word
            # "standard" words: 禁帯出 is written for both reference and withdrawn copies.
            expected = Availability.LIBRARY_USE_ONLY if copy.availability is Availability.NOT_FOR_LOAN else copy.availability
            assert holding.availability is expected
            assert holding.branch_id == copy.at_branch.id and holding.location == copy.at_branch.code
            assert holding.due_date == copy.due_date
            assert holding.call_number == copy.call_number


async def test_search_by_isbn_title_and_pages(rest: Rest) -> None:
    with_isbn = next(h for h in rest.system.held if h.isbn_text)
    by_isbn = await rest.connector.search(SearchQuery(isbn=with_isbn.work.isbn13))
    assert with_isbn.local_id in {r.local_id for r in by_isbn.records}
    by_title = await rest.connector.search(SearchQuery(title=with_isbn.work.title))
    assert with_isbn.local_id in {r.local_id for r in by_title.records}
    everything = await rest.connector.search(SearchQuery(text="の", page_size=5))
    second_page = await rest.connector.search(SearchQuery(text="の", page_size=5, start=6))
    assert everything.hits == second_page.hits and everything.hits is not None and everything.hits > 10
    assert len(everything.records) == 5 and not {r.local_id for r in everything.records} & {r.local_id for r in second_page.records}


def test_query_is_koha_json_with_like_wildcards_escaped() -> None:
    query = build_query(SearchQuery(title="100% 猫_", year=1905))
    assert query == {  # % and _ are punctuation: never part of a term (yokodan.terms)
        "-and": [
            {"title": {"-like": "%100%"}},
            {"title": {"-like": "%猫%"}},
            {"publication_year": 1905},
        ]
    }
    assert like("100%猫_") == {"-like": "%100\\%猫\\_%"}  # kept characters are still escaped


async def test_holdings_of_one_record(rest: Rest) -> None:
    truth = rest.system.held[3]
    holdings = await rest.connector.holdings(truth.local_id)
    assert [(h.item_id, h.status_text) for h in holdings] == [(c.barcode, c.status_word) for c in truth.copies]
    with pytest.raises(HoldRefused) as refused:
        await rest.connector.holdings("999999")
    assert refused.value.reason == "record_not_found"


def test_coded_fields_decide_when_the_word_is_unknown_or_absent(rest: Rest) -> None:
    item = {"item_id": 7, "home_library_id": "CHUO", "holding_library_id": "KITA"}
    cases: list[tuple[dict[str, object], Availability, str]] = [
        ({}, Availability.AVAILABLE, "available"),
        ({"checked_out_date": "2030-01-31"}, Availability.ON_LOAN, "checked out"),
        ({"not_for_loan_status": -1}, Availability.ON_ORDER, "on order"),
        ({"not_for_loan_status": 1}, Availability.LIBRARY_USE_ONLY, "not for loan"),
        ({"lost_status": 2}, Availability.NOT_FOR_LOAN, "lost"),
        ({"not_for_loan_status": 2, "public_notes": "付録CD付"}, Availability.LIBRARY_USE_ONLY, "付録CD付"),
        ({"public_notes": "予回送"}, Availability.IN_TRANSIT, "予回送"),
    ]
    for fields, availability, word in cases:
        holding = rest.connector.holding({**item, **fields})
        assert (holding.availability, holding.status_text) == (availability, word), fields
        assert holding.branch_id == "alpha/kita" and holding.item_id == "7"
    assert rest.connector.holding({**item, "checked_out_date": "2030-01-31T23:59:00+09:00"}).due_date == date(2030, 1, 31)


# --- patrons -----------------------------------------------------------------------------------


async def test_patron_lookup(rest: Rest) -> None:
    normal = await rest.connector.lookup_patron(PATRON)
    assert not normal.blocked and normal.loans_count == 0 and normal.holds_count == 0
    overdue = await rest.connector.lookup_patron(PatronCredentials(card_number="10000009", pin=SecretStr(PIN)))
    assert overdue.blocked and "overdue" in overdue.block_reasons
    assert overdue.overdue_count == 1 and overdue.loan_record_ids == [rest.system.held[0].local_id]
    expired = await rest.connector.lookup_patron(PatronCredentials(card_number="10000010", pin=SecretStr(PIN)))
    assert expired.blocked and expired.block_reasons == ["card_expired"]
    without_pin = await rest.connector.lookup_patron(PatronCredentials(card_number="10000001"))
    assert without_pin == normal


@pytest.mark.parametrize(
    ("card", "pin", "error"),
    [("10000001", "9999", AuthenticationFailed), ("99999999", PIN, AuthenticationFailed), ("99999999", None, PatronNotFound)],
    ids=["wrong-pin", "unknown-card-with-pin", "unknown-card"],
)
async def test_bad_credentials_are_their_own_error_not_a_hold_refusal(
    rest: Rest, card: str, pin: str | None, error: type[AuthenticationFailed]
) -> None:
    with pytest.raises(AuthenticationFailed) as failed:
        await rest.connector.lookup_patron(PatronCredentials(card_number=card, pin=SecretStr(pin) if pin else None))
    assert type(failed.value) is error and not isinstance(failed.value, HoldRefused)


async def test_holds_and_loans_show_in_the_patron(rest: Rest) -> None:
    record_id = rest.record_id()
    await rest.connector.place_hold(PATRON, rest.request(record_id, "key-patron-1"))
    status = await rest.connector.lookup_patron(PATRON)
    assert (status.holds_count, status.hold_record_ids) == (1, [record_id])


# --- holds -------------------------------------------------------------------------------------


async def test_place_hold_then_find_it_by_key(rest: Rest) -> None:
    record_id = rest.record_id()
    hold = await rest.connector.place_hold(PATRON, rest.request(record_id, "key-first-0001"))
    assert (hold.state, hold.queue_position, hold.record_id) == (HoldState.WAITING, 1, record_id)
    assert hold.pickup_branch_id == "alpha/kita" and hold.idempotency_key == "key-first-0001"
    second = await rest.connector.place_hold(OTHER_PATRON, rest.request(record_id, "key-second-001", pickup="alpha/chuo"))
    assert second.queue_position == 2
    assert await rest.connector.find_hold(PATRON, intent(rest.request(record_id, "key-first-0001"))) == hold
    assert await rest.connector.find_hold(PATRON, intent(rest.request(record_id, "key-never-sent"))) is None
    assert await rest.connector.find_hold(OTHER_PATRON, intent(rest.request(record_id, "key-first-0001"))) is None, "keys are per patron"


async def test_item_level_hold(rest: Rest) -> None:
    held = next(h for h in rest.system.held if any(c.availability is Availability.AVAILABLE for c in h.copies))
    copy = next(c for c in held.copies if c.availability is Availability.AVAILABLE)
    hold = await rest.connector.place_hold(PATRON, rest.request(held.local_id, "key-item-0001", item_id=copy.barcode))
    assert hold.item_id == copy.barcode and rest.system.ledger.holds["alpha-H00001"].item_id == copy.barcode


async def test_the_same_key_twice_places_one_hold(rest: Rest) -> None:
    request = rest.request(rest.record_id(), "key-repeat-001")
    first = await rest.connector.place_hold(PATRON, request)
    again = await rest.connector.place_hold(PATRON, request)
    assert again == first
    assert len(rest.system.ledger.holds) == 1


@pytest.mark.parametrize(
    ("patron", "pickup", "reason"),
    [
        (PATRON, "alpha/kita", "already_held"),  # after a first hold on the same title
        (PatronCredentials(card_number="10000009", pin=SecretStr(PIN)), "alpha/kita", "patron_blocked"),
        (PatronCredentials(card_number="10000010", pin=SecretStr(PIN)), "alpha/kita", "patron_blocked"),
        (PATRON, "alpha/minami", "invalid_pickup"),  # a branch, but not a pickup point: the member refuses
        (PATRON, "beta/elsewhere", "invalid_pickup"),  # not this member's branch: refused before sending
    ],
    ids=["already-held", "overdue", "expired-card", "not-a-pickup-point", "foreign-branch"],
)
async def test_refused_placements(rest: Rest, patron: PatronCredentials, pickup: str, reason: str) -> None:
    record_id = rest.record_id()
    await rest.connector.place_hold(PATRON, rest.request(record_id, "key-earlier-01"))
    with pytest.raises(HoldRefused) as refused:
        await rest.connector.place_hold(patron, rest.request(record_id, "key-refused-01", pickup=pickup))
    assert refused.value.reason == reason
    assert [h.hold_id for h in rest.system.ledger.holds.values()] == ["alpha-H00001"]


async def test_a_wrong_pin_at_placement_is_an_authentication_failure(rest: Rest) -> None:
    wrong_pin = PatronCredentials(card_number="10000001", pin=SecretStr("0000"))
    request = rest.request(rest.record_id(), "key-wrongpin-1")
    with pytest.raises(AuthenticationFailed):
        await rest.connector.place_hold(wrong_pin, request)
    assert await rest.connector.place(wrong_pin, intent(request)) == Refused(reason=RefusalReason.AUTHENTICATION_FAILED, message="Validation failed")
    assert not rest.system.ledger.holds


async def test_hold_on_reference_copies_only_is_refused(rest: Rest) -> None:
    reference = next(h for h in rest.system.held if all(c.availability is Availability.LIBRARY_USE_ONLY for c in h.copies))
    with pytest.raises(HoldRefused) as refused:
        await rest.connector.place_hold(PATRON, rest.request(reference.local_id, "key-reference1"))
    assert refused.value.reason == "not_holdable"


async def test_cancel_while_waiting_but_not_once_secured(rest: Rest) -> None:
    waiting = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(0), "key-cancel-001"))
    cancelled = await rest.connector.cancel_hold(PATRON, waiting.hold_id)
    assert cancelled.state is HoldState.CANCELLED and cancelled.hold_id == waiting.hold_id
    assert (await rest.connector.hold_status(PATRON, waiting.hold_id)).state is HoldState.CANCELLED
    secured = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(1), "key-cancel-002"))
    rest.system.ledger.advance("alpha-H00002", HoldState.SECURED)
    with pytest.raises(HoldRefused) as refused:
        await rest.connector.cancel_hold(PATRON, secured.hold_id)
    assert refused.value.reason == "not_cancellable"
    assert rest.system.ledger.holds["alpha-H00002"].state is HoldState.SECURED


async def test_another_patrons_hold_is_not_theirs(rest: Rest) -> None:
    hold = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(), "key-private-01"))
    for operation in (rest.connector.hold_status, rest.connector.cancel_hold):
        with pytest.raises(HoldRefused) as refused:
            await operation(OTHER_PATRON, hold.hold_id)
        assert refused.value.reason == "hold_not_found"
    with pytest.raises(HoldRefused):
        await rest.connector.hold_status(PATRON, "424242")


# Koha's hold status (reserves.found) has no "submitted": a new hold is queued at once.
KOHA_STATE_OF = {state: state for state in HoldState} | {HoldState.SUBMITTED: HoldState.WAITING}


@pytest.mark.parametrize("state", list(HoldState), ids=[s.value for s in HoldState])
async def test_hold_status_follows_the_member(rest: Rest, state: HoldState) -> None:
    hold = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(), "key-states-001"))
    rest.system.ledger.advance("alpha-H00001", state)
    seen = await rest.connector.hold_status(PATRON, hold.hold_id)
    assert seen.state is KOHA_STATE_OF[state]
    assert (seen.ready_until is not None) == (state is HoldState.READY)
    assert (seen.queue_position is not None) == (seen.state is HoldState.WAITING)


async def test_pickup_locations_with_default_and_exclusions(rest: Rest) -> None:
    options = await rest.connector.pickup_locations(PATRON, rest.record_id())
    assert [(o.branch_id, o.label, o.is_default, o.excluded_reason) for o in options] == [
        ("alpha/chuo", "アルファ市立中央図書館", True, None),  # the patron's home library (Koha: library_id)
        ("alpha/kita", "アルファ市立北図書館", False, None),
        ("alpha/minami", "アルファ市立南分室", False, RefusalReason.INVALID_PICKUP),  # not a pickup point
    ]
    assert rest.connector.supports(Capability.PICKUP_LOCATIONS) and rest.connector.supports(Capability.SEARCH)
    with pytest.raises(HoldRefused) as refused:
        await rest.connector.pickup_locations(PATRON, "999999")
    assert refused.value.reason == "record_not_found"


async def test_check_hold_names_what_stands_in_the_way_and_places_nothing(rest: Rest) -> None:
    record_id = rest.record_id()
    assert (await rest.connector.check_hold(PATRON, rest.request(record_id, "key-check-0001"))).valid
    not_pickup = await rest.connector.check_hold(PATRON, rest.request(record_id, "key-check-0002", pickup="alpha/minami"))
    assert not_pickup.reasons == [RefusalReason.INVALID_PICKUP]
    blocked = PatronCredentials(card_number="10000009", pin=SecretStr(PIN))
    on_loan = rest.system.held[0].local_id
    check = await rest.connector.check_hold(blocked, rest.request(on_loan, "key-check-0003"))
    assert check.reasons[:2] == [RefusalReason.PATRON_BLOCKED, RefusalReason.ALREADY_ON_LOAN]
    await rest.connector.place_hold(PATRON, rest.request(record_id, "key-check-0004"))
    assert (await rest.connector.check_hold(PATRON, rest.request(record_id, "key-check-0005"))).reasons == [RefusalReason.ALREADY_HELD]
    reference = next(h for h in rest.system.held if all(c.availability is Availability.LIBRARY_USE_ONLY for c in h.copies))
    assert (await rest.connector.check_hold(PATRON, rest.request(reference.local_id, "key-check-0006"))).reasons == [RefusalReason.NOT_HOLDABLE]
    assert len(rest.system.ledger.holds) == 1, "checks place nothing"
    with pytest.raises(AuthenticationFailed):
        await rest.connector.check_hold(PatronCredentials(card_number="10000001", pin=SecretStr("0000")), rest.request(record_id, "key-check-0007"))


async def test_list_holds_for_the_poller(rest: Rest) -> None:
    assert await rest.connector.list_holds(PATRON) == []
    first = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(0), "key-list-00001"))
    second = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(1), "key-list-00002", pickup="alpha/chuo"))
    await rest.connector.place_hold(OTHER_PATRON, rest.request(rest.record_id(2), "key-list-00003"))
    rest.system.ledger.advance("alpha-H00002", HoldState.READY)
    listed = await rest.connector.list_holds(PATRON)
    assert [(h.hold_id, h.record_id, h.state) for h in listed] == [
        (first.hold_id, first.record_id, HoldState.WAITING),
        (second.hold_id, second.record_id, HoldState.READY),
    ]
    assert [h.idempotency_key for h in listed] == ["key-list-00001", "key-list-00002"]
    await rest.connector.cancel_hold(PATRON, first.hold_id)
    assert [h.hold_id for h in await rest.connector.list_holds(PATRON)] == [second.hold_id]


async def test_batch_cancel_answers_per_item(rest: Rest) -> None:
    waiting = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(0), "key-batch-0001"))
    secured = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(1), "key-batch-0002"))
    others = await rest.connector.place_hold(OTHER_PATRON, rest.request(rest.record_id(2), "key-batch-0003"))
    rest.system.ledger.advance("alpha-H00002", HoldState.SECURED)
    results = await rest.connector.cancel_holds(PATRON, [waiting.hold_id, secured.hold_id, others.hold_id, waiting.hold_id, "x"])
    assert [(r.hold_id, r.outcome, r.reason) for r in results] == [
        (waiting.hold_id, CancelOutcome.CANCELLED, None),
        (secured.hold_id, CancelOutcome.REFUSED, RefusalReason.NOT_CANCELLABLE),
        (others.hold_id, CancelOutcome.REFUSED, RefusalReason.HOLD_NOT_FOUND),  # another patron's
        ("x", CancelOutcome.REFUSED, RefusalReason.HOLD_NOT_FOUND),
    ]
    assert results[0].hold is not None and results[0].hold.state is HoldState.CANCELLED
    states = [h.state for h in rest.system.ledger.holds.values()]
    assert states == [HoldState.CANCELLED, HoldState.SECURED, HoldState.WAITING]


async def test_cancel_with_a_lost_answer_is_unknown_per_item(rest: Rest) -> None:
    hold = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(), "key-batch-lost"))
    rest.system.spec.protocol_options["lose_cancel_answer"] = "drop"  # cancels, then cuts the line
    [result] = await rest.connector.cancel_holds(PATRON, [hold.hold_id])
    assert (result.hold_id, result.outcome, result.error) == (hold.hold_id, CancelOutcome.UNKNOWN, "unreachable")
    assert rest.system.ledger.holds["alpha-H00001"].state is HoldState.CANCELLED
    assert sum(line.startswith("DELETE /alpha/api/v1/holds/") for line in rest.log()) == 1, "a DELETE is not re-sent"


# --- lost answers and faults -------------------------------------------------------------------


@pytest.mark.parametrize(("member", "cause"), [("hangs", ReadTimeout), ("drops", AnswerLost)])
async def test_a_lost_placement_answer_is_outcome_unknown_and_the_hold_is_found(
    rest: Rest, http: HttpClient, member: str, cause: type[Exception]
) -> None:
    connector = ILSRestConnector(settings_for(rest.host, member, timeout_s=1.0), http)
    system = rest.host.app[MEMBERS][member]
    request = rest.request(holdable(system), "key-lost-00001", pickup=f"{member}/kita", member=member)
    with pytest.raises(OutcomeUnknown) as unknown:
        await connector.place_hold(PATRON, request)
    assert type(unknown.value.cause) is cause
    assert len(system.ledger.holds) == 1, "the member placed it"
    assert sum(line.startswith(f"POST /{member}/api/v1/holds") for line in rest.log()) == 1, "sent once, never again"
    found = await connector.find_hold(PATRON, intent(request))
    assert found is not None and found.state is HoldState.WAITING and found.record_id == request.record_id
    assert [h.hold_id for h in await connector.list_holds(PATRON)] == [found.hold_id]


async def test_placement_as_a_typed_result(rest: Rest, http: HttpClient) -> None:
    request = rest.request(rest.record_id(), "key-typed-0001")
    placed = await rest.connector.place(PATRON, intent(request))
    assert isinstance(placed, Placed) and placed.hold.record_id == request.record_id
    refused = await rest.connector.place(PATRON, intent(rest.request(request.record_id, "key-typed-0002")))
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.ALREADY_HELD
    drops = ILSRestConnector(settings_for(rest.host, "drops", timeout_s=1.0), http)
    lost = rest.request(holdable(rest.host.app[MEMBERS]["drops"]), "key-typed-0003", pickup="drops/kita", member="drops")
    unknown = await drops.place(PATRON, intent(lost))
    assert isinstance(unknown, Unknown) and unknown.idempotency_key == "key-typed-0003"


async def test_reads_are_retried_but_a_pin_check_is_sent_once(rest: Rest) -> None:
    rest.host.set_faults("alpha", FaultConfig(http_status=503))
    with pytest.raises(TargetHTTPError) as failed:
        await rest.connector.lookup_patron(PatronCredentials(card_number="10000001"))
    assert failed.value.reason == "http_503"
    assert sum(line.startswith("GET /alpha/api/v1/patrons") for line in rest.log()) == 3, "a read: retried"
    # A PIN check is a POST a member may count towards a lockout: never repeated.
    with pytest.raises(TargetHTTPError):
        await rest.connector.place_hold(PATRON, rest.request(rest.record_id(), "key-unavail-01"))
    assert sum(line.startswith("POST /alpha/api/v1/auth") for line in rest.log()) == 1
    assert not any(line.startswith("POST /alpha/api/v1/holds") for line in rest.log())


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (FaultConfig(http_status=500), TargetHTTPError),
        (FaultConfig(malformed_xml=True), MalformedResponse),
        (FaultConfig(wrong_charset=True), UndecodableResponse),
        (FaultConfig(hang=True), TargetTimeout),
        (FaultConfig(slow_drip_s=5.0), TargetTimeout),
    ],
    ids=["http-500", "malformed-json", "wrong-charset", "hang", "slow-drip"],
)
async def test_faults_become_named_errors(rest: Rest, http: HttpClient, faults: FaultConfig, error: type[Exception]) -> None:
    rest.host.set_faults("alpha", faults)
    connector = ILSRestConnector(settings_for(rest.host, "alpha", timeout_s=1.0), http)
    with pytest.raises(error):
        await connector.search(SearchQuery(author="夏目漱石"))


async def test_huge_body_is_cut_at_the_cap(rest: Rest) -> None:
    rest.host.set_faults("alpha", FaultConfig(huge_body_mb=2))
    async with HttpClient(max_body_bytes=512 * 1024) as small_cap:
        connector = ILSRestConnector(settings_for(rest.host, "alpha"), small_cap)
        with pytest.raises(ResponseTooLarge):
            await connector.search(SearchQuery(author="夏目漱石"))


# --- privacy -----------------------------------------------------------------------------------


async def test_the_pin_never_appears_in_a_url(rest: Rest) -> None:
    secret = "8642"
    patron = PatronCredentials(card_number="10000003", pin=SecretStr(secret))
    with pytest.raises(AuthenticationFailed):
        await rest.connector.lookup_patron(patron)  # a wrong PIN goes over the wire too
    hold = await rest.connector.place_hold(PATRON, rest.request(rest.record_id(), "key-privacy-01"))
    await rest.connector.lookup_patron(PATRON)
    await rest.connector.find_hold(PATRON, intent(rest.request(hold.record_id, "key-privacy-01")))
    await rest.connector.list_holds(PATRON)
    await rest.connector.hold_status(PATRON, hold.hold_id)
    await rest.connector.pickup_locations(PATRON, hold.record_id)
    await rest.connector.cancel_hold(PATRON, hold.hold_id)
    log = rest.log()
    assert any(line.startswith("POST /alpha/api/v1/auth/password/validation") for line in log)
    for line in log:
        url = urlsplit(line.split(" ", 1)[1])
        tokens = [unquote(s) for s in url.path.split("/")] + [v for _, v in parse_qsl(url.query)]
        assert PIN not in tokens and secret not in tokens, line
        assert not {k.lower() for k, _ in parse_qsl(url.query)} & {"pin", "password", "userpin"}, line
