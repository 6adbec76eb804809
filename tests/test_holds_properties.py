"""Property tests (hypothesis) over random consortia, patrons, holdings and member views of the patron.

Whatever the rules, the planner never proposes an owner the patron cannot borrow from, a pickup branch
outside the rules, a ready day on which the pickup branch is closed, or a deadline before the ready
date; and no alternative it lists beats its choice on ready date. The allowed-owner and allowed-pickup
checks below are written from the rules' definitions, not by calling the planner's helpers.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.consortium import Consortium
from broker.holds.calendar import BranchCalendar
from broker.holds.patron import Card, Patron
from broker.holds.planner import MemberUnreachable, plan_hold
from broker.holds.policy import CalendarRule
from yokodan import Availability, Holding, PatronStatus, Record

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
START = date(2026, 1, 1)

weekday = st.sampled_from(WEEKDAYS)
day = st.integers(min_value=0, max_value=700).map(lambda n: START + timedelta(days=n))


@st.composite
def calendars(draw) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    closures = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(day)
        closures.append({"start": start, "end": start + timedelta(days=draw(st.integers(0, 60))), "reason": "休館"})
    return {
        "weekly_closed": draw(st.none() | st.lists(weekday, max_size=3, unique=True)),
        "open_on_holidays": draw(st.none() | st.booleans()),
        "closures": closures,
        "annual_closures": draw(st.sampled_from([[], [{"start": "12-29", "end": "01-03", "reason": "年末年始"}]])),
    }


@st.composite
def routes(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["next_open_day", "weekly", "postal", "courier", "unknown"]))
    if kind == "next_open_day":
        schedule: dict[str, Any] = {"kind": kind, "notice_delay_days": draw(st.integers(0, 2))}
    elif kind == "weekly":
        schedule = {"kind": kind, "process_weekday": draw(weekday), "notice_weekday": draw(weekday), "ready_weekday": draw(weekday)}
    elif kind == "postal":
        schedule = {"kind": kind, "dispatch_weekdays": draw(st.none() | st.lists(weekday, min_size=1, max_size=3, unique=True)),
                    "transit_days": draw(st.none() | st.integers(0, 4))}
    elif kind == "courier":
        schedule = {"kind": kind, "weekdays": draw(st.lists(weekday, min_size=1, max_size=3, unique=True)), "transit_days": draw(st.integers(0, 3))}
    else:
        schedule = {"kind": kind}
    shelf_kind = draw(st.sampled_from(["open_days", "calendar_days", "from_notice_days", "until_due_date", "unknown"]))
    shelf: dict[str, Any] = {"kind": shelf_kind}
    if shelf_kind in ("open_days", "calendar_days", "from_notice_days"):
        shelf["days"] = draw(st.integers(1, 10))
    if shelf_kind == "until_due_date":
        shelf["loan_days"] = draw(st.integers(7, 21))
    return {"schedule": schedule, "shelf": shelf}


@st.composite
def consortia(draw) -> Consortium:
    members = []
    for m in range(draw(st.integers(1, 4))):
        branches = []
        for b in range(draw(st.integers(1, 4))):
            branches.append({
                "id": f"m{m}/b{b}", "name": f"図書館{m}-{b}", "municipality": f"市{m}",
                "coordinates_note": "test", "pickup_point": draw(st.booleans()) or b == 0, "accepts_returns": True,
                "mobile": b > 0 and draw(st.booleans()), "calendar": draw(calendars()),
            })
        members.append({
            "id": f"m{m}", "name": f"市立図書館{m}", "municipality": f"市{m}",
            "connector": {"kind": "sru", "endpoint": f"/m{m}/sru"}, "branches": branches,
            "policy": {
                "cards": {"scope": draw(st.sampled_from(["member", "consortium"])), "inactive_after_days": draw(st.none() | st.just(730))},
                "limits": {"max_holds": draw(st.none() | st.integers(0, 5))},
                "pickup": {"at": draw(st.sampled_from(["own_branches", "consortium"]))},
                "calendar": draw(calendars()),
                "at_owner": draw(routes()),
                "to_pickup": draw(st.none() | routes()),
            },
        })
    return Consortium.model_validate({"id": "rand", "name": "Random", "kind": "mutual_use", "base_url": "http://127.0.0.1:1", "members": members})


@st.composite
def scenarios(draw):
    consortium = draw(consortia())
    member_ids = [m.id for m in consortium.members]
    card_members = draw(st.lists(st.sampled_from(member_ids), unique=True, max_size=len(member_ids)))
    branch_ids = [b.id for b in consortium.branches()]
    patron = Patron(
        cards=[Card(member=m, card_number="1") for m in card_members],
        preferred_pickups=draw(st.lists(st.sampled_from(branch_ids), unique=True, max_size=3)),
        location=draw(st.none() | st.just((34.6, 133.9))),
    )
    records = []
    for i in range(draw(st.integers(1, 6))):
        member = consortium.member(draw(st.sampled_from(member_ids)))
        holdings = [
            Holding(
                member=member.id, branch_id=draw(st.sampled_from([b.id for b in member.branches])), item_id=f"i{i}-{j}",
                availability=draw(st.sampled_from(list(Availability))), due_date=draw(st.none() | day),
                queue_length=draw(st.none() | st.integers(0, 3)),
            )
            for j in range(draw(st.integers(0, 3)))
        ]
        records.append(Record(member=member.id, local_id=f"r{i}", title="t", holdings=holdings))
    statuses: dict[str, PatronStatus | MemberUnreachable] = {}
    for m in card_members:
        if draw(st.integers(0, 5)) == 0:
            statuses[m] = MemberUnreachable("timeout")
        else:
            statuses[m] = PatronStatus(
                member=m, holds_count=draw(st.integers(0, 6)), overdue_count=draw(st.sampled_from([0, 0, 0, 1])),
                last_used=draw(st.none() | day), hold_record_ids=draw(st.lists(st.sampled_from([f"r{i}" for i in range(6)]), max_size=2)),
            )
    return consortium, patron, records, statuses, draw(day), draw(st.booleans())


def _may_borrow_from(consortium: Consortium, patron: Patron, statuses, member_id: str, today: date) -> bool:
    policy = consortium.policy_for(member_id)
    if policy.cards.scope == "member":
        card_member = member_id if any(c.member == member_id for c in patron.cards) else None
    else:
        # Any card will do: the first one whose member answered.
        answered = [c.member for c in patron.cards if isinstance(statuses.get(c.member), PatronStatus)]
        card_member = answered[0] if answered else None
    status = statuses.get(card_member) if card_member else None
    if not isinstance(status, PatronStatus) or status.overdue_count:
        return False
    if policy.limits.max_holds is not None and status.holds_count >= policy.limits.max_holds:
        return False
    inactive = policy.cards.inactive_after_days
    return not (inactive and status.last_used and status.last_used + timedelta(days=inactive) < today)


def _pickups_allowed(consortium: Consortium, member_id: str) -> set[str]:
    at = consortium.policy_for(member_id).pickup.at
    branches = consortium.member(member_id).branches if at == "own_branches" else consortium.branches()
    return {b.id for b in branches if b.pickup_point and not b.mobile}


def _calendar(consortium: Consortium, branch_id: str) -> BranchCalendar:
    member = next(m for m in consortium.members if any(b.id == branch_id for b in m.branches))
    rule = consortium.branch(branch_id).calendar or consortium.policy_for(member.id).calendar or CalendarRule()
    return BranchCalendar(rule)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_planner_invariants(scenario) -> None:
    consortium, patron, records, statuses, today, pickup_only = scenario
    plan = plan_hold(consortium, patron, records, statuses, today, pickup_only=pickup_only)
    offered = ([plan.choice] if plan.choice else []) + [a.option for a in plan.alternatives]
    for option in offered:
        assert _may_borrow_from(consortium, patron, statuses, option.member, today), option
        assert option.pickup_branch in _pickups_allowed(consortium, option.member), option
        if pickup_only and patron.preferred_pickups:
            assert option.pickup_branch in patron.preferred_pickups
        if option.ready is not None:
            assert option.ready > today  # never ready the day the hold is placed
            assert _calendar(consortium, option.pickup_branch).is_open(option.ready), option
            deadline = option.estimate.deadline
            assert deadline is None or deadline >= option.ready, option
            if deadline is not None:
                assert _calendar(consortium, option.pickup_branch).is_open(deadline)
    if plan.choice is not None:
        assert plan.choice.ready is not None
        assert all(a.option.ready is None or a.option.ready >= plan.choice.ready for a in plan.alternatives)
        assert all(a.lost_because != "later_ready" or a.days_later > 0 for a in plan.alternatives)
    else:
        assert all(o.ready is None for o in offered)
    for advice in plan.advice:
        assert advice.member not in {c.member for c in patron.cards} or consortium.policy_for(advice.member).cards.scope != "member"
        if plan.choice is not None:
            assert advice.ready < plan.choice.ready and advice.gain_days == (plan.choice.ready - advice.ready).days
