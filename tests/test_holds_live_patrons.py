"""The hold rules over live sandbox members: each shipped consortium's sandbox, its test patrons
(sandbox/patrons.py) read through the members' own protocols (REST, NCIP, HTML OPAC), the rules
from the shipped TOML files. The copy is given; everything about the patron comes over the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest

from broker.consortium import CONSORTIA_DIR, Consortium, load_consortium
from broker.demo import start_sandbox
from broker.members import MemberRegistry
from broker.holds.gather import HoldsGatherer
from broker.holds.patron import Card, Patron
from broker.holds.planner import Plan, plan_hold
from connectors import HttpClient
from sandbox.patrons import TEST_PIN, patron_named
from tests.holds_helpers import copy
from yokodan import PatronStatus, RefusalReason

TUE = date(2026, 12, 1)
# The members are read at noon in Japan on that day, never in a member's maintenance window (熊本県立図書館
# is down 04:30-05:00 every day, and the wall clock of a CI run may fall in it).
TUE_NOON_JST = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
async def live(request) -> AsyncIterator[tuple[Consortium, HttpClient]]:
    sandbox, consortium = await start_sandbox(load_consortium(CONSORTIA_DIR / f"{request.param}.toml"), latency_ms=2)
    try:
        async with HttpClient() as http:
            yield consortium, http
    finally:
        await sandbox.stop()


async def plan_for(consortium: Consortium, http: HttpClient, patron_id: str, member: str, branch: str,
                   record_id: str = "LIVE-1", **fields) -> tuple[Plan, dict]:
    test_patron = patron_named(consortium.id, patron_id)
    patron = Patron(
        cards=[Card(member=m, card_number=c.card_number, pin=TEST_PIN) for m, c in test_patron.cards.items()],
        home_municipality=test_patron.home_municipality, **fields,
    )
    gathered = await HoldsGatherer(MemberRegistry(consortium, http, clock=lambda: TUE_NOON_JST)).gather(patron, [])
    records = [copy(member, branch, record_id=record_id)]
    return plan_hold(consortium, patron, records, gathered.statuses, TUE), gathered.statuses


def refused(plan: Plan, member: str) -> list[RefusalReason]:
    return [r.reason for r in plan.refusals if r.member == member]


@pytest.mark.parametrize("live", ["okayama"], indirect=True)
async def test_okayama_patrons(live) -> None:
    consortium, http = live
    plan, _ = await plan_for(consortium, http, "okayama-overdue", "tsuyama-city", "tsuyama-city/main")
    assert refused(plan, "tsuyama-city") == [RefusalReason.OVERDUE_BLOCK]  # HTML OPAC says 延滞
    plan, _ = await plan_for(consortium, http, "okayama-expired", "tamano-city", "tamano-city/main")
    assert refused(plan, "tamano-city") == [RefusalReason.CARD_EXPIRED]
    plan, _ = await plan_for(consortium, http, "okayama-inactive", "okayama-city", "okayama-city/chuo")
    assert refused(plan, "okayama-city") == [RefusalReason.CARD_INACTIVE]  # over NCIP ([members.holds])
    # The reader has 岡山市 and prefectural cards, none for 津山市: a 津山 copy is advice, not a choice.
    plan, statuses = await plan_for(consortium, http, "okayama-reader", "tsuyama-city", "tsuyama-city/main")
    assert plan.choice is None and refused(plan, "tsuyama-city") == [RefusalReason.NO_CARD]
    assert [(a.member, a.eligibility, a.ready) for a in plan.advice] == [("tsuyama-city", "eligible", date(2026, 12, 2))]
    # What the reader already holds and has on loan at 岡山市, read live, is refused as such.
    city: PatronStatus = statuses["okayama-city"]  # type: ignore[assignment]
    held, on_loan = city.hold_record_ids[0], city.loan_record_ids[0]
    plan, _ = await plan_for(consortium, http, "okayama-reader", "okayama-city", "okayama-city/chuo", record_id=held)
    assert refused(plan, "okayama-city") == [RefusalReason.DUPLICATE]
    plan, _ = await plan_for(consortium, http, "okayama-reader", "okayama-city", "okayama-city/chuo", record_id=on_loan)
    assert refused(plan, "okayama-city") == [RefusalReason.ALREADY_ON_LOAN]
    plan, _ = await plan_for(consortium, http, "okayama-reader", "okayama-city", "okayama-city/chuo")
    assert plan.choice is not None and plan.choice.member == "okayama-city"


@pytest.mark.parametrize("live", ["kumamoto"], indirect=True)
async def test_kumamoto_patrons(live) -> None:
    consortium, http = live
    plan, _ = await plan_for(consortium, http, "kumamoto-at-limit", "kumamoto-pref", "kumamoto-pref/honkan")
    [limit] = plan.refusals
    assert (limit.reason, limit.params["limit"], limit.params["count"]) == (RefusalReason.LIMIT_REACHED, 10, 10)
    plan, _ = await plan_for(consortium, http, "kumamoto-overdue", "kumamoto-pref", "kumamoto-pref/honkan")
    assert refused(plan, "kumamoto-pref") == [RefusalReason.OVERDUE_BLOCK]
    plan, _ = await plan_for(consortium, http, "kumamoto-reader", "kumamoto-pref", "kumamoto-pref/honkan",
                             preferred_pickups=["kumamoto-pref/uto"])
    assert plan.choice.pickup_branch == "kumamoto-pref/honkan"  # the post to 宇土 has no published dates
    assert any(a.option.pickup_branch == "kumamoto-pref/uto" and a.lost_because == "ready_unknown" for a in plan.alternatives)


@pytest.mark.parametrize("live", ["aomori"], indirect=True)
async def test_aomori_patrons(live) -> None:
    consortium, http = live
    # 10 holds waiting: the sandbox ILS's own cap, but Aomori's rule is 20 — the broker does not refuse.
    plan, _ = await plan_for(consortium, http, "aomori-at-limit", "aomori-pref", "aomori-pref/honkan",
                             preferred_pickups=["aomori-pref/hirosaki-toshokan"], )
    assert plan.refusals == [] and plan.choice is not None
    plan, _ = await plan_for(consortium, http, "aomori-expired", "aomori-pref", "aomori-pref/honkan")
    assert refused(plan, "aomori-pref") == [RefusalReason.CARD_EXPIRED]


@pytest.mark.parametrize("live", ["takarazuka"], indirect=True)
async def test_takarazuka_patrons(live) -> None:
    consortium, http = live
    plan, _ = await plan_for(consortium, http, "takarazuka-overdue", "takarazuka-city", "takarazuka-city/chuo")
    assert refused(plan, "takarazuka-city") == [RefusalReason.OVERDUE_BLOCK]
    plan, _ = await plan_for(consortium, http, "takarazuka-expired", "takarazuka-city", "takarazuka-city/chuo")
    [expired] = plan.refusals
    assert (expired.reason, expired.params["renew_every_years"]) == (RefusalReason.CARD_EXPIRED, 3)
    plan, _ = await plan_for(consortium, http, "takarazuka-neighbour", "takarazuka-city", "takarazuka-city/chuo")
    assert plan.choice is not None and plan.choice.member == "takarazuka-city"  # 西宮市 resident with a card
