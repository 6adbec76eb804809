"""Hold endpoints: log-in and tokens, place / list / show / cancel / change pickup.

  POST   /api/v1/auth/login        {member, card_number, pin} -> a bearer token (shown once)
  POST   /api/v1/auth/logout       revokes the presented token
  GET    /api/v1/auth/cards        the account's cards (numbers masked)
  POST   /api/v1/holds             Idempotency-Key header; 201 placed/refused, 200 replayed, 202 unsettled
  GET    /api/v1/holds             the patron's holds
  GET    /api/v1/holds/{id}        one hold with its transitions
  DELETE /api/v1/holds/{id}        cancel (online only while submitted / waiting)
  PATCH  /api/v1/holds/{id}        {pickup_branch_id}
Another patron's hold id answers 404, exactly as an id that does not exist. Logs name hold and
member ids only, never a card number or what was held.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.language import Language, UnknownLanguage, check_language
from broker.ledger.display import MAX_AUTHOR, MAX_TITLE, MAX_VOLUME
from broker.ledger.holds_repo import IdempotencyKeyReused
from broker.ledger.records import HoldRow, Outcome, Transition
from broker.ledger.service import HoldService, HoldServiceError, LoginFailed, PlaceBody
from broker.ledger.words import state_label

HOLDS_KEY = web.AppKey("holds", HoldService)
# The node's ledger parts (poller, reconciler), for operators and tests that drive them by hand.
LEDGER_KEY = web.AppKey("ledger", object)
PROBLEM_JSON = "application/problem+json"


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    member: str = Field(min_length=1, max_length=64)
    card_number: str = Field(min_length=1, max_length=32)
    pin: str | None = Field(default=None, max_length=64)


class PlaceHoldBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    member: str = Field(min_length=1, max_length=64)
    record_id: str = Field(min_length=1, max_length=64)
    pickup_branch_id: str = Field(min_length=1, max_length=128)
    item_id: str | None = Field(default=None, max_length=64)
    card_id: str | None = Field(default=None, max_length=64)
    promised_ready: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    promised_until: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    # What the patron asked for, shown in My holds (kept sealed, purged with the hold; never logged).
    title: str | None = Field(default=None, max_length=MAX_TITLE, description="the work's title as the patron saw it")
    author: str | None = Field(default=None, max_length=MAX_AUTHOR)
    volume: str | None = Field(default=None, max_length=MAX_VOLUME, description="上 / 2 / 第3巻 as catalogued")


class HoldsQuery(BaseModel):
    """Query parameters of the hold endpoints: the language of `state_label` (else Accept-Language, else ja)."""

    lang: Language | None = Field(default=None, description="ja or en; without it Accept-Language decides, else ja")


class ChangePickupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pickup_branch_id: str = Field(min_length=1, max_length=128)


def _problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.Response(body=orjson.dumps(body), status=status, content_type=PROBLEM_JSON)


def _json(body: Any, status: int = 200, language: Language | None = None) -> web.Response:
    response = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    if language is not None:  # the answer carries words (state_label) in this language
        response.headers["Content-Language"] = language
        response.headers["Vary"] = "Accept-Language"
    return response


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        errors = [{"parameter": ".".join(map(str, e["loc"])) or "body", "detail": e["msg"]} for e in exc.errors()]
        raise _InvalidBody(errors) from None


class _InvalidBody(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors


async def _account(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        account = await request.app[HOLDS_KEY].accounts.account_for_token(token.strip())
        if account is not None:
            return account
    raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="yokodan"'}, text="log in with a library card first")


def hold_view(row: HoldRow, service: HoldService, language: Language, transitions: list[Transition] | None = None) -> dict[str, Any]:
    """One hold as the API answers it: the ledger's row plus what a patron reads (titles, names, words)."""
    shown = service.display(row)
    member, pickup = service.member_name(row.member), service.branch_name(row.pickup_branch_id)
    view: dict[str, Any] = {
        "id": row.id,
        "member": row.member,
        "member_name": member,
        "record_id": row.record_id,
        "item_id": row.item_id,
        "title": shown.title if shown else None,
        "author": shown.author if shown else None,
        "volume": shown.volume if shown else None,
        "pickup_branch_id": row.pickup_branch_id,
        "pickup_branch_name": pickup,
        "outcome": row.outcome.value,
        "state": row.state.value if row.state else None,
        "state_label": state_label(row, language),
        "status_text": row.status_text,
        "queue_position": row.queue_position,
        "ready_until": row.ready_until.isoformat() if row.ready_until else None,
        "promised_ready": row.promised_ready.isoformat() if row.promised_ready else None,
        "promised_until": row.promised_until.isoformat() if row.promised_until else None,
        "refusal": {"reason": row.refusal_reason, "message": row.refusal_message} if row.refusal_reason else None,
        "series": {"id": row.series_id, "position": row.series_position} if row.series_id else None,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if transitions is not None:
        view["transitions"] = [
            {"from": t.from_state.value if t.from_state else None, "to": t.to_state.value, "member_word": t.member_word, "at": t.at}
            for t in transitions
        ]
    return view


async def login_handler(request: web.Request) -> web.Response:
    body: LoginBody = await _body(request, LoginBody)
    service = request.app[HOLDS_KEY]
    current = None
    if request.headers.get("Authorization"):
        current = await _account(request)  # adding a card to the account already logged in
    account, token = await service.login(body.member, body.card_number, body.pin, account_id=current)
    return _json({"token": token, "token_type": "Bearer", "expires_in": 12 * 3600})


async def logout_handler(request: web.Request) -> web.Response:
    await _account(request)
    token = request.headers["Authorization"].partition(" ")[2].strip()
    await request.app[HOLDS_KEY].accounts.revoke_token(token)
    return web.Response(status=204)


async def cards_handler(request: web.Request) -> web.Response:
    account = await _account(request)
    cards = await request.app[HOLDS_KEY].accounts.cards(account)
    return _json({"cards": [{"id": c.id, "member": c.member, "card_number": "…" + c.card_number[-3:]} for c in cards]})


async def place_handler(request: web.Request) -> web.Response:
    account = await _account(request)
    language = check_language(request)
    body: PlaceHoldBody = await _body(request, PlaceHoldBody)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (8 <= len(key) <= 255):
        return _problem(400, "Invalid Idempotency-Key", "an Idempotency-Key has 8 to 255 characters")
    try:
        service = request.app[HOLDS_KEY]
        row, created = await service.place(account, PlaceBody(**body.model_dump()), key)
    except IdempotencyKeyReused as exc:
        return _problem(422, "Idempotency-Key reused", str(exc))
    if row.outcome in (Outcome.INTENT, Outcome.UNKNOWN):
        # The member's answer is not known yet: the ledger keeps asking; the client polls the hold.
        return web.Response(
            body=orjson.dumps(hold_view(row, service, language)), status=202, content_type="application/json",
            headers={"Location": f"/api/v1/holds/{row.id}", "Retry-After": "5", "Content-Language": language, "Vary": "Accept-Language"},
        )  # fmt: skip
    return _json(hold_view(row, service, language), status=201 if created else 200, language=language)


async def list_handler(request: web.Request) -> web.Response:
    account = await _account(request)
    language, service = check_language(request), request.app[HOLDS_KEY]
    return _json({"holds": [hold_view(r, service, language) for r in await service.list(account)]}, language=language)


async def show_handler(request: web.Request) -> web.Response:
    account = await _account(request)
    language, service = check_language(request), request.app[HOLDS_KEY]
    row, transitions = await service.get(account, request.match_info["hold_id"])
    return _json(hold_view(row, service, language, transitions), language=language)


async def cancel_handler(request: web.Request) -> web.Response:
    account = await _account(request)
    language, service = check_language(request), request.app[HOLDS_KEY]
    row = await service.cancel(account, request.match_info["hold_id"])
    return _json(hold_view(row, service, language), language=language)


async def change_pickup_handler(request: web.Request) -> web.Response:
    account = await _account(request)
    language, service = check_language(request), request.app[HOLDS_KEY]
    body: ChangePickupBody = await _body(request, ChangePickupBody)
    row = await service.change_pickup(account, request.match_info["hold_id"], body.pickup_branch_id)
    return _json(hold_view(row, service, language), language=language)


@web.middleware
async def hold_problems(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _InvalidBody as exc:
        return _problem(400, "Invalid request", "the request body is not valid", errors=exc.errors)
    except UnknownLanguage as exc:
        return _problem(400, "Invalid request", "invalid query parameters", errors=[{"parameter": "lang", "detail": str(exc)}])
    except HoldServiceError as exc:
        title = "Login failed" if isinstance(exc, LoginFailed) else "Hold request refused"
        return _problem(exc.status, title, exc.message, reason=exc.reason, **exc.params)


def add_hold_routes(app: web.Application, service: HoldService | None = None) -> None:
    """Mount the hold endpoints; the service is given here or set later (the app's ledger context)."""
    if service is not None:
        app[HOLDS_KEY] = service
    app.middlewares.append(hold_problems)
    app.router.add_post("/api/v1/auth/login", login_handler)
    app.router.add_post("/api/v1/auth/logout", logout_handler)
    app.router.add_get("/api/v1/auth/cards", cards_handler)
    app.router.add_post("/api/v1/holds", place_handler)
    app.router.add_get("/api/v1/holds", list_handler)
    app.router.add_get("/api/v1/holds/{hold_id}", show_handler)
    app.router.add_delete("/api/v1/holds/{hold_id}", cancel_handler)
    app.router.add_patch("/api/v1/holds/{hold_id}", change_pickup_handler)
