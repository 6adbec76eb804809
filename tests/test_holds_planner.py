"""The planner's rules, one test each, with the shipped consortium files supplying the rules.

Copies and the members' live views of the patron are built here (the planner core is pure); the same
rules over live sandbox members are in test_holds_api.py.
"""

from __future__ import annotations

import dataclasses

from datetime import date, timedelta

from broker.holds.planner import MemberUnreachable, plan_hold
from tests.holds_helpers import clean, copy, member_data, patron, shipped, with_changes
from yokodan import Availability, MaterialType, PatronStatus, RefusalReason

OKAYAMA = shipped("okayama")
AOMORI = shipped("aomori")
KUMAMOTO = shipped("kumamoto")
TAKARAZUKA = shipped("takarazuka")
TUE = date(2026, 12, 1)
PREF = "okayama-pref"
HONKAN = "okayama-pref/honkan"


def reasons(plan) -> list[tuple[RefusalReason, str]]:
    return sorted((r.reason, r.member) for r in plan.refusals)


# --- who may hold ---------------------------------------------------------------------------------


def test_mutual_use_needs_a_card_of_the_owning_municipality() -> None:
    plan = plan_hold(OKAYAMA, patron(PREF), [copy("tsuyama-city", "tsuyama-city/main")], clean(PREF), TUE)
    assert plan.choice is None
    [refusal] = plan.refusals
    assert (refusal.reason, refusal.member, refusal.phone) == (RefusalReason.NO_CARD, "tsuyama-city", "0868-24-2919")
    with_card = plan_hold(OKAYAMA, patron("tsuyama-city"), [copy("tsuyama-city", "tsuyama-city/main")], clean("tsuyama-city"), TUE)
    assert with_card.choice is not None and with_card.choice.member == "tsuyama-city"


def test_a_consortium_scope_card_is_valid_at_every_member() -> None:
    def one_card(data) -> None:
        data["policy"]["cards"]["scope"] = "consortium"

    consortium = with_changes(OKAYAMA, one_card)
    plan = plan_hold(consortium, patron("okayama-city"), [copy("tsuyama-city", "tsuyama-city/main")], clean("okayama-city"), TUE)
    assert plan.choice is not None and plan.choice.member == "tsuyama-city"


def test_hub_card_holds_at_the_hub_for_its_pickup_libraries() -> None:
    plan = plan_hold(KUMAMOTO, patron("kumamoto-pref"), [copy("kumamoto-pref", "kumamoto-pref/honkan")], clean("kumamoto-pref"), TUE)
    pickups = {plan.choice.pickup_branch} | {a.option.pickup_branch for a in plan.alternatives}
    assert len(pickups) == 40  # the prefectural library + 39 受取館 (pickup-only branches)


# --- limits ---------------------------------------------------------------------------------------


def test_okayama_pref_counts_books_and_av_apart() -> None:
    statuses = {PREF: PatronStatus(member=PREF, holds_count=5, holds_by_material={"audiovisual": 5})}
    av = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN, material=MaterialType.AUDIOVISUAL)], statuses, TUE)
    [refusal] = av.refusals
    assert refusal.reason is RefusalReason.LIMIT_REACHED
    assert (refusal.params["limit"], refusal.params["count"], refusal.params["material_class"]) == (5, 5, "av")
    book = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN, material=MaterialType.BOOK)], statuses, TUE)
    assert book.choice is not None and book.refusals == []
    magazines = {PREF: PatronStatus(member=PREF, holds_count=10, holds_by_material={"book": 7, "serial": 3})}
    serial = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN, material=MaterialType.SERIAL)], magazines, TUE)
    assert [(r.reason, r.params["material_class"], r.params["count"]) for r in serial.refusals] == [
        (RefusalReason.LIMIT_REACHED, "books_magazines", 10)
    ]


def test_takarazuka_counts_requests_in_the_ten_holds() -> None:
    member = "takarazuka-city"
    nine_plus_one = {member: PatronStatus(member=member, holds_count=9, requests_count=1)}
    plan = plan_hold(TAKARAZUKA, patron(member), [copy(member, "takarazuka-city/chuo")], nine_plus_one, TUE)
    [refusal] = plan.refusals
    assert (refusal.reason, refusal.params["limit"], refusal.params["count"], refusal.params["requests_counted"]) == (
        RefusalReason.LIMIT_REACHED, 10, 10, True,
    )
    nine = {member: PatronStatus(member=member, holds_count=9)}
    assert plan_hold(TAKARAZUKA, patron(member), [copy(member, "takarazuka-city/chuo")], nine, TUE).choice is not None


