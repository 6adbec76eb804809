"""SRU 1.1/1.2/2.0 connector (searchRetrieve over HTTP GET, CQL).

Per-target behaviour is data (pazpar2-style): `connectors.options.SruOptions` names the
SRU version, record schema, CQL index names and extra parameters, with their defaults. `query_terms` says how the member
cuts text into terms, over connectors/query_terms.toml [sru].
Quirks handled for real servers (shared/catalogue-servers/README.md): maximumRecords
is always sent (Zebra's default is 0), nextRecordPosition may be absent, a 1.2
server answers in the zing namespace and a 2.0 server in the OASIS one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from lxml import etree
from yarl import URL

from yokodan.isbn import find_isbns
from yokodan import Availability, Diagnostic, Record, SearchQuery
from connectors.options import SruOptions
from yokodan.terms import DEFAULT_RULES, TermRules, member_terms
from connectors.settings import TargetSettings
from connectors.base import Capability, Connector, ReadAnswer, SearchResult
from connectors.dcndl import dcndl_record
from connectors.errors import ConnectorError, MalformedResponse, ProtocolDiagnostic, UnsupportedQuery
from connectors.http import HttpClient
from connectors.ingest_pool import (
    WORKER_MEMBER,
    IngestPool,
    PoolUnavailable,
    RecordCache,
    compact_diagnostics,
    compact_error,
    compact_record,
    diagnostics_from,
    raise_compact_error,
    records_from,
)
from connectors.marc import MARC_NS, MarcMapper, clean_isbd, flatten, is_katakana_reading
from connectors.offload import OFF_LOOP_PARSE_BYTES, parse_off_loop
from connectors.query_terms import term_rules
from connectors.status_words import StatusMapper
from connectors.xml import parse_xml

_SRW_NAMESPACES = ("http://www.loc.gov/zing/srw/", "http://docs.oasis-open.org/ns/search-ws/sruResponse")
_DIAG_NAMESPACES = ("http://www.loc.gov/zing/srw/diagnostic/", "http://docs.oasis-open.org/ns/search-ws/diagnostic")
_DC_NS = "http://purl.org/dc/elements/1.1/"
_MARC_RECORD = f"{{{MARC_NS}}}record"

# Diagnostics that say "this answer is empty because of the request" rather than "the
# member failed": 61 = first record position out of range.
_NON_FATAL_EMPTY = {"61"}


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def cql_term(value: str) -> str:
    """Quote a term for CQL; masking characters are escaped so patron text is literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for char in "*?^":
        escaped = escaped.replace(char, "\\" + char)
    return f'"{escaped}"'


def build_cql(query: SearchQuery, indexes: dict[str, str], rules: TermRules = DEFAULT_RULES) -> str:
    """Map a structured query onto CQL: each term of each field ANDed, like a catalogue's form.

    Text fields are cut into the terms the member can match (`yokodan.terms`): punctuation
    never reaches the member as part of a term (Zebra finds nothing for `title="(スリー)"`
    and something unrelated for `title="&"`). ISBNs and the year are identifiers, sent whole.
    """
    clauses: list[str] = []

    def put(field: str, terms: list[str]) -> None:
        if not terms:
            return
        index = indexes.get(field)
        if index is None:
            raise UnsupportedQuery(f"member has no index for {field}")
        clauses.extend(f"{index}={cql_term(term)}" for term in terms)

    put("text", member_terms(query.text, rules))
    put("title", member_terms(query.title, rules))
    put("author", member_terms(query.author, rules))
    put("isbn", (query.isbn or "").split())
    if query.year is not None:
        put("year", [str(query.year)])
    if not clauses:
        raise UnsupportedQuery("empty query")
    return " and ".join(clauses)


@dataclass(frozen=True, slots=True, eq=True)
class _SruDialect:
    """What decides a member's request query string, apart from the query: equal for every member
    configured alike (most of a consortium), so their requests share one cache entry."""

    version: str
    record_schema: str
    indexes: tuple[tuple[str, str], ...]
    extra_params: tuple[tuple[str, str], ...]
    rules: TermRules


