"""The patrons' and librarians' pages: search, work, log-in, plan and place a hold, My holds, staff.

Pages call the same services the API uses, in-process: SearchService, the hold planner and the
ledger's HoldService. Results arrive in the browser from /api/v1/search/stream (static/search.js).
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import get_session
from pydantic import ValidationError

import broker.api as api
from broker.holds.gather import find_work
from broker.holds.patron import Card, Patron
from broker.holds.calendar import CalendarError
from broker.holds.planner import RuleBook, plan_hold
from broker.holds.routes import GATHERER_KEY
from broker.holds.series_holds import NoWayToHold, patron_of, plan_works
from broker.holds.views import REFUSAL, date_ja, plan_view
from broker.ledger.lifecycle import CANCELLABLE_ONLINE
from broker.ledger.routes import HOLDS_KEY
from broker.ledger.service import HoldService, HoldServiceError, PlaceBody
from broker.ledger.series_routes import SeriesHoldBody, VolumeNotFound, hold_series, series_works
from broker.ledger.words import state_label
from broker.pages.i18n import CATALOGUES, WEEKDAY_NAMES, Translator, choose_language
from broker.pages.security import (
    CsrfRejected,
    StaffPassword,
    check_csrf,
    csrf_token,
    install_session_and_headers,
)
from broker.pages.views import HoldingRow, holding_rows, holdings_csv
from broker.ranking import distance_km
from connectors.base import Capability
from yokodan import Availability, SearchQuery
from yokodan.errors import YokodanError
from yokodan.isbn import to_isbn13

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STAFF_KEY = web.AppKey("staff_password", StaffPassword)
SEARCH_FIELDS = ("q", "title", "author", "isbn", "near", "members", "start")


# --- rendering ------------------------------------------------------------------------------


def _format_date(value: Any, language: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return date_ja(value) if language == "ja" else value.isoformat()


async def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    language = choose_language(request)
    session = await get_session(request)
    base = {
        "lang": language,
        "t": Translator(language),
        "csrf": await csrf_token(request),
        "logged_in": bool(session.get("token")),
        "staff": bool(session.get("staff")),
        "fmt_date": lambda d: _format_date(d, language),
        "other_lang": "en" if language == "ja" else "ja",
        "path": request.path,
    }
    response = aiohttp_jinja2.render_template(template, request, base | context, status=status)
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-store"  # pages may show a patron's holds
    return response


def _see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def _safe_next(value: str | None) -> str:
    """Only a local path: never an open redirect to another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _work_query(params: Any) -> tuple[SearchQuery, str | None]:
    isbn = (params.get("isbn") or "").strip() or None
    title = (params.get("title") or "").strip() or None
    author = (params.get("author") or "").strip() or None
    query = SearchQuery(isbn=isbn, title=None if isbn else title, author=None if isbn else author)
    if query.is_empty():
        raise web.HTTPBadRequest(text="name the work: isbn or title")
    return query, params.get("work_id") or None


async def _find(request: web.Request, query: SearchQuery, work_id: str | None) -> tuple[Any, list[Any]]:
    service = request.app[api.SEARCH_KEY]
    work, statuses = await find_work(service, query, work_id)
    if work is None and work_id is not None:  # a work id is a cluster of one search; another may differ
        work, statuses = await find_work(service, query, None)
    return work, statuses


# --- search and work ------------------------------------------------------------------------


