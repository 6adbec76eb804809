"""Ready dates and pickup deadlines against dates worked out by hand from the seeds' words.

Every expected date below is computed in the comment beside it from the seed's rule, not from the
code: the shipped consortium files supply the rules, the planner does the arithmetic.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from broker.holds.planner import plan_hold
from tests.holds_helpers import branch_data, clean, copy, member_data, patron, shipped, with_changes
from yokodan import RefusalReason

OKAYAMA = shipped("okayama")
AOMORI = shipped("aomori")


def _plan_pref_to(consortium, owner: str, copy_branch: str, pickup: str, today: date):
    return plan_hold(
        consortium, patron(owner, preferred_pickups=[pickup]), [copy(owner, copy_branch)], clean(owner), today,
        pickup_only=True,
    )


# Okayama pref → a municipal pickup (seed 001): 貸出処理や袋詰め作業等を週一回、日曜日; 木曜日にお知らせメール;
# 取置き期間は金曜日から翌週木曜日. A hold placed on a Sunday misses that day's packing (never the same day).
@pytest.mark.parametrize(
    ("requested", "packed", "email", "window"),
    [
        (date(2026, 11, 30), date(2026, 12, 6), date(2026, 12, 10), (date(2026, 12, 11), date(2026, 12, 17))),  # Mon → Sun 12-06 → Thu 12-10 → Fri 12-11..Thu 12-17
        (date(2026, 12, 1), date(2026, 12, 6), date(2026, 12, 10), (date(2026, 12, 11), date(2026, 12, 17))),  # Tue 12-01 → packed Sun 12-06 → window Fri 12-11..Thu 12-17
        (date(2026, 12, 2), date(2026, 12, 6), date(2026, 12, 10), (date(2026, 12, 11), date(2026, 12, 17))),  # Wed
        (date(2026, 12, 3), date(2026, 12, 6), date(2026, 12, 10), (date(2026, 12, 11), date(2026, 12, 17))),  # Thu
        (date(2026, 12, 4), date(2026, 12, 6), date(2026, 12, 10), (date(2026, 12, 11), date(2026, 12, 17))),  # Fri
        (date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 10), (date(2026, 12, 11), date(2026, 12, 17))),  # Sat → the next day's packing
        (date(2026, 12, 6), date(2026, 12, 13), date(2026, 12, 17), (date(2026, 12, 18), date(2026, 12, 24))),  # Sun → not today: Sun 12-13 → Thu 12-17 → Fri 12-18..Thu 12-24
    ],
)
def test_okayama_pref_to_municipal_pickup_each_weekday(requested, packed, email, window) -> None:
    plan = _plan_pref_to(OKAYAMA, "okayama-pref", "okayama-pref/honkan", "tsuyama-city/main", requested)
    assert plan.choice is not None
    est = plan.choice.estimate
    assert (est.processed, est.notice, est.ready, est.deadline) == (packed, email, *window)
    assert plan.choice.route == "to_pickup" and plan.choice.pickup_branch == "tsuyama-city/main"


# Aomori → a cooperating library (seed 003): 貸出処理日は毎週木曜日; メール送信日の翌日(毎週日曜日)から受取;
# 受取開始日から8日間 (Sunday to the next Sunday), no extension.
@pytest.mark.parametrize(
    ("requested", "processed", "window"),
    [
        (date(2026, 12, 2), date(2026, 12, 3), (date(2026, 12, 6), date(2026, 12, 13))),  # Wed → Thu 12-03 → Sun 12-06..Sun 12-13
        (date(2026, 12, 3), date(2026, 12, 10), (date(2026, 12, 13), date(2026, 12, 20))),  # Thu: not the same day → Thu 12-10 → Sun 12-13..Sun 12-20
        (date(2026, 12, 5), date(2026, 12, 10), (date(2026, 12, 13), date(2026, 12, 20))),  # Sat → Thu 12-10
    ],
)
def test_aomori_thursday_run_sunday_start_eight_days(requested, processed, window) -> None:
    plan = _plan_pref_to(AOMORI, "aomori-pref", "aomori-pref/honkan", "aomori-pref/hiranai-toshokan", requested)
    assert plan.choice is not None
    est = plan.choice.estimate
    assert est.processed == processed
    assert est.notice == window[0] - timedelta(days=1)  # the email goes on the Saturday (seed 003's table: 土 メール送信)
    assert (est.ready, est.deadline) == window
    assert (est.deadline - est.ready).days + 1 == 8


# Okayama pref at its own counter (seed 001): 翌開館日の朝…回収; 用意ができた日の翌日にメール; 取置き期間は連絡日より
# 休館日を除く7日間. Monday is the weekly closed day (no Monday hours printed); holidays open (祝日 hours printed).
def test_pref_counter_seven_open_days_across_month_end() -> None:
    # Thu 11-26 → pulled Fri 11-27 → email Sat 11-28 → open days: Sat 28 (1), Sun 29 (2), [Mon 30 closed],
    # Tue 12-01 (3), Wed 2 (4), Thu 3 (5), Fri 4 (6), Sat 5 (7) → deadline Sat 12-05.
    plan = _plan_pref_to(OKAYAMA, "okayama-pref", "okayama-pref/honkan", "okayama-pref/honkan", date(2026, 11, 26))
    est = plan.choice.estimate
    assert (est.processed, est.ready, est.deadline) == (date(2026, 11, 27), date(2026, 11, 28), date(2026, 12, 5))


def test_pref_counter_open_on_a_holiday_monday() -> None:
    # Sat 11-21 → pulled Sun 11-22 → email Mon 11-23 勤労感謝の日: a holiday, so open although a Monday →
    # 23 (1), 24 (2), 25 (3), 26 (4), 27 (5), 28 (6), Sun 29 (7) → deadline Sun 11-29.
    plan = _plan_pref_to(OKAYAMA, "okayama-pref", "okayama-pref/honkan", "okayama-pref/honkan", date(2026, 11, 21))
    est = plan.choice.estimate
    assert (est.ready, est.deadline) == (date(2026, 11, 23), date(2026, 11, 29))


def _with_year_end(data) -> None:
    # The seed's 開館カレンダー is an image: the year-end closure's dates are not printed, so this test adds one
    # (12-29..01-03, the usual Japanese public-library closure) to show the arithmetic, not as a fact.
    calendar = member_data(data, "okayama-pref")["policy"]["calendar"]
    calendar["annual_closures"] = [{"start": "12-29", "end": "01-03", "reason": "年末年始"}]


def test_pref_counter_seven_open_days_across_year_end_and_a_holiday() -> None:
    consortium = with_changes(OKAYAMA, _with_year_end)
    # Sat 12-26 → pulled Sun 12-27 → email Mon 12-28 (closed: Monday) → 12-29..01-03 year-end → Mon 01-04 closed
    # (not a holiday) → ready Tue 01-05: 5 (1), 6 (2), 7 (3), 8 (4), 9 (5), Sun 10 (6),
    # Mon 01-11 成人の日 (holiday, open) (7) → deadline Mon 2027-01-11.
    plan = _plan_pref_to(consortium, "okayama-pref", "okayama-pref/honkan", "okayama-pref/honkan", date(2026, 12, 26))
    est = plan.choice.estimate
    assert (est.processed, est.notice) == (date(2026, 12, 27), date(2026, 12, 28))
    assert (est.ready, est.deadline) == (date(2027, 1, 5), date(2027, 1, 11))


def test_weekly_run_skipped_while_the_owner_is_closed_for_year_end() -> None:
    consortium = with_changes(OKAYAMA, _with_year_end)
    # Tue 12-29: next Sunday 01-03 is inside the closure → no run; the run after is Sun 01-10 → email Thu 01-14 →
    # window Fri 01-15..Thu 01-21.
    plan = _plan_pref_to(consortium, "okayama-pref", "okayama-pref/honkan", "tsuyama-city/main", date(2026, 12, 29))
    est = plan.choice.estimate
    assert (est.processed, est.ready, est.deadline) == (date(2027, 1, 10), date(2027, 1, 15), date(2027, 1, 21))


def test_pickup_branch_closed_for_relocation() -> None:
    def relocate(data) -> None:
        branch_data(data, "misaki-town/asahi")["calendar"] = {
            "closures": [{"start": "2026-11-01", "end": "2027-03-31", "reason": "移転のため休館",
                          "alternatives": ["misaki-town/chuo"]}],
        }

    consortium = with_changes(OKAYAMA, relocate)
    # Tue 12-01 → the weekly window would open Fri 12-11, inside 11-01..03-31: that pickup is refused with the
    # closure's dates and alternative; the usual 中央図書館 then gets the same Fri 12-11..Thu 12-17 window.
    plan = plan_hold(
        consortium, patron("okayama-pref", preferred_pickups=["misaki-town/asahi", "misaki-town/chuo"]),
        [copy("okayama-pref", "okayama-pref/honkan")], clean("okayama-pref"), date(2026, 12, 1), pickup_only=True,
    )
    closed = [r for r in plan.refusals if r.reason is RefusalReason.BRANCH_CLOSED]
    assert [(r.branch, r.params["closed_until"], r.params["alternatives"]) for r in closed] == [
        ("misaki-town/asahi", date(2027, 3, 31), ["misaki-town/chuo"])
    ]
    assert plan.choice.pickup_branch == "misaki-town/chuo"
    assert (plan.choice.ready, plan.choice.estimate.deadline) == (date(2026, 12, 11), date(2026, 12, 17))
    # After the reopening the branch is offered again: requested Tue 2027-03-30 → Sun 04-04 → Fri 04-09..Thu 04-15.
    later = plan_hold(
        consortium, patron("okayama-pref", preferred_pickups=["misaki-town/asahi"]),
        [copy("okayama-pref", "okayama-pref/honkan")], clean("okayama-pref"), date(2027, 3, 30), pickup_only=True,
    )
    assert later.choice.pickup_branch == "misaki-town/asahi"
    assert (later.choice.ready, later.choice.estimate.deadline) == (date(2027, 4, 9), date(2027, 4, 15))


def test_aomori_closed_cooperating_library_offers_the_others() -> None:
    def close(data) -> None:
        branch_data(data, "aomori-pref/hiranai-toshokan")["calendar"] = {
            "closures": [{"start": "2026-12-01", "end": "2026-12-31", "reason": "臨時休館"}],
        }

    consortium = with_changes(AOMORI, close)
    plan = _plan_pref_to(consortium, "aomori-pref", "aomori-pref/honkan", "aomori-pref/hiranai-toshokan", date(2026, 12, 2))
    assert plan.choice is None
    [closed] = plan.refusals
    assert closed.reason is RefusalReason.BRANCH_CLOSED
    # 普段利用している協力館が休館等で利用できず、受取りに別の協力館を指定: every other pickup is offered.
    assert len(closed.params["alternatives"]) == 59 and "aomori-pref/hiranai-toshokan" not in closed.params["alternatives"]


def test_kumamoto_municipal_pickup_by_post_is_unknown_and_counter_is_seven_days_from_email() -> None:
    kumamoto = shipped("kumamoto")
    posted = _plan_pref_to(kumamoto, "kumamoto-pref", "kumamoto-pref/honkan", "kumamoto-pref/uto", date(2026, 12, 1))
    # ゆうメール twice a week on weekdays the seed does not print: no date is invented.
    assert posted.choice is None
    [only] = posted.alternatives
    assert (only.lost_because, only.option.ready) == ("ready_unknown", None)
    assert "postal_days_not_published" in only.option.estimate.assumptions
    counter = _plan_pref_to(kumamoto, "kumamoto-pref", "kumamoto-pref/honkan", "kumamoto-pref/honkan", date(2026, 12, 1))
    # Tue 12-01 → next opening day Wed 12-02 (calendar not published: taken as open) → メール送信日から7日間 → Tue 12-08.
    assert (counter.choice.ready, counter.choice.estimate.deadline) == (date(2026, 12, 2), date(2026, 12, 8))
    assert "owner_calendar_not_published" in counter.choice.estimate.assumptions


def test_kumamoto_until_due_date_when_post_days_are_known() -> None:
    def postal_days(data) -> None:
        # Hypothetical dispatch days and transit, to check the until-due-date arithmetic (the seed prints neither).
        member_data(data, "kumamoto-pref")["policy"]["to_pickup"]["schedule"].update(
            dispatch_weekdays=["tue", "fri"], transit_days=2
        )

    consortium = with_changes(shipped("kumamoto"), postal_days)
    # Tue 12-01 → next dispatch Fri 12-04 → arrives Sun 12-06 → kept until the due date: 3 weeks from dispatch = Fri 12-25.
    plan = _plan_pref_to(consortium, "kumamoto-pref", "kumamoto-pref/honkan", "kumamoto-pref/uto", date(2026, 12, 1))
    est = plan.choice.estimate
    assert (est.processed, est.ready, est.deadline) == (date(2026, 12, 4), date(2026, 12, 6), date(2026, 12, 25))


def test_takarazuka_one_week_from_notice() -> None:
    takarazuka = shipped("takarazuka")
    # Tue 12-01 at 中央 → next day Wed 12-02, notice the same day → 連絡日から1週間 → Tue 12-08.
    plan = _plan_pref_to(takarazuka, "takarazuka-city", "takarazuka-city/chuo", "takarazuka-city/chuo", date(2026, 12, 1))
    assert (plan.choice.ready, plan.choice.estimate.deadline) == (date(2026, 12, 2), date(2026, 12, 8))
