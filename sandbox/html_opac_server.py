"""Simulated HTML OPACs at `/{member_id}/opac/...` for members with protocol "html_opac".

`protocol_options`:
  style            "tos" (Shift_JIS ASP pages) or "wopc" (UTF-8 JSF pages); see sandbox.html_tos / html_wopc
  empty_available  "1": a tos library that leaves the status cell of an available copy empty
  session_ttl_s    seconds a login lasts (default 600)
  closed_pickup    "CODE,…": pickup points shown greyed out (disabled) in the hold form, as closed
Holds go through the member's `ledger`, so they follow the same rules as every
other protocol. The member's FaultConfig applies to every page: latency, hang,
forced status, random 500s, and on the body `malformed_xml` (a truncated page),
`wrong_charset` (bytes in another charset than the labels say), `slow_drip_s`
and `huge_body_mb`. `entity_bomb` has no HTML meaning and is ignored.

Admin (only in an app built with `admin=True`): POST /_admin/{member_id}/opac/expire-sessions ends every login at once;
GET /_admin/{member_id}/opac reports live sessions and hold placements received.
Tests may also set `OpacState.after_next_hold` (see sandbox.html_state).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web

from sandbox.accounts import Refusal
from sandbox.cql import CQLError
from sandbox.faults import before_answer, error_page
from sandbox.html_state import OpacState
from sandbox.html_style import OpacStyle, Operation
from sandbox.html_tos import TosStyle
from sandbox.html_wopc import WopcStyle
from sandbox.member import MemberSystem
from sandbox.spec import FaultConfig
from sandbox.sru_server import ADMIN_ROUTES, MEMBERS

OPAC_STATES = web.AppKey("opac_states", dict[str, OpacState])
STYLES: dict[str, OpacStyle] = {style.name: style for style in (TosStyle(), WopcStyle())}
DEFAULT_SESSION_TTL_S = 600.0
_DRIP_INTERVAL_S = 0.05
_PADDING = b"<!-- padding -->" * 4096


def add_routes(app: web.Application) -> None:
    states: dict[str, OpacState] = {}
    for member_id, system in app[MEMBERS].items():
        spec = system.spec
        if spec.protocol != "html_opac":
            continue
        style = spec.protocol_options.get("style", "tos")
        if style not in STYLES:
            raise ValueError(f"sandbox member {member_id}: unknown HTML OPAC style {style!r} (known: {sorted(STYLES)})")
        ttl = float(spec.protocol_options.get("session_ttl_s", DEFAULT_SESSION_TTL_S))
        states[member_id] = OpacState(ttl_s=ttl, works={h.local_id: h for h in system.held})
    app[OPAC_STATES] = states
    if app[ADMIN_ROUTES]:
        app.router.add_post("/_admin/{member_id}/opac/expire-sessions", _expire_sessions)
        app.router.add_get("/_admin/{member_id}/opac", _opac_status)
    app.router.add_route("GET", "/{member_id}/opac/{page:.+}", _handle)
    app.router.add_route("POST", "/{member_id}/opac/{page:.+}", _handle)


@dataclass
class _Answer:
    html: str
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class _Request:
    """One OPAC request, decoded the way the product decodes it."""

    http: web.Request
    system: MemberSystem
    state: OpacState
    style: OpacStyle
    params: dict[str, str]
    session_id: str | None

    @property
    def is_post(self) -> bool:
        return self.http.method == "POST"

    @property
    def card(self) -> str | None:
        return self.state.card_for(self.session_id)

    def view_state_ok(self) -> bool:
        field_name = self.style.view_state_field
        return field_name is None or not self.is_post or self.state.view_state_ok(self.params.get(field_name), self.session_id)

    def view_state(self) -> str | None:
        return self.state.issue_view_state(self.session_id) if self.style.view_state_field else None


async def _handle(request: web.Request) -> web.StreamResponse:
    member_id = request.match_info["member_id"]
    system = request.app[MEMBERS].get(member_id)
    state = request.app[OPAC_STATES].get(member_id)
    if system is None or state is None:
        return error_page(404)
    style = STYLES[system.spec.protocol_options.get("style", "tos")]
    operation = style.pages.get(request.match_info["page"])
    if operation is None:
        return error_page(404)
    state.served[operation] += 1  # what a client asked for (tests count a search's requests)
    if (refusal := await before_answer(system)) is not None:
        return refusal
    faults = system.faults
    params = await _params(request, style.codec)
    opac = _Request(request, system, state, style, params, request.cookies.get(style.session_cookie))
    answer = await _OPERATIONS[operation](opac)
    if isinstance(answer, web.StreamResponse):
        return answer
    return await _deliver(request, answer, style, faults)


async def _params(request: web.Request, codec: str) -> dict[str, str]:
    # Forms are percent-encoded in the page's charset: aiohttp's own decoding assumes UTF-8.
    pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, encoding=codec, errors="replace")
    if request.method == "POST":
        body = (await request.read()).decode("latin-1")
        pairs += parse_qsl(body, keep_blank_values=True, encoding=codec, errors="replace")
    return dict(pairs)


def _logged_out(opac: _Request) -> web.StreamResponse | _Answer:
    page = opac.style.expired_page()
    if page is not None:
        return _Answer(page)
    login = next(path for path, op in opac.style.pages.items() if op == "login")
    return web.Response(status=302, headers={"Location": f"/{opac.system.id}/opac/{login}?timeout=1"})


# --- operations -------------------------------------------------------------------------------------


def _cql_term(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for char in "*?^":
        escaped = escaped.replace(char, "\\" + char)
    return f'"{escaped}"'


async def _search(opac: _Request) -> _Answer:
    style = opac.style
    if not opac.view_state_ok():
        return _Answer(style.view_expired())
    clauses = [f"{index}={_cql_term(value)}" for name, index in style.query_params.items() if (value := opac.params.get(name, "").strip())]
    if not clauses:
        return _Answer(style.search_form(opac.view_state()))
    try:
        hits = opac.system.search(" and ".join(clauses))
    except CQLError:
        return _Answer(style.error("検索条件に誤りがあります。"))
    first = style.first_row(opac.params)
    rows = [opac.system.held[position] for position in hits[first : first + style.page_size]]
    return _Answer(style.results(len(hits), rows, first, opac.params, opac.view_state()))


async def _detail(opac: _Request) -> _Answer:
    held = opac.state.works.get(opac.params.get(opac.style.record_param, ""))
    if held is None:
        return _Answer(opac.style.error(opac.style.messages["record_not_found"]))
    empty_available = opac.style.name == "tos" and opac.system.spec.protocol_options.get("empty_available") == "1"
    return _Answer(opac.style.detail(held, empty_available))


async def _login(opac: _Request) -> _Answer:
    style = opac.style
    if not opac.is_post:
        return _Answer(style.login_form(opac.view_state(), timed_out="timeout" in opac.params))
    if not opac.view_state_ok():
        return _Answer(style.view_expired())
    card = opac.params.get(style.login_card, "")
    try:
        opac.system.ledger.authenticate(card, opac.params.get(style.login_pin, ""))
    except Refusal as refusal:
        return _Answer(style.login_form(opac.view_state(), error=style.messages[refusal.code]))
    return _Answer(style.login_done(), cookies={style.session_cookie: opac.state.open_session(card)})


async def _mypage(opac: _Request) -> web.StreamResponse | _Answer:
    card = opac.card
    if card is None:
        return _logged_out(opac)
    ledger = opac.system.ledger
    patron = ledger.patrons[card]
    loans = [held for record_id in patron.loans if (held := opac.state.works.get(record_id)) is not None]
    return _Answer(opac.style.mypage(patron, loans, len(ledger.holds_of(card))))


async def _hold(opac: _Request) -> web.StreamResponse | _Answer:
    style, state = opac.style, opac.state
    if opac.is_post:
        state.hold_posts += 1  # counted before the login check: a rejected placement was still sent
    card = opac.card
    if card is None:
        return _logged_out(opac)
    branches = opac.system.spec.branches
    if not opac.is_post:
        held = state.works.get(opac.params.get(style.record_param, ""))
        if held is None:
            return _Answer(style.error(style.messages["record_not_found"]))
        # The form offers the pickup points only, with the temporarily closed ones greyed out.
        pickup = [b for b in branches if b.code in opac.system.ledger.pickup_codes]
        closed = frozenset(filter(None, opac.system.spec.protocol_options.get("closed_pickup", "").split(",")))
        return _Answer(style.hold_form(held, pickup, opac.view_state(), closed))
    if not opac.view_state_ok():
        return _Answer(style.view_expired())
    record_id = opac.params.get(style.hold_record, "")
    try:
        hold = opac.system.ledger.place(
            card, record_id, opac.params.get(style.hold_item) or None, opac.params.get(style.hold_pickup, ""), None
        )
    except Refusal as refusal:
        return _Answer(style.error(style.messages[refusal.code]))
    after, state.after_next_hold = state.after_next_hold, None
    if after == "expire":  # placed, but the patron sees a logged-out answer
        state.expire_all()
        return _logged_out(opac)
    if after == "hang":  # placed, and the answer never comes
        await asyncio.Event().wait()
    pickup = next((b for b in branches if b.code == hold.pickup_code), None)
    return _Answer(style.hold_done(hold, state.works[record_id], pickup))


async def _holds(opac: _Request) -> web.StreamResponse | _Answer:
    style = opac.style
    card = opac.card
    if card is None:
        return _logged_out(opac)
    message = error = None
    if opac.is_post:
        if not opac.view_state_ok():
            return _Answer(style.view_expired())
        try:
            opac.system.ledger.cancel(card, opac.params.get(style.cancel_field, ""))
            message = style.cancelled_message
        except Refusal as refusal:
            error = style.messages[refusal.code]
    branches = {b.code: b for b in opac.system.spec.branches}
    rows = [(h, opac.state.works.get(h.record_id), branches.get(h.pickup_code)) for h in opac.system.ledger.holds_of(card)]
    return _Answer(style.holds(rows, opac.view_state(), message=message, error=error))


_OPERATIONS: dict[Operation, Callable[[_Request], Awaitable[web.StreamResponse | _Answer]]] = {
    "search": _search,
    "detail": _detail,
    "login": _login,
    "mypage": _mypage,
    "hold": _hold,
    "holds": _holds,
}


# --- delivery with body faults ----------------------------------------------------------------------


async def _deliver(request: web.Request, answer: _Answer, style: OpacStyle, faults: FaultConfig) -> web.StreamResponse:
    text = answer.html
    if faults.malformed_xml:
        text = text[: len(text) * 3 // 5]  # cut by characters: a truncated page, still decodable
    body = text.encode(style.wrong_codec if faults.wrong_charset else style.codec, errors="xmlcharrefreplace")
    response = web.StreamResponse(headers={"Content-Type": f"text/html; charset={style.charset_label}"})
    member_id = request.match_info["member_id"]
    for name, value in answer.cookies.items():
        response.set_cookie(name, value, path=f"/{member_id}/opac/", httponly=True)
    await response.prepare(request)
    if faults.huge_body_mb:
        # Padding streamed inside the page as it is sent, never built in memory.
        cut = body.rfind(b"</body>")
        await response.write(body[:cut])
        for _ in range(math.ceil(faults.huge_body_mb * 1024 * 1024 / len(_PADDING))):
            await response.write(_PADDING)
        body = body[cut:]
    if faults.slow_drip_s:
        size = max(1, math.ceil(len(body) * _DRIP_INTERVAL_S / faults.slow_drip_s))
        for start in range(0, len(body), size):
            await response.write(body[start : start + size])
            await asyncio.sleep(_DRIP_INTERVAL_S)
    else:
        await response.write(body)
    await response.write_eof()
    return response


# --- admin ------------------------------------------------------------------------------------------


def _state(request: web.Request) -> OpacState:
    state = request.app[OPAC_STATES].get(request.match_info["member_id"])
    if state is None:
        raise web.HTTPNotFound(text=f"no HTML OPAC member {request.match_info['member_id']!r}")
    return state


async def _expire_sessions(request: web.Request) -> web.Response:
    return web.json_response({"expired": _state(request).expire_all()})


async def _opac_status(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response({"sessions": len(state.sessions), "hold_posts": state.hold_posts})
