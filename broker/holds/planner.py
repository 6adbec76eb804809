"""The hold planner: which copy, at which owning library, for which pickup branch, ready when, and why.

A pure, synchronous core (`plan_hold`): given the consortium, the patron, the work's records with
their live holdings, each member's live view of the patron (`PatronStatus`, or a failure) and today,
it enumerates copies × owning members the patron may borrow from × allowed pickup branches, estimates
each option's ready date and pickup deadline (broker.holds.schedule), and chooses the earliest ready
date, then the patron's preference, then the distance from home. It returns the choice, every
alternative with the reason it lost, every refusal with a `yokodan.RefusalReason` and the parameters a
page needs, and card-gap advice. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from broker.consortium import Branch, Consortium, Member
from broker.holds.calendar import BranchCalendar
from broker.holds.patron import Card, Patron
from broker.holds.policy import (
    DEFAULT_CALENDAR,
    DEFAULT_CARDS,
    DEFAULT_ITEMS,
    DEFAULT_LIMITS,
    DEFAULT_PICKUP,
    DEFAULT_ROUTE,
    CalendarRule,
    CardRule,
    Closure,
    HoldPolicy,
    ItemRules,
    Limits,
    LoanRules,
    Route,
)
from broker.holds.schedule import Estimate, estimate
from yokodan import Availability, Holding, MaterialType, PatronStatus, Record, RefusalReason

__all__ = [
    "Alternative",
    "CardAdvice",
    "MemberUnreachable",
    "Option",
    "Plan",
    "Refusal",
    "RuleBook",
    "plan_hold",
]


@dataclass(frozen=True, slots=True)
class MemberUnreachable:
    """A member whose live view of the patron could not be read (timeout, error, maintenance)."""

    reason: str  # timeout, error, maintenance, not_supported, authentication_failed …
    message: str = ""


@dataclass(frozen=True, slots=True)
class Option:
    """One way to get the work: this copy, held at this member, collected at this branch."""

    member: str
    member_name: str
    record_id: str
    item_id: str | None
    copy_branch: str | None
    pickup_branch: str
    pickup_name: str
    availability: Availability
    route: str  # at_owner (collected where the copy is) or to_pickup
    estimate: Estimate
    preference_rank: int | None  # index in the patron's preferred pickups
    distance_km: float | None
    queue_ahead: int = 0

    @property
    def ready(self) -> date | None:
        return self.estimate.ready

    def sort_key(self) -> tuple[Any, ...]:
        ready = self.estimate.ready
        return (
            ready is None,
            ready or date.max,
            self.preference_rank if self.preference_rank is not None else math.inf,
            self.distance_km if self.distance_km is not None else math.inf,
            self.member,
            self.pickup_branch,
            self.item_id or "",
        )


@dataclass(frozen=True, slots=True)
class Alternative:
    option: Option
    lost_because: str  # later_ready, ready_unknown, less_preferred, farther, tie
    days_later: int | None = None
    km_farther: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: RefusalReason
    member: str
    member_name: str
    phone: str | None
    branch: str | None = None
    branch_name: str | None = None
    record_id: str | None = None
    item_ids: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CardAdvice:
    """「津山市立図書館の利用カードがあれば、6日早く受け取れます（0868-24-2919）」"""

    member: str
    member_name: str
    phone: str | None
    gain_days: int | None  # None: nothing else can be collected at all
    ready: date
    pickup_branch: str
    pickup_name: str
    eligibility: str  # eligible / unknown (the seed does not say who may get the card)
    how_to_get: str | None
    assumptions: tuple[str, ...] = ()  # e.g. the faster library's calendar is not published


@dataclass(frozen=True, slots=True)
class Plan:
    today: date
    choice: Option | None
    alternatives: list[Alternative]
    refusals: list[Refusal]
    advice: list[CardAdvice]
    assumptions: list[str]  # what the choice's estimate had to assume (calendars not published …)
    loans: LoanRules | None = None  # the owner's loan period and renewals: context for the page, not enforced


# --- the compiled rules of one consortium ---------------------------------------------------------


@dataclass(slots=True)
class _MemberRules:
    member: Member
    policy: HoldPolicy
    cards: CardRule
    limits: Limits
    items: ItemRules
    pickups: list[Branch]
    default_calendar: BranchCalendar
    phone: str | None
    not_holdable: frozenset[Availability]
    class_of: dict[MaterialType, tuple[str, int | None, tuple[MaterialType, ...]]]


class RuleBook:
    """A consortium's hold rules compiled once: merged policies, calendars, allowed pickups."""

    _cache: dict[int, tuple[Consortium, RuleBook]] = {}

    def __init__(self, consortium: Consortium) -> None:
        self.consortium = consortium
        self._calendars: dict[int, BranchCalendar] = {}
        self._distances: dict[tuple[float, float], dict[str, float]] = {}
        self.branches: dict[str, Branch] = {b.id: b for b in consortium.branches()}
        self.branch_member: dict[str, str] = {b.id: m.id for m in consortium.members for b in m.branches}
        pickup_everywhere = [b for b in consortium.branches() if b.pickup_point and not b.mobile]
        self.members: dict[str, _MemberRules] = {}
        for member in consortium.members:
            policy = consortium.policy_for(member.id)
            pickup = policy.pickup or DEFAULT_PICKUP
            if pickup.at == "own_branches":
                pickups = [b for b in member.branches if b.pickup_point and not b.mobile]
            elif pickup.at == "listed":
                pickups = [self.branches[b] for b in pickup.branches if not self.branches[b].mobile]
            else:
                pickups = pickup_everywhere
            items = policy.items or DEFAULT_ITEMS
            limits = policy.limits or DEFAULT_LIMITS
            self.members[member.id] = _MemberRules(
                member=member,
                policy=policy,
                cards=policy.cards or DEFAULT_CARDS,
                limits=limits,
                items=items,
                pickups=pickups,
                default_calendar=self._calendar(policy.calendar or DEFAULT_CALENDAR),
                phone=member.phone or next((b.phone for b in member.branches if b.phone), None),
                not_holdable=frozenset(items.not_holdable_availability),
                class_of={
                    m: (rule.name, rule.max_holds, tuple(rule.materials)) for rule in limits.by_class for m in rule.materials
                },
            )
        self.branch_calendars: dict[str, BranchCalendar] = {}
        for member in consortium.members:
            default = self.members[member.id].default_calendar
            for branch in member.branches:
                self.branch_calendars[branch.id] = self._calendar(branch.calendar) if branch.calendar else default

    def _calendar(self, rule: CalendarRule) -> BranchCalendar:
        # One BranchCalendar per rule object, so branches sharing a rule share its day cache.
        found = self._calendars.get(id(rule))
        if found is None:
            found = self._calendars[id(rule)] = BranchCalendar(rule)
        return found

    @classmethod
    def of(cls, consortium: Consortium) -> RuleBook:
        """The compiled rules, built once per consortium object (consortium models are frozen)."""
        cached = cls._cache.get(id(consortium))
        if cached is not None and cached[0] is consortium:
            return cached[1]
        book = cls(consortium)
        if len(cls._cache) > 16:
            cls._cache.clear()
        cls._cache[id(consortium)] = (consortium, book)
        return book

    def route(self, member: str, copy_branch: str | None, pickup: str) -> tuple[str, Route]:
        policy = self.members[member].policy
        if copy_branch == pickup:
            return "at_owner", policy.at_owner or DEFAULT_ROUTE
        return "to_pickup", policy.per_pickup.get(pickup) or policy.to_pickup or DEFAULT_ROUTE

    def distances(self, location: tuple[float, float] | None) -> dict[str, float]:
        """Branch id -> km from `location`, for branches with coordinates (cached for the last few homes)."""
        if location is None:
            return {}
        found = self._distances.get(location)
        if found is None:
            if len(self._distances) > 256:
                self._distances.clear()
            found = self._distances[location] = {
                b.id: d for b in self.branches.values() if (d := _distance_km(location, b)) is not None
            }
        return found

    def calendar(self, member: str, branch_id: str | None) -> BranchCalendar:
        if branch_id is not None and branch_id in self.branch_calendars:
            return self.branch_calendars[branch_id]
        return self.members[member].default_calendar


