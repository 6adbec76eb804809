"""Sequenced volumes: an order and placement dates so that 上/中/下 or 1..n arrive in order.

The seeds ask patrons to space such holds by hand (seed 001: 「ご希望の順に期間を開けてご予約ください」)
because each volume's queue differs. The plan orders the volumes by their designation and, where a
later volume would be ready before the one before it, proposes to place its hold later: the first day
on which placing it gives a ready date no earlier than the previous volume's. Where the previous
volume's ready date cannot be estimated, the step waits for that volume to be collected instead.
The ledger executes the steps; this module only decides them (pure, `today` is a parameter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from broker.consortium import Consortium
from broker.holds.patron import Patron
from broker.holds.planner import MemberUnreachable, Plan, plan_hold
from index.volume import Volume, parse_volume
from yokodan import PatronStatus, Record

__all__ = ["SeriesPlan", "VolumeStep", "order_volumes", "plan_series"]

# Beyond this a proposed delay is not a plan but a guess: the step then waits for the previous volume.
MAX_DELAY_DAYS = 60


@dataclass(frozen=True, slots=True)
class VolumeStep:
    label: str | None  # 上 / 2 / 第3巻 as catalogued
    place_on: date | None  # when to place this volume's hold; None: after the previous volume is collected
    after_collecting: str | None  # the label whose collection this step waits for
    plan: Plan


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    steps: list[VolumeStep]

    @property
    def in_order(self) -> bool:
        readies = [s.plan.choice.ready for s in self.steps if s.plan.choice is not None and s.plan.choice.ready]
        return readies == sorted(readies)


# Reading order of named parts: 上 < 中 < 下, 前 < 後, 乾 < 坤 (index.volume keeps them as names).
_PART_ORDER = {"upper": 1, "middle": 2, "lower": 3, "first": 1, "latter": 2, "heaven": 1, "earth": 2}


def _reading_order(volume: Volume) -> tuple[object, ...]:
    def rank(kind: str, value: int | str) -> tuple[int, int | str]:
        if isinstance(value, int):
            return (0, value)
        return (1, _PART_ORDER[value]) if value in _PART_ORDER else (2, value)  # numbers, then named parts

    return (*(rank(level.kind, level.value) for level in volume.outer), rank(volume.kind, volume.value))


def order_volumes(volumes: Sequence[tuple[str | None, Sequence[Record]]]) -> list[tuple[str | None, Sequence[Record]]]:
    """By reading order (上 < 中 < 下, 1 < 2 …); volumes without a designation keep their place at the end."""
    keyed = [(i, parse_volume(label) if label else None) for i, (label, _) in enumerate(volumes)]
    known = sorted(((i, v) for i, v in keyed if v is not None), key=lambda iv: (_reading_order(iv[1]), iv[0]))
    unknown = [(i, v) for i, v in keyed if v is None]
    return [volumes[i] for i, _ in [*known, *unknown]]


def plan_series(
    consortium: Consortium,
    patron: Patron,
    volumes: Sequence[tuple[str | None, Sequence[Record]]],
    statuses: Mapping[str, PatronStatus | MemberUnreachable],
    today: date,
) -> SeriesPlan:
    steps: list[VolumeStep] = []
    previous_ready: date | None = None
    previous_label: str | None = None
    waiting = False  # an earlier volume's ready date is unknown: later ones wait for its collection
    for index, (label, records) in enumerate(order_volumes(volumes)):
        plan = plan_hold(consortium, patron, records, statuses, today)
        ready = plan.choice.ready if plan.choice else None
        if index == 0:
            steps.append(VolumeStep(label, today, None, plan))
        elif waiting or previous_ready is None:
            steps.append(VolumeStep(label, None, previous_label, plan))
        elif ready is not None and ready >= previous_ready:
            steps.append(VolumeStep(label, today, None, plan))
        else:
            step = _delayed(consortium, patron, records, statuses, today, previous_ready, label)
            steps.append(step or VolumeStep(label, None, previous_label, plan))
            ready = step.plan.choice.ready if step and step.plan.choice else None
        if ready is None:
            waiting = True
        previous_ready, previous_label = ready, label
    return SeriesPlan(steps)


def _delayed(
    consortium: Consortium,
    patron: Patron,
    records: Sequence[Record],
    statuses: Mapping[str, PatronStatus | MemberUnreachable],
    today: date,
    not_before: date,
    label: str | None,
) -> VolumeStep | None:
    """The first placement day whose ready date is no earlier than the previous volume's."""
    for delay in range(1, MAX_DELAY_DAYS + 1):
        day = today + timedelta(days=delay)
        plan = plan_hold(consortium, patron, records, statuses, day)
        if plan.choice is not None and plan.choice.ready is not None and plan.choice.ready >= not_before:
            return VolumeStep(label, day, None, plan)
    return None
