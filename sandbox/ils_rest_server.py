"""A Koha-style REST API for sandbox members whose protocol is "ils_rest": `/{member_id}/api/v1/...`.

Answers from the member's holdings (`system.held`) and hold ledger (`system.ledger`) in the
shapes `connectors.ils_rest` documents: Koha's, plus the idempotency-key and finished-hold
extensions. Faults act as on the SRU face: before answering (delay, hang, forced status,
random 500s) and on the JSON body (malformed, wrong charset, slow drip, huge).

protocol_options:
  pickup_codes       "CHUO,KITA": only these branches are pickup points (default: every branch)
  lose_hold_answer   "hang" | "drop": place the hold, then never answer / cut the connection.
  lose_hold_answer_rate  "0.2": that share of placements loses its answer (drop or hang, seeded dice).
  dedupe_hold_keys   "no": a repeated Idempotency-Key places a second hold (chaos tests see double sends).
  max_holds          holds per card (default 10).
                     The broker must then find the hold by its key, never send it again.
  lose_cancel_answer "hang" | "drop": the same for DELETE /holds/{id}, after cancelling
  lose_pickup_answer "hang" | "drop": the same for PUT /holds/{id}/pickup_location, after moving it

Every request line (method, path and query) is kept in `app[ACCESS_LOG]`, so tests can check
that no PIN ever appears in a URL.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web

from yokodan import Availability, HoldState
from sandbox.accounts import Refusal, SandboxHold, SandboxPatron
from sandbox.cql import CQLError
from sandbox.faults import before_answer, lose_answer, lost_answer_mode
from sandbox.holdings import Copy, HeldWork
from sandbox.member import MemberSystem
from sandbox.spec import FaultConfig
from sandbox.sru_server import MEMBERS

PROTOCOL = "ils_rest"
ACCESS_LOG = web.AppKey("ils_rest_access_log", deque[str])
_ACCESS_LOG_SIZE = 2000
_DEFAULT_PER_PAGE = 20  # Koha's RESTdefaultPageSize
_DRIP_INTERVAL_S = 0.05
_CARD_VALIDITY = timedelta(days=3 * 365)
_LOAN_DAYS = 14
_OVERDUE_DAYS = 7

# Refusal code -> (HTTP status, Koha error_code, message), as Koha's controllers answer.
_REFUSALS: dict[str, tuple[int, str, str]] = {
    "authentication_failed": (400, "invalid_credentials", "Validation failed"),
    "patron_not_found": (400, "patron_not_found", "patron_id not found"),
    "too_many_holds": (403, "tooManyReserves", "Hold cannot be placed. Reason: tooManyReserves"),
    "already_held": (403, "tooManyHoldsForThisRecord", "Hold cannot be placed. Reason: tooManyHoldsForThisRecord"),
    "already_on_loan": (403, "alreadypossession", "Hold cannot be placed. Reason: alreadypossession"),
    "not_holdable": (403, "notReservable", "Hold cannot be placed. Reason: notReservable"),
    "record_not_found": (404, "not_found", "Biblio not found."),
    "invalid_pickup": (400, "libraryNotPickupLocation", "The supplied pickup location is not valid"),
    "hold_not_found": (404, "not_found", "Hold not found."),
    # Koha would cancel; this member, like the seeds' libraries, takes those by phone or at the counter.
    "not_cancellable": (409, "not_cancellable", "Hold is being processed: cancel by phone or at the counter"),
}
# Koha's item fields for each ground-truth state; states Koha derives from other tables
# (a waiting hold, a transfer, a closed library) show only in the member's word.
_NOT_FOR_LOAN_STATUS = {Availability.LIBRARY_USE_ONLY: 1, Availability.NOT_FOR_LOAN: 2, Availability.ON_ORDER: -1}
_KOHA_HOLD_STATUS = {HoldState.SECURED: "P", HoldState.IN_TRANSIT: "T", HoldState.READY: "W", HoldState.COLLECTED: "F"}
_QUEUED = {HoldState.SUBMITTED, HoldState.WAITING}
_FINISHED = {HoldState.COLLECTED, HoldState.EXPIRED, HoldState.CANCELLED}


class _BadRequest(Exception):
    """A request Koha's OpenAPI validation would refuse with 400."""


@dataclass
class _Answer:
    status: int
    payload: Any = None  # None: no body (204)
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[web.Request, MemberSystem], Awaitable[_Answer]]


