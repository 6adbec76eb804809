"""GET /sru: the consortium as one SRU 1.2 / 2.0 target (explain, searchRetrieve).

A larger federation (a prefecture federating its consortia, pazpar2, another Yokodan)
searches the merged, deduplicated works with every member's holdings through the protocol
library systems already speak. The query is planned by broker/cql.py (OR as several
federated searches merged, NOT as a filter on the merged works) and run through the app's
`SearchService`; records are rendered by broker/sru_records.py.

Versions: `version=1.1`/`1.2` answers in the 1.2 (zing) namespaces, `version=2.0` or no
version in the OASIS 2.0 ones; any other version is diagnostic 5. An `operation` other
than explain/searchRetrieve is diagnostic 4; with no operation, a `query` means
searchRetrieve and its absence explain (SRU 2.0's rule, accepted for 1.x too).
Paging is over the merged works: each member is asked for its first `max_records`, the
works are merged and ranked once, and `startRecord`/`maximumRecords` slice that list
(a request for the next page runs the federated search again). Every answer is HTTP 200,
as SRU over GET expects; what each member did is in `extraResponseData` (member id,
state, reason, hits), never with the query in a log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from lxml import etree

from broker import cql as cql_plan
from broker.api import CONSORTIUM_KEY, NAMES_KEY, SEARCH_KEY
from broker.portals.access import principal_of
from broker.ranking import rank_works
from broker.search import SearchOutcome, SearchService
from broker.sru_records import DC_SCHEMA, MARCXML_SCHEMA, RENDERERS, SCHEMA_NAMES
from broker.views import DisplayNames
from connectors.cql import CQLError
from yokodan import Record, SearchQuery, TargetState, TargetStatus, Work

DEFAULT_MAXIMUM_RECORDS = 10
MAXIMUM_RECORDS_LIMIT = 50  # a larger maximumRecords is answered with this many (SRU lets a server cap it)
MEMBER_PAGE_SIZE = 100  # records asked of each member (its own max_records caps it further)
ALTERNATIVES_IN_FLIGHT = 3  # OR alternatives of one request searched at once

ZEEREX_NS = "http://explain.z3950.org/dtd/2.0/"
TARGETS_NS = "info:yokodan/sru/targets"


@dataclass(frozen=True, slots=True)
class Flavour:
    """The namespaces and element names of one SRU version's answers."""

    version: str
    response_ns: str
    diagnostic_ns: str
    escaping_element: str  # 1.2 recordPacking, 2.0 recordXMLEscaping
    escaping_param: str


SRU_12 = Flavour("1.2", "http://www.loc.gov/zing/srw/", "http://www.loc.gov/zing/srw/diagnostic/", "recordPacking", "recordPacking")
SRU_20 = Flavour(
    "2.0",
    "http://docs.oasis-open.org/ns/search-ws/sruResponse",
    "http://docs.oasis-open.org/ns/search-ws/diagnostic",
    "recordXMLEscaping",
    "recordXMLEscaping",
)
_FLAVOURS = {"1.1": SRU_12, "1.2": SRU_12, "2.0": SRU_20}


class SRUDiagnostic(CQLError):
    """A request the SRU server answers with a diagnostic instead of records (`code`: info:srw/diagnostic/1/N)."""


def add_sru_routes(app: web.Application) -> None:
    """/sru over GET (and HEAD) and POST (form-encoded, as SRU allows): explain and searchRetrieve."""
    app.router.add_get("/sru", sru_handler)
    app.router.add_post("/sru", sru_handler)


async def _params(request: web.Request) -> Mapping[str, str]:
    """The request's SRU parameters: the query string, and a POST's form fields over it."""
    if request.method != "POST":
        return request.query
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):  # not a form body (JSON, broken encoding): say so, lose nothing silently
        raise web.HTTPBadRequest(text="an SRU POST body is application/x-www-form-urlencoded parameters") from None
    return {**request.query, **{k: v for k, v in form.items() if isinstance(v, str)}}