# --- the planner ----------------------------------------------------------------------------------


def _distance_km(a: tuple[float, float] | None, branch: Branch) -> float | None:
    if a is None or branch.lat is None or branch.lon is None:
        return None
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], branch.lat, branch.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return round(6371.0 * 2 * math.asin(math.sqrt(h)), 2)


def card_eligibility(rule: CardRule, patron: Patron) -> str | None:
    """'eligible', 'unknown' (the seed does not say who may get the card) or None (not eligible)."""
    if rule.anyone:
        return "eligible"
    places = {patron.home_municipality} if patron.home_municipality else set()
    if rule.residents_of is None and not rule.commuters_to and not rule.students_in:
        return "unknown"
    if places & set(rule.residents_of or ()):
        return "eligible"
    if set(patron.works_in) & set(rule.commuters_to) or set(patron.studies_in) & set(rule.students_in):
        return "eligible"
    if patron.home_municipality is None and not patron.works_in and not patron.studies_in:
        return "unknown"
    return None


_CARD_VERDICTS = frozenset({RefusalReason.AUTHENTICATION_FAILED.value, RefusalReason.PATRON_NOT_FOUND.value})


class _Refusals:
    """Refusals grouped so a page lists one line per member and reason, not one per copy."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[Any, ...], Refusal] = {}

    def add(self, refusal: Refusal) -> None:
        key = (refusal.reason, refusal.member, refusal.branch, refusal.record_id)
        existing = self._by_key.get(key)
        if existing is None:
            self._by_key[key] = refusal
        elif refusal.item_ids:
            self._by_key[key] = Refusal(
                existing.reason, existing.member, existing.member_name, existing.phone, existing.branch,
                existing.branch_name, existing.record_id, existing.item_ids + refusal.item_ids, existing.params,
            )

    def all(self, book: RuleBook) -> list[Refusal]:
        """The refusals, each with its member's phone note (which number to call for what) when it has one."""
        out = []
        for r in self._by_key.values():
            note = book.members[r.member].policy.phone_note if r.member in book.members else None
            if note:
                r = Refusal(r.reason, r.member, r.member_name, r.phone, r.branch, r.branch_name, r.record_id,
                            r.item_ids, {**r.params, "phone_note": note})
            out.append(r)
        return out