def test_kumamoto_and_aomori_totals() -> None:
    kumamoto = plan_hold(KUMAMOTO, patron("kumamoto-pref"), [copy("kumamoto-pref", "kumamoto-pref/honkan")],
                         clean("kumamoto-pref", holds_count=10), TUE)
    assert [r.params["limit"] for r in kumamoto.refusals] == [10]
    aomori_19 = plan_hold(AOMORI, patron("aomori-pref"), [copy("aomori-pref", "aomori-pref/honkan")], clean("aomori-pref", holds_count=19), TUE)
    aomori_20 = plan_hold(AOMORI, patron("aomori-pref"), [copy("aomori-pref", "aomori-pref/honkan")], clean("aomori-pref", holds_count=20), TUE)
    assert aomori_19.choice is not None and [r.params["limit"] for r in aomori_20.refusals] == [20]


# --- what cannot be held --------------------------------------------------------------------------


def test_reference_words_and_states_are_not_holdable() -> None:
    records = [
        copy(PREF, HONKAN, Availability.AVAILABLE, record_id="R1", status_text="禁帯出", item_id="a"),
        copy(PREF, HONKAN, Availability.AVAILABLE, record_id="R2", status_text="研究用", item_id="b"),
        copy(PREF, HONKAN, Availability.LIBRARY_USE_ONLY, record_id="R3", status_text="館内のみ", item_id="c"),
    ]
    plan = plan_hold(OKAYAMA, patron(PREF), records, clean(PREF), TUE)
    assert plan.choice is None
    assert sorted((r.reason, r.record_id) for r in plan.refusals) == [
        (RefusalReason.NOT_HOLDABLE, "R1"), (RefusalReason.NOT_HOLDABLE, "R2"), (RefusalReason.NOT_HOLDABLE, "R3"),
    ]


def test_aomori_excludes_magazines_and_av() -> None:
    for material in (MaterialType.SERIAL, MaterialType.AUDIOVISUAL):
        plan = plan_hold(AOMORI, patron("aomori-pref"), [copy("aomori-pref", "aomori-pref/honkan", material=material)], clean("aomori-pref"), TUE)
        assert [r.reason for r in plan.refusals] == [RefusalReason.NOT_HOLDABLE] and plan.choice is None
    assert "禁帯" in AOMORI.policy_for("aomori-pref").items.not_holdable_words


def test_kumamoto_in_person_material_is_phone_only() -> None:
    plan = plan_hold(KUMAMOTO, patron("kumamoto-pref"),
                     [copy("kumamoto-pref", "kumamoto-pref/honkan", status_text="来館貸出可")], clean("kumamoto-pref"), TUE)
    [refusal] = plan.refusals
    assert (refusal.reason, refusal.params["by_phone"]) == (RefusalReason.NOT_RESERVABLE_ONLINE, True)


def test_one_hold_per_title_and_none_on_what_one_has() -> None:
    duplicate = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, hold_record_ids=["R1"]), TUE)
    on_loan = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, loan_record_ids=["R1"]), TUE)
    secured = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, secured_record_ids=["R1"]), TUE)
    assert [r.reason for r in duplicate.refusals] == [RefusalReason.DUPLICATE]
    assert [r.reason for r in on_loan.refusals] == [RefusalReason.ALREADY_ON_LOAN]
    assert [r.reason for r in secured.refusals] == [RefusalReason.ALREADY_ON_LOAN]
    other_title = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, hold_record_ids=["R9"]), TUE)
    assert other_title.choice is not None


def test_any_overdue_item_blocks() -> None:
    plan = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, overdue_count=1, blocked=True, block_reasons=["overdue"]), TUE)
    assert [(r.reason, r.params["overdue_count"], r.phone) for r in plan.refusals] == [
        (RefusalReason.OVERDUE_BLOCK, 1, "086-224-1287")
    ]


