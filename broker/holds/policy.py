"""Hold rules as data: the schema of the `policy` tables of a consortium file.

Every number and weekday a seed prints lives in a file, none in code (ARCHITECTURE.md). A consortium
gives defaults (`[policy]`), a member overrides them (`[members.policy]`, top-level sections replace
the default's section whole), a branch may carry its own calendar and closures (`[members.branches.calendar]`).

`None` always means "the seed does not say": the planner then neither enforces nor invents the rule
and says in its answer what it assumed. Every model forbids unknown keys, so a misspelt rule in a
hand-edited file fails loading with the file and field path (broker.consortium's loader).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from yokodan import Availability, MaterialType

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


class _Rule(BaseModel):
    # frozen: one consortium object is shared by concurrent plans.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _PolicyProblem(ValueError):
    """A rule that contradicts itself; `field` is the sub-path the loader reports."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _month_day(value: object) -> object:
    # "12-29": a yearly date; validated by building it in a leap year.
    if isinstance(value, str):
        m = re.fullmatch(r"(\d{2})-(\d{2})", value.strip())
        if not m:
            raise ValueError(f"expected a yearly date 'MM-DD', got {value!r}")
        try:
            date(2024, int(m[1]), int(m[2]))
        except ValueError:
            raise ValueError(f"no such day of the year: {value!r}") from None
        return value.strip()
    return value


MonthDay = Annotated[str, BeforeValidator(_month_day)]


# --- who may hold -------------------------------------------------------------------------------


class CardRule(_Rule):
    """Which card lets a patron hold at this member, and who may get one."""

    # "member": a card issued by this member (Okayama mutual use: one card per municipality; a prefectural
    # hub's own card); "consortium": one card is valid at every member.
    scope: Literal["member", "consortium"] = "member"
    # Who may get the card (None: not published). Takarazuka: residents, commuters and students of the
    # city, and residents of the listed neighbours.
    residents_of: list[str] | None = None
    commuters_to: list[str] = Field(default_factory=list)
    students_in: list[str] = Field(default_factory=list)
    anyone: bool = False  # e.g. a prefectural library's card, available to everyone
    how_to_get: str | None = None  # as the seed puts it, quoted in card-gap advice
    # Card validity (None: not published).
    inactive_after_days: int | None = Field(default=None, ge=1)  # Okayama pref: unused 2 years -> no online use
    renew_every_years: int | None = Field(default=None, ge=1)  # Takarazuka: renewal every 3 years


# --- limits ---------------------------------------------------------------------------------------


class ClassLimit(_Rule):
    """A limit on one material class (Okayama pref: books+magazines 10, AV 5, counted apart)."""

    name: str = Field(min_length=1)  # "books_magazines", "av": how pages name the class
    materials: list[MaterialType] = Field(min_length=1)
    max_holds: int | None = Field(default=None, ge=0)
    max_loans: int | None = Field(default=None, ge=0)


class Limits(_Rule):
    max_holds: int | None = Field(default=None, ge=0)  # per card, all material
    max_loans: int | None = Field(default=None, ge=0)  # context: reported, not enforced
    requests_count_as_holds: bool = False  # Takarazuka: 10 holds including purchase/ILL requests
    max_phone_holds: int | None = Field(default=None, ge=0)  # Takarazuka: 2 holds by phone
    by_class: list[ClassLimit] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_classes(self) -> Limits:
        seen: dict[MaterialType, str] = {}
        for i, rule in enumerate(self.by_class):
            for material in rule.materials:
                if material in seen:
                    raise _PolicyProblem(("by_class", i, "materials"), f"{material.value!r} is already in class {seen[material]!r}")
                seen[material] = rule.name
        return self


# --- what cannot be held --------------------------------------------------------------------------


class ItemRules(_Rule):
    """What cannot be held, and the per-patron rules (one hold per title, overdue blocks …)."""

    not_holdable_availability: list[Availability] = Field(
        default_factory=lambda: [Availability.LIBRARY_USE_ONLY, Availability.NOT_FOR_LOAN]
    )
    # The member's own words, matched against the copy's status text (禁帯出, 研究用, 館内のみ …).
    not_holdable_words: list[str] = Field(default_factory=list)
    # Lent in person only, reservable by phone but not online (Kumamoto 来館貸出可).
    not_online_words: list[str] = Field(default_factory=list)
    excluded_materials: list[MaterialType] = Field(default_factory=list)  # Aomori: magazines and AV
    not_online_materials: list[MaterialType] = Field(default_factory=list)  # Kumamoto: AV (来館貸出可)
    one_hold_per_title: bool = True
    no_hold_on_own_loan: bool = True  # on loan to, or secured for, the patron
    overdue_blocks: bool = True