def _patron_refusal(rules: _MemberRules, status: PatronStatus, today: date) -> Refusal | None:
    """Blocks on the card itself: expiry, inactivity, overdue items, other blocks the member names."""
    member, phone = rules.member, rules.phone
    reasons = set(status.block_reasons)
    if "card_expired" in reasons or (status.card_expires is not None and status.card_expires < today):
        return Refusal(RefusalReason.CARD_EXPIRED, member.id, member.name, phone,
                       params={"expired_on": status.card_expires, "renew_every_years": rules.cards.renew_every_years,
                               "how_to_renew": rules.cards.how_to_get})
    inactive_after = rules.cards.inactive_after_days
    if "inactive" in reasons or (
        inactive_after is not None and status.last_used is not None and status.last_used + timedelta(days=inactive_after) < today
    ):
        return Refusal(RefusalReason.CARD_INACTIVE, member.id, member.name, phone,
                       params={"last_used": status.last_used, "inactive_after_days": inactive_after,
                               "how_to_renew": rules.cards.how_to_get})
    if rules.items.overdue_blocks and (status.overdue_count > 0 or "overdue" in reasons):
        return Refusal(RefusalReason.OVERDUE_BLOCK, member.id, member.name, phone,
                       params={"overdue_count": status.overdue_count})
    if status.blocked or reasons:
        return Refusal(RefusalReason.PATRON_BLOCKED, member.id, member.name, phone,
                       params={"block_reasons": sorted(reasons)})
    return None


def _limit_refusal(rules: _MemberRules, status: PatronStatus, material: MaterialType) -> Refusal | None:
    limits, member = rules.limits, rules.member
    counted = status.holds_count + (status.requests_count if limits.requests_count_as_holds else 0)
    if limits.max_holds is not None and counted >= limits.max_holds:
        return Refusal(RefusalReason.LIMIT_REACHED, member.id, member.name, rules.phone,
                       params={"limit": limits.max_holds, "count": counted, "material_class": None,
                               "requests_counted": limits.requests_count_as_holds})
    found = rules.class_of.get(material)
    if found is not None:
        name, limit, materials = found
        in_class = sum(status.holds_by_material.get(m.value, 0) for m in materials)
        if limit is not None and in_class >= limit:
            return Refusal(RefusalReason.LIMIT_REACHED, member.id, member.name, rules.phone,
                           params={"limit": limit, "count": in_class, "material_class": name, "requests_counted": False})
    return None


def _record_refusal(rules: _MemberRules, status: PatronStatus, record: Record) -> Refusal | None:
    member = rules.member
    if rules.items.one_hold_per_title and record.local_id in status.hold_record_ids:
        return Refusal(RefusalReason.DUPLICATE, member.id, member.name, rules.phone, record_id=record.local_id)
    if rules.items.no_hold_on_own_loan and (
        record.local_id in status.loan_record_ids or record.local_id in status.secured_record_ids
    ):
        return Refusal(RefusalReason.ALREADY_ON_LOAN, member.id, member.name, rules.phone, record_id=record.local_id)
    return None