def test_card_unused_two_years_is_inactive_at_okayama_pref() -> None:
    used = TUE - timedelta(days=731)  # last used 2024-11-30: more than 730 days ago
    plan = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, last_used=used), TUE)
    assert [(r.reason, r.params["inactive_after_days"]) for r in plan.refusals] == [(RefusalReason.CARD_INACTIVE, 730)]
    recent = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, last_used=TUE - timedelta(days=729)), TUE)
    assert recent.choice is not None


def test_expired_card_refused_with_renewal_rule() -> None:
    member = "takarazuka-city"
    plan = plan_hold(TAKARAZUKA, patron(member), [copy(member, "takarazuka-city/chuo")], clean(member, card_expires=date(2026, 11, 30)), TUE)
    assert [(r.reason, r.params["renew_every_years"]) for r in plan.refusals] == [(RefusalReason.CARD_EXPIRED, 3)]


def test_member_that_cannot_be_asked_is_named() -> None:
    plan = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], {PREF: MemberUnreachable("timeout")}, TUE)
    assert [(r.reason, r.params["reason"]) for r in plan.refusals] == [(RefusalReason.MEMBER_UNREACHABLE, "timeout")]
    wrong_pin = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], {PREF: MemberUnreachable("authentication_failed")}, TUE)
    assert [r.reason for r in wrong_pin.refusals] == [RefusalReason.AUTHENTICATION_FAILED]


# --- pickup ---------------------------------------------------------------------------------------


def test_mutual_use_items_are_collected_at_the_owning_municipality_only() -> None:
    plan = plan_hold(OKAYAMA, patron("okayama-city", preferred_pickups=["tsuyama-city/main"]),
                     [copy("okayama-city", "okayama-city/chuo")], clean("okayama-city"), TUE, pickup_only=True)
    assert plan.choice is None
    [refusal] = plan.refusals
    assert (refusal.reason, refusal.branch) == (RefusalReason.PICKUP_NOT_ALLOWED, "tsuyama-city/main")
    assert all(b.startswith("okayama-city/") for b in refusal.params["allowed"])


def test_mobile_library_is_never_a_pickup() -> None:
    member = "takarazuka-city"
    plan = plan_hold(TAKARAZUKA, patron(member), [copy(member, "takarazuka-city/chuo")], clean(member), TUE)
    offered = [plan.choice.pickup_branch] + [a.option.pickup_branch for a in plan.alternatives]
    assert sorted(offered) == ["takarazuka-city/chuo", "takarazuka-city/nishi"]  # never takarazuka-city/idou


# --- estimates and the choice ----------------------------------------------------------------------


def test_never_ready_the_same_day() -> None:
    plan = plan_hold(OKAYAMA, patron("tsuyama-city"), [copy("tsuyama-city", "tsuyama-city/main")], clean("tsuyama-city"), TUE)
    assert plan.choice.ready == TUE + timedelta(days=1)


def test_on_loan_ready_after_due_date_and_queue() -> None:
    # Due Thu 12-10 with 1 patron ahead: + one 15-day loan → free Fri 12-25 → pulled Sat 12-26 → email Sun 12-27 →
    # ready Sun 12-27 (open). On order: no date, said so.
    records = [
        copy(PREF, HONKAN, Availability.ON_LOAN, due=date(2026, 12, 10), queue=1, item_id="loan"),
        copy(PREF, HONKAN, Availability.ON_ORDER, record_id="R2", item_id="order"),
    ]
    plan = plan_hold(OKAYAMA, patron(PREF, preferred_pickups=[HONKAN]), records, clean(PREF), TUE, pickup_only=True)
    assert (plan.choice.item_id, plan.choice.ready, plan.choice.queue_ahead) == ("loan", date(2026, 12, 27), 1)
    on_order = plan_hold(OKAYAMA, patron(PREF), records[1:], clean(PREF), TUE)
    assert on_order.choice is None
    assert {a.option.estimate.assumptions for a in on_order.alternatives} == {("on_order",)}


