"""POST /api/v1/holds/plan: a dry run of a hold — the choice, the alternatives, the refusals, the advice.

Body (JSON):
  {"isbn": "978-4-10-101013-5"            the work, by ISBN …
   | "title": "こころ", "author": "夏目漱石", "work_id": "…"   … or by a search and, optionally, one of its work ids
   | "isbns": ["…上", "…下"]               a set: one ISBN per volume, planned in order (sequenced volumes)
   "patron": {"cards": [{"member": "okayama-pref", "card_number": "10000001", "pin": "1234"}],
              "home_municipality": "津山市", "location": [34.66, 133.93], "preferred_pickups": ["tsuyama-city/main"]},
   "pickup_only": false, "today": "2026-12-01"}   today: for dry runs "as of" a day; default the consortium's today
Query: `lang=ja|en` (else Accept-Language, else ja) chooses the language of refusals' and advice's `message`.

The PIN is passed to the member and dropped; neither it nor the card number is logged or echoed.
Errors are RFC 9457 problem+json (broker.api.problem): 400 for a bad body, 404 when no work matches.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import broker.api as api
from broker.holds.gather import HoldsGatherer, find_work
from broker.language import UnknownLanguage, check_language
from broker.holds.patron import Patron
from broker.holds.planner import plan_hold
from broker.holds.series_holds import plan_works
from broker.holds.views import plan_view, series_view
from yokodan import ISBN13, SearchQuery

__all__ = ["GATHERER_KEY", "PlanRequest", "add_plan_routes"]

GATHERER_KEY = web.AppKey("holds_gatherer", HoldsGatherer)
MAX_BODY_BYTES = 64 * 1024


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    isbn: ISBN13 | None = None
    isbns: list[ISBN13] = Field(default_factory=list, max_length=30)
    title: str | None = Field(default=None, max_length=500)
    author: str | None = Field(default=None, max_length=200)
    work_id: str | None = Field(default=None, max_length=200)
    patron: Patron
    pickup_only: bool = False
    today: date | None = None

    @model_validator(mode="after")
    def _one_work(self) -> PlanRequest:
        if not (self.isbn or self.isbns or self.title):
            raise ValueError("name the work: isbn, isbns (a set) or title")
        return self


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"parameter": ".".join(str(p) for p in e["loc"]) or "(body)", "detail": str(e["msg"]).removeprefix("Value error, ")}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def _check_references(request: PlanRequest, consortium: Any) -> list[dict[str, str]]:
    members = {m.id for m in consortium.members}
    branches = {b.id for b in consortium.branches()}
    problems = [
        {"parameter": f"patron.cards.{i}.member", "detail": f"no member {c.member!r} in this consortium"}
        for i, c in enumerate(request.patron.cards) if c.member not in members
    ]
    problems += [
        {"parameter": f"patron.preferred_pickups.{i}", "detail": f"no branch {b!r} in this consortium"}
        for i, b in enumerate(request.patron.preferred_pickups) if b not in branches
    ]
    return problems


def _today(app: web.Application, request: PlanRequest) -> date:
    return request.today or datetime.now(ZoneInfo(app[api.CONSORTIUM_KEY].timezone)).date()


async def plan_handler(request: web.Request) -> web.Response:
    app = request.app
    try:
        language = check_language(request)
    except UnknownLanguage as exc:
        return api.problem(400, "Invalid request", "invalid query parameters", errors=[{"parameter": "lang", "detail": str(exc)}])
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return api.problem(413, "Request body too large", f"at most {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return api.problem(400, "Invalid request", f"the body is not JSON: {exc}")
    try:
        plan_request = PlanRequest.model_validate(body)
    except ValidationError as exc:
        return api.problem(400, "Invalid request", "the plan request is not valid", errors=_errors(exc))
    consortium = app[api.CONSORTIUM_KEY]
    problems = _check_references(plan_request, consortium)
    if problems:
        return api.problem(400, "Invalid request", "unknown member or branch", errors=problems)
    today = _today(app, plan_request)
    gatherer = app[GATHERER_KEY]
    patron = plan_request.patron

    if plan_request.isbns:
        works = []
        for isbn in plan_request.isbns:
            work, _ = await find_work(app[api.SEARCH_KEY], SearchQuery(isbn=isbn), None)
            if work is None:
                return api.problem(404, "Work not found", f"no member holds ISBN {isbn}")
            works.append(work)
        series, stale = await plan_works(gatherer, consortium, patron, works, today)
        return _in(language, api.json_response({"series": series_view(series, language=language), "stale_holdings": stale}))

    query = SearchQuery(isbn=plan_request.isbn, title=plan_request.title, author=plan_request.author)
    work, statuses = await find_work(app[api.SEARCH_KEY], query, plan_request.work_id)
    if work is None:
        return api.problem(
            404, "Work not found", "no member's catalogue has this work",
            targets=[{"member": s.member, "state": s.state.value, "reason": s.reason} for s in statuses],
        )
    gathered = await gatherer.gather(patron, work.records)
    plan = plan_hold(consortium, patron, gathered.records, gathered.statuses, today, pickup_only=plan_request.pickup_only)
    return _in(language, api.json_response({
        "work": {"work_id": work.work_id, "title": work.title, "authors": work.authors, "isbns": work.isbns, "volume": work.volume},
        "plan": plan_view(plan, language=language),
        "stale_holdings": gathered.stale_holdings,
    }))


def _in(language: str, response: web.Response) -> web.Response:
    """The answer's sentences (`message`) are in `language`: say so, and that it depends on the header."""
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return response


def add_plan_routes(app: web.Application) -> None:
    """Register the plan endpoint on the broker's app (after CONSORTIUM_KEY and HTTP_KEY are set)."""
    app[GATHERER_KEY] = HoldsGatherer(app[api.REGISTRY_KEY])  # search's connectors, breakers and windows
    app.router.add_post("/api/v1/holds/plan", plan_handler)