async def search_page(request: web.Request) -> web.Response:
    consortium = request.app[api.CONSORTIUM_KEY]
    language = choose_language(request)
    params = {k: request.query.get(k, "") for k in SEARCH_FIELDS}
    chosen = [m for m in params["members"].split(",") if m]
    stream_query = {k: v for k, v in params.items() if v}
    has_query = any(params[k] for k in ("q", "title", "author", "isbn"))
    config = {
        "stream": "/api/v1/search/stream?" + _urlencode(stream_query) if has_query else None,
        "lang": language,
        "messages": {k: v for k, v in CATALOGUES[language].items() if k.split(".")[0] in _JS_SECTIONS},
        "municipalities": {m.id: m.municipality for m in consortium.members},
        "members": {m.id: m.name for m in consortium.members},
        "page_size": 20,
        "start": int(params["start"] or 1) if params["start"].isdigit() else 1,
        "query": stream_query,
    }
    asked = chosen or [m.id for m in consortium.members]
    return await render(
        request, "search.html",
        {"params": params, "chosen": chosen, "members": consortium.members, "asked": [m for m in consortium.members if m.id in asked],
         "branches": [b for b in consortium.branches() if b.lat is not None and b.pickup_point],
         "has_query": has_query, "config": config},
    )  # fmt: skip


_JS_SECTIONS = {"search", "state", "age", "avail", "work"}