def test_earliest_ready_wins_then_preference_then_distance() -> None:
    cards = patron("tsuyama-city", "okayama-city", location=(34.6629, 133.9346))  # beside the prefectural library
    records = [copy("tsuyama-city", "tsuyama-city/main"), copy("okayama-city", "okayama-city/chuo")]
    plan = plan_hold(OKAYAMA, cards, records, clean("tsuyama-city", "okayama-city"), TUE)
    # Both ready Wed 12-02: the nearer (岡山市立中央) wins; 津山 loses as farther.
    assert plan.choice.pickup_branch == "okayama-city/chuo"
    lost = {a.option.pickup_branch: a for a in plan.alternatives}
    assert lost["tsuyama-city/main"].lost_because == "farther" and lost["tsuyama-city/main"].km_farther > 40
    preferring = patron("tsuyama-city", "okayama-city", location=(34.6629, 133.9346), preferred_pickups=["tsuyama-city/main"])
    plan = plan_hold(OKAYAMA, preferring, records, clean("tsuyama-city", "okayama-city"), TUE)
    assert plan.choice.pickup_branch == "tsuyama-city/main"
    assert {a.option.pickup_branch: a.lost_because for a in plan.alternatives}["okayama-city/chuo"] == "less_preferred"
    # An earlier ready date beats preference: the preferred copy on loan till 12-20 loses to one on the shelf.
    records = [copy("tsuyama-city", "tsuyama-city/main", Availability.ON_LOAN, due=date(2026, 12, 20)),
               copy("okayama-city", "okayama-city/chuo")]
    plan = plan_hold(OKAYAMA, preferring, records, clean("tsuyama-city", "okayama-city"), TUE)
    assert plan.choice.pickup_branch == "okayama-city/chuo"
    lost = {a.option.pickup_branch: a for a in plan.alternatives}["tsuyama-city/main"]
    assert (lost.lost_because, lost.days_later) == ("later_ready", 19)  # ready 12-21 vs 12-02


# --- card-gap advice -------------------------------------------------------------------------------


def test_card_gap_advice_names_library_gain_phone_and_how() -> None:
    # Only a prefectural card; the prefectural copy goes to 津山 by the weekly run (ready Fri 12-11), while
    # 津山市立図書館 has one on its shelf: ready Wed 12-02 with a Tsuyama card → 9 days earlier.
    who = patron(PREF, home_municipality="津山市", preferred_pickups=["tsuyama-city/main"])
    records = [copy(PREF, HONKAN), copy("tsuyama-city", "tsuyama-city/main")]
    plan = plan_hold(OKAYAMA, who, records, clean(PREF), TUE, pickup_only=True)
    assert plan.choice.ready == date(2026, 12, 11)
    [advice] = plan.advice
    assert (advice.member, advice.gain_days, advice.phone, advice.eligibility) == ("tsuyama-city", 9, "0868-24-2919", "eligible")
    assert "本人確認" in advice.how_to_get
    assert "pickup_calendar_not_published" in advice.assumptions  # 津山 prints no calendar: the gain assumes it opens
    from broker.holds.views import advice_en, advice_ja

    assert advice_ja(advice) == "津山市立図書館の利用カードがあれば、9日早く受け取れます（0868-24-2919）"
    assert advice_en(advice) == "With a library card of 津山市立図書館, you could collect it 9 days sooner (phone 0868-24-2919)"
    one_day = dataclasses.replace(advice, gain_days=1, phone=None)
    assert advice_en(one_day) == "With a library card of 津山市立図書館, you could collect it 1 day sooner"
    only_way = dataclasses.replace(advice, gain_days=None)  # nothing else can be collected: from which day
    assert advice_ja(only_way) == "津山市立図書館の利用カードがあれば、12月2日(水)から受け取れます（0868-24-2919）"
    assert advice_en(only_way) == "With a library card of 津山市立図書館, you could collect it from Wed 2 Dec 2026 (phone 0868-24-2919)"


def test_no_advice_for_a_card_the_patron_cannot_get() -> None:
    records = [copy("takarazuka-city", "takarazuka-city/chuo")]
    neighbour = plan_hold(TAKARAZUKA, patron(home_municipality="西宮市"), records, {}, TUE)
    commuter = plan_hold(TAKARAZUKA, patron(home_municipality="大阪市", works_in=["宝塚市"]), records, {}, TUE)
    outsider = plan_hold(TAKARAZUKA, patron(home_municipality="大阪市"), records, {}, TUE)
    assert [a.eligibility for a in neighbour.advice] == ["eligible"]
    assert [a.eligibility for a in commuter.advice] == ["eligible"]
    assert outsider.advice == [] and [r.reason for r in outsider.refusals] == [RefusalReason.NO_CARD]


