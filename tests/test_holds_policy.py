"""Hold rules as data: the shipped files load, and a broken rule fails with the file and the field path."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from broker.consortium import ConsortiumFileError, load_consortium
from broker.holds.calendar import BranchCalendar, CalendarError, is_national_holiday, national_holidays
from broker.holds.policy import AnnualClosure, CalendarRule, Closure
from tests.holds_helpers import shipped

MINIMAL = """\
id = "tiny"
name = "Tiny"
kind = "city_system"
base_url = "http://127.0.0.1:1"

[[members]]
id = "city"
name = "市立図書館"
municipality = "市"
connector = {{ kind = "sru", endpoint = "/city/sru" }}

[[members.branches]]
id = "city/main"
name = "中央図書館"
municipality = "市"
coordinates_note = "test"
pickup_point = true
accepts_returns = true

{extra}
"""


def _load(tmp_path: Path, extra: str):
    path = tmp_path / "tiny.toml"
    path.write_text(MINIMAL.format(extra=extra), encoding="utf-8")
    return load_consortium(path)


def _problems(tmp_path: Path, extra: str) -> list[str]:
    with pytest.raises(ConsortiumFileError) as caught:
        _load(tmp_path, extra)
    return [p for p in caught.value.problems]


@pytest.mark.parametrize("name", ["okayama", "kumamoto", "aomori", "takarazuka"])
def test_shipped_files_carry_their_hold_rules(name: str) -> None:
    consortium = shipped(name)
    hub = consortium.members[-1]
    policy = consortium.policy_for(hub.id)
    assert policy.cards is not None and policy.pickup is not None and policy.at_owner is not None
    assert policy.source and "seeds/" in policy.source


def test_seed_numbers_are_in_the_files() -> None:
    okayama = shipped("okayama").policy_for("okayama-pref")
    assert [(c.name, c.max_holds, c.max_loans) for c in okayama.limits.by_class] == [("books_magazines", 10, 10), ("av", 5, 5)]
    assert (okayama.to_pickup.schedule.process_weekday, okayama.to_pickup.schedule.notice_weekday,
            okayama.to_pickup.schedule.ready_weekday) == ("sun", "thu", "fri")
    assert (okayama.at_owner.shelf.kind, okayama.at_owner.shelf.days) == ("open_days", 7)
    aomori = shipped("aomori").policy_for("aomori-pref")
    assert (aomori.limits.max_holds, aomori.limits.max_loans, aomori.to_pickup.shelf.days) == (20, 10, 8)
    assert aomori.to_pickup.shelf.extendable is False and aomori.pickup.alternative_while_closed
    takarazuka = shipped("takarazuka").policy_for("takarazuka-city")
    assert takarazuka.cards.residents_of == ["宝塚市", "芦屋市", "尼崎市", "伊丹市", "猪名川町", "川西市", "三田市", "西宮市", "神戸市"]
    assert (takarazuka.limits.max_holds, takarazuka.limits.requests_count_as_holds, takarazuka.limits.max_phone_holds) == (10, True, 2)
    assert takarazuka.cards.renew_every_years == 3


def test_unknown_rule_key_names_file_and_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, '[members.policy.limits]\nmax_hold = 10\n')
    assert problems == ["members[0].policy.limits.max_hold (member city): unknown field (misspelt? allowed here: by_class, max_holds, max_loans, max_phone_holds, requests_count_as_holds)"]


def test_bad_weekday_and_missing_shelf_days(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """\
[members.policy.to_pickup]
schedule = { kind = "weekly", process_weekday = "sunday", notice_weekday = "thu", ready_weekday = "fri" }
shelf = { kind = "open_days" }
""")
    assert any(p.startswith("members[0].policy.to_pickup.schedule.process_weekday") for p in problems)
    assert "members[0].policy.to_pickup.shelf.days (member city): a open_days rule needs days" in problems


def test_closure_ending_before_it_starts_and_unknown_alternative(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """\
[members.branches.calendar]
closures = [{ start = 2026-12-10, end = 2026-12-01, reason = "改装" }]
""")
    assert problems == ["members[0].branches[0].calendar.closures[0].end (branch city/main): ends (2026-12-01) before it starts (2026-12-10)"]
    problems = _problems(tmp_path, """\
[members.branches.calendar]
closures = [{ start = 2026-12-01, end = 2026-12-10, reason = "改装", alternatives = ["city/nowhere"] }]
""")
    assert problems == ["members[0].branches[0].calendar.closures[0].alternatives[0] (branch city/main): no branch 'city/nowhere' in this consortium"]


def test_listed_pickups_must_exist_and_a_material_sits_in_one_class(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """\
[policy.pickup]
at = "listed"
branches = ["city/main", "city/gone"]

