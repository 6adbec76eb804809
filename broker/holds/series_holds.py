"""Holding a series in reading order: find the volumes of a work's series, plan them, pick each one's way.

"Hold the next volumes of this series" starts from one volume (by ISBN): the series is what a title
search (+ the first author) finds with the same title and a volume designation (上/下, 第2巻 …), one
work per designation, in reading order (`broker.holds.series.order_volumes`). The ledger then places
the first volume now and each next one when the one before it is ready (`Placement.place_series`),
which is the spacing the seeds ask patrons to do by hand.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from broker.consortium import Consortium
from broker.holds.gather import HoldsGatherer
from broker.holds.patron import Card, Patron
from broker.holds.series import SeriesPlan, order_volumes, plan_series
from broker.search import SearchService
from yokodan import Record, SearchQuery, TargetStatus, Work
from yokodan.errors import BadRequest

__all__ = ["NoWayToHold", "SeriesScope", "VolumeChoice", "choose_volumes", "in_reading_order", "patron_of", "plan_works", "series_volumes"]

SeriesScope = Literal["from_this", "all"]
# A series search asks each member for this many records: enough for the longest sets seen (全集 of 30).
_SERIES_PAGE = 50


class NoWayToHold(BadRequest):
    """A volume of the series cannot be held now (no copy, or every way refused): nothing is placed."""

    def __init__(self, volume: str | None, reason: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VolumeChoice:
    """One volume's way to collect it, as the plan chose it; `promised_*` only for the one placed now."""

    label: str | None
    title: str
    author: str | None
    member: str
    record_id: str
    item_id: str | None
    pickup_branch_id: str
    promised_ready: date | None
    promised_until: date | None


def _key(text: str | None) -> str:
    return unicodedata.normalize("NFKC", text or "").replace(" ", "").replace("\u3000", "").casefold()


async def series_volumes(search: SearchService, anchor: Work, scope: SeriesScope = "from_this") -> tuple[list[Work], list[TargetStatus]]:
    """The volumes of `anchor`'s series in reading order: all of them, or from `anchor` on. A work
    without a volume designation is a series of one."""
    if not anchor.volume:
        return [anchor], []
    author = anchor.authors[0] if anchor.authors else None
    outcome = await search.search(SearchQuery(title=anchor.title, author=author, page_size=_SERIES_PAGE))
    authors = {_key(a) for a in anchor.authors}
    same = [
        w for w in outcome.works
        if w.volume and _key(w.title) == _key(anchor.title) and (not authors or authors & {_key(a) for a in w.authors})
    ]  # fmt: skip
    by_label: dict[str, Work] = {}
    for work in [anchor, *same]:  # the anchor's own cluster stands for its designation
        by_label.setdefault(_key(work.volume), work)
    works = {id(w): w for w in by_label.values()}
    ordered = [works[id(w)] for w in in_reading_order(list(by_label.values()))]
    if scope == "from_this":
        ordered = ordered[[_key(w.volume) for w in ordered].index(_key(anchor.volume)):]
    return ordered, outcome.statuses


def in_reading_order(works: list[Work]) -> list[Work]:
    """Works by their volume designation (上 < 中 < 下, 1 < 2 …); undesignated ones keep their place at the end."""
    # order_volumes sorts (label, records) pairs; the records carry the work back.
    by_records = {id(w.records): w for w in works}
    return [by_records[id(records)] for _, records in order_volumes([(w.volume, w.records) for w in works])]


def patron_of(cards: Sequence[object]) -> Patron:
    """A ledger account's cards as the planner's patron (PINs only where the ledger keeps them)."""
    return Patron(cards=[Card(member=c.member, card_number=c.card_number, pin=c.pin) for c in cards])  # type: ignore[attr-defined]


async def plan_works(gatherer: HoldsGatherer, consortium: Consortium, patron: Patron, works: Sequence[Work], today: date) -> tuple[SeriesPlan, dict[str, str]]:
    """Each volume planned with live holdings and the patron's status, as `POST /api/v1/holds/plan` with `isbns`."""
    volumes: list[tuple[str | None, list[Record]]] = [(w.volume, list(w.records)) for w in works]
    gathered = await gatherer.gather(patron, [r for _, records in volumes for r in records])
    fresh = {(r.member, r.local_id): r for r in gathered.records}
    volumes = [(label, [fresh.get((r.member, r.local_id), r) for r in records]) for label, records in volumes]
    return plan_series(consortium, patron, volumes, gathered.statuses, today), gathered.stale_holdings


def choose_volumes(series: SeriesPlan, works: Sequence[Work]) -> list[VolumeChoice]:
    """Each step's chosen way, in reading order; NoWayToHold names the first volume without one."""
    titles = {_key(w.volume): w for w in works}
    chosen = []
    for position, step in enumerate(series.steps):
        choice = step.plan.choice
        if choice is None:
            refusal = step.plan.refusals[0] if step.plan.refusals else None
            reason = refusal.reason.value if refusal else "record_not_found"
            raise NoWayToHold(step.label, reason, f"volume {step.label or '?'} cannot be held now ({reason})")
        work = titles.get(_key(step.label), works[0])
        now = position == 0  # later volumes are placed when the one before is ready: their dates are not known yet
        chosen.append(
            VolumeChoice(
                label=step.label, title=work.title, author=work.authors[0] if work.authors else None,
                member=choice.member, record_id=choice.record_id, item_id=choice.item_id,
                pickup_branch_id=choice.pickup_branch,
                promised_ready=choice.estimate.ready if now else None, promised_until=choice.estimate.deadline if now else None,
            )
        )  # fmt: skip
    return chosen