async def sru_handler(request: web.Request) -> web.Response:
    params = await _params(request)
    requested_version = params.get("version")
    flavour = _FLAVOURS.get(requested_version or "2.0", SRU_12)
    echo_version = requested_version if requested_version in ("1.1", "1.2") else flavour.version
    operation = params.get("operation") or ("searchRetrieve" if "query" in params else "explain")
    root_name = "explainResponse" if operation == "explain" else "searchRetrieveResponse"
    try:
        if requested_version is not None and requested_version not in _FLAVOURS:
            raise SRUDiagnostic(5, "Unsupported version", "1.1, 1.2, 2.0")
        if operation == "explain":
            body = _explain(request, flavour, echo_version)
        elif operation == "searchRetrieve":
            body = await _search_retrieve(request, params, flavour, echo_version)
        else:
            raise SRUDiagnostic(4, "Unsupported operation", operation)
    except CQLError as exc:  # every diagnostic of the request (SRUDiagnostic is one)
        body = _diagnostic_response(root_name, flavour, echo_version, exc)
    return web.Response(
        body=etree.tostring(body, xml_declaration=True, encoding="UTF-8"), content_type="text/xml", charset="utf-8"
    )


# --- searchRetrieve ------------------------------------------------------------


def _positive_int(params: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SRUDiagnostic(6, "Unsupported parameter value", f"{name}={raw}") from None
    if value < minimum:
        raise SRUDiagnostic(6, "Unsupported parameter value", f"{name}={raw}")
    return value


def _schema(params: Mapping[str, str]) -> str:
    name = params.get("recordSchema")
    if not name:
        return MARCXML_SCHEMA
    schema = SCHEMA_NAMES.get(name) or SCHEMA_NAMES.get(name.lower())
    if schema is None:
        raise SRUDiagnostic(66, "Unknown schema for retrieval", name)
    return schema


def _escaping(params: Mapping[str, str], flavour: Flavour) -> str:
    value = params.get(flavour.escaping_param) or "xml"
    if value not in ("xml", "string"):
        raise SRUDiagnostic(71, "Unsupported record packing", value)
    return value


async def _search_retrieve(request: web.Request, params: Mapping[str, str], flavour: Flavour, version: str) -> etree._Element:
    query = params.get("query")
    if not query or not query.strip():
        raise SRUDiagnostic(7, "Mandatory parameter not supplied", "query")
    start = _positive_int(params, "startRecord", 1, minimum=1)
    maximum = min(_positive_int(params, "maximumRecords", DEFAULT_MAXIMUM_RECORDS, minimum=0), MAXIMUM_RECORDS_LIMIT)
    schema = _schema(params)
    escaping = _escaping(params, flavour)
    alternatives = cql_plan.plan(query, page_size=MEMBER_PAGE_SIZE)
    members = portal_members(request)  # a portal key limited to some members searches those only
    works, statuses = await federated_works(request.app[SEARCH_KEY], alternatives, members)
    if statuses and not any(s.state is TargetState.OK for s in statuses):
        # Zero hits would tell a federating client "nothing matches"; nobody was asked, really.
        failed = ", ".join(f"{s.member} {s.reason or s.state.value}" for s in statuses)
        raise SRUDiagnostic(1, "General system error", f"no member answered: {failed}")
    total = len(works)
    if maximum > 0 and total > 0 and start > total:
        raise SRUDiagnostic(61, "First record position out of range", str(start))
    page = works[start - 1 : start - 1 + maximum]

    root = etree.Element(_r(flavour, "searchRetrieveResponse"), nsmap={None: flavour.response_ns})
    etree.SubElement(root, _r(flavour, "version")).text = version
    etree.SubElement(root, _r(flavour, "numberOfRecords")).text = str(total)
    if page:
        names = request.app[NAMES_KEY]
        records = etree.SubElement(root, _r(flavour, "records"))
        for position, work in enumerate(page, start=start):
            records.append(_record(flavour, work, names, schema, escaping, position))
    if page and start + len(page) <= total:
        etree.SubElement(root, _r(flavour, "nextRecordPosition")).text = str(start + len(page))
    root.append(_targets(flavour, statuses))
    return root


def portal_members(request: web.Request) -> list[str] | None:
    key = principal_of(request).key
    return list(key.members) if key is not None and key.members else None


async def federated_works(
    service: SearchService, alternatives: Sequence[cql_plan.Alternative], members: Sequence[str] | None = None
) -> tuple[list[Work], list[TargetStatus]]:
    """Run each alternative as one federated search; merge their works into one ranked list."""
    runnable = [a for a in alternatives if a.query is not None]
    # Each alternative is a fan-out to every member: leave the members' operation slots
    # (8 each, broker.members) to other requests too.
    in_flight = asyncio.Semaphore(ALTERNATIVES_IN_FLIGHT)

    async def run(query: SearchQuery) -> SearchOutcome:
        async with in_flight:
            return await service.search(query, members or None)

    outcomes: list[SearchOutcome] = list(await asyncio.gather(*(run(a.query) for a in runnable if a.query is not None)))
    kept = [[w for w in o.works if cql_plan.keep(w, a.excluded)] for a, o in zip(runnable, outcomes)]
    statuses = _merged_statuses(outcomes)
    if len(outcomes) == 1:
        return kept[0], statuses
    if not outcomes:
        return [], statuses
    # Several searches: cluster their records once more, so a work found by two alternatives is one
    # work with each member's holdings once (the same record comes back from both searches).
    clusterer = service.clusterer_factory()
    seen: set[str] = set()
    unique: list[Record] = []
    for works in kept:
        for work in works:
            for record in work.records:
                # local_id may be a member's position fallback, which differs between searches
                key = record.model_dump_json(exclude={"local_id"})
                if key not in seen:
                    seen.add(key)
                    unique.append(record)
    clusterer.add(unique)
    return rank_works(clusterer.works(), outcomes[0].query, coordinates=service.coordinates), statuses


def _merged_statuses(outcomes: Sequence[SearchOutcome]) -> list[TargetStatus]:
    """One status per member: its first failure if any search failed there, else its first answer."""
    merged: dict[str, TargetStatus] = {}
    for outcome in outcomes:
        for status in outcome.statuses:
            current = merged.get(status.member)
            if current is None or (current.state is TargetState.OK and status.state is not TargetState.OK):
                merged[status.member] = status
    return list(merged.values())


def _record(flavour: Flavour, work: Work, names: DisplayNames, schema: str, escaping: str, position: int) -> etree._Element:
    record = etree.Element(_r(flavour, "record"))
    etree.SubElement(record, _r(flavour, "recordSchema")).text = schema
    etree.SubElement(record, _r(flavour, flavour.escaping_element)).text = escaping
    data = etree.SubElement(record, _r(flavour, "recordData"))
    payload = RENDERERS[schema](work, names)
    if escaping == "string":
        data.text = etree.tostring(payload, encoding="unicode")
    else:
        data.append(payload)
    etree.SubElement(record, _r(flavour, "recordPosition")).text = str(position)
    return record


def _targets(flavour: Flavour, statuses: Sequence[TargetStatus]) -> etree._Element:
    extra = etree.Element(_r(flavour, "extraResponseData"))
    targets = etree.SubElement(extra, f"{{{TARGETS_NS}}}targets", nsmap={"yk": TARGETS_NS})
    for status in statuses:
        target = etree.SubElement(targets, f"{{{TARGETS_NS}}}target", member=status.member, state=status.state.value)
        if status.reason:
            target.set("reason", status.reason)
        if status.hits is not None:
            target.set("hits", str(status.hits))
    return extra


# --- explain -------------------------------------------------------------------

# (title, the names a client may send as context-set.index)
_INDEXES = (
    ("title", (("dc", "title"),)),
    ("author", (("dc", "creator"), ("dc", "author"))),
    ("isbn", (("bath", "isbn"),)),
    ("any", (("cql", "serverChoice"), ("cql", "anywhere"))),
    ("year", (("dc", "date"), ("dc", "year"))),
)
_CONTEXT_SETS = (
    ("cql", "info:srw/cql-context-set/1/cql-v1.2"),
    ("dc", "info:srw/cql-context-set/1/dc-v1.1"),
    ("bath", "http://zing.z3950.org/cql/bath/2.0/"),
)


def _explain(request: web.Request, flavour: Flavour, version: str) -> etree._Element:
    consortium = request.app[CONSORTIUM_KEY]
    root = etree.Element(_r(flavour, "explainResponse"), nsmap={None: flavour.response_ns})
    etree.SubElement(root, _r(flavour, "version")).text = version
    record = etree.SubElement(root, _r(flavour, "record"))
    etree.SubElement(record, _r(flavour, "recordSchema")).text = ZEEREX_NS
    etree.SubElement(record, _r(flavour, flavour.escaping_element)).text = "xml"
    data = etree.SubElement(record, _r(flavour, "recordData"))
    explain = etree.SubElement(data, _z("explain"), nsmap={None: ZEEREX_NS})
    server = etree.SubElement(explain, _z("serverInfo"), protocol="SRU", version=flavour.version)
    etree.SubElement(server, _z("host")).text = request.url.host or "localhost"
    etree.SubElement(server, _z("port")).text = str(request.url.port or 80)
    etree.SubElement(server, _z("database")).text = "sru"
    database = etree.SubElement(explain, _z("databaseInfo"))
    etree.SubElement(database, _z("title"), lang="ja", primary="true").text = consortium.name
    etree.SubElement(database, _z("description"), lang="en").text = (
        f"Yokodan federated search of {len(consortium.members)} member library systems ({consortium.id}): "
        "merged works with every member's holdings in MARC 852"
    )
    index_info = etree.SubElement(explain, _z("indexInfo"))
    for name, identifier in _CONTEXT_SETS:
        etree.SubElement(index_info, _z("set"), name=name, identifier=identifier)
    for title, names in _INDEXES:
        index = etree.SubElement(index_info, _z("index"), search="true", scan="false", sort="false")
        etree.SubElement(index, _z("title")).text = title
        for context_set, index_name in names:
            etree.SubElement(etree.SubElement(index, _z("map")), _z("name"), set=context_set).text = index_name
    schema_info = etree.SubElement(explain, _z("schemaInfo"))
    for identifier, name, title in ((MARCXML_SCHEMA, "marcxml", "MARC21 slim, holdings in 852"), (DC_SCHEMA, "dc", "Dublin Core")):
        schema = etree.SubElement(schema_info, _z("schema"), identifier=identifier, name=name, sort="false", retrieve="true")
        etree.SubElement(schema, _z("title")).text = title
    config = etree.SubElement(explain, _z("configInfo"))
    etree.SubElement(config, _z("default"), type="numberOfRecords").text = str(DEFAULT_MAXIMUM_RECORDS)
    etree.SubElement(config, _z("setting"), type="maximumRecords").text = str(MAXIMUM_RECORDS_LIMIT)
    etree.SubElement(config, _z("default"), type="contextSet").text = "cql"
    etree.SubElement(config, _z("default"), type="index").text = "cql.serverChoice"
    etree.SubElement(config, _z("supports"), type="booleanOperators").text = "and or not"
    return root


# --- diagnostics ---------------------------------------------------------------


def _diagnostic_response(root_name: str, flavour: Flavour, version: str, error: CQLError) -> etree._Element:
    root = etree.Element(_r(flavour, root_name), nsmap={None: flavour.response_ns})
    etree.SubElement(root, _r(flavour, "version")).text = version
    if root_name == "searchRetrieveResponse":
        etree.SubElement(root, _r(flavour, "numberOfRecords")).text = "0"
    diagnostics = etree.SubElement(root, _r(flavour, "diagnostics"))
    diagnostic = etree.SubElement(diagnostics, f"{{{flavour.diagnostic_ns}}}diagnostic", nsmap={"diag": flavour.diagnostic_ns})
    etree.SubElement(diagnostic, f"{{{flavour.diagnostic_ns}}}uri").text = f"info:srw/diagnostic/1/{error.code}"
    if error.details:
        etree.SubElement(diagnostic, f"{{{flavour.diagnostic_ns}}}details").text = error.details
    etree.SubElement(diagnostic, f"{{{flavour.diagnostic_ns}}}message").text = error.message
    return root


def _r(flavour: Flavour, local: str) -> str:
    return f"{{{flavour.response_ns}}}{local}"


def _z(local: str) -> str:
    return f"{{{ZEEREX_NS}}}{local}"
