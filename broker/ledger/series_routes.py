"""POST /api/v1/holds/series: hold the next volumes of a series (or all of them) in reading order.

Body: {"isbn": "<one volume>", "scope": "from_this" | "all"}   the series is found from that volume
   or {"isbns": ["…上", "…下"]}                                 exactly these volumes, any order
Header `Idempotency-Key` (else one derived from the body and the day): one key for the whole series.

The broker plans every volume with the account's cards (as `POST /api/v1/holds/plan` with `isbns`),
takes each one's choice, places the first now and each next one when the one before is ready
(`Placement.place_series`). 201 with every volume (`outcome` "deferred" for those still to come);
200 for the same key again (the series it made, not planned again); 404 when a volume is not found;
422 when a volume has no way to be held now (`reason`, `volume`) — then nothing is placed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

import broker.api as api
from broker.holds.routes import GATHERER_KEY
from broker.holds.series_holds import NoWayToHold, SeriesScope, choose_volumes, in_reading_order, patron_of, plan_works, series_volumes
from broker.holds.gather import find_work
from broker.language import check_language
from broker.ledger.holds_repo import IdempotencyKeyReused
from broker.ledger.routes import HOLDS_KEY, _account, _body, _json, _problem, hold_view
from broker.ledger.records import HoldRow
from broker.ledger.service import PlaceBody
from yokodan import ISBN13, SearchQuery, Work
from yokodan.errors import BadRequest

__all__ = ["SeriesHoldBody", "VolumeNotFound", "add_series_hold_routes", "hold_series", "series_works"]


class SeriesHoldBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    isbn: ISBN13 | None = Field(default=None, description="one volume of the series; the others are found by its title and author")
    scope: SeriesScope = Field(default="from_this", description="from_this: this volume and the ones after it; all: every volume")
    isbns: list[ISBN13] = Field(default_factory=list, max_length=30, description="instead of isbn: exactly these volumes")

    @model_validator(mode="after")
    def _one_way(self) -> SeriesHoldBody:
        if bool(self.isbn) == bool(self.isbns):
            raise ValueError("name the series by one volume (isbn) or list its volumes (isbns), not both")
        return self


class VolumeNotFound(BadRequest):
    """No member holds a volume the request names."""

    def __init__(self, isbn: str) -> None:
        super().__init__(f"no member holds ISBN {isbn}")
        self.isbn = isbn


async def hold_series(app: web.Application, account: str, body: SeriesHoldBody, key: str | None) -> tuple[list[HoldRow], bool]:
    """Find, plan and place a series for `account` (the API and the pages). Answers (rows, created).

    VolumeNotFound, NoWayToHold (nothing placed) and IdempotencyKeyReused are the named refusals.
    """
    service = app[HOLDS_KEY]
    consortium = app[api.CONSORTIUM_KEY]
    today = datetime.now(ZoneInfo(consortium.timezone)).date()
    identity: dict[str, Any] = {"series": body.model_dump(mode="json")}
    # No key from the client: one per request body and day, so a double-clicked form places once.
    key = key or "derived-series-" + hashlib.sha256(repr((account, identity, today.isoformat())).encode()).hexdigest()[:40]
    if await service.series_by_key(account, key):  # a replay: answer what this key made, never plan again
        rows, _ = await service.place_series(account, [], key, identity)
        return rows, False
    works = await series_works(app, body)
    series, _ = await plan_works(app[GATHERER_KEY], consortium, patron_of(await service.accounts.cards(account)), works, today)
    bodies = [
        PlaceBody(member=c.member, record_id=c.record_id, item_id=c.item_id, pickup_branch_id=c.pickup_branch_id,
                  promised_ready=c.promised_ready.isoformat() if c.promised_ready else None,
                  promised_until=c.promised_until.isoformat() if c.promised_until else None,
                  title=c.title, author=c.author, volume=c.label)
        for c in choose_volumes(series, works)
    ]  # fmt: skip
    return await service.place_series(account, bodies, key, identity)


async def series_handler(request: web.Request) -> web.Response:
    account = await _account(request)
    language = check_language(request)
    body: SeriesHoldBody = await _body(request, SeriesHoldBody)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (8 <= len(key) <= 255):
        return _problem(400, "Invalid Idempotency-Key", "an Idempotency-Key has 8 to 255 characters")
    try:
        rows, created = await hold_series(request.app, account, body, key)
    except VolumeNotFound as missing:
        return _problem(404, "Work not found", str(missing))
    except NoWayToHold as refused:
        return _problem(422, "Hold request refused", str(refused), reason=refused.reason, volume=refused.volume)
    except IdempotencyKeyReused as exc:
        return _problem(422, "Idempotency-Key reused", str(exc))
    service = request.app[HOLDS_KEY]
    views = [hold_view(r, service, language) for r in rows]
    return _json({"series_id": rows[0].series_id if rows else None, "holds": views}, status=201 if created else 200, language=language)


async def series_works(app: web.Application, body: SeriesHoldBody) -> list[Work]:
    """The volumes the request names, in reading order (VolumeNotFound for one no member holds)."""
    search = app[api.SEARCH_KEY]
    if body.isbn:
        anchor, _ = await find_work(search, SearchQuery(isbn=body.isbn))
        if anchor is None:
            raise VolumeNotFound(body.isbn)
        works, _ = await series_volumes(search, anchor, body.scope)
        return works
    found = []
    for isbn in dict.fromkeys(body.isbns):
        work, _ = await find_work(search, SearchQuery(isbn=isbn))
        if work is None:
            raise VolumeNotFound(isbn)
        found.append(work)
    return in_reading_order(found)


def add_series_hold_routes(app: web.Application) -> None:
    """After the hold routes and the plan routes (it plans with the gatherer and places with the ledger)."""
    app.router.add_post("/api/v1/holds/series", series_handler)