[policy.limits]
by_class = [{ name = "a", materials = ["book"] }, { name = "b", materials = ["book", "audiovisual"] }]
""")
    assert "policy.limits.by_class[1].materials: 'book' is already in class 'a'" in problems


def test_listed_pickup_unknown_branch(tmp_path: Path) -> None:
    problems = _problems(tmp_path, '[policy.pickup]\nat = "listed"\nbranches = ["city/gone"]\n')
    assert problems == ["policy.pickup.branches[0]: no branch 'city/gone' in this consortium"]
    assert _problems(tmp_path, '[policy.pickup]\nat = "listed"\n') == [
        "policy.pickup.branches: at = 'listed' needs the list of pickup branch ids"
    ]


def test_bad_yearly_date(tmp_path: Path) -> None:
    problems = _problems(tmp_path, '[members.policy.calendar]\nannual_closures = [{ start = "12-32", end = "01-03", reason = "x" }]\n')
    assert problems == ["members[0].policy.calendar.annual_closures[0].start (member city): no such day of the year: '12-32'"]


# --- calendars ------------------------------------------------------------------------------------


def test_national_holidays_come_from_the_holidays_package() -> None:
    days = national_holidays(2026)
    assert date(2026, 11, 23) in days  # 勤労感謝の日
    assert date(2026, 9, 22) in days  # 国民の休日 between 敬老の日 and 秋分の日 (2026)
    assert date(2026, 5, 6) in days  # 振替休日
    assert not is_national_holiday(date(2026, 12, 1))


def test_weekly_closed_day_and_holiday_opening() -> None:
    closed_mondays = BranchCalendar(CalendarRule(weekly_closed=["mon"], open_on_holidays=True))
    assert not closed_mondays.is_open(date(2026, 11, 30))  # Mon
    assert closed_mondays.is_open(date(2026, 11, 23))  # Mon, 勤労感謝の日: open on holidays
    closed_on_holidays = BranchCalendar(CalendarRule(weekly_closed=["mon"], open_on_holidays=False))
    assert not closed_on_holidays.is_open(date(2026, 11, 3))  # Tue, 文化の日
    assert closed_on_holidays.is_open(date(2026, 11, 4))


def test_a_long_running_calendar_remembers_a_bounded_number_of_days() -> None:
    """A broker up for years asks about a new day every day: the day cache starts again, answers unchanged."""
    calendar = BranchCalendar(CalendarRule(weekly_closed=["mon"], open_on_holidays=False))
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(3 * 365)]
    answers = [calendar.is_open(day) for day in days]
    assert answers == [BranchCalendar(calendar.rule).is_open(day) for day in days]  # a fresh calendar per day
    assert answers.count(True) == 3 * 365 - 156 - sum(is_national_holiday(d) and d.weekday() != 0 for d in days)
    assert len(calendar._cache) <= 800  # two horizons (_CACHED_DAYS), not one entry per day ever asked


def test_annual_closure_runs_past_new_year_and_counting_skips_it() -> None:
    calendar = BranchCalendar(CalendarRule(weekly_closed=[], open_on_holidays=True,
                                           annual_closures=[AnnualClosure(start="12-29", end="01-03", reason="年末年始")]))
    assert [calendar.is_open(date(2026, 12, d)) for d in (28, 29, 31)] == [True, False, False]
    assert not calendar.is_open(date(2027, 1, 3)) and calendar.is_open(date(2027, 1, 4))
    # 3 opening days from Mon 12-28: 28 (1), then 01-04 (2), 01-05 (3).
    assert calendar.nth_open_day(date(2026, 12, 28), 3) == date(2027, 1, 5)


def test_date_range_closure_and_a_calendar_closed_for_good() -> None:
    closure = Closure(start=date(2026, 12, 1), end=date(2026, 12, 20), reason="移転")
    calendar = BranchCalendar(CalendarRule(closures=[closure]))
    assert calendar.closure_on(date(2026, 12, 5)) == closure and calendar.closure_on(date(2026, 12, 21)) is None
    assert calendar.next_open_after(date(2026, 11, 30)) == date(2026, 12, 21)
    assert not calendar.complete  # weekly closed days not published
    forever = BranchCalendar(CalendarRule(closures=[Closure(start=date(2026, 1, 1), end=date(2030, 1, 1), reason="閉館")]))
    with pytest.raises(CalendarError):
        forever.next_open_after(date(2026, 6, 1))