def _copy_refusal(rules: _MemberRules, record: Record, holding: Holding, book: RuleBook) -> Refusal | None:
    items, member = rules.items, rules.member
    branch = book.branches.get(holding.branch_id or "")
    where = {"branch": holding.branch_id, "branch_name": branch.name if branch else holding.location,
             "record_id": record.local_id, "item_ids": (holding.item_id,) if holding.item_id else ()}
    word = holding.status_text
    if (
        holding.availability in rules.not_holdable
        or record.material_type in items.excluded_materials
        or any(w in word for w in items.not_holdable_words)
    ):
        return Refusal(RefusalReason.NOT_HOLDABLE, member.id, member.name, rules.phone,
                       params={"status_text": word, "material": record.material_type.value}, **where)
    if record.material_type in items.not_online_materials or any(w in word for w in items.not_online_words):
        return Refusal(RefusalReason.NOT_RESERVABLE_ONLINE, member.id, member.name, rules.phone,
                       params={"status_text": word, "material": record.material_type.value, "by_phone": True}, **where)
    return None


def _with_phone_holds(rules: _MemberRules, status: PatronStatus, refusal: Refusal) -> Refusal:
    """A phone-only item: say how many phone holds the card has left (Takarazuka: 2 by phone)."""
    cap = rules.limits.max_phone_holds
    left = None if cap is None else max(0, cap - status.phone_holds_count)
    params = {**refusal.params, "max_phone_holds": cap, "phone_holds_left": left, "by_phone": left != 0}
    return Refusal(refusal.reason, refusal.member, refusal.member_name, refusal.phone, refusal.branch,
                   refusal.branch_name, refusal.record_id, refusal.item_ids, params)


def _available_from(holding: Holding, today: date, loan_days: int | None) -> tuple[date | None, str | None]:
    """The day this copy is free for the patron's hold, or None with the reason it cannot be said."""
    availability = holding.availability
    if availability is Availability.AVAILABLE:
        return today, None
    if availability is Availability.ON_LOAN:
        if holding.due_date is None:
            return None, "due_date_unknown"
        queue = holding.queue_length or 0
        if queue and loan_days is None:
            return None, "queue_loan_period_not_published"
        # Each patron ahead keeps the copy for one loan period (an upper-bound estimate).
        return max(holding.due_date, today) + timedelta(days=queue * (loan_days or 0)), None
    if availability is Availability.ON_ORDER:
        return None, "on_order"
    if availability in (Availability.RESERVED, Availability.IN_TRANSIT):
        return None, "held_for_another_patron"
    return None, f"availability_{availability.value}"