def _urlencode(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


async def work_page(request: web.Request) -> web.Response:
    query, work_id = _work_query(request.query)
    consortium = request.app[api.CONSORTIUM_KEY]
    near = api._resolve_near(request.query.get("near") or None, consortium)  # the API's own reading of `near`
    work, statuses = await _find(request, query, work_id)
    if work is None:
        return await render(request, "work.html", {"work": None, "rows": [], "statuses": statuses}, status=404)
    branches = {b.id: b for b in consortium.branches()}
    members = {m.id: m for m in consortium.members}
    today = _today(request)
    rows = [_work_row(r, branches.get(r.branch_id or ""), RuleBook.of(consortium), near, today) for r in holding_rows([work], request.app[api.NAMES_KEY])]
    if near is not None:  # nearest copy on the shelf first, then the nearest of the rest
        rows.sort(key=lambda row: (row["holding"].availability is not Availability.AVAILABLE, row["km"] if row["km"] is not None else 1e9))
    unanswered = [members[s.member].name for s in statuses if s.state.value != "ok" and s.member in members]
    hold_link = "/hold?" + _urlencode({k: v for k, v in {
        "isbn": query.isbn or "", "title": query.title or "", "author": query.author or "", "work_id": work.work_id}.items() if v})  # fmt: skip
    # A volume of a series (上/下, 第2巻 …) with an ISBN: offer to hold it and the next ones, in order.
    series_isbn = work.isbns[0] if work.volume and work.isbns else None
    return await render(
        request, "work.html",
        {"work": work, "rows": rows, "members": members, "unanswered": unanswered, "hold_link": hold_link, "near": near,
         "series_isbn": series_isbn},
    )  # fmt: skip


def _work_row(row: HoldingRow, branch: Any, rules: RuleBook, near: tuple[float, float] | None, today: date) -> dict[str, Any]:
    """One copy with what a patron deciding where to go needs: distance, phone, closed weekdays, next opening day."""
    calendar = rules.branch_calendars.get(branch.id) if branch is not None else None
    next_open = None
    if calendar is not None:
        try:
            next_open = calendar.first_open_on_or_after(today)
        except CalendarError:  # closed for good (a calendar without an opening day in the horizon)
            next_open = None
    km = None
    if near is not None and branch is not None and branch.lat is not None and branch.lon is not None:
        km = round(distance_km(near, (branch.lat, branch.lon)), 1)
    return {
        "holding": row, "branch": branch, "km": km, "next_open": next_open,
        "closed_weekdays": calendar.rule.weekly_closed if calendar is not None else None,
    }  # fmt: skip


# --- patron log-in, plan, place, my holds ---------------------------------------------------


def _holds(request: web.Request) -> HoldService:
    service = request.app.get(HOLDS_KEY)
    if service is None:
        raise web.HTTPServiceUnavailable(text="holds are not configured on this broker (no ledger)")
    return service


async def _account(request: web.Request) -> str | None:
    token = (await get_session(request)).get("token")
    if not token:
        return None
    return await _holds(request).accounts.account_for_token(token)


async def _patron_form(request: web.Request) -> tuple[HoldService, Any, str]:
    """A patron's form post: the hold service, the CSRF-checked form, the logged-in account (else to the login page)."""
    service = _holds(request)
    _, form = await check_csrf(request)
    account = await _account(request)
    if account is None:
        raise _see_other("/login?next=/holds")
    return service, form, account


def _login_redirect(request: web.Request) -> web.HTTPSeeOther:
    return _see_other("/login?" + _urlencode({"next": request.path_qs}))


def _card_members(request: web.Request) -> list[Any]:
    registry = request.app[api.REGISTRY_KEY]
    consortium = request.app[api.CONSORTIUM_KEY]
    out = []
    for m in consortium.members:
        try:
            registry.connector(m.id, Capability.LOOKUP_PATRON)
        except Exception:  # CapabilityMissing: this member's cards cannot be checked online
            continue
        out.append(m)
    return out


async def login_page(request: web.Request) -> web.Response:
    _holds(request)
    return await render(request, "login.html", {"members": _card_members(request), "next": _safe_next(request.query.get("next")), "error": None})


async def login_submit(request: web.Request) -> web.Response:
    service = _holds(request)
    session, form = await check_csrf(request)
    next_path = _safe_next(form.get("next"))
    try:
        current = await _account(request)
        _, token = await service.login(form.get("member", ""), form.get("card_number", "").strip(), form.get("pin") or None, account_id=current)
    except HoldServiceError as exc:
        t = Translator(choose_language(request))
        return await render(
            request, "login.html",
            {"members": _card_members(request), "next": next_path, "error": t("login.failed", detail=exc.message)}, status=exc.status,
        )  # fmt: skip
    session["token"] = token
    session["csrf"] = None  # a new CSRF token after log-in (no fixation)
    raise _see_other(next_path)


async def logout_submit(request: web.Request) -> web.Response:
    session, _ = await check_csrf(request)
    token = session.get("token")
    if token and request.app.get(HOLDS_KEY) is not None:
        await request.app[HOLDS_KEY].accounts.revoke_token(token)
    session.invalidate()
    raise _see_other("/")


def _today(request: web.Request) -> date:
    return datetime.now(ZoneInfo(request.app[api.CONSORTIUM_KEY].timezone)).date()


async def plan_page(request: web.Request) -> web.Response:
    service = _holds(request)
    account = await _account(request)
    if account is None:
        raise _login_redirect(request)
    query, work_id = _work_query(request.query)
    work, statuses = await _find(request, query, work_id)
    if work is None:
        return await render(request, "plan.html", {"work": None, "plan": None, "options": []}, status=404)
    cards = await service.accounts.cards(account)
    patron = Patron(cards=[Card(member=c.member, card_number=c.card_number, pin=c.pin) for c in cards])
    gathered = await request.app[GATHERER_KEY].gather(patron, work.records)
    consortium = request.app[api.CONSORTIUM_KEY]
    plan = plan_view(plan_hold(consortium, patron, gathered.records, gathered.statuses, _today(request)))
    options = ([plan["choice"]] if plan["choice"] else []) + plan["alternatives"]
    # What the patron is asking for travels with the choice, so My holds can show it (the ledger seals it).
    shown = {"title": work.title, "author": work.authors[0] if work.authors else None, "volume": work.volume}
    for option in options:
        option["value"] = json.dumps(
            {k: option[k] for k in ("member", "record_id", "item_id", "pickup_branch")}
            | {"ready": _iso(option["ready"]), "deadline": _iso(option["deadline"])} | shown,
            ensure_ascii=False,
        )
    return await render(request, "plan.html", {"work": work, "plan": plan, "options": options})


def _text(value: Any) -> str | None:
    """A display string from the form, or None (a tampered form may send anything: HoldDisplay bounds it)."""
    return value if isinstance(value, str) else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


async def place_submit(request: web.Request) -> web.Response:
    service, form, account = await _patron_form(request)
    try:
        chosen = json.loads(form.get("option", ""))
        body = PlaceBody(
            member=str(chosen["member"]), record_id=str(chosen["record_id"]), pickup_branch_id=str(chosen["pickup_branch"]),
            item_id=chosen.get("item_id"), promised_ready=chosen.get("ready"), promised_until=chosen.get("deadline"),
            title=_text(chosen.get("title")), author=_text(chosen.get("author")), volume=_text(chosen.get("volume")),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text="choose one of the offered ways to collect") from None
    try:
        row, _ = await service.place(account, body, None)
    except HoldServiceError as exc:
        return await holds_page(request, message=Translator(choose_language(request))("holds.refused", detail=exc.message), status=exc.status)
    raise _see_other(f"/holds?placed={row.id}")


def _series_body(params: Any) -> SeriesHoldBody:
    try:
        return SeriesHoldBody(isbn=(params.get("isbn") or "").strip() or None, scope=params.get("scope") or "from_this")
    except ValidationError:
        raise web.HTTPBadRequest(text="name one volume of the series by its ISBN (scope: from_this or all)") from None


async def series_page(request: web.Request) -> web.Response:
    """The series' volumes in reading order with each one's way to collect it; confirm places them."""
    service = _holds(request)
    account = await _account(request)
    if account is None:
        raise _login_redirect(request)
    body = _series_body(request.query)
    t = Translator(choose_language(request))
    try:
        works = await series_works(request.app, body)
    except VolumeNotFound:
        return await render(request, "series.html", {"steps": [], "title": "", "isbn": body.isbn, "scope": body.scope, "holdable": False}, status=404)
    consortium = request.app[api.CONSORTIUM_KEY]
    patron = patron_of(await service.accounts.cards(account))
    series, _ = await plan_works(request.app[GATHERER_KEY], consortium, patron, works, _today(request))
    refusal_words = REFUSAL[t.language]
    steps = [
        {"label": s.label, "choice": s.plan.choice,
         "refusal": refusal_words(s.plan.refusals[0]) if s.plan.choice is None and s.plan.refusals else None}
        for s in series.steps
    ]  # fmt: skip
    return await render(
        request, "series.html",
        {"steps": steps, "title": works[0].title, "isbn": body.isbn, "scope": body.scope,
         "holdable": all(s["choice"] is not None for s in steps)},
    )  # fmt: skip


async def series_submit(request: web.Request) -> web.Response:
    _, form, account = await _patron_form(request)
    t = Translator(choose_language(request))
    try:
        await hold_series(request.app, account, _series_body(form), None)
    except VolumeNotFound as missing:
        return await holds_page(request, message=t("holds.refused", detail=str(missing)), status=404)
    except NoWayToHold as refused:
        return await holds_page(request, message=t("series.refused", volume=refused.volume or "—", detail=refused.reason), status=422)
    except HoldServiceError as exc:
        return await holds_page(request, message=t("holds.refused", detail=exc.message), status=exc.status)
    raise _see_other("/holds?placed=series")


async def holds_page(request: web.Request, *, message: str | None = None, status: int = 200) -> web.Response:
    service = _holds(request)
    account = await _account(request)
    if account is None:
        raise _login_redirect(request)
    t = Translator(choose_language(request))
    if message is None and request.query.get("placed"):
        message = t("series.placed") if request.query.get("placed") == "series" else t("holds.placed")
    if message is None and request.query.get("cancelled"):
        message = t("holds.cancelled")
    if message is None and request.query.get("moved"):
        message = t("holds.pickup_changed")
    consortium = request.app[api.CONSORTIUM_KEY]
    branches = {b.id: b for b in consortium.branches()}
    members = {m.id: m for m in consortium.members}
    rows = await service.list(account)
    holds = []
    choices: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
    for r in rows:
        cancellable = r.state in CANCELLABLE_ONLINE and r.outcome.value == "placed"
        # The same rule as PATCH /api/v1/holds/{id}: still queued, at a member that takes the change online.
        changeable = cancellable and _takes_pickup_changes(service, r.member)
        if changeable and r.member not in choices:
            choices[r.member] = _pickup_choices(consortium, r.member)
        holds.append({
            "row": r, "member": members.get(r.member), "pickup": branches.get(r.pickup_branch_id), "shown": service.display(r),
            "state_label": state_label(r, t.language), "cancellable": cancellable,
            "changeable": changeable and sum(len(c) for _, c in choices[r.member]) > 1,
            "pickup_choices": choices.get(r.member, []),
        })  # fmt: skip
    return await render(request, "holds.html", {"holds": holds, "message": message}, status=status)


def _pickup_choices(consortium: Any, member_id: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Where the owning member's holds may be collected (the planner's reading of its pickup rule),
    grouped by the library system each pickup belongs to, for the change form's list."""
    names, book = {m.id: m.name for m in consortium.members}, RuleBook.of(consortium)
    groups: dict[str, list[tuple[str, str]]] = {}
    for branch in book.members[member_id].pickups:
        owner = book.branch_member[branch.id]
        groups.setdefault(names.get(owner, owner), []).append((branch.id, branch.name))
    return list(groups.items())


def _takes_pickup_changes(service: HoldService, member_id: str) -> bool:
    try:
        return bool(service.gateway_for(member_id).supports(Capability.CHANGE_PICKUP))
    except YokodanError:  # a member that left the consortium file, or has no holds face any more
        return False


async def pickup_submit(request: web.Request) -> web.Response:
    service, form, account = await _patron_form(request)
    branch_id = str(form.get("pickup_branch_id", "")).strip()
    try:
        await service.change_pickup(account, request.match_info["hold_id"], branch_id)
    except HoldServiceError as exc:
        return await holds_page(request, message=exc.message, status=exc.status)
    raise _see_other("/holds?moved=1")


async def cancel_submit(request: web.Request) -> web.Response:
    service, _form, account = await _patron_form(request)
    try:
        await service.cancel(account, request.match_info["hold_id"])
    except HoldServiceError as exc:
        return await holds_page(request, message=exc.message, status=exc.status)
    raise _see_other("/holds?cancelled=1")


# --- staff ----------------------------------------------------------------------------------


async def staff_login_page(request: web.Request) -> web.Response:
    return await render(request, "staff_login.html", {"configured": request.app.get(STAFF_KEY) is not None, "error": None})


async def staff_login_submit(request: web.Request) -> web.Response:
    session, form = await check_csrf(request)
    password = request.app.get(STAFF_KEY)
    if password is None or not password.matches(form.get("password", "")):
        t = Translator(choose_language(request))
        return await render(request, "staff_login.html", {"configured": password is not None, "error": t("staff.failed")}, status=401)
    session["staff"] = True
    session["csrf"] = None
    raise _see_other("/staff")


async def _staff_rows(request: web.Request) -> tuple[str, list[Any], list[Any]]:
    session = await get_session(request)
    if not session.get("staff"):
        raise _see_other("/staff/login")
    text = request.query.get("q", "").strip()[:500]
    if not text:
        return text, [], []
    isbn = to_isbn13(text)
    query = SearchQuery(isbn=isbn) if isbn else SearchQuery(title=text)
    outcome = await request.app[api.SEARCH_KEY].search(query)
    return text, holding_rows(outcome.works, request.app[api.NAMES_KEY]), outcome.statuses


def _member_health(request: web.Request) -> list[dict[str, Any]]:
    registry = request.app[api.REGISTRY_KEY]
    return [
        {"member": registry.member(m), "circuit": registry.breaker(m).snapshot(),
         "maintenance": [w.describe() for w in registry.member(m).maintenance],
         "in_maintenance": registry.maintenance_now(m) is not None, "unknown_words": registry.unknown_words.words_of(m)}
        for m in registry.member_ids
    ]  # fmt: skip


async def staff_page(request: web.Request) -> web.Response:
    text, rows, statuses = await _staff_rows(request)
    return await render(
        request, "staff.html",
        {"q": text, "rows": rows, "statuses": statuses, "health": _member_health(request),
         "csv_link": "/staff/holdings.csv?" + _urlencode({"q": text, "lang": choose_language(request)})},
    )  # fmt: skip


CSV_COLUMNS = ("csv.title", "csv.isbn", "work.member", "work.branch", "work.call_number", "work.status", "work.library_word", "work.due", "work.queue")


async def staff_csv(request: web.Request) -> web.Response:
    text, rows, _ = await _staff_rows(request)
    t = Translator(choose_language(request))
    words = {k.removeprefix("avail."): v for k, v in t.messages.items() if k.startswith("avail.")}
    body = holdings_csv(rows, [t(c) for c in CSV_COLUMNS], words)
    return web.Response(
        body=body, content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="yokodan-holdings.csv"', "Cache-Control": "no-store"},
    )  # fmt: skip


# --- errors and wiring ----------------------------------------------------------------------


@web.middleware
async def page_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Pages answer an HTML page for a refused form or a bad request; the API keeps problem+json."""
    if request.path.startswith("/api/") or request.path.startswith("/static/"):
        return await handler(request)
    try:
        return await handler(request)
    except api.InvalidRequest as exc:  # e.g. a `near` that is neither 'lat,lon' nor a known branch
        t = Translator(choose_language(request))
        return await render(request, "error.html", {"message": t("error.bad_request", detail=exc.detail)}, status=400)
    except CsrfRejected:
        t = Translator(choose_language(request))
        return await render(request, "error.html", {"message": t("error.csrf")}, status=403)
    except (web.HTTPBadRequest, web.HTTPServiceUnavailable) as exc:
        t = Translator(choose_language(request))
        return await render(request, "error.html", {"message": t("error.bad_request", detail=exc.text)}, status=exc.status)
    except ValidationError as exc:  # a query the shared models refuse (too long, malformed ISBN …)
        t = Translator(choose_language(request))
        return await render(request, "error.html", {"message": t("error.bad_request", detail=exc.error_count())}, status=400)


def add_page_routes(app: web.Application, *, session_key: bytes | None = None) -> None:
    """Pages on the broker's app: after build_app has set CONSORTIUM_KEY, SEARCH_KEY and REGISTRY_KEY.

    Holds pages use `app[HOLDS_KEY]` when the app has a ledger, and answer 503 otherwise.
    """
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    static_route = app.router.add_static("/static/", HERE / "static", append_version=True, name="pages_static")
    env = aiohttp_jinja2.get_env(app)
    env.globals["static"] = lambda name: str(static_route.url_for(filename=name))
    env.filters["weekday"] = lambda code, language: WEEKDAY_NAMES[language][code]
    install_session_and_headers(app, session_key)
    password = StaffPassword.from_environment()
    if password is not None:
        app[STAFF_KEY] = password
    app.middlewares.append(page_errors)
    app.router.add_get("/", search_page)
    app.router.add_get("/work", work_page)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout_submit)
    app.router.add_get("/hold", plan_page)
    app.router.add_post("/holds", place_submit)
    app.router.add_get("/holds", holds_page)
    app.router.add_get("/hold/series", series_page)
    app.router.add_post("/holds/series", series_submit)
    app.router.add_post("/holds/{hold_id}/cancel", cancel_submit)
    app.router.add_post("/holds/{hold_id}/pickup", pickup_submit)
    app.router.add_get("/staff/login", staff_login_page)
    app.router.add_post("/staff/login", staff_login_submit)
    app.router.add_get("/staff", staff_page)
    app.router.add_get("/staff/holdings.csv", staff_csv)
