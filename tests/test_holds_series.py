"""Sequenced volumes: reading order, and placement dates so later volumes never arrive first."""

from __future__ import annotations

from datetime import date

from broker.holds.series import order_volumes, plan_series
from tests.holds_helpers import clean, copy, patron, shipped
from yokodan import Availability

OKAYAMA = shipped("okayama")
PREF, HONKAN = "okayama-pref", "okayama-pref/honkan"


def test_reading_order() -> None:
    given = [("下", []), ("上", []), ("中", []), (None, []), ("第2巻", []), ("第10巻", []), ("1", [])]
    assert [label for label, _ in order_volumes(given)] == ["1", "第2巻", "第10巻", "上", "中", "下", None]


def test_later_volume_on_the_shelf_waits_for_the_earlier_on_loan() -> None:
    # 上 is on loan until Thu 12-10: free 12-10 → pulled Fri 12-11 → email Sat 12-12 → ready Sat 12-12.
    # 下 is on the shelf: placed today it would be ready Thu 12-03, before 上. Placed on day D it is pulled the
    # next opening day and ready the day after that: the first D giving ≥ 12-12 is Thu 12-10 (→ Fri 12-11 → Sat 12-12).
    volumes = [
        ("下", [copy(PREF, HONKAN, record_id="GE", volume="下")]),
        ("上", [copy(PREF, HONKAN, Availability.ON_LOAN, record_id="JO", due=date(2026, 12, 10), volume="上")]),
    ]
    who = patron(PREF, preferred_pickups=[HONKAN])
    series = plan_series(OKAYAMA, who, volumes, clean(PREF), date(2026, 12, 1))
    assert [(s.label, s.place_on, s.plan.choice.ready) for s in series.steps] == [
        ("上", date(2026, 12, 1), date(2026, 12, 12)),
        ("下", date(2026, 12, 10), date(2026, 12, 12)),
    ]
    assert series.in_order


def test_after_an_unknown_ready_date_the_next_volume_waits_for_collection() -> None:
    volumes = [
        ("上", [copy(PREF, HONKAN, Availability.ON_ORDER, record_id="JO", volume="上")]),
        ("下", [copy(PREF, HONKAN, record_id="GE", volume="下")]),
    ]
    series = plan_series(OKAYAMA, patron(PREF), volumes, clean(PREF), date(2026, 12, 1))
    assert [(s.label, s.place_on, s.after_collecting) for s in series.steps] == [
        ("上", date(2026, 12, 1), None), ("下", None, "上"),
    ]


def test_volumes_already_in_order_are_placed_today() -> None:
    volumes = [
        ("上", [copy(PREF, HONKAN, record_id="JO", volume="上")]),
        ("下", [copy(PREF, HONKAN, Availability.ON_LOAN, record_id="GE", due=date(2026, 12, 20), volume="下")]),
    ]
    series = plan_series(OKAYAMA, patron(PREF), volumes, clean(PREF), date(2026, 12, 1))
    assert [s.place_on for s in series.steps] == [date(2026, 12, 1), date(2026, 12, 1)]
