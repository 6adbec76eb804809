"""The NCIP 2.0 connector against the sandbox NCIP responder (and canned answers) on real sockets."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from lxml import etree
from pydantic import SecretStr

from yokodan import Availability, HoldRequest, HoldState, PatronCredentials, RefusalReason, SearchQuery
from yokodan.holds import CancelOutcome, HoldIntent
from connectors.settings import TargetSettings
from connectors import HttpClient
from connectors.base import Capability
from connectors.errors import (
    AnswerLost,
    AuthenticationFailed,
    HoldRefused,
    HostileDocument,
    MalformedResponse,
    NotSupported,
    OutcomeUnknown,
    PatronNotFound,
    ProtocolDiagnostic,
    ReadTimeout,
    TargetHTTPError,
    TargetTimeout,
    UndecodableResponse,
)
from connectors.ncip import NCIPConnector
from sandbox import FaultConfig, SandboxBranch, SandboxHost, SandboxMember
from sandbox.member import MemberSystem
from sandbox.ncip_server import ACCESS_LOG
from sandbox.sru_server import MEMBERS

PIN = "1234"
PATRON = PatronCredentials(card_number="10000001", pin=SecretStr(PIN))
OTHER_PATRON = PatronCredentials(card_number="10000002", pin=SecretStr(PIN))
CODES = {"MAIN": "本館", "EAST": "東分館", "WEST": "西分室"}  # WEST is not a pickup point
# The member's hold words, as its consortium entry would list them (Okayama / Aomori vocabulary).
HOLD_WORDS = {
    "予約申込": "submitted",
    "予約中": "waiting",
    "準備中": "secured",
    "配送中": "in_transit",
    "貸出可能": "ready",
    "貸出済": "collected",
    "取置期限切れ": "expired",
    "取消": "cancelled",
}


def ncip_member(member_id: str, **options: str) -> SandboxMember:
    return SandboxMember(
        id=member_id,
        name="ベータ市立図書館",
        branches=[SandboxBranch(id=f"{member_id}/{c.lower()}", name=n, code=c) for c, n in CODES.items()],
        status_style="tos",
        catalogue_share=0.9,
        protocol="ncip",
        protocol_options={"pickup_codes": "MAIN,EAST", **options},
    )


def settings_for(base_url: str, member_id: str, timeout_s: float = 2.0, **options: object) -> TargetSettings:
    labels = {}
    for code, name in CODES.items():
        branch_id = f"{member_id}/{code.lower()}"
        labels.update({branch_id: branch_id, name: branch_id, code: branch_id})
    return TargetSettings(
        member=member_id,
        kind="ncip",
        endpoint=f"{base_url}/{member_id}/ncip",
        timeout_s=timeout_s,
        branch_codes=labels,
        member_codes={f"{member_id}/{code.lower()}": code for code in CODES},
        options={"hold_words": HOLD_WORDS, **options},
    )


def intent(request: HoldRequest) -> HoldIntent:
    return HoldIntent(request=request)


def holdable(system: MemberSystem, index: int = 0) -> str:
    return [h.local_id for h in system.held if any(c.availability is Availability.AVAILABLE for c in h.copies)][index]


@dataclass
class Ncip:
    host: SandboxHost
    http: HttpClient
    connector: NCIPConnector
    system: MemberSystem

    def log(self) -> list[str]:
        log: deque[str] = self.host.app[ACCESS_LOG]
        return list(log)

    def connector_for(self, member_id: str, **kwargs: object) -> NCIPConnector:
        return NCIPConnector(settings_for(self.host.base_url, member_id, **kwargs), self.http)  # type: ignore[arg-type]

    def request(self, record_id: str, key: str, pickup: str = "beta/east", item_id: str | None = None, member: str = "beta") -> HoldRequest:
        return HoldRequest(member=member, record_id=record_id, item_id=item_id, pickup_branch_id=pickup, idempotency_key=key)


@pytest.fixture
async def ncip(http: HttpClient) -> AsyncIterator[Ncip]:
    members = [
        ncip_member("beta"),
        ncip_member("gamma", status_scheme="ncip"),
        ncip_member("hangs", lose_hold_answer="hang"),
        ncip_member("drops", lose_hold_answer="drop"),
    ]
    async with SandboxHost(members, catalogue_size=300) as host:
        yield Ncip(host, http, NCIPConnector(settings_for(host.base_url, "beta"), http), host.app[MEMBERS]["beta"])


# --- what NCIP can and cannot do ---------------------------------------------------------------


async def test_ncip_has_no_search(ncip: Ncip) -> None:
    assert not ncip.connector.supports(Capability.SEARCH)
    assert {Capability.HOLDINGS, Capability.PLACE_HOLD, Capability.CANCEL_HOLD} <= ncip.connector.capabilities
    with pytest.raises(NotSupported):
        await ncip.connector.search(SearchQuery(title="猫"))


# --- copies ------------------------------------------------------------------------------------


async def test_holdings_in_the_members_own_words(ncip: Ncip) -> None:
    checked = 0
    for truth in ncip.system.held[:40]:
        holdings = await ncip.connector.holdings(truth.local_id)
        assert [h.item_id for h in holdings] == [c.barcode for c in truth.copies]
        for holding, copy in zip(holdings, truth.copies):
            assert holding.status_text == copy.status_word
            # "tos" words: 館内のみ is written for both reference and withdrawn copies.
            expected = Availability.LIBRARY_USE_ONLY if copy.availability is Availability.NOT_FOR_LOAN else copy.availability
            assert holding.availability is expected
            assert (holding.branch_id, holding.location) == (copy.at_branch.id, copy.at_branch.code)
            assert (holding.call_number, holding.collection, holding.due_date) == (copy.call_number, copy.collection, copy.due_date)
            assert holding.queue_length == 0
            checked += 1
    assert checked > 40


async def test_holdings_in_standard_ncip_values(ncip: Ncip) -> None:
    connector = ncip.connector_for("gamma")
    expected = {
        Availability.AVAILABLE: Availability.AVAILABLE,
        Availability.LIBRARY_USE_ONLY: Availability.LIBRARY_USE_ONLY,  # by ItemUseRestrictionType
        Availability.NOT_FOR_LOAN: Availability.NOT_FOR_LOAN,
        Availability.ON_LOAN: Availability.ON_LOAN,
        Availability.RESERVED: Availability.RESERVED,
        Availability.IN_TRANSIT: Availability.IN_TRANSIT,
        Availability.ON_ORDER: Availability.ON_ORDER,
        Availability.CLOSED: Availability.NOT_FOR_LOAN,  # NCIP has no word for a closed branch
    }
    seen = set()
    for truth in ncip.host.app[MEMBERS]["gamma"].held[:80]:
        for holding, copy in zip(await connector.holdings(truth.local_id), truth.copies):
            assert holding.availability is expected[copy.availability], (holding.status_text, copy.availability)
            seen.add(copy.availability)
    assert {Availability.AVAILABLE, Availability.ON_LOAN, Availability.LIBRARY_USE_ONLY} <= seen


async def test_lookup_item_and_unknown_ids(ncip: Ncip) -> None:
    truth = ncip.system.held[2]
    holding = await ncip.connector.lookup_item(truth.copies[0].barcode)
    assert (holding.item_id, holding.status_text) == (truth.copies[0].barcode, truth.copies[0].status_word)
    for lookup in (ncip.connector.lookup_item("0000"), ncip.connector.holdings("0000")):
        with pytest.raises(HoldRefused) as refused:
            await lookup
        assert refused.value.reason == "record_not_found"


async def test_hold_queue_length_counts_waiting_holds(ncip: Ncip) -> None:
    record_id = holdable(ncip.system)
    await ncip.connector.place_hold(PATRON, ncip.request(record_id, "key-queue-0001"))
    await ncip.connector.place_hold(OTHER_PATRON, ncip.request(record_id, "key-queue-0002"))
    assert {h.queue_length for h in await ncip.connector.holdings(record_id)} == {2}


# --- patrons -----------------------------------------------------------------------------------


async def test_patron_lookup(ncip: Ncip) -> None:
    normal = await ncip.connector.lookup_patron(PATRON)
    assert not normal.blocked and (normal.loans_count, normal.holds_count) == (0, 0)
    overdue = await ncip.connector.lookup_patron(PatronCredentials(card_number="10000009", pin=SecretStr(PIN)))
    assert overdue.blocked and overdue.block_reasons == ["overdue"]
    assert (overdue.overdue_count, overdue.loans_count, overdue.loan_record_ids) == (1, 1, [ncip.system.held[0].local_id])
    expired = await ncip.connector.lookup_patron(PatronCredentials(card_number="10000010", pin=SecretStr(PIN)))
    assert expired.blocked and expired.block_reasons == ["card_expired"]
    assert await ncip.connector.lookup_patron(PatronCredentials(card_number="10000001")) == normal
    record_id = holdable(ncip.system)
    await ncip.connector.place_hold(PATRON, ncip.request(record_id, "key-patron-001"))
    with_hold = await ncip.connector.lookup_patron(PATRON)
    assert (with_hold.holds_count, with_hold.hold_record_ids) == (1, [record_id])


@pytest.mark.parametrize(
    ("card", "pin", "error"),
    [
        ("10000001", "9999", AuthenticationFailed),
        ("99999999", PIN, PatronNotFound),
        ("99999999", None, PatronNotFound),
        ("1<2&3]]>", PIN, PatronNotFound),  # escaped into the XML, not injected into it
    ],
    ids=["wrong-pin", "unknown-card", "unknown-card-no-pin", "markup-in-card"],
)
async def test_bad_credentials_are_their_own_error_from_problems_in_http_200(
    ncip: Ncip, card: str, pin: str | None, error: type[AuthenticationFailed]
) -> None:
    with pytest.raises(AuthenticationFailed) as failed:
        await ncip.connector.lookup_patron(PatronCredentials(card_number=card, pin=SecretStr(pin) if pin else None))
    assert type(failed.value) is error and not isinstance(failed.value, HoldRefused)


# --- holds -------------------------------------------------------------------------------------


async def test_place_hold_then_find_it_by_key(ncip: Ncip) -> None:
    record_id = holdable(ncip.system)
    hold = await ncip.connector.place_hold(PATRON, ncip.request(record_id, "key-first-0001"))
    assert (hold.state, hold.status_text, hold.queue_position) == (HoldState.WAITING, "予約中", 1)
    assert (hold.record_id, hold.pickup_branch_id, hold.hold_id) == (record_id, "beta/east", "beta-H00001")
    second = await ncip.connector.place_hold(OTHER_PATRON, ncip.request(record_id, "key-second-001", pickup="beta/main"))
    assert second.queue_position == 2
    assert await ncip.connector.find_hold(PATRON, intent(ncip.request(record_id, "key-first-0001"))) == hold
    assert await ncip.connector.find_hold(PATRON, intent(ncip.request(record_id, "key-never-sent"))) is None
    assert await ncip.connector.find_hold(OTHER_PATRON, intent(ncip.request(record_id, "key-first-0001"))) is None, "keys are per patron"


async def test_item_level_hold(ncip: Ncip) -> None:
    held = next(h for h in ncip.system.held if any(c.availability is Availability.AVAILABLE for c in h.copies))
    copy = next(c for c in held.copies if c.availability is Availability.AVAILABLE)
    hold = await ncip.connector.place_hold(PATRON, ncip.request(held.local_id, "key-item-0001", item_id=copy.barcode))
    assert (hold.item_id, hold.record_id) == (copy.barcode, held.local_id)


async def test_the_same_key_twice_places_one_hold(ncip: Ncip) -> None:
    request = ncip.request(holdable(ncip.system), "key-repeat-001")
    first = await ncip.connector.place_hold(PATRON, request)
    assert await ncip.connector.place_hold(PATRON, request) == first
    assert len(ncip.system.ledger.holds) == 1


@pytest.mark.parametrize(
    ("patron", "pickup", "reason"),
    [
        (PATRON, "beta/east", "already_held"),
        (PatronCredentials(card_number="10000009", pin=SecretStr(PIN)), "beta/east", "patron_blocked"),
        (PatronCredentials(card_number="10000010", pin=SecretStr(PIN)), "beta/east", "patron_blocked"),
        (PATRON, "beta/west", "invalid_pickup"),  # Element Rule Violated on PickupLocation
        (PATRON, "alpha/chuo", "invalid_pickup"),  # not this member's branch: refused before sending
    ],
    ids=["already-held", "overdue", "expired-card", "not-a-pickup-point", "foreign-branch"],
)
async def test_refused_placements(ncip: Ncip, patron: PatronCredentials, pickup: str, reason: str) -> None:
    record_id = holdable(ncip.system)
    await ncip.connector.place_hold(PATRON, ncip.request(record_id, "key-earlier-01"))
    with pytest.raises(HoldRefused) as refused:
        await ncip.connector.place_hold(patron, ncip.request(record_id, "key-refused-01", pickup=pickup))
    assert refused.value.reason == reason
    assert list(ncip.system.ledger.holds) == ["beta-H00001"]


async def test_a_wrong_pin_at_placement_is_an_authentication_failure(ncip: Ncip) -> None:
    with pytest.raises(AuthenticationFailed):
        await ncip.connector.place_hold(PatronCredentials(card_number="10000001", pin=SecretStr("0000")), ncip.request(holdable(ncip.system), "key-wrongpin-1"))
    assert not ncip.system.ledger.holds


async def test_list_holds_from_lookup_user(ncip: Ncip) -> None:
    assert await ncip.connector.list_holds(PATRON) == []
    first = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system, 0), "key-list-00001"))
    second = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system, 1), "key-list-00002", pickup="beta/main"))
    await ncip.connector.place_hold(OTHER_PATRON, ncip.request(holdable(ncip.system, 2), "key-list-00003"))
    ncip.system.ledger.advance(second.hold_id, HoldState.SECURED)
    listed = await ncip.connector.list_holds(PATRON)
    assert [(h.hold_id, h.record_id, h.state, h.pickup_branch_id) for h in listed] == [
        (first.hold_id, first.record_id, HoldState.WAITING, "beta/east"),
        (second.hold_id, second.record_id, HoldState.SECURED, "beta/main"),
    ]
    assert listed[0].queue_position == 1 and listed[1].queue_position is None


async def test_batch_cancel_answers_per_item(ncip: Ncip) -> None:
    waiting = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system, 0), "key-batch-0001"))
    secured = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system, 1), "key-batch-0002"))
    ncip.system.ledger.advance(secured.hold_id, HoldState.SECURED)
    results = await ncip.connector.cancel_holds(PATRON, [secured.hold_id, waiting.hold_id, "beta-H99999"])
    assert [(r.hold_id, r.outcome, r.reason) for r in results] == [
        (secured.hold_id, CancelOutcome.REFUSED, RefusalReason.NOT_CANCELLABLE),
        (waiting.hold_id, CancelOutcome.CANCELLED, None),
        ("beta-H99999", CancelOutcome.REFUSED, RefusalReason.HOLD_NOT_FOUND),
    ]
    assert [h.state for h in ncip.system.ledger.holds.values()] == [HoldState.CANCELLED, HoldState.SECURED]


async def test_pickup_options_come_from_configuration(ncip: Ncip) -> None:
    configured = ncip.connector_for("beta", pickup_codes={"beta/east": "EAST", "beta/main": "MAIN"})
    options = await configured.pickup_locations(PATRON, holdable(ncip.system))
    assert [(o.branch_id, o.label, o.allowed) for o in options] == [("beta/east", "EAST", True), ("beta/main", "MAIN", True)]
    check = await configured.check_hold(PATRON, ncip.request(holdable(ncip.system), "key-check-0001", pickup="beta/west"))
    assert check.reasons == [RefusalReason.INVALID_PICKUP]
    assert (await configured.check_hold(PATRON, ncip.request(holdable(ncip.system), "key-check-0002"))).valid
    assert not ncip.system.ledger.holds


async def test_already_on_loan_and_reference_only(ncip: Ncip) -> None:
    borrower = PatronCredentials(card_number="10000009", pin=SecretStr(PIN))
    ncip.system.ledger.patrons["10000009"].overdue = 0  # unblocked, but still has the loan
    with pytest.raises(HoldRefused) as refused:
        await ncip.connector.place_hold(borrower, ncip.request(ncip.system.held[0].local_id, "key-on-loan-01"))
    assert refused.value.reason == "already_on_loan"
    reference = next(h for h in ncip.system.held if all(c.availability is Availability.LIBRARY_USE_ONLY for c in h.copies))
    with pytest.raises(HoldRefused) as refused:
        await ncip.connector.place_hold(PATRON, ncip.request(reference.local_id, "key-reference1"))
    assert refused.value.reason == "not_holdable"


async def test_cancel_while_waiting_but_not_once_secured(ncip: Ncip) -> None:
    waiting = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system, 0), "key-cancel-001"))
    cancelled = await ncip.connector.cancel_hold(PATRON, waiting.hold_id)
    assert (cancelled.state, cancelled.hold_id, cancelled.record_id) == (HoldState.CANCELLED, waiting.hold_id, waiting.record_id)
    assert (await ncip.connector.hold_status(PATRON, waiting.hold_id)).status_text == "取消"
    secured = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system, 1), "key-cancel-002"))
    ncip.system.ledger.advance(secured.hold_id, HoldState.SECURED)
    with pytest.raises(HoldRefused) as refused:
        await ncip.connector.cancel_hold(PATRON, secured.hold_id)
    assert refused.value.reason == "not_cancellable"
    assert ncip.system.ledger.holds[secured.hold_id].state is HoldState.SECURED
    with pytest.raises(HoldRefused) as refused:
        await ncip.connector.cancel_hold(OTHER_PATRON, waiting.hold_id)
    assert refused.value.reason == "hold_not_found", "another patron's hold is not theirs to see"


@pytest.mark.parametrize("state", list(HoldState), ids=[s.value for s in HoldState])
async def test_hold_status_in_the_members_words(ncip: Ncip, state: HoldState) -> None:
    hold = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system), "key-states-001"))
    ncip.system.ledger.advance(hold.hold_id, state)
    seen = await ncip.connector.hold_status(PATRON, hold.hold_id)
    assert seen.state is state and HOLD_WORDS[seen.status_text] == state.value
    assert (seen.ready_until is not None) == (state is HoldState.READY)


# NCIP's standard RequestStatusType: "In Process" until the hold shelf; finished requests are unknown.
STANDARD_STATE_OF = {
    HoldState.SUBMITTED: HoldState.WAITING,
    HoldState.WAITING: HoldState.WAITING,
    HoldState.SECURED: HoldState.WAITING,
    HoldState.IN_TRANSIT: HoldState.WAITING,
    HoldState.READY: HoldState.READY,
    HoldState.EXPIRED: HoldState.EXPIRED,
}


@pytest.mark.parametrize("state", list(HoldState), ids=[s.value for s in HoldState])
async def test_hold_status_in_standard_ncip_values(ncip: Ncip, state: HoldState) -> None:
    connector = ncip.connector_for("gamma")
    system = ncip.host.app[MEMBERS]["gamma"]
    hold = await connector.place_hold(PATRON, ncip.request(holdable(system), "key-states-002", pickup="gamma/main", member="gamma"))
    system.ledger.advance(hold.hold_id, state)
    if state in STANDARD_STATE_OF:
        assert (await connector.hold_status(PATRON, hold.hold_id)).state is STANDARD_STATE_OF[state]
    else:
        with pytest.raises(HoldRefused) as refused:
            await connector.hold_status(PATRON, hold.hold_id)
        assert refused.value.reason == "hold_not_found"


async def test_an_unmapped_hold_word_is_an_error_not_a_guess(ncip: Ncip) -> None:
    connector = ncip.connector_for("beta", hold_words={})
    connector.hold_words = {}  # neither the shared vocabulary nor the member's knows the word
    hold = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system), "key-unmapped-1"))
    with pytest.raises(MalformedResponse, match="予約中"):
        await connector.hold_status(PATRON, hold.hold_id)


# --- lost answers and faults -------------------------------------------------------------------


@pytest.mark.parametrize(("member", "cause"), [("hangs", ReadTimeout), ("drops", AnswerLost)])
async def test_a_lost_placement_answer_is_outcome_unknown_and_the_hold_is_found(ncip: Ncip, member: str, cause: type[Exception]) -> None:
    connector = ncip.connector_for(member, timeout_s=1.0)
    system = ncip.host.app[MEMBERS][member]
    request = ncip.request(holdable(system), "key-lost-00001", pickup=f"{member}/east", member=member)
    with pytest.raises(OutcomeUnknown) as unknown:
        await connector.place_hold(PATRON, request)
    assert type(unknown.value.cause) is cause
    assert len(system.ledger.holds) == 1, "the member placed it"
    assert ncip.log().count(f"POST /{member}/ncip") == 1, "sent once, never again"
    found = await connector.find_hold(PATRON, intent(request))
    assert found is not None and found.state is HoldState.WAITING and found.record_id == request.record_id


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (FaultConfig(http_status=500), TargetHTTPError),
        (FaultConfig(malformed_xml=True), MalformedResponse),
        (FaultConfig(entity_bomb=True), HostileDocument),
        (FaultConfig(wrong_charset=True), UndecodableResponse),
        (FaultConfig(hang=True), TargetTimeout),
    ],
    ids=["http-500", "malformed-xml", "entity-bomb", "wrong-charset", "hang"],
)
async def test_faults_become_named_errors(ncip: Ncip, faults: FaultConfig, error: type[Exception]) -> None:
    ncip.host.set_faults("beta", faults)
    with pytest.raises(error):  # holdings: an answer with Japanese words for the charset to break
        await ncip.connector_for("beta", timeout_s=1.0).holdings(ncip.system.held[0].local_id)


async def test_a_placement_that_fails_is_sent_once(ncip: Ncip) -> None:
    ncip.host.set_faults("beta", FaultConfig(http_status=503))
    with pytest.raises(TargetHTTPError):
        await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system), "key-unavail-01"))
    assert ncip.log() == ["POST /beta/ncip"]
    with pytest.raises(TargetHTTPError):
        await ncip.connector.lookup_patron(PATRON)
    assert len(ncip.log()) == 1 + 3, "a lookup is a read: retried"


# --- answers the sandbox does not give: canned on a real socket --------------------------------

NCIP_HEAD = '<?xml version="1.0" encoding="UTF-8"?><NCIPMessage xmlns="http://www.niso.org/2008/ncip" version="x">'


@dataclass
class Canned:
    base_url: str
    body: bytes = b""


@pytest.fixture
async def canned() -> AsyncIterator[Canned]:
    """A server answering every POST with `canned.body`: whatever an odd NCIP responder says."""
    app = web.Application()
    state = Canned("")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=state.body, content_type="application/xml")

    app.router.add_post("/{member_id}/ncip", answer)
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


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        (
            NCIP_HEAD + "<LookupUserResponse><Problem><ProblemType Scheme='urn:x'>Temporary Processing Failure</ProblemType>"
            "<ProblemDetail>database restarting</ProblemDetail><ProblemElement>UserId</ProblemElement></Problem>"
            "</LookupUserResponse></NCIPMessage>",
            ProtocolDiagnostic,
            "Temporary Processing Failure (database restarting; element UserId)",
        ),
        (
            NCIP_HEAD + "<Problem><ProblemType>Unsupported Service</ProblemType></Problem></NCIPMessage>",
            ProtocolDiagnostic,
            "Unsupported Service",
        ),
        (NCIP_HEAD + "<LookupItemResponse/></NCIPMessage>", MalformedResponse, "no LookupUserResponse"),
        (b"<html><body>maintenance</body></html>", MalformedResponse, "not an NCIP 2 message"),
    ],
    ids=["unknown-problem-type", "message-level-problem", "wrong-response", "not-ncip"],
)
async def test_odd_answers_become_named_errors(
    canned: Canned, http: HttpClient, body: str | bytes, error: type[Exception], text: str
) -> None:
    canned.body = body.encode() if isinstance(body, str) else body
    with pytest.raises(error) as failed:
        await NCIPConnector(settings_for(canned.base_url, "delta"), http).lookup_patron(PATRON)
    assert text in str(failed.value)


async def test_a_members_own_problem_types_are_configuration(canned: Canned, http: HttpClient) -> None:
    canned.body = (NCIP_HEAD + "<RequestItemResponse><Problem><ProblemType>予約上限</ProblemType></Problem>"
                   "</RequestItemResponse></NCIPMessage>").encode()
    connector = NCIPConnector(settings_for(canned.base_url, "delta", problem_reasons={"予約上限": "too_many_holds"}), http)
    with pytest.raises(HoldRefused) as refused:
        await connector.place_hold(PATRON, HoldRequest(member="delta", record_id="1", pickup_branch_id="delta/main", idempotency_key="key-limit-001"))
    assert refused.value.reason == "too_many_holds"
    with pytest.raises(ValueError, match=r"options\.problem_reasons\.x: Input should be 'authentication_failed'"):
        NCIPConnector(settings_for(canned.base_url, "delta", problem_reasons={"x": "no_such_reason"}), http)


REQUEST_ITEM_CONFIRMED = (
    NCIP_HEAD + "<RequestItemResponse><RequestId><AgencyId>delta</AgencyId><RequestIdentifierValue>R-77</RequestIdentifierValue>"
    "</RequestId></RequestItemResponse></NCIPMessage>"
)
DELTA_REQUEST = HoldRequest(member="delta", record_id="42", pickup_branch_id="delta/main", idempotency_key="key-canned-001")


async def test_a_confirmed_request_whose_state_cannot_be_read_is_placed_and_submitted(canned: Canned, http: HttpClient) -> None:
    canned.body = REQUEST_ITEM_CONFIRMED.encode()  # LookupRequest then gets a RequestItemResponse: unreadable
    hold = await NCIPConnector(settings_for(canned.base_url, "delta"), http).place_hold(PATRON, DELTA_REQUEST)
    assert (hold.hold_id, hold.record_id, hold.state, hold.idempotency_key) == ("R-77", "42", HoldState.SUBMITTED, "key-canned-001")


@pytest.mark.parametrize(
    "body",
    [b"<html>proxy error</html>", (NCIP_HEAD + "<RequestItemResponse/></NCIPMessage>").encode()],
    ids=["not-ncip", "no-request-id"],
)
async def test_an_unreadable_placement_answer_is_outcome_unknown(canned: Canned, http: HttpClient, body: bytes) -> None:
    canned.body = body
    with pytest.raises(OutcomeUnknown) as unknown:
        await NCIPConnector(settings_for(canned.base_url, "delta"), http).place_hold(PATRON, DELTA_REQUEST)
    assert isinstance(unknown.value.cause, MalformedResponse)


# --- privacy -----------------------------------------------------------------------------------


async def test_the_pin_travels_in_the_body_only(ncip: Ncip) -> None:
    secret = "8642"
    with pytest.raises(AuthenticationFailed):
        await ncip.connector.lookup_patron(PatronCredentials(card_number="10000003", pin=SecretStr(secret)))
    hold = await ncip.connector.place_hold(PATRON, ncip.request(holdable(ncip.system), "key-privacy-01"))
    await ncip.connector.hold_status(PATRON, hold.hold_id)
    await ncip.connector.cancel_hold(PATRON, hold.hold_id)
    log = ncip.log()
    assert log and set(log) == {"POST /beta/ncip"}, "one fixed URL: nothing of the patron in it"
    assert PIN not in " ".join(log) and secret not in " ".join(log)


def test_requests_are_built_with_escaping() -> None:
    from connectors.ncip_messages import E, message, patron_elements

    body = message(E.LookupUser(*patron_elements(PatronCredentials(card_number="1<2&3", pin=SecretStr("a]]>b")))))
    root = etree.fromstring(body)
    values = [e.text for e in root.iter("{http://www.niso.org/2008/ncip}AuthenticationInputData")]
    assert values == ["1<2&3", "a]]>b"]
