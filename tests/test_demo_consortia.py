"""Every shipped consortium on sandbox members: search answers, holds through a member's holds
connector, and the test patrons of `sandbox.patrons` through real connector calls."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from broker.consortium import Consortium, ConsortiumFileError, load_consortium
from broker.demo import consortium_file, sandbox_member, sandbox_members, shipped_consortia, start_sandbox
from broker.members import MemberRegistry
from broker.search import SearchService
from connectors import HttpClient, connector_for
from connectors.base import Capability, Connector
from connectors.errors import AuthenticationFailed, HoldRefused
from sandbox.host import SandboxHost
from sandbox.member import MemberSystem
from sandbox.patrons import TEST_PATRONS, TEST_PIN, NotEnoughTitles, TestPatron, enrol_cards, patron_named
from sandbox.spec import PatronCard
from sandbox.sru_server import MEMBERS
from yokodan import Availability, HoldRequest, HoldState, MaterialType, PatronCredentials, SearchQuery, TargetState

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["aomori", "kumamoto", "national", "okayama", "takarazuka"]
# One fan-out over every member of the biggest file must answer well inside this.
SEARCH_DEADLINE_S = 20.0
# Searched at noon in Japan: never inside a member's daily maintenance window (熊本県立図書館 04:30-05:00),
# where the member is rightly skipped whatever the wall clock of the CI run says.
NOON_JST = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_the_shipped_consortia_are_the_five_files() -> None:
    # Five seeds, four files: seeds 000 (mutual use) and 001 (prefectural library) are both okayama.toml;
    # national.toml is generated from the P27 and CiNii lists (broker/national_file.py).
    assert shipped_consortia() == SHIPPED


def test_consortium_names_resolve_to_shipped_files_and_paths_stay_paths(tmp_path: Path) -> None:
    assert consortium_file("aomori").name == "aomori.toml" and consortium_file("aomori").is_file()
    assert consortium_file(str(tmp_path / "x.toml")) == tmp_path / "x.toml"
    for bad in ("nagano", "oka yama", "Okayama", ""):
        with pytest.raises(ConsortiumFileError) as error:
            consortium_file(bad)
        assert "aomori, kumamoto, national, okayama, takarazuka" in str(error.value)


# --- every member of every shipped file answers -------------------------------------------------


def _short_deadlines(consortium: Consortium) -> Consortium:
    data = consortium.model_dump()
    for member in data["members"]:
        member["connector"]["timeout_s"] = 10.0
    return Consortium.model_validate(data)


@pytest.mark.parametrize("name", SHIPPED)
async def test_every_member_of_a_shipped_consortium_answers_on_the_sandbox(name: str, http: HttpClient) -> None:
    consortium = _short_deadlines(load_consortium(consortium_file(name)))
    host, served = await start_sandbox(consortium, latency_ms=5)
    try:
        started = time.monotonic()
        outcome = await asyncio.wait_for(
            SearchService(MemberRegistry(served, http, clock=lambda: NOON_JST)).search(SearchQuery(text="夏目漱石")), SEARCH_DEADLINE_S
        )
        elapsed = time.monotonic() - started
    finally:
        await host.stop()
    states = {s.member: s.state for s in outcome.statuses}
    assert states == {m.id: TargetState.OK for m in consortium.members}
    assert outcome.works, "a query for 夏目漱石 finds works in every shipped demo"
    assert elapsed < SEARCH_DEADLINE_S
    # Pickup-only points (Aomori/Kumamoto cooperating libraries) never appear as holders of stock.
    stock_branches = {b.id for b in consortium.branches() if b.holds_stock}
    assert {h.branch_id for w in outcome.works for h in w.holdings} <= stock_branches


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_yokodan_demo_consortium_aomori_serves_it(tmp_path: Path) -> None:
    port, sandbox_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "broker.cli", "demo", "--consortium", "aomori", "--port", str(port),
            "--sandbox-port", str(sandbox_port), "--no-index",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        banner = ""
        while time.monotonic() < deadline and "Ctrl-C" not in banner:
            banner += proc.stdout.readline()
        assert "青森県立図書館オンライン貸出サービス" in banner, banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/members", timeout=30) as response:
            body = json.load(response)
        text = json.dumps(body, ensure_ascii=False)
        assert "aomori-pref" in text and "南部町立名川中学校図書室" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/search?q=%E5%A4%8F%E7%9B%AE", timeout=30) as response:
            search = json.load(response)
        assert [(t["member"], t["state"]) for t in search["targets"]] == [("aomori-pref", "ok")]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_yokodan_demo_with_an_unknown_consortium_name_says_which_exist() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "demo", "--consortium", "nagano", "--port", str(_free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "no shipped consortium 'nagano'" in result.stderr and "takarazuka" in result.stderr


# --- holds through the holds connector of an SRU-searched member ---------------------------------


@dataclass
class Demo:
    host: SandboxHost
    consortium: Consortium
    http: HttpClient

    def system(self, member_id: str) -> MemberSystem:
        return self.host.app[MEMBERS][member_id]

    def holds_connector(self, member_id: str) -> Connector:
        settings = self.consortium.holds_settings(member_id)
        assert settings is not None, f"{member_id} has no [members.holds] connector"
        return connector_for(settings, self.http)

    def patron_connector(self, member_id: str) -> Connector:
        """The connector that can look patrons up: the holds connector, else the search one."""
        settings = self.consortium.holds_settings(member_id) or self.consortium.target_settings(member_id)
        return connector_for(settings, self.http)


async def _demo(name: str, http: HttpClient) -> AsyncIterator[Demo]:
    host, consortium = await start_sandbox(load_consortium(consortium_file(name)), latency_ms=0)
    try:
        yield Demo(host, consortium, http)
    finally:
        await host.stop()


@pytest.fixture
async def okayama(http: HttpClient) -> AsyncIterator[Demo]:
    async for demo in _demo("okayama", http):
        yield demo


def credentials(patron: TestPatron, member_id: str, pin: str | None = None) -> PatronCredentials:
    card = patron.card(member_id)
    return PatronCredentials(card_number=card.card_number, pin=SecretStr(pin or card.pin))


async def test_a_hold_reaches_an_sru_searched_member_through_its_holds_connector(okayama: Demo) -> None:
    member = "okayama-city"
    assert okayama.consortium.member(member).connector.kind == "sru"
    search = connector_for(okayama.consortium.target_settings(member), okayama.http)
    assert not search.supports(Capability.PLACE_HOLD), "SRU cannot hold: that is why the second connector exists"
    result = await search.search(SearchQuery(text="夏目漱石"))
    on_shelf = next(
        r for r in result.records if any(h.availability is Availability.AVAILABLE for h in r.holdings)
    )
    holds = okayama.holds_connector(member)
    assert holds.kind == "ncip" and holds.supports(Capability.PLACE_HOLD)
    patron = patron_named("okayama", "okayama-reader")
    request = HoldRequest(
        member=member, record_id=on_shelf.local_id, pickup_branch_id="okayama-city/mitsu",
        idempotency_key="demo-hold-0001",
    )
    intent = await holds.prepare_hold(credentials(patron, member), request)
    hold = await holds.place_hold(credentials(patron, member), request, intent=intent)
    assert (hold.record_id, hold.pickup_branch_id, hold.state) == (on_shelf.local_id, "okayama-city/mitsu", HoldState.WAITING)
    # The same ledger as the search side: the member's own system now has that hold …
    ledger = okayama.system(member).ledger
    assert [(h.record_id, h.pickup_code) for h in ledger.holds_of(patron.card(member).card_number)][-1] == (
        on_shelf.local_id, "MITSU",
    )
    # … and the patron's live view counts it beside the hold the test patron came with.
    status = await holds.lookup_patron(credentials(patron, member))
    assert status.holds_count == 2 and status.hold_record_ids[-1] == on_shelf.local_id
    assert await holds.find_hold(credentials(patron, member), intent) == hold


async def test_each_configured_holds_connector_places_a_hold_on_the_demo(okayama: Demo, http: HttpClient) -> None:
    configured = [m.id for m in okayama.consortium.members if m.holds is not None]
    assert configured == ["okayama-city", "setouchi-city", "misaki-town"]
    for member in configured:
        system = okayama.system(member)
        record = next(h for h in system.held if any(c.availability is Availability.AVAILABLE for c in h.copies))
        pickup = okayama.consortium.member(member).branches[0].id
        hold = await okayama.holds_connector(member).place_hold(
            PatronCredentials(card_number="10000001", pin=SecretStr("1234")),
            HoldRequest(member=member, record_id=record.local_id, pickup_branch_id=pickup, idempotency_key=f"each-{member}"),
        )
        assert (hold.member, hold.record_id, hold.pickup_branch_id) == (member, record.local_id, pickup)
        placed = system.ledger.find_by_key("10000001", f"each-{member}")
        assert placed is not None and (placed.record_id, placed.state) == (record.local_id, HoldState.WAITING)


async def test_members_without_a_holds_connector_have_no_hold_face(okayama: Demo) -> None:
    assert okayama.consortium.holds_settings("tsuyama-city") is None
    with pytest.raises(KeyError, match="no \\[members.holds\\] connector"):
        okayama.consortium.target_settings("tsuyama-city", role="holds")
    # The sandbox serves NCIP only for members configured so.
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{okayama.host.base_url}/tsuyama-city/ncip", data=b"<x/>") as response:
            assert response.status == 404
        async with session.post(f"{okayama.host.base_url}/okayama-city/ncip", data=b"<x/>") as response:
            assert response.status == 200 and b"Problem" in await response.read()


def test_a_holds_connector_the_sandbox_cannot_serve_is_refused_by_name() -> None:
    data = load_consortium().model_dump()
    city = next(m for m in data["members"] if m["id"] == "okayama-city")
    city["holds"] = {"kind": "html_opac", "endpoint": city["holds"]["endpoint"], "options": {"profile": "tos"}}
    with pytest.raises(ValueError, match="okayama-city: the sandbox serves holds over ils_rest, ncip, not 'html_opac'"):
        sandbox_member(Consortium.model_validate(data).member("okayama-city"))
    city["holds"] = {"kind": "ncip", "endpoint": "/okayama-city/holds"}
    with pytest.raises(ValueError, match="serves its ncip holds at /okayama-city/ncip, not /okayama-city/holds"):
        sandbox_member(Consortium.model_validate(data).member("okayama-city"))


# --- test patrons answer lookup_patron over NCIP, REST and HTML ----------------------------------


def _material(system: MemberSystem, record_id: str) -> MaterialType:
    return next(h.work.material_type for h in system.held if h.local_id == record_id)


@pytest.mark.parametrize(
    ("patron_id", "member", "kind", "loans", "holds", "reasons"),
    [
        ("okayama-reader", "okayama-city", "ncip", [MaterialType.BOOK] * 2 + [MaterialType.AUDIOVISUAL], 1, []),
        ("okayama-reader", "okayama-pref", "ils_rest", [MaterialType.AUDIOVISUAL] * 2, 3, []),
        ("okayama-overdue", "tsuyama-city", "html_opac", [MaterialType.BOOK] * 2, 1, ["overdue"]),
        ("okayama-expired", "tamano-city", "html_opac", [], 0, ["card_expired"]),
        ("okayama-expired", "okayama-pref", "ils_rest", [MaterialType.BOOK] * 2 + [MaterialType.AUDIOVISUAL], 1, []),
        ("okayama-inactive", "okayama-city", "ncip", [], 0, ["inactive"]),
        ("okayama-at-limit", "setouchi-city", "ils_rest", [MaterialType.BOOK], 10, []),
        ("okayama-kibichuo", "kibichuo-town", "html_opac", [MaterialType.BOOK] * 2 + [MaterialType.AUDIOVISUAL], 1, []),
    ],
)
async def test_okayama_test_patrons_through_real_connectors(
    okayama: Demo, patron_id: str, member: str, kind: str, loans: list[MaterialType], holds: int, reasons: list[str]
) -> None:
    patron = patron_named("okayama", patron_id)
    connector = okayama.patron_connector(member)
    assert connector.kind == kind
    status = await connector.lookup_patron(credentials(patron, member))
    system = okayama.system(member)
    assert [_material(system, r) for r in status.loan_record_ids] == loans
    assert (status.loans_count, status.holds_count, len(status.hold_record_ids)) == (len(loans), holds, holds)
    assert status.blocked is bool(reasons) and set(reasons) <= set(status.block_reasons)
    assert not set(status.loan_record_ids) & set(status.hold_record_ids), "no hold on what one has on loan"
    if "overdue" in reasons:
        assert status.overdue_count == 1


async def test_a_card_at_its_hold_limit_is_refused_the_next_hold(okayama: Demo) -> None:
    patron = patron_named("okayama", "okayama-at-limit")
    system = okayama.system("setouchi-city")
    held = set(system.ledger.patrons[patron.card("setouchi-city").card_number].loans) | {
        h.record_id for h in system.ledger.holds_of(patron.card("setouchi-city").card_number)
    }
    spare = next(h.local_id for h in system.held if h.local_id not in held and h.copies)
    request = HoldRequest(member="setouchi-city", record_id=spare, pickup_branch_id="setouchi-city/shimin", idempotency_key="over-the-limit")
    holds = okayama.holds_connector("setouchi-city")
    with pytest.raises(HoldRefused) as refused:
        await holds.place_hold(credentials(patron, "setouchi-city"), request)
    assert refused.value.reason == "too_many_holds"
    # The same request from a card with no holds goes through: it was the limit, not the title.
    assert (await holds.place_hold(PatronCredentials(card_number="10000001", pin=SecretStr("1234")), request)).record_id == spare


async def test_an_inactive_or_overdue_card_cannot_hold(okayama: Demo) -> None:
    system = okayama.system("okayama-city")
    record = next(h.local_id for h in system.held if any(c.availability is Availability.AVAILABLE for c in h.copies))
    patron = patron_named("okayama", "okayama-inactive")
    with pytest.raises(HoldRefused) as refused:
        await okayama.holds_connector("okayama-city").place_hold(
            credentials(patron, "okayama-city"),
            HoldRequest(member="okayama-city", record_id=record, pickup_branch_id="okayama-city/chuo", idempotency_key="inactive-0001"),
        )
    assert refused.value.reason == "patron_blocked"


async def test_patron_cards_are_per_member_and_pins_are_checked(okayama: Demo) -> None:
    patron = patron_named("okayama", "okayama-reader")
    assert "tsuyama-city" not in patron.cards  # the card-gap case: no 津山市 card
    tsuyama = okayama.patron_connector("tsuyama-city")
    with pytest.raises(AuthenticationFailed) as refused:
        await tsuyama.lookup_patron(credentials(patron, "okayama-city"))  # another member's card
    assert refused.value.reason == "patron_not_found"
    for member in ("okayama-city", "okayama-pref"):
        with pytest.raises(AuthenticationFailed) as refused:
            await okayama.patron_connector(member).lookup_patron(credentials(patron, member, pin="0000"))
        assert refused.value.reason == "authentication_failed"


def _expected_reasons(card: PatronCard) -> list[str]:
    return (["overdue"] if card.overdue else []) + (["card_expired"] if card.card_expired else []) + (
        ["inactive"] if card.inactive else []
    )


@pytest.mark.parametrize("name", ["aomori", "kumamoto", "takarazuka"])
async def test_hub_and_city_test_patrons_answer_over_the_holds_connector(name: str, http: HttpClient) -> None:
    async for demo in _demo(name, http):
        patrons = TEST_PATRONS[name]
        assert len(patrons) >= 4
        for patron in patrons:
            for member, card in patron.cards.items():
                status = await demo.patron_connector(member).lookup_patron(credentials(patron, member))
                system = demo.system(member)
                materials = sorted(_material(system, r) for r in status.loan_record_ids)
                expected = sorted([MaterialType.BOOK] * card.book_loans + [MaterialType.AUDIOVISUAL] * card.av_loans)
                assert materials == expected, (patron.id, member)
                assert status.holds_count == card.book_holds + card.av_holds, (patron.id, member)
                assert status.blocked is bool(_expected_reasons(card)), (patron.id, member)
                assert set(_expected_reasons(card)) <= set(status.block_reasons), (patron.id, member)


def test_test_patron_card_numbers_are_unique_and_never_the_ledger_defaults() -> None:
    numbers = [c.card_number for ps in TEST_PATRONS.values() for p in ps for c in p.cards.values()]
    assert len(numbers) == len(set(numbers))
    assert all(n.startswith("2") for n in numbers) and TEST_PIN == "2468"
    for name, patrons in TEST_PATRONS.items():
        members = {m.id for m in load_consortium(consortium_file(name)).members}
        for patron in patrons:
            assert set(patron.cards) <= members, patron.id
            branches = {b.id for b in load_consortium(consortium_file(name)).branches() if b.pickup_point}
            assert set(patron.preferred_pickup) <= branches, patron.id


def test_a_member_too_small_for_a_card_says_so() -> None:
    consortium = load_consortium(consortium_file("takarazuka"))
    spec = sandbox_member(consortium.member("takarazuka-city"))
    host = SandboxHost([spec], catalogue_size=40)
    system = host.app[MEMBERS]["takarazuka-city"]
    with pytest.raises(NotEnoughTitles, match="needs 50 audiovisual titles"):
        enrol_cards(system.ledger, system.held, [PatronCard(card_number="29999901", pin="2468", av_loans=50)])
    card = PatronCard(card_number="29999902", pin="2468", book_loans=1)
    enrol_cards(system.ledger, system.held, [card])
    with pytest.raises(ValueError, match="already issued"):
        enrol_cards(system.ledger, system.held, [card])


@pytest.mark.parametrize(("name", "member", "pickup"), [
    ("aomori", "aomori-pref", "aomori-pref/nanbu-nagawa-chugakko"),  # the school library of seed 003
    ("kumamoto", "kumamoto-pref", "kumamoto-pref/uto"),
])
async def test_a_hub_hold_for_a_pickup_only_library_goes_through_on_the_demo(
    name: str, member: str, pickup: str, http: HttpClient
) -> None:
    async for demo in _demo(name, http):
        assert not demo.consortium.branch(pickup).holds_stock
        system = demo.system(member)
        # On loan is fine: the hold waits for the copy, then travels to the pickup point.
        record = next(h.local_id for h in system.held if any(c.availability is Availability.ON_LOAN for c in h.copies))
        patron = TEST_PATRONS[name][0]
        request = HoldRequest(member=member, record_id=record, pickup_branch_id=pickup, idempotency_key=f"pickup-{name}-01")
        hold = await demo.holds_connector(member).place_hold(credentials(patron, member), request)
        assert (hold.pickup_branch_id, hold.record_id) == (pickup, record)
        placed = system.ledger.find_by_key(patron.card(member).card_number, f"pickup-{name}-01")
        assert placed is not None and placed.pickup_code == pickup.rsplit("/", 1)[-1].upper()
        # Every pickup point of the file is one in the sandbox ILS, and nothing else is.
        expected = {b.id.rsplit("/", 1)[-1].upper() if not b.codes else b.codes[0] for b in demo.consortium.branches() if b.pickup_point}
        assert system.ledger.pickup_codes == expected
