"""The sandbox's HTTP face: every member at `/{member_id}/sru`, SRU 1.2 over GET or POST.

Imitates Zebra (shared/catalogue-servers/README.md): HTTP 200 with SRU
diagnostics for every protocol problem, HTTP 404 with an HTML page for an
unknown database, unknown parameters refused with diagnostic 8. It departs from
Zebra where the broker brief asks: maximumRecords defaults to 10 (Zebra: 0) and
is capped at 100, nextRecordPosition is sent, an unknown recordSchema is a fatal
diagnostic 66 (Zebra: a surrogate diagnostic per record), and Content-Type
carries `charset=utf-8`.

`/_admin/...` lets tests change a member's faults at run time. Those routes are fault injection
without authentication, so they exist only in an app built with `admin=True` (`SandboxHost(admin=True)`,
`python -m sandbox --admin`), and `SandboxHost.start` refuses to serve them on a non-loopback address.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping
from datetime import date

from aiohttp import web

from yokodan import Availability
from pydantic import ValidationError

from sandbox.catalogue import Catalogue
from sandbox.cql import CQLError
from sandbox.faults import before_answer, deliver, error_page
from sandbox.member import MemberSystem
from sandbox.spec import FaultConfig, SandboxMember
from sandbox.sru_xml import (
    Diagnostic,
    diagnostic_only,
    explain_response,
    search_response,
)

MEMBERS = web.AppKey("members", dict[str, MemberSystem])
# Whether this app serves the unauthenticated `/_admin/...` routes (each protocol module adds its own).
ADMIN_ROUTES = web.AppKey("admin_routes", bool)

DEFAULT_MAXIMUM_RECORDS = 10
MAXIMUM_RECORDS_CAP = 100
_KNOWN_PARAMETERS = {
    "version",
    "operation",
    "query",
    "startRecord",
    "maximumRecords",
    "recordSchema",
    "recordPacking",
    "recordXPath",
    "resultSetTTL",
    "sortKeys",
    "stylesheet",
    "extraRequestData",
}
_SCHEMAS = {
    "marcxml": "marcxml",
    "marc21": "marcxml",
    "info:srw/schema/1/marcxml-v1.1": "marcxml",
    "dc": "dc",
    "info:srw/schema/1/dc-v1.1": "dc",
    "info:srw/schema/1/dc-schema": "dc",
}


def build_app(
    members: list[SandboxMember], catalogue: Catalogue, *, as_of: date | None = None, admin: bool = False
) -> web.Application:
    """An app serving every member; holdings are computed here, records serialised on first use.

    `admin=True` adds the fault-injection routes under `/_admin/` (tests only; see the module doc).
    """
    systems = {m.id: MemberSystem(m, catalogue, as_of) for m in members}
    if len(systems) != len(members):
        raise ValueError("sandbox member ids must be unique")
    app = web.Application()
    app[MEMBERS] = systems
    app[ADMIN_ROUTES] = admin
    if admin:
        app.router.add_get("/_admin/health", _health)
        app.router.add_get("/_admin/{member_id}/faults", _get_faults)
        app.router.add_put("/_admin/{member_id}/faults", _put_faults)
        app.router.add_get("/_admin/{member_id}/holds", _member_holds)
        app.router.add_get("/_admin/{member_id}/holdable", _holdable)
    # Other protocol families add their routes before the catch-all SRU ones
    # (each module owns its paths, e.g. /{member_id}/opensearch, /calil/check).
    for protocol in sorted({p for m in members for p in m.protocols} - {"sru"}):
        importlib.import_module(f"sandbox.{protocol}_server").add_routes(app)
    app.router.add_route("GET", "/{member_id}/sru", _sru)
    app.router.add_route("POST", "/{member_id}/sru", _sru)
    return app


async def _sru(request: web.Request) -> web.StreamResponse:
    received = time.perf_counter()
    system = request.app[MEMBERS].get(request.match_info["member_id"])
    if system is None:
        return error_page(404)  # Zebra: any database name it does not serve
    params = await _parameters(request)
    if (refusal := await before_answer(system)) is not None:
        return refusal
    faults = system.faults
    response = await deliver(request, _answer(system, params, request.host), faults)
    if not response.prepared:  # a dripped or huge body was sent already, headers first
        # When the answer was ready (perf_counter: CLOCK_MONOTONIC, the same clock in every process
        # on the host) and the handler's own time (W3C Server-Timing): bench/national.py tells from
        # them how late this process answered on a shared machine, which is not the broker's delay.
        ready = time.perf_counter()
        response.headers["Server-Timing"] = f"member;dur={(ready - received) * 1000:.2f}"
        response.headers["X-Sandbox-Ready"] = f"{ready:.6f}"
    return response


async def _parameters(request: web.Request) -> dict[str, str]:
    params = {key: request.query.getone(key) for key in request.query}
    if request.method == "POST":
        form = await request.post()
        params.update({key: str(form.getone(key)) for key in form})
    return params


def _answer(system: MemberSystem, params: Mapping[str, str], host: str) -> bytes:
    unknown = sorted(k for k in params if k not in _KNOWN_PARAMETERS and not k.startswith("x-"))
    if unknown:
        return diagnostic_only(8, unknown[0], params=params)
    if params.get("version", "1.2") not in ("1.1", "1.2"):
        return diagnostic_only(5, "1.2", params=params)
    operation = params.get("operation") or ("searchRetrieve" if "query" in params else "explain")
    if operation == "explain":
        return explain_response(
            host=host,
            database=f"{system.id}/sru",
            title=system.spec.name,
            default_records=DEFAULT_MAXIMUM_RECORDS,
            maximum_records=MAXIMUM_RECORDS_CAP,
        )
    if operation != "searchRetrieve":
        return diagnostic_only(4, operation, params=params)
    return _search_retrieve(system, params)


class _BadParameter(Exception):
    pass


def _integer(params: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParameter(name) from None
    if value < minimum:
        raise _BadParameter(name)
    return value


def _search_retrieve(system: MemberSystem, params: Mapping[str, str]) -> bytes:
    query = params.get("query")
    if query is None:
        return diagnostic_only(7, "query", params=params)
    try:
        start = _integer(params, "startRecord", 1, minimum=1)
        maximum = min(_integer(params, "maximumRecords", DEFAULT_MAXIMUM_RECORDS, minimum=0), MAXIMUM_RECORDS_CAP)
    except _BadParameter as bad:
        return diagnostic_only(6, str(bad), params=params)
    packing = params.get("recordPacking", "xml")
    if packing != "xml":
        return diagnostic_only(71, packing, params=params)
    requested_schema = params.get("recordSchema", "marcxml")
    schema = _SCHEMAS.get(requested_schema.lower())
    if schema is None:
        return diagnostic_only(66, requested_schema, params=params)
    try:
        hits = system.search(query)
    except CQLError as error:
        return search_response(
            params=params, hits=None, diagnostic=Diagnostic(error.code, error.details, error.message)
        )
    total = len(hits)
    if start > 1 and start > total:
        return search_response(params=params, hits=total, diagnostic=Diagnostic(61, str(start)))
    page = hits[start - 1 : start - 1 + maximum]
    records = [(start + offset, system.record(position, schema)) for offset, position in enumerate(page)]
    following = start + len(page)
    return search_response(
        params=params,
        hits=total,
        records=records,
        schema=schema,
        next_position=following if page and following <= total else None,
    )


# --- admin --------------------------------------------------------------------


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "members": sorted(request.app[MEMBERS].keys())})


async def _member_holds(request: web.Request) -> web.Response:
    """Every hold the member's own ledger has (chaos tests read the truth here, not the broker's)."""
    system = request.app[MEMBERS].get(request.match_info["member_id"])
    if system is None:
        return _problem(404, "unknown member", request.match_info["member_id"])
    holds = [
        {"hold_id": h.hold_id, "idempotency_key": h.idempotency_key, "record_id": h.record_id, "state": h.state.value}
        for h in system.ledger.holds.values()
    ]
    return web.json_response({"holds": holds})


async def _holdable(request: web.Request) -> web.Response:
    """Record ids with a copy on the shelf, in catalogue order (what a load test may hold)."""
    system = request.app[MEMBERS].get(request.match_info["member_id"])
    if system is None:
        return _problem(404, "unknown member", request.match_info["member_id"])
    records = [h.local_id for h in system.held if any(c.availability is Availability.AVAILABLE for c in h.copies)]
    return web.json_response({"records": records})


async def _get_faults(request: web.Request) -> web.Response:
    system = request.app[MEMBERS].get(request.match_info["member_id"])
    if system is None:
        return _problem(404, "unknown member", request.match_info["member_id"])
    return web.json_response(system.faults.model_dump())


async def _put_faults(request: web.Request) -> web.Response:
    system = request.app[MEMBERS].get(request.match_info["member_id"])
    if system is None:
        return _problem(404, "unknown member", request.match_info["member_id"])
    try:
        faults = FaultConfig.model_validate(await request.json())
    except json.JSONDecodeError as error:
        return _problem(400, "body is not JSON", str(error))
    except ValidationError as error:
        return _problem(400, "invalid fault configuration", str(error))
    system.set_faults(faults)
    return web.json_response(faults.model_dump())