# --- calendars ------------------------------------------------------------------------------------


class Closure(_Rule):
    """A date-range closure of one branch (relocation, refit …), both ends inclusive."""

    start: date
    end: date
    reason: str = Field(min_length=1)
    # Branch ids offered instead while closed (Aomori: choose another cooperating library). Empty:
    # the member's alternative rule (PickupRule.alternative_while_closed) decides.
    alternatives: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Closure:
        if self.end < self.start:
            raise _PolicyProblem(("end",), f"ends ({self.end}) before it starts ({self.start})")
        return self


class AnnualClosure(_Rule):
    """A closure every year (year-end and New Year), 'MM-DD' ends inclusive; may run past 31 December."""

    start: MonthDay
    end: MonthDay
    reason: str = Field(min_length=1)


class CalendarRule(_Rule):
    """When a branch is open. None: not published (the planner says it could not check)."""

    weekly_closed: list[Weekday] | None = None
    open_on_holidays: bool | None = None  # Japanese national holidays (the `holidays` package)
    closures: list[Closure] = Field(default_factory=list)
    annual_closures: list[AnnualClosure] = Field(default_factory=list)
    source: str | None = None  # where the facts come from

    @model_validator(mode="after")
    def _check(self) -> CalendarRule:
        if self.weekly_closed is not None and len(set(self.weekly_closed)) != len(self.weekly_closed):
            raise _PolicyProblem(("weekly_closed",), "weekday listed twice")
        if self.weekly_closed is not None and len(self.weekly_closed) == 7:
            raise _PolicyProblem(("weekly_closed",), "a branch closed every day cannot be a pickup point; use a closure")
        return self


# --- delivery schedules ---------------------------------------------------------------------------


class NextOpenDay(_Rule):
    """The copy is pulled from the shelf on the next opening day (never the day the hold is placed).

    Okayama pref at its own counter: pulled the next opening day, email the day after (notice_delay_days = 1).
    """

    kind: Literal["next_open_day"]
    notice_delay_days: int = Field(default=0, ge=0)


class WeeklyBatch(_Rule):
    """One processing run a week (Okayama pref: pack Sunday, email Thursday, window from Friday;
    Aomori: process Thursday, email Saturday, pickup from Sunday)."""

    kind: Literal["weekly"]
    process_weekday: Weekday
    notice_weekday: Weekday  # the first such weekday on or after processing
    ready_weekday: Weekday  # the first such weekday on or after the notice
    via_central: bool = False  # branch libraries receive via their municipality's central library


class Postal(_Rule):
    """Sent by post (Kumamoto: ゆうメール twice a week, ゆうパック when ready)."""

    kind: Literal["postal"]
    times_per_week: int | None = Field(default=None, ge=1, le=7)
    dispatch_weekdays: list[Weekday] | None = None  # None: not published
    transit_days: int | None = Field(default=None, ge=0)  # None: not published


class Courier(_Rule):
    """An inter-branch van on fixed weekdays."""

    kind: Literal["courier"]
    weekdays: list[Weekday] | None = None  # None: not published
    transit_days: int | None = Field(default=None, ge=0)


class UnknownSchedule(_Rule):
    """The seed does not say how items reach this pickup; the plan says so instead of guessing."""

    kind: Literal["unknown"]
    note: str | None = None


Schedule = Annotated[NextOpenDay | WeeklyBatch | Postal | Courier | UnknownSchedule, Field(discriminator="kind")]


class ShelfRule(_Rule):
    """How long a ready hold is kept for the patron."""

    # open_days: N opening days from the first day it can be collected (prefectural libraries: 7 excl. closed days)
    # calendar_days: N days from the first day it can be collected (Aomori: 8 from Sunday; Okayama window Fri–Thu: 7)
    # from_notice_days: N days from the notice (Takarazuka: 1 week; Kumamoto pref counter: 7 from the email)
    # until_due_date: kept until the loan's due date (Kumamoto municipal pickup: loan_days from dispatch)
    kind: Literal["open_days", "calendar_days", "from_notice_days", "until_due_date", "unknown"]
    days: int | None = Field(default=None, ge=1)
    loan_days: int | None = Field(default=None, ge=1)  # until_due_date: the loan runs from dispatch
    extendable: bool | None = None  # Aomori: no extension

    @model_validator(mode="after")
    def _check(self) -> ShelfRule:
        if self.kind in ("open_days", "calendar_days", "from_notice_days") and self.days is None:
            raise _PolicyProblem(("days",), f"a {self.kind} rule needs days")
        if self.kind == "until_due_date" and self.loan_days is None:
            raise _PolicyProblem(("loan_days",), "an until_due_date rule needs loan_days")
        return self