def _options_for(
    book: RuleBook,
    rules: _MemberRules,
    records: Sequence[Record],
    patron: Patron,
    today: date,
    refusals: _Refusals,
    status: PatronStatus | None,
    pickup_only: bool,
) -> list[Option]:
    """Every (copy, pickup) option at one member; `status` None when planning for a card the patron lacks."""
    member = rules.member
    preferred = {b: i for i, b in enumerate(patron.preferred_pickups)}
    pickups = rules.pickups
    if pickup_only and patron.preferred_pickups:
        allowed = {b.id for b in pickups}
        for branch_id in patron.preferred_pickups:
            if branch_id not in allowed and status is not None:
                branch = book.branches.get(branch_id)
                refusals.add(Refusal(RefusalReason.PICKUP_NOT_ALLOWED, member.id, member.name, rules.phone,
                                     branch=branch_id, branch_name=branch.name if branch else None,
                                     params={"allowed": [b.id for b in pickups]}))
        pickups = [b for b in pickups if b.id in preferred]
    loan_days = rules.policy.loans.loan_days if rules.policy.loans else None
    # Only the best copy per pickup branch becomes an Option (the others lose to it on the copy alone);
    # a plan over 40 copies × 40 pickups stays within its CPU budget that way.
    best: dict[str, tuple[tuple[Any, ...], Record, Holding, str, Estimate]] = {}
    estimates: dict[tuple[Any, ...], Estimate] = {}
    for record in records:
        if status is not None:
            refusal = _record_refusal(rules, status, record) or _limit_refusal(rules, status, record.material_type)
            if refusal is not None:
                refusals.add(refusal)
                continue
        for holding in record.holdings:
            refusal = _copy_refusal(rules, record, holding, book)
            if refusal is not None and refusal.reason is RefusalReason.NOT_RESERVABLE_ONLINE and status is not None:
                refusal = _with_phone_holds(rules, status, refusal)
            if refusal is not None:
                if status is not None:
                    refusals.add(refusal)
                continue
            available, why_unknown = _available_from(holding, today, loan_days)
            owner_calendar = book.calendar(member.id, holding.branch_id)
            for pickup in pickups:
                route_name, route = book.route(member.id, holding.branch_id, pickup.id)
                pickup_calendar = book.branch_calendars[pickup.id]
                if available is None:
                    est = Estimate(None, None, None, None, route.schedule.kind, assumptions=(why_unknown or "unknown",))
                else:
                    key = (id(route), available, id(owner_calendar), id(pickup_calendar))
                    est = estimates.get(key)
                    if est is None:
                        est = estimates[key] = estimate(route, available, owner_calendar, pickup_calendar)
                # A date-range closure (relocation, refit) on the day the copy would arrive refuses this pickup
                # instead of silently pushing the hold months out; so does a window with no opening day.
                closure = pickup_calendar.closure_on(est.ready_from or today) if pickup_calendar.rule.closures else None
                if closure is not None or "window_closed" in est.assumptions:
                    if status is not None:
                        refusals.add(_closed_refusal(book, rules, pickup, closure, today))
                    continue
                rank = (est.ready is None, est.ready or date.max, holding.item_id or "")
                current = best.get(pickup.id)
                if current is None or rank < current[0]:
                    best[pickup.id] = (rank, record, holding, route_name, est)
    distance = book.distances(patron.location)
    return [
        Option(
            member=member.id, member_name=member.name, record_id=record.local_id, item_id=holding.item_id,
            copy_branch=holding.branch_id, pickup_branch=pickup_id, pickup_name=book.branches[pickup_id].name,
            availability=holding.availability, route=route_name, estimate=est,
            preference_rank=preferred.get(pickup_id), distance_km=distance.get(pickup_id),
            queue_ahead=holding.queue_length or 0,
        )
        for pickup_id, (_, record, holding, route_name, est) in best.items()
    ]


def _closed_refusal(book: RuleBook, rules: _MemberRules, pickup: Branch, closure: Closure | None, today: date) -> Refusal:
    alternatives = list(closure.alternatives) if closure else []
    if not alternatives and rules.policy.pickup is not None and rules.policy.pickup.alternative_while_closed:
        # Aomori: while the usual pickup is closed the patron may choose another one.
        alternatives = [b.id for b in rules.pickups if b.id != pickup.id and book.branch_calendars[b.id].closure_on(today) is None]
    return Refusal(
        RefusalReason.BRANCH_CLOSED, rules.member.id, rules.member.name, pickup.phone or rules.phone,
        branch=pickup.id, branch_name=pickup.name,
        params={
            "reason": closure.reason if closure else "closed_throughout_window",
            "closed_from": closure.start if closure else None,
            "closed_until": closure.end if closure else None,
            "alternatives": alternatives,
        },
    )


def _best_per_pickup(options: list[Option]) -> list[Option]:
    """The best copy for each (member, pickup branch): other copies of the same pair lose to it trivially."""
    best: dict[tuple[str, str], Option] = {}
    for option in options:
        key = (option.member, option.pickup_branch)
        current = best.get(key)
        if current is None or option.sort_key() < current.sort_key():
            best[key] = option
    return sorted(best.values(), key=Option.sort_key)


def _why_lost(option: Option, choice: Option) -> Alternative:
    if option.ready is None:
        return Alternative(option, "ready_unknown")
    assert choice.ready is not None
    if option.ready > choice.ready:
        return Alternative(option, "later_ready", days_later=(option.ready - choice.ready).days)
    rank_o = option.preference_rank if option.preference_rank is not None else math.inf
    rank_c = choice.preference_rank if choice.preference_rank is not None else math.inf
    if rank_o > rank_c:
        return Alternative(option, "less_preferred")
    if option.distance_km is not None and choice.distance_km is not None and option.distance_km > choice.distance_km:
        return Alternative(option, "farther", km_farther=round(option.distance_km - choice.distance_km, 2))
    return Alternative(option, "tie")