def add_routes(app: web.Application) -> None:
    app[ACCESS_LOG] = deque(maxlen=_ACCESS_LOG_SIZE)
    base = "/{member_id}/api/v1"
    app.router.add_get(f"{base}/biblios", _endpoint(_biblios))
    app.router.add_get(f"{base}/biblios/{{biblio_id}}/items", _endpoint(_items))
    app.router.add_get(f"{base}/biblios/{{biblio_id}}/pickup_locations", _endpoint(_pickup_locations))
    app.router.add_post(f"{base}/auth/password/validation", _endpoint(_validate_password))
    app.router.add_get(f"{base}/patrons", _endpoint(_patrons))
    app.router.add_get(f"{base}/checkouts", _endpoint(_checkouts))
    app.router.add_get(f"{base}/holds", _endpoint(_holds))
    app.router.add_post(f"{base}/holds", _endpoint(_place_hold))
    app.router.add_get(f"{base}/holds/{{hold_id}}", _endpoint(_get_hold))
    app.router.add_delete(f"{base}/holds/{{hold_id}}", _endpoint(_cancel_hold))
    app.router.add_put(f"{base}/holds/{{hold_id}}/pickup_location", _endpoint(_change_pickup))


def _endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Member lookup, access log, faults and error bodies around one API handler."""

    async def serve(request: web.Request) -> web.StreamResponse:
        request.app[ACCESS_LOG].append(f"{request.method} {request.path_qs}")
        system = request.app[MEMBERS].get(request.match_info["member_id"])
        if system is None or not system.spec.speaks(PROTOCOL):
            return _json(404, {"error": "Not found", "error_code": "not_found"})
        if (refusal := await before_answer(system)) is not None:
            return refusal
        faults = system.faults
        try:
            answer = await handler(request, system)
        except Refusal as refusal:
            answer = _refusal(system, refusal)
        except _BadRequest as bad:
            answer = _Answer(400, {"error": str(bad), "error_code": "invalid_request"})
        return await _deliver(request, answer, faults)

    return serve


# --- catalogue -------------------------------------------------------------------------


async def _biblios(request: web.Request, system: MemberSystem) -> _Answer:
    raw = request.query.get("q")
    try:
        cql = cql_from_query(orjson.loads(raw)) if raw else "cql.allRecords=1"
    except orjson.JSONDecodeError as error:
        raise _BadRequest(f"q is not JSON: {error}") from None
    page = _integer(request.query.get("_page"), 1, "_page")
    per_page = _integer(request.query.get("_per_page"), _DEFAULT_PER_PAGE, "_per_page")
    try:
        hits = system.search(cql)
    except CQLError as error:  # the CQL subset refused what the JSON query asked for
        raise _BadRequest(f"query not supported: {error}") from None
    embed_items = "items" in request.headers.get("x-koha-embed", "")
    page_hits = hits[(page - 1) * per_page : page * per_page]
    biblios = [_biblio(system.held[position], embed_items) for position in page_hits]
    return _Answer(200, biblios, {"X-Total-Count": str(len(hits))})


async def _items(request: web.Request, system: MemberSystem) -> _Answer:
    held = _work(request, system)
    return _Answer(200, [_item(held, copy) for copy in held.copies])


async def _pickup_locations(request: web.Request, system: MemberSystem) -> _Answer:
    _work(request, system)
    _card(system, request.query.get("patron_id"))
    # Koha: only the allowed libraries, or with `x-koha-override: any` every library, flagging
    # those its rules exclude with `needs_override`.
    override = request.headers.get("x-koha-override", "") == "any"
    libraries = [
        {"library_id": b.code, "name": b.name, "pickup_location": True, "needs_override": b.code not in system.ledger.pickup_codes}
        for b in system.spec.branches
    ]
    return _Answer(200, libraries if override else [lib for lib in libraries if not lib["needs_override"]])


def _work(request: web.Request, system: MemberSystem) -> HeldWork:
    biblio_id = request.match_info["biblio_id"]
    held = next((h for h in system.held if h.local_id == biblio_id), None)
    if held is None:
        raise Refusal("record_not_found", f"no biblio {biblio_id}")
    return held


def _biblio(held: HeldWork, embed_items: bool) -> dict[str, Any]:
    work = held.work
    biblio: dict[str, Any] = {
        "biblio_id": int(held.local_id),
        "title": work.title,
        "part_number": work.volume,
        "author": work.authors[0].heading if work.authors else None,
        "publisher": work.publisher,
        "publication_year": work.year,
        "copyright_date": work.year,
        "isbn": held.isbn_text,
        "edition_statement": work.edition,
    }
    if embed_items:
        biblio["items"] = [_item(held, copy) for copy in held.copies]
    return biblio


def _item(held: HeldWork, copy: Copy) -> dict[str, Any]:
    return {
        "item_id": int(copy.barcode),
        "biblio_id": int(held.local_id),
        "external_id": copy.barcode,
        "home_library_id": copy.branch.code,
        "holding_library_id": copy.at_branch.code,
        "callnumber": copy.call_number,
        "collection_code": copy.collection,
        "not_for_loan_status": _NOT_FOR_LOAN_STATUS.get(copy.availability, 0),
        "lost_status": 0,
        "withdrawn": 0,
        "checked_out_date": copy.due_date.isoformat() if copy.due_date else None,
        "public_notes": copy.status_word,  # 952$z: where this member writes its own status word
    }


def cql_from_query(node: Any) -> str:
    """Koha's JSON query (the subset `connectors.ils_rest` sends) as the sandbox's CQL."""
    if isinstance(node, list):  # SQL::Abstract: a list is OR
        return "(" + " or ".join(cql_from_query(n) for n in node) + ")" if node else _bad("empty list")
    if not isinstance(node, dict) or not node:
        return _bad(f"not a query: {node!r}")
    clauses = []
    for key, value in node.items():  # SQL::Abstract: the keys of one object are ANDed
        if key in ("-and", "-or"):
            if not isinstance(value, list) or not value:
                return _bad(f"{key} needs a non-empty list")
            clauses.append("(" + f" {key[1:]} ".join(cql_from_query(v) for v in value) + ")")
        elif key in _QUERY_INDEXES:
            clauses.append(f'{_QUERY_INDEXES[key]}="{_cql_escape(_term(value))}"')
        else:
            return _bad(f"unknown field {key}")
    return " and ".join(clauses)


_QUERY_INDEXES = {
    "title": "title",
    "author": "author",
    "isbn": "isbn",
    "publisher": "any",
    "publication_year": "year",
    "copyright_date": "year",
}


def _term(value: Any) -> str:
    if isinstance(value, int | str) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict) and set(value) == {"-like"} and isinstance(value["-like"], str):
        pattern = value["-like"].removeprefix("%")
        if pattern.endswith("%") and not pattern.endswith("\\%"):
            pattern = pattern[:-1]
        # Only %word% is supported: any other unescaped wildcard is a query the sandbox cannot run.
        unescaped = pattern.replace("\\\\", "").replace("\\%", "").replace("\\_", "")
        if "%" in unescaped or "_" in unescaped or not pattern:
            return _bad(f"unsupported LIKE pattern {value['-like']!r}")
        return pattern.replace("\\%", "%").replace("\\_", "_").replace("\\\\", "\\")
    return _bad(f"unsupported condition {value!r}")


def _cql_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*")


def _bad(message: str) -> str:
    raise _BadRequest(message)


# --- patrons ---------------------------------------------------------------------------


async def _validate_password(request: web.Request, system: MemberSystem) -> _Answer:
    body = await _body(request)
    card = str(body.get("identifier") or body.get("userid") or "")
    try:
        system.ledger.authenticate(card, str(body.get("password", "")))
    except Refusal:
        # Koha does not say whether the card or the password was wrong.
        raise Refusal("authentication_failed", "wrong card number or PIN") from None
    return _Answer(201, {"patron_id": _patron_ids(system)[card], "cardnumber": card, "userid": card})


async def _patrons(request: web.Request, system: MemberSystem) -> _Answer:
    card = request.query.get("cardnumber")
    if card is None:
        raise _BadRequest("this sandbox lists patrons by cardnumber only")
    patron = system.ledger.patrons.get(card)
    return _Answer(200, [_patron(system, patron)] if patron else [])


async def _checkouts(request: web.Request, system: MemberSystem) -> _Answer:
    card = _card(system, request.query.get("patron_id"))
    patron = system.ledger.patrons[card]
    embed_item = "item" in request.headers.get("x-koha-embed", "").split(",")
    today = system.ledger.today
    checkouts = []
    for number, record_id in enumerate(patron.loans, start=1):
        overdue = number <= patron.overdue
        due = today - timedelta(days=_OVERDUE_DAYS) if overdue else today + timedelta(days=_LOAN_DAYS)
        held = next((h for h in system.held if h.local_id == record_id), None)
        copy = held.copies[0] if held and held.copies else None
        checkout: dict[str, Any] = {
            "checkout_id": number,
            "patron_id": _patron_ids(system)[card],
            "item_id": int(copy.barcode) if copy else None,
            "due_date": f"{due.isoformat()}T23:59:00+09:00",
        }
        if embed_item and held and copy:
            checkout["item"] = _item(held, copy)
        checkouts.append(checkout)
    return _Answer(200, checkouts)


def _patron(system: MemberSystem, patron: SandboxPatron) -> dict[str, Any]:
    today = system.ledger.today
    return {
        "patron_id": _patron_ids(system)[patron.card_number],
        "cardnumber": patron.card_number,
        "library_id": system.spec.branches[0].code,
        "category_id": "PT",
        "expiry_date": (today - timedelta(days=1) if patron.card_expired else today + _CARD_VALIDITY).isoformat(),
        "restricted": bool(patron.overdue),  # Koha debars a patron with overdues (AutoRestrict)
    }


def _patron_ids(system: MemberSystem) -> dict[str, int]:
    return {card: number for number, card in enumerate(sorted(system.ledger.patrons), start=1)}


def _card(system: MemberSystem, patron_id: str | int | None) -> str:
    cards = {number: card for card, number in _patron_ids(system).items()}
    try:
        return cards[int(patron_id)]  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        raise Refusal("patron_not_found", f"no patron {patron_id}") from None


# --- holds -----------------------------------------------------------------------------


async def _holds(request: web.Request, system: MemberSystem) -> _Answer:
    card = _card(system, request.query.get("patron_id"))
    key = request.query.get("idempotency_key")
    if key is not None:
        found = system.ledger.find_by_key(card, key)
        return _Answer(200, [_hold_json(system, found)] if found else [])
    current = [h for h in system.ledger.holds_of(card) if h.state not in _FINISHED]  # Koha: reserves, not old_reserves
    return _Answer(200, [_hold_json(system, h) for h in current])


async def _place_hold(request: web.Request, system: MemberSystem) -> _Answer:
    body = await _body(request)
    biblio_id, item_id, pickup = body.get("biblio_id"), body.get("item_id"), body.get("pickup_library_id")
    if not isinstance(biblio_id, int) or not (item_id is None or isinstance(item_id, int)) or not isinstance(pickup, str):
        raise _BadRequest("biblio_id and item_id must be integers, pickup_library_id a string")
    card = _card(system, body.get("patron_id"))
    key = request.headers.get("Idempotency-Key")
    hold = system.ledger.place(card, str(biblio_id), None if item_id is None else str(item_id), pickup, key)
    await lose_answer(request, lost_answer_mode(system, "lose_hold_answer"))
    return _Answer(201, _hold_json(system, hold))


async def _get_hold(request: web.Request, system: MemberSystem) -> _Answer:
    return _Answer(200, _hold_json(system, _ledger_hold(request, system)))


async def _cancel_hold(request: web.Request, system: MemberSystem) -> _Answer:
    hold = _ledger_hold(request, system)
    system.ledger.cancel(hold.card_number, hold.hold_id)
    await lose_answer(request, lost_answer_mode(system, "lose_cancel_answer"))
    return _Answer(204)


# Koha's 409 error codes for a hold whose pickup can no longer move (update_pickup_location); Koha
# itself names only the first two, "hold_in_transit" is this member's word for its "T" status.
_PICKUP_FIXED = {HoldState.SECURED: "hold_in_processing", HoldState.IN_TRANSIT: "hold_in_transit", HoldState.READY: "hold_waiting"}


async def _change_pickup(request: web.Request, system: MemberSystem) -> _Answer:
    hold = _ledger_hold(request, system)
    code = (await _body(request)).get("pickup_library_id")
    if not isinstance(code, str):
        raise _BadRequest("pickup_library_id must be a string")
    if hold.state in _PICKUP_FIXED or hold.state in _FINISHED:
        return _Answer(409, {"error": "Cannot change pickup location", "error_code": _PICKUP_FIXED.get(hold.state)})
    try:
        system.ledger.change_pickup(hold.card_number, hold.hold_id, code)
    except Refusal as refused:
        if refused.code != "invalid_pickup":
            raise
        # As stock Koha: Koha::Exceptions::Hold::InvalidPickupLocation's text, no error_code.
        return _Answer(400, {"error": "The supplied pickup location is not valid"})
    await lose_answer(request, lost_answer_mode(system, "lose_pickup_answer"))
    return _Answer(200, {"pickup_library_id": code})


def _ledger_hold(request: web.Request, system: MemberSystem) -> SandboxHold:
    hold_ids = list(system.ledger.holds)  # Koha's integer ids: 1-based order of placement
    number = request.match_info["hold_id"]
    if not number.isdigit() or not 1 <= int(number) <= len(hold_ids):
        raise Refusal("hold_not_found", f"no hold {number}")
    return system.ledger.holds[hold_ids[int(number) - 1]]


def _hold_json(system: MemberSystem, hold: SandboxHold) -> dict[str, Any]:
    today = system.ledger.today.isoformat()
    ended = hold.state in (HoldState.CANCELLED, HoldState.EXPIRED)
    return {
        "hold_id": list(system.ledger.holds).index(hold.hold_id) + 1,
        "patron_id": _patron_ids(system)[hold.card_number],
        "biblio_id": int(hold.record_id),
        "item_id": int(hold.item_id) if hold.item_id else None,
        "pickup_library_id": hold.pickup_code,
        "priority": hold.queue_position if hold.state in _QUEUED else 0,
        "status": _KOHA_HOLD_STATUS.get(hold.state),
        "hold_date": today,
        "expiration_date": hold.ready_until.isoformat() if hold.ready_until else None,
        "cancellation_date": today if ended else None,
        "cancellation_reason": "EXPIRED" if hold.state is HoldState.EXPIRED else None,
        "idempotency_key": hold.idempotency_key,
    }


# --- answers ---------------------------------------------------------------------------


def _refusal(system: MemberSystem, refusal: Refusal) -> _Answer:
    if refusal.code == "patron_blocked":
        # The ledger refuses overdue and expired cards alike; Koha names which.
        expired = "card_expired" in refusal.message
        code = "expired" if expired else "restricted"
        return _Answer(403, {"error": f"Hold cannot be placed. Reason: {code}", "error_code": code})
    status, code, message = _REFUSALS[refusal.code]
    return _Answer(status, {"error": message, "error_code": code})


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as error:
        raise _BadRequest(f"body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise _BadRequest("body must be a JSON object")
    return body


def _integer(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise _BadRequest(f"{name} must be a positive integer")
    return int(raw)


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


async def _deliver(request: web.Request, answer: _Answer, faults: FaultConfig) -> web.StreamResponse:
    """Send an answer with the faults that act on the body itself (entity bombs are XML-only)."""
    if answer.payload is None:
        return web.Response(status=answer.status, headers=answer.headers)
    body = orjson.dumps(answer.payload)
    if faults.malformed_xml:
        body = body[: max(1, len(body) * 3 // 5)]  # cut mid-document: no parser recovers it
    if faults.wrong_charset:
        body = body.decode("utf-8", errors="ignore").encode("cp932", errors="xmlcharrefreplace")
    if faults.huge_body_mb:
        padding = int(faults.huge_body_mb * 1024 * 1024) - len(body)
        return await _stream(request, answer, [body, *_spaces(padding)], 0)
    if faults.slow_drip_s:
        steps = max(1, int(faults.slow_drip_s / _DRIP_INTERVAL_S))
        size = max(1, math.ceil(len(body) / steps))
        return await _stream(request, answer, [body[i : i + size] for i in range(0, len(body), size)], faults.slow_drip_s)
    return web.Response(status=answer.status, body=body, content_type="application/json", headers=answer.headers)


def _spaces(count: int, chunk: int = 64 * 1024) -> list[bytes]:
    # Whitespace after a JSON value is still valid JSON: a huge body that parses, if read whole.
    return [b" " * min(chunk, count - sent) for sent in range(0, max(0, count), chunk)]


async def _stream(request: web.Request, answer: _Answer, pieces: list[bytes], seconds: float) -> web.StreamResponse:
    response = web.StreamResponse(status=answer.status, headers={"Content-Type": "application/json", **answer.headers})
    await response.prepare(request)
    for piece in pieces:
        await response.write(piece)
        if seconds:
            await asyncio.sleep(seconds / len(pieces))
    await response.write_eof()
    return response