# Per query, not per target: a 60-member search builds its CQL and percent-encodes it once per
# distinct dialect instead of 60 times (~30 µs each, measured at 0 hits). Bounded: queries
# recur (paging, second stage, popular titles) but the set of them does not.
@lru_cache(maxsize=512)
def _query_string(dialect: _SruDialect, query: SearchQuery | None, cql: str | None, start: int, maximum: int) -> str:
    """The encoded searchRetrieve query string (yarl's encoding, as aiohttp's `params=` sent it)."""
    if cql is None:
        assert query is not None
        cql = build_cql(query, dict(dialect.indexes), dialect.rules)
    params = {
        "operation": "searchRetrieve",
        "version": dialect.version,
        "query": cql,
        "startRecord": str(start),
        "maximumRecords": str(maximum),
        "recordSchema": dialect.record_schema,
        **dict(dialect.extra_params),
    }
    if dialect.version != "2.0":
        params["recordPacking"] = "xml"
    return URL("http://h/").with_query(params).raw_query_string


class SRUConnector(Connector):
    kind = "sru"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEARCH})
    uses_ingest_pool: ClassVar[bool] = True

    def __init__(self, settings: TargetSettings, http: HttpClient, *, ingest: IngestPool | None = None) -> None:
        super().__init__(settings, http)
        self.ingest = ingest  # the app's ingest workers and record cache; None: parse on the loop
        options = settings.options_as(SruOptions)
        self.version = options.sru_version
        self.record_schema = options.record_schema
        self.extra_params = dict(options.extra_params)
        self.term_rules = term_rules(self.kind, options.query_terms, member=settings.member)
        self.indexes = options.cql_indexes  # builds the request dialect (see the setter)
        # The endpoint's own query (rare) stays in front of ours, as aiohttp's params= kept it.
        endpoint = URL(settings.endpoint)
        self._url_head = str(endpoint.with_query(None).with_fragment(None)) + "?"
        self._endpoint_query = endpoint.raw_query_string
        self.mapper = MarcMapper(
            settings.member, settings.branch_codes, StatusMapper(settings.member, settings.status_words)
        )
        self._mapping_key = (
            tuple(sorted(settings.branch_codes.items())),
            tuple(sorted((word, state.value) for word, state in settings.status_words.items())),
            self.mapper.source_format,
        )

    @property
    def indexes(self) -> Mapping[str, str]:
        """SearchQuery field -> this member's CQL index (read-only: assign a new map to change it)."""
        return self._indexes

    @indexes.setter
    def indexes(self, indexes: Mapping[str, str]) -> None:
        self._indexes = MappingProxyType(dict(indexes))
        # Built once per configuration, not per request: its hash is the request cache's key.
        self._dialect = _SruDialect(
            self.version, self.record_schema, tuple(sorted(self._indexes.items())),
            tuple((k, str(v)) for k, v in self.extra_params.items()), self.term_rules,
        )

    async def search(self, query: SearchQuery) -> SearchResult:
        answer = await self.search_read(query)
        return answer.parse() if isinstance(answer, ReadAnswer) else answer

    async def search_read(self, query: SearchQuery) -> SearchResult | ReadAnswer:
        """The answer unparsed when it would be parsed on the loop (see `_parses_on_loop`), else parsed."""
        maximum = min(query.page_size, self.settings.max_records)
        response = await self.http.get(
            self.request_url(_query_string(self._dialect, query, None, query.start, maximum)),
            member=self.member, timeout_s=self.settings.timeout_s,
        )  # fmt: skip
        body = response.body
        if self._parses_on_loop(body):
            return ReadAnswer(partial(self.parse_response, body, start=query.start))
        return await self._ingest(body, query.start)

    async def search_cql(self, cql: str, *, start: int = 1, maximum: int = 20) -> SearchResult:
        return await self._search(_query_string(self._dialect, None, cql, start, maximum), start)

    def request_url(self, query_string: str) -> URL:
        """This member's searchRetrieve URL for an encoded query string (already encoded: yarl parses, never re-quotes)."""
        if self._endpoint_query:
            query_string = f"{self._endpoint_query}&{query_string}"
        return URL(self._url_head + query_string, encoded=True)

    async def _search(self, query_string: str, start: int) -> SearchResult:
        response = await self.http.get(
            self.request_url(query_string), member=self.member, timeout_s=self.settings.timeout_s
        )
        return await self._ingest(response.body, start)

    def parse_response(self, body: bytes, *, start: int = 1) -> SearchResult:
        return parse_sru(body, member=self.member, mapper=self.mapper, start=start)

    def _parses_on_loop(self, body: bytes) -> bool:
        """Whether `_ingest` would parse `body` on the event loop itself: small, and not for the pool
        (no pool, under its `min_bytes`, or neither workers nor cache)."""
        if len(body) >= OFF_LOOP_PARSE_BYTES:
            return False
        pool = self.ingest
        return pool is None or len(body) < pool.settings.min_bytes or not (pool.enabled or pool.cache.max_bytes)

    async def _ingest(self, body: bytes, start: int) -> SearchResult:
        """Parse + map `body`: on the loop for small answers, else via the app's ingest pool and cache."""
        pool = self.ingest
        if pool is None or len(body) < pool.settings.min_bytes or not (pool.enabled or pool.cache.max_bytes):
            return await parse_off_loop(self.parse_response, body, start=start)  # large bodies: a thread
        key = RecordCache.key(body, (self._mapping_key, start)) if pool.cache.max_bytes else None
        compact = pool.cache.get(key) if key is not None else None
        if compact is None:
            compact = await self._compact(pool, body, start)
            if key is not None and compact[0] == "ok":
                pool.cache.put(key, len(body), compact)
        if compact[0] == "error":
            raise_compact_error(compact, self.member)
        _, hits, records, diagnostics = compact
        result = SearchResult(records=records_from(records, self.member), hits=hits, diagnostics=diagnostics_from(diagnostics))
        self._count_unknown_words(result.records)
        return result

    async def _compact(self, pool: IngestPool, body: bytes, start: int) -> tuple[Any, ...]:
        if pool.enabled:
            try:
                return await pool.run(sru_compact, body, start, self._mapping_key)
            except PoolUnavailable:
                pool.inline_fallbacks += 1  # a worker died: this answer is parsed here instead
        return await parse_off_loop(sru_compact, body, start, self._mapping_key)

    def _count_unknown_words(self, records: list[Record]) -> None:
        """Words the worker could not classify, counted here, where the app's counter lives."""
        counter = self.mapper.status.unknown_words
        for record in records:
            for holding in record.holdings:
                if holding.availability is Availability.UNKNOWN and holding.status_text.strip():
                    counter.record(self.member, holding.status_text.strip())


