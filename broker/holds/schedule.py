"""When a held copy can be collected and until when: delivery schedule + hold-shelf arithmetic.

Pure functions: the day the copy becomes available to the hold (today for a copy on the shelf,
its due date for one on loan) is a parameter; nothing reads the clock. Every estimate says how it
was reached (`basis`) and what it had to assume, so the plan can explain it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from broker.holds.calendar import BranchCalendar, CalendarError
from broker.holds.policy import (
    WEEKDAYS,
    Courier,
    NextOpenDay,
    Postal,
    Route,
    ShelfRule,
    UnknownSchedule,
    Weekday,
    WeeklyBatch,
)

# A weekly run that the owner's calendar cancels for a year is a contradiction in the data, not a wait.
_MAX_SKIPPED_RUNS = 53

__all__ = ["Estimate", "estimate", "first_weekday_after", "first_weekday_on_or_after"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """One copy's way to one pickup branch."""

    processed: date | None  # pulled from the shelf / packed / posted
    notice: date | None  # the patron is told (email)
    ready: date | None  # first day the patron can collect; None: cannot be estimated
    deadline: date | None  # last day the patron can collect
    basis: str  # the schedule kind: next_open_day, weekly, postal, courier, unknown
    window_end: date | None = None  # the nominal end of a fixed window, before skipping closed days
    ready_from: date | None = None  # the day the schedule makes it collectable, before skipping closed days
    assumptions: tuple[str, ...] = field(default_factory=tuple)


def first_weekday_on_or_after(day: date, weekday: Weekday) -> date:
    return day + timedelta(days=(WEEKDAYS.index(weekday) - day.weekday()) % 7)


def first_weekday_after(day: date, weekday: Weekday) -> date:
    return first_weekday_on_or_after(day + timedelta(days=1), weekday)


def _first_of_weekdays_after(day: date, weekdays: list[Weekday]) -> date:
    return min(first_weekday_after(day, w) for w in weekdays)


def estimate(route: Route, available: date, owner: BranchCalendar, pickup: BranchCalendar) -> Estimate:
    """Ready date and pickup deadline for a copy that is free for this hold from `available` on.

    Processing never happens on `available` itself: a hold on a copy on the shelf is not ready the
    day it is placed (seed 001), and a returned copy is secured before the next run. Calendars that
    never open (a run on the owner's weekly closed day, a closure without end) give an unknown
    estimate that says so, not an exception.
    """
    try:
        return _estimate(route, available, owner, pickup)
    except (CalendarError, OverflowError):
        return Estimate(None, None, None, None, route.schedule.kind, assumptions=("calendar_never_open",))


def _estimate(route: Route, available: date, owner: BranchCalendar, pickup: BranchCalendar) -> Estimate:
    schedule = route.schedule
    assumptions: list[str] = []
    if not owner.complete:
        assumptions.append("owner_calendar_not_published")
    if not pickup.complete:
        assumptions.append("pickup_calendar_not_published")
    if isinstance(schedule, NextOpenDay):
        processed = owner.next_open_after(available)
        notice = processed + timedelta(days=schedule.notice_delay_days)
        ready_from = notice
    elif isinstance(schedule, WeeklyBatch):
        processed = first_weekday_after(available, schedule.process_weekday)
        for _ in range(_MAX_SKIPPED_RUNS):
            if owner.is_open(processed):
                break
            processed += timedelta(days=7)  # no run while the owner is closed: the next week's run
        else:
            raise CalendarError(f"no {schedule.process_weekday} run within {_MAX_SKIPPED_RUNS} weeks of {available}")
        notice = first_weekday_on_or_after(processed, schedule.notice_weekday)
        ready_from = first_weekday_on_or_after(notice, schedule.ready_weekday)
    elif isinstance(schedule, (Postal, Courier)):
        weekdays = schedule.dispatch_weekdays if isinstance(schedule, Postal) else schedule.weekdays
        if weekdays is None or schedule.transit_days is None:
            assumptions.append(f"{schedule.kind}_days_not_published")
            return Estimate(None, None, None, None, schedule.kind, assumptions=tuple(assumptions))
        processed = _first_of_weekdays_after(available, weekdays)
        notice = ready_from = processed + timedelta(days=schedule.transit_days)
    else:
        assert isinstance(schedule, UnknownSchedule)
        assumptions.append("schedule_not_published")
        return Estimate(None, None, None, None, "unknown", assumptions=tuple(assumptions))
    ready = pickup.first_open_on_or_after(ready_from)
    deadline, window_end = _deadline(route.shelf, processed, notice, ready_from, ready, pickup)
    if route.shelf.kind == "unknown":
        assumptions.append("hold_shelf_not_published")
    if deadline is None and route.shelf.kind != "unknown":
        # The whole window falls on closed days: nothing to collect in.
        return Estimate(
            processed, notice, None, None, schedule.kind, window_end, ready_from, tuple([*assumptions, "window_closed"])
        )
    return Estimate(processed, notice, ready, deadline, schedule.kind, window_end, ready_from, tuple(assumptions))


def _deadline(
    shelf: ShelfRule, processed: date, notice: date, ready_from: date, ready: date, pickup: BranchCalendar
) -> tuple[date | None, date | None]:
    """(last day to collect, nominal end of the window); a nominal end on a closed day moves back."""
    if shelf.kind == "open_days":
        assert shelf.days is not None
        return pickup.nth_open_day(ready, shelf.days), None
    if shelf.kind == "calendar_days":
        assert shelf.days is not None
        end = ready_from + timedelta(days=shelf.days - 1)
    elif shelf.kind == "from_notice_days":
        assert shelf.days is not None
        end = notice + timedelta(days=shelf.days - 1)
    elif shelf.kind == "until_due_date":
        assert shelf.loan_days is not None
        end = processed + timedelta(days=shelf.loan_days)  # the loan starts when the item is sent
    else:
        return None, None
    if end < ready:
        return None, end
    return pickup.last_open_on_or_before(end, ready), end
