"""Opening days of one branch: weekly closed days, national holidays, annual and date-range closures.

Pure functions over a `CalendarRule`; no clock reads (callers pass the day). Japanese national holidays
come from the maintained `holidays` package (holidays.Japan), never from a table typed here.

A rule the seed does not publish (weekly closed days, holiday opening) is taken as "open" and the
calendar says it is incomplete, so a plan can say "closed days not published" instead of pretending.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

from yokodan.errors import ConfigError

from broker.holds.policy import WEEKDAYS, AnnualClosure, CalendarRule, Closure

__all__ = ["BranchCalendar", "CalendarError", "is_national_holiday", "national_holidays"]

# A branch that does not open within this many days of a date is treated as a broken rule, not looped over.
_HORIZON_DAYS = 400
# Days remembered per calendar: a plan looks at most a horizon ahead of today, so two horizons cover every
# plan of a long-running broker; past that the cache starts again rather than grow by a day every day.
_CACHED_DAYS = 2 * _HORIZON_DAYS


class CalendarError(ConfigError):
    """No opening day within the horizon: the calendar data closes the branch for good."""


@lru_cache(maxsize=64)
def national_holidays(year: int) -> frozenset[date]:
    """Japan's national holidays of one year (substitute holidays and citizens' holidays included)."""
    return frozenset(holidays.Japan(years=year))


def is_national_holiday(day: date) -> bool:
    return day in national_holidays(day.year)


def _annual_covers(closure: AnnualClosure, day: date) -> bool:
    key = f"{day.month:02d}-{day.day:02d}"
    if closure.start <= closure.end:
        return closure.start <= key <= closure.end
    return key >= closure.start or key <= closure.end  # runs past 31 December (12-29 .. 01-03)


class BranchCalendar:
    """The opening days of one branch, with answers cached per day (a plan asks many times)."""

    __slots__ = ("rule", "complete", "_closed_weekdays", "_cache")

    def __init__(self, rule: CalendarRule) -> None:
        self.rule = rule
        # Complete when the weekly closed days and the holiday rule are both published.
        self.complete = rule.weekly_closed is not None and rule.open_on_holidays is not None
        self._closed_weekdays = frozenset(WEEKDAYS.index(d) for d in rule.weekly_closed or ())
        self._cache: dict[date, bool] = {}

    def closure_on(self, day: date) -> Closure | None:
        """The date-range closure (relocation, refit …) covering `day`, if any."""
        return next((c for c in self.rule.closures if c.start <= day <= c.end), None)

    def is_open(self, day: date) -> bool:
        known = self._cache.get(day)
        if known is not None:
            return known
        if len(self._cache) >= _CACHED_DAYS:
            self._cache.clear()
        self._cache[day] = answer = self._is_open(day)
        return answer

    def _is_open(self, day: date) -> bool:
        if self.closure_on(day) is not None:
            return False
        if any(_annual_covers(c, day) for c in self.rule.annual_closures):
            return False
        if self.rule.open_on_holidays is not None and is_national_holiday(day):
            # A holiday opening overrides the weekly closed day (a library open on 祝日 opens on a holiday Monday).
            return self.rule.open_on_holidays
        return day.weekday() not in self._closed_weekdays

    def first_open_on_or_after(self, day: date) -> date:
        for offset in range(_HORIZON_DAYS):
            candidate = day + timedelta(days=offset)
            if self.is_open(candidate):
                return candidate
        raise CalendarError(f"no opening day within {_HORIZON_DAYS} days of {day}")

    def next_open_after(self, day: date) -> date:
        """The first opening day strictly after `day` (a hold is never ready the day it is placed)."""
        return self.first_open_on_or_after(day + timedelta(days=1))

    def last_open_on_or_before(self, day: date, not_before: date) -> date | None:
        """The last opening day in [not_before, day]; None when the branch is closed throughout."""
        candidate = day
        while candidate >= not_before:
            if self.is_open(candidate):
                return candidate
            candidate -= timedelta(days=1)
        return None

    def nth_open_day(self, start: date, n: int) -> date:
        """The n-th opening day counting from `start` (start itself counts when open): 'N days excluding closed days'."""
        seen = 0
        for offset in range(_HORIZON_DAYS):
            candidate = start + timedelta(days=offset)
            if self.is_open(candidate):
                seen += 1
                if seen == n:
                    return candidate
        raise CalendarError(f"fewer than {n} opening days within {_HORIZON_DAYS} days of {start}")