class Route(_Rule):
    """How a held copy reaches one kind of pickup, and how long it waits there."""

    schedule: Schedule
    shelf: ShelfRule


# --- pickup ---------------------------------------------------------------------------------------


class PickupRule(_Rule):
    """Where this member's items may be collected."""

    # own_branches: the member's branches marked pickup_point (mobile vans never);
    # listed: exactly `branches`; consortium: every pickup_point branch of the consortium file
    # (a prefectural library whose pickup list is 'the municipal libraries').
    at: Literal["own_branches", "listed", "consortium"] = "own_branches"
    branches: list[str] = Field(default_factory=list)
    note: str | None = None  # what the seed says (or does not) about the list
    # Aomori: a patron may pick another pickup library while the usual one is closed.
    alternative_while_closed: bool = False

    @model_validator(mode="after")
    def _check(self) -> PickupRule:
        if self.at == "listed" and not self.branches:
            raise _PolicyProblem(("branches",), "at = 'listed' needs the list of pickup branch ids")
        return self


class LoanRules(_Rule):
    """Loan context the broker reports, not enforces."""

    loan_days: int | None = Field(default=None, ge=1)
    renewals: int | None = Field(default=None, ge=0)
    note: str | None = None


class HoldPolicy(_Rule):
    """One member's hold rules (or the consortium's defaults). Every section is optional."""

    holds_online: bool | None = None  # does the member take holds through its online service at all
    cards: CardRule | None = None
    limits: Limits | None = None
    items: ItemRules | None = None
    pickup: PickupRule | None = None
    calendar: CalendarRule | None = None  # the member's default; a branch's own calendar replaces it
    # How the copy reaches the patron: at_owner when the pickup branch is the branch holding the copy,
    # to_pickup otherwise; per_pickup overrides to_pickup for named pickup branches.
    at_owner: Route | None = None
    to_pickup: Route | None = None
    per_pickup: dict[str, Route] = Field(default_factory=dict)
    loans: LoanRules | None = None
    phone_note: str | None = None  # which number to call for what; every refusal of this member carries it
    source: str | None = None

    def merged_over(self, defaults: HoldPolicy) -> HoldPolicy:
        """This policy with every section it does not set taken from `defaults` (sections replace whole)."""
        # "Not set" is None (or an empty per_pickup), not pydantic's fields_set: a dumped and re-validated
        # consortium (with_base_url) sets every field explicitly.
        values = {name: getattr(defaults, name) for name in type(self).model_fields}
        values.update({name: value for name in type(self).model_fields if (value := getattr(self, name)) not in (None, {})})
        return type(self).model_validate(values)


# The defaults when neither the consortium nor the member says anything.
EMPTY_POLICY = HoldPolicy()
DEFAULT_ITEMS = ItemRules()
DEFAULT_CARDS = CardRule()
DEFAULT_LIMITS = Limits()
DEFAULT_PICKUP = PickupRule()
DEFAULT_CALENDAR = CalendarRule()
DEFAULT_ROUTE = Route(schedule=UnknownSchedule(kind="unknown"), shelf=ShelfRule(kind="unknown"))


def unknown_branch_references(policy: HoldPolicy, branch_ids: set[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Branch ids a policy names that the consortium does not have, as (field path, message)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if policy.pickup is not None:
        for i, branch in enumerate(policy.pickup.branches):
            if branch not in branch_ids:
                problems.append((("pickup", "branches", i), f"no branch {branch!r} in this consortium"))
    for branch in policy.per_pickup:
        if branch not in branch_ids:
            problems.append((("per_pickup", branch), f"no branch {branch!r} in this consortium"))
    if policy.calendar is not None:
        problems.extend((("calendar", *loc), msg) for loc, msg in calendar_references(policy.calendar, branch_ids))
    return problems


def calendar_references(calendar: CalendarRule, branch_ids: set[str]) -> list[tuple[tuple[str | int, ...], str]]:
    return [
        (("closures", i, "alternatives", j), f"no branch {alt!r} in this consortium")
        for i, closure in enumerate(calendar.closures)
        for j, alt in enumerate(closure.alternatives)
        if alt not in branch_ids
    ]