def test_member_override_replaces_the_consortium_default_section() -> None:
    pref, city = OKAYAMA.policy_for(PREF), OKAYAMA.policy_for("okayama-city")
    assert pref.cards.inactive_after_days == 730 and pref.cards.residents_of is None
    assert city.cards.residents_of is not None and "岡山市" in city.cards.residents_of
    assert city.at_owner.schedule.kind == "next_open_day" and city.to_pickup is None
    # with_base_url re-validates a dumped copy: the merge must still see the member's unset sections as unset.
    assert OKAYAMA.with_base_url("http://127.0.0.1:1").policy_for("okayama-city") == city


def test_limits_are_per_card_not_per_patron() -> None:
    statuses = {"tsuyama-city": PatronStatus(member="tsuyama-city"), PREF: PatronStatus(member=PREF, holds_count=10)}
    # The prefectural card is full; a Tsuyama copy is still fine on the Tsuyama card.
    plan = plan_hold(OKAYAMA, patron(PREF, "tsuyama-city"), [copy(PREF, HONKAN), copy("tsuyama-city", "tsuyama-city/main")], statuses, TUE)
    assert plan.choice.member == "tsuyama-city"
    def _total(data) -> None:
        member_data(data, PREF)["policy"]["limits"]["max_holds"] = 10

    consortium = with_changes(OKAYAMA, _total)
    blocked = plan_hold(consortium, patron(PREF), [copy(PREF, HONKAN)], statuses, TUE)
    assert [r.reason for r in blocked.refusals] == [RefusalReason.LIMIT_REACHED]


def test_phone_only_item_says_how_many_phone_holds_are_left() -> None:
    def phone_cap(data) -> None:
        member_data(data, "kumamoto-pref")["policy"]["limits"]["max_phone_holds"] = 2  # Takarazuka's cap, for the test

    consortium = with_changes(KUMAMOTO, phone_cap)
    records = [copy("kumamoto-pref", "kumamoto-pref/honkan", status_text="来館貸出可")]
    one_used = plan_hold(consortium, patron("kumamoto-pref"), records, clean("kumamoto-pref", phone_holds_count=1), TUE)
    all_used = plan_hold(consortium, patron("kumamoto-pref"), records, clean("kumamoto-pref", phone_holds_count=2), TUE)
    assert [(r.params["phone_holds_left"], r.params["by_phone"]) for r in one_used.refusals] == [(1, True)]
    assert [(r.params["phone_holds_left"], r.params["by_phone"]) for r in all_used.refusals] == [(0, False)]
    assert TAKARAZUKA.policy_for("takarazuka-city").limits.max_phone_holds == 2


def test_on_shelf_choice_warns_walk_in_borrowers_come_first_and_reports_loan_context() -> None:
    plan = plan_hold(OKAYAMA, patron(PREF, preferred_pickups=[HONKAN]), [copy(PREF, HONKAN)], clean(PREF), TUE, pickup_only=True)
    assert "walk_in_borrower_may_take_the_copy_first" in plan.assumptions
    assert (plan.loans.loan_days, plan.loans.renewals) == (15, 1)
    on_loan = plan_hold(OKAYAMA, patron(PREF, preferred_pickups=[HONKAN]),
                        [copy(PREF, HONKAN, Availability.ON_LOAN, due=date(2026, 12, 5))], clean(PREF), TUE, pickup_only=True)
    assert "walk_in_borrower_may_take_the_copy_first" not in on_loan.assumptions


def test_refusals_carry_the_members_phone_note() -> None:
    plan = plan_hold(OKAYAMA, patron(PREF), [copy(PREF, HONKAN)], clean(PREF, overdue_count=1), TUE)
    [refusal] = plan.refusals
    assert "086-224-1287" in refusal.params["phone_note"] and refusal.phone == "086-224-1287"


def test_consortium_card_uses_a_member_that_answered() -> None:
    def one_card(data) -> None:
        data["policy"]["cards"]["scope"] = "consortium"

    consortium = with_changes(OKAYAMA, one_card)
    statuses = {"okayama-city": MemberUnreachable("timeout"), "tamano-city": PatronStatus(member="tamano-city")}
    plan = plan_hold(consortium, patron("okayama-city", "tamano-city"), [copy("tsuyama-city", "tsuyama-city/main")], statuses, TUE)
    assert plan.choice is not None and plan.choice.member == "tsuyama-city"