def plan_hold(
    consortium: Consortium,
    patron: Patron,
    records: Sequence[Record],
    statuses: Mapping[str, PatronStatus | MemberUnreachable],
    today: date,
    *,
    pickup_only: bool = False,
) -> Plan:
    """Plan one hold on one work (`records`: the members' records of it, with live holdings).

    `statuses` has one entry per member the patron has a card for (their live view of the patron,
    or why it could not be read). `pickup_only`: only the patron's preferred pickups count.
    """
    book = RuleBook.of(consortium)
    refusals = _Refusals()
    by_member: dict[str, list[Record]] = {}
    for record in records:
        if record.member in book.members:
            by_member.setdefault(record.member, []).append(record)
    options: list[Option] = []
    no_card: list[str] = []
    for member_id, member_records in by_member.items():
        rules = book.members[member_id]
        member = rules.member
        if rules.policy.holds_online is False:
            refusals.add(Refusal(RefusalReason.NOT_RESERVABLE_ONLINE, member.id, member.name, rules.phone,
                                 params={"by_phone": True}))
            continue
        card = patron.card_for(member_id) if rules.cards.scope == "member" else _any_card(patron, statuses, book)
        if card is None:
            no_card.append(member_id)
            refusals.add(Refusal(RefusalReason.NO_CARD, member.id, member.name, rules.phone,
                                 params={"how_to_get": rules.cards.how_to_get,
                                         "eligibility": card_eligibility(rules.cards, patron)}))
            continue
        status = statuses.get(card.member)
        if status is None or isinstance(status, MemberUnreachable):
            # The member's own verdict on the card (wrong PIN, unknown card) is passed on as such.
            reason = status.reason if status else "not_asked"
            code = RefusalReason(reason) if reason in _CARD_VERDICTS else RefusalReason.MEMBER_UNREACHABLE
            refusals.add(Refusal(code, member.id, member.name, rules.phone, params={"reason": reason}))
            continue
        blocked = _patron_refusal(rules, status, today)
        if blocked is not None:
            refusals.add(blocked)
            continue
        options.extend(_options_for(book, rules, member_records, patron, today, refusals, status, pickup_only))
    ranked = _best_per_pickup(options)
    choice = ranked[0] if ranked and ranked[0].ready is not None else None
    alternatives = [_why_lost(o, choice) for o in ranked[1:]] if choice else [Alternative(o, "ready_unknown") for o in ranked]
    advice = _card_gap_advice(book, patron, by_member, no_card, today, choice, pickup_only)
    assumptions = set(choice.estimate.assumptions) if choice else set()
    if choice is not None and choice.availability is Availability.AVAILABLE:
        # Seeds 001/003: a walk-in borrower who takes the copy first wins; the hold then waits for a return.
        assumptions.add("walk_in_borrower_may_take_the_copy_first")
    loans = book.members[choice.member].policy.loans if choice else None
    return Plan(today, choice, alternatives, refusals.all(book), advice, sorted(assumptions), loans)


def _any_card(patron: Patron, statuses: Mapping[str, PatronStatus | MemberUnreachable], book: RuleBook) -> Card | None:
    """For a consortium-wide card: the first of the patron's cards whose member answered, else the first card."""
    cards = [c for c in patron.cards if c.member in book.members]
    return next((c for c in cards if isinstance(statuses.get(c.member), PatronStatus)), cards[0] if cards else None)


def _card_gap_advice(
    book: RuleBook,
    patron: Patron,
    by_member: Mapping[str, list[Record]],
    no_card: list[str],
    today: date,
    choice: Option | None,
    pickup_only: bool,
) -> list[CardAdvice]:
    """Owners the patron has no card for that would be faster, with the gain in days and how to get the card."""
    advice: list[CardAdvice] = []
    for member_id in no_card:
        rules = book.members[member_id]
        eligibility = card_eligibility(rules.cards, patron)
        if eligibility is None:
            continue
        options = _options_for(book, rules, by_member[member_id], patron, today, _Refusals(), None, pickup_only)
        known = [o for o in options if o.ready is not None]
        if not known:
            continue
        best = min(known, key=Option.sort_key)
        assert best.ready is not None
        if choice is not None and choice.ready is not None and best.ready >= choice.ready:
            continue
        gain = (choice.ready - best.ready).days if choice is not None and choice.ready is not None else None
        advice.append(CardAdvice(
            member=member_id, member_name=rules.member.name, phone=rules.phone, gain_days=gain, ready=best.ready,
            pickup_branch=best.pickup_branch, pickup_name=best.pickup_name, eligibility=eligibility,
            how_to_get=rules.cards.how_to_get, assumptions=best.estimate.assumptions,
        ))
    advice.sort(key=lambda a: (-(a.gain_days or 10**6), a.member))
    return advice