def parse_sru(body: bytes, *, member: str, mapper: MarcMapper, start: int = 1) -> SearchResult:
    """One searchRetrieve answer -> SearchResult, or a named ConnectorError (any process: no loop state)."""
    root = parse_xml(body, member=member)
    name = etree.QName(root)
    namespace = name.namespace
    if namespace not in _SRW_NAMESPACES or name.localname != "searchRetrieveResponse":
        raise MalformedResponse(f"not an SRU searchRetrieveResponse: <{root.tag}>", member=member)
    # The response's few top-level elements in one pass (first of each kind, as find() took):
    # three ElementPath look-ups cost more than the rest of a 0-hit answer's parse.
    top: dict[str, etree._Element] = {}
    for child in root:
        top.setdefault(child.tag, child)
    number = top.get(_q(namespace, "numberOfRecords"))
    hits = _int_or_none(None if number is None else number.text or "")
    diagnostics = _diagnostics(top.get(_q(namespace, "diagnostics")))
    by_position: dict[int, Record] = {}
    marc_positions: list[int] = []
    surrogate: list[Diagnostic] = []
    container = top.get(_q(namespace, "records"))
    if container is not None:
        for position, wrapper in enumerate(container.iterchildren(_q(namespace, "record")), start=start):
            payload = _payload(wrapper.find(_q(namespace, "recordData")))
            if payload is None:
                continue
            kind = etree.QName(payload).localname
            if kind == "diagnostic":
                surrogate.extend(_diagnostics_from([payload]))
            elif kind == "dc":
                by_position[position] = _dublin_core_record(member, payload, f"{member}:{position}")
            elif kind == "RDF":  # DC-NDL (NDL Search, recordSchema=dcndl)
                by_position[position] = dcndl_record(payload, member, f"{member}:{position}")
            elif payload.tag == _MARC_RECORD or payload.find(f".//{_MARC_RECORD}") is not None:
                marc_positions.append(position)
            else:
                surrogate.append(Diagnostic(uri="info:srw/diagnostic/1/66", message=f"record schema <{kind}> not understood; record skipped"))
    if marc_positions:
        # One XSLT pass over the whole response (see connectors.marc).
        for position, flat in zip(marc_positions, flatten(root)):
            by_position[position] = mapper.record_from_flat(flat, f"{member}:{position}")
    records = [by_position[p] for p in sorted(by_position)]
    fatal = diagnostics and not records and (hits is None or not {d.code for d in diagnostics} <= _NON_FATAL_EMPTY)
    if fatal:
        raise ProtocolDiagnostic(diagnostics, member=member)
    return SearchResult(records=records, hits=hits, diagnostics=diagnostics + surrogate)


