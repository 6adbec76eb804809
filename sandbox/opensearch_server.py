"""NDL-Search-style OpenSearch at `/{member_id}/opensearch` for members with protocol "opensearch".

GET with NDL's parameter names: any, title, creator, isbn, from, until (YYYY[-MM[-DD]]),
cnt (default 200, at most 500, as NDL), idx (1-based start). The parameters are
translated to the sandbox's CQL subset, so OpenSearch and SRU members find the same
works for the same words. A request naming no search parameter, or a bad number, is
HTTP 400 (CiNii Books answers so; NDL's exact refusal is not recorded). Faults are
those of the SRU handler: latency, hang, forced status, random 500s, then the body
faults of `sandbox.faults.deliver`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from sandbox.cql import CQLError
from sandbox.faults import before_answer, deliver, error_page
from sandbox.member import MemberSystem
from sandbox.opensearch_rss import rss_item, rss_response
from sandbox.sru_server import MEMBERS

DEFAULT_COUNT = 200
MAXIMUM_COUNT = 500
# NDL parameter -> sandbox CQL index; years become range clauses.
_TEXT_INDEXES = {"any": "any", "title": "title", "creator": "author", "isbn": "isbn"}
_YEAR_RELATIONS = {"from": ">=", "until": "<="}

# Record-page base URL (host and member) -> serialised <item> per held position, filled on
# first use as MemberSystem.record does; keyed by URL because each item links to its page.
_ITEMS = web.AppKey("opensearch_items", dict[str, list[str | None]])


class _BadRequest(Exception):
    pass


def add_routes(app: web.Application) -> None:
    app[_ITEMS] = {}
    app.router.add_get("/{member_id}/opensearch", _opensearch)


def _quoted(value: str) -> str:
    """A CQL term matching the words literally (masking characters escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for char in "*?^":
        escaped = escaped.replace(char, "\\" + char)
    return f'"{escaped}"'


def to_cql(params: Mapping[str, str]) -> str:
    clauses = [
        f"{index}={_quoted(params[name])}" for name, index in _TEXT_INDEXES.items() if params.get(name, "").strip()
    ]
    for name, relation in _YEAR_RELATIONS.items():
        value = params.get(name, "").strip()
        if value:
            year = value[:4]
            if not (year.isascii() and year.isdigit()):
                raise _BadRequest(f"{name} must be YYYY, YYYY-MM or YYYY-MM-DD")
            clauses.append(f"year{relation}{year}")
    if not clauses:
        raise _BadRequest("no search parameter")
    return " and ".join(clauses)


def _number(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise _BadRequest(f"{name} must be a positive integer")
    return int(raw)


async def _opensearch(request: web.Request) -> web.StreamResponse:
    system = request.app[MEMBERS].get(request.match_info["member_id"])
    if system is None or system.spec.protocol != "opensearch":
        return error_page(404)
    if (refusal := await before_answer(system)) is not None:
        return refusal
    faults = system.faults
    try:
        body = _answer(request, system)
    except (_BadRequest, CQLError):
        return error_page(400)
    return await deliver(request, body, faults)


def _answer(request: web.Request, system: MemberSystem) -> bytes:
    params = {key: request.query.getone(key) for key in request.query}
    count = min(_number(params, "cnt", DEFAULT_COUNT), MAXIMUM_COUNT)
    start = _number(params, "idx", 1)
    hits = system.search(to_cql(params))
    page = hits[start - 1 : start - 1 + count]
    base = f"{request.scheme}://{request.host}/{system.id}/books/"
    cache = request.app[_ITEMS].setdefault(base, [None] * len(system.held))
    items = []
    for position in page:
        item = cache[position]
        if item is None:
            held = system.held[position]
            item = cache[position] = rss_item(held, base + held.local_id)
        items.append(item)
    return rss_response(
        title=f"{system.spec.name} OpenSearch",
        link=str(request.url),
        total=len(hits),
        start=start,
        count=len(items),
        items=items,
    )