# Mappers a worker process built, by mapping key: each member configuration is built once per worker.
_WORKER_MAPPERS: dict[tuple[Any, ...], MarcMapper] = {}


def sru_compact(body: bytes, start: int, mapping_key: tuple[Any, ...]) -> tuple[Any, ...]:
    """`parse_sru` as compact tuples (connectors.ingest_pool), mapped for the placeholder member.

    Runs in an ingest worker (or inline when the pool is broken); `mapping_key` is
    (branch codes, status words, source format), everything the mapping needs but the member.
    """
    mapper = _WORKER_MAPPERS.get(mapping_key)
    if mapper is None:
        branch_codes, status_words, source_format = mapping_key
        status = StatusMapper(WORKER_MEMBER, dict(status_words))
        mapper = _WORKER_MAPPERS[mapping_key] = MarcMapper(WORKER_MEMBER, dict(branch_codes), status, source_format)
        if len(_WORKER_MAPPERS) > 4096:  # bounded: consortium files change, processes live long
            _WORKER_MAPPERS.pop(next(iter(_WORKER_MAPPERS)))
    try:
        result = parse_sru(body, member=WORKER_MEMBER, mapper=mapper, start=start)
    except ConnectorError as error:  # hostile, malformed, undecodable, a fatal diagnostic: named outcomes
        return compact_error(error)
    return ("ok", result.hits, tuple(compact_record(r) for r in result.records), compact_diagnostics(result.diagnostics))


def _payload(data: etree._Element | None) -> etree._Element | None:
    if data is None:
        return None
    for child in data:
        if isinstance(child.tag, str):
            return child
    return None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _diagnostics(container: etree._Element | None) -> list[Diagnostic]:
    if container is None:
        return []
    return _diagnostics_from(list(container))


def _diagnostics_from(elements: list[etree._Element]) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for element in elements:
        if not isinstance(element.tag, str):
            continue
        namespace = etree.QName(element).namespace
        ns = namespace if namespace in _DIAG_NAMESPACES else _DIAG_NAMESPACES[0]
        uri = element.findtext(_q(ns, "uri")) or "info:srw/diagnostic/1/1"
        found.append(
            Diagnostic(uri=uri.strip(), message=element.findtext(_q(ns, "message")), details=element.findtext(_q(ns, "details")))
        )
    return found


def _dublin_core_record(member: str, dc: etree._Element, fallback_id: str) -> Record:
    def values(name: str) -> list[str]:
        cleaned = (clean_isbd(e.text) for e in dc.iterchildren(_q(_DC_NS, name)))
        return [value for value in cleaned if value]

    isbns: list[str] = []
    invalid: list[str] = []
    local_id = ""
    for identifier in values("identifier"):
        upper = identifier.upper()
        if "ISBN" in upper:
            valid, bad = find_isbns(upper.replace("URN:ISBN:", " ").replace("ISBN", " "))
            isbns.extend(valid)
            invalid.extend(bad)
        elif not local_id:
            local_id = identifier
    dates = values("date")
    year = None
    if dates:
        digits = "".join(ch for ch in dates[0] if ch.isascii() and ch.isdigit())
        year = int(digits[:4]) if len(digits) >= 4 else None
    # Some servers (Zebra's MARC->DC stylesheet among them) add 880 readings as
    # extra dc:title / dc:creator elements; they are readings, not titles or authors.
    titles = [t for t in values("title") if not is_katakana_reading(t)] or values("title")
    creators = values("creator")
    authors = [c for c in creators if not is_katakana_reading(c)]
    readings = [c for c in creators if is_katakana_reading(c)]
    title_readings = [t for t in values("title") if is_katakana_reading(t)]
    publishers = values("publisher")
    return Record(
        member=member,
        local_id=local_id or fallback_id,
        title=titles[0] if titles else "[no title]",
        title_reading=title_readings[0] if title_readings and title_readings[0] != titles[0] else None,
        authors=authors or creators,
        author_readings=readings if authors else [],
        publisher=publishers[0] if publishers else None,
        year=year,
        isbns=list(dict.fromkeys(isbns)),
        isbn_invalid=invalid,
        volume=None,
        edition=None,
        material_type=Record.model_fields["material_type"].default,
        ndc=None,
        jpno=None,
        source_format="dc",
        holdings=[],
    )
