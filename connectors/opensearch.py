"""OpenSearch connector: NDL Search (RSS 2.0 + DC-NDL) and CiNii Books (RSS 1.0).

One GET per search, URL parameters named per member (`connectors.options.OpenSearchOptions`:
params, paging, extra_params; NDL's names by default, CiNii's given in its settings).
`query_terms` says how text is cut into terms (over connectors/query_terms.toml [opensearch]);
the terms of one field go out space-separated, punctuation left out.
The answer is RSS 2.0 (`<rss><channel><item>`) or RSS 1.0 (`<rdf:RDF>` with `<item>`s
beside the channel); the total is `openSearch:totalResults` in either OpenSearch namespace.
Items map onto `Record` without holdings: both services are union catalogues.
"""

from __future__ import annotations

from typing import ClassVar

from lxml import etree

from yokodan.isbn import find_isbns
from yokodan import MaterialType, Record, SearchQuery, trusted
from connectors.options import OpenSearchOptions
from yokodan.terms import member_terms
from connectors.settings import TargetSettings
from connectors.base import Capability, Connector, SearchResult
from connectors.dcndl import (
    DC_NS,
    DCNDL_NS,
    DCTERMS_NS,
    MATERIAL_TYPES,
    RDF_NS,
    best_ndc,
    local_id_of,
    year_of,
)
from connectors.errors import MalformedResponse, UnsupportedQuery
from connectors.http import HttpClient
from connectors.marc import clean_isbd
from connectors.query_terms import term_rules
from connectors.xml import parse_xml

_OPENSEARCH_NAMESPACES = ("http://a9.com/-/spec/opensearchrss/1.0/", "http://a9.com/-/spec/opensearch/1.1/")
_RSS1_NS = "http://purl.org/rss/1.0/"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_PRISM_NS = "http://prismstandard.org/namespaces/basic/2.0/"

# Item children the mapper reads, by tag -> field: one dict lookup per child decides, since
# NDL sends dozens of rdfs:seeAlso and an HTML description per item that are never read.
_DC, _DCNDL, _DCTERMS = f"{{{DC_NS}}}", f"{{{DCNDL_NS}}}", f"{{{DCTERMS_NS}}}"
_ITEM_FIELDS = {
    f"{_DC}identifier": "identifier",
    f"{_DC}title": "dc_title",
    "title": "title",
    f"{{{_RSS1_NS}}}title": "title",
    f"{_DCNDL}titleTranscription": "title_reading",
    f"{_DC}creator": "creator",
    f"{_DCNDL}creatorTranscription": "creator_reading",
    f"{_DC}publisher": "publisher",
    f"{_DCTERMS}issued": "issued",
    f"{_DC}date": "date",
    f"{{{_PRISM_NS}}}publicationDate": "date",
    f"{_DC}subject": "subject",
    f"{_DCNDL}volume": "volume",
    f"{_DCNDL}edition": "edition",
    "category": "category",
    f"{_DCTERMS}hasPart": "has_part",  # CiNii: <dcterms:hasPart rdf:resource="urn:isbn:…"/>
    "link": "link",
    "guid": "link",
    f"{{{_RSS1_NS}}}link": "link",
}
_RDF_ABOUT = f"{{{RDF_NS}}}about"
_RDF_RESOURCE = f"{{{RDF_NS}}}resource"


class OpenSearchConnector(Connector):
    kind = "opensearch"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEARCH})

    def __init__(self, settings: TargetSettings, http: HttpClient) -> None:
        super().__init__(settings, http)
        options = settings.options_as(OpenSearchOptions)
        self.params: dict[str, str | None] = dict(options.params)
        self.paging = options.paging
        self.extra_params = dict(options.extra_params)
        self.term_rules = term_rules(self.kind, options.query_terms, member=settings.member)

    def build_params(self, query: SearchQuery, count: int) -> dict[str, str]:
        """URL parameters for `query`; fields the member has no parameter for raise UnsupportedQuery."""
        terms: dict[str, str] = {}

        def put(field: str, value: str | None) -> None:
            if not value:
                return
            name = self.params.get(field)
            if not name:
                raise UnsupportedQuery(f"member has no search parameter for {field}", member=self.member)
            terms[name] = value

        put("text", " ".join(member_terms(query.text, self.term_rules)))
        put("title", " ".join(member_terms(query.title, self.term_rules)))
        put("author", " ".join(member_terms(query.author, self.term_rules)))
        put("isbn", query.isbn)
        if query.year is not None:
            put("year_from", str(query.year))
            put("year_until", str(query.year))
        if not terms:
            raise UnsupportedQuery("empty query", member=self.member)
        params = {**self.extra_params, **terms}
        # Paging parameters are optional: a member without them answers its default page.
        if count_name := self.params.get("count"):
            params[count_name] = str(count)
        if start_name := self.params.get("start"):
            params[start_name] = str(query.start if self.paging == "index" else (query.start - 1) // count + 1)
        return params

    async def search(self, query: SearchQuery) -> SearchResult:
        count = min(query.page_size, self.settings.max_records)
        response = await self.http.get(
            self.settings.endpoint,
            member=self.member,
            timeout_s=self.settings.timeout_s,
            params=self.build_params(query, count),
        )
        # A page holds `count` items from ((p - 1) * count + 1): those before `start` are dropped.
        skipped = (query.start - 1) % count if self.paging == "page" else 0
        result = self.parse_response(response.body, start=query.start - skipped)
        del result.records[:skipped]
        return result

    def parse_response(self, body: bytes, *, start: int = 1) -> SearchResult:
        root = parse_xml(body, member=self.member)
        if root.tag == "rss":  # RSS 2.0: items inside the channel
            channel = root.find("channel")
            if channel is None:
                raise MalformedResponse("RSS without a channel", member=self.member)
            items = channel.iterchildren("item")
        elif root.tag == f"{{{RDF_NS}}}RDF":  # RSS 1.0: items beside the channel
            channel = root.find(f"{{{_RSS1_NS}}}channel")
            if channel is None:
                raise MalformedResponse("RSS 1.0 without a channel", member=self.member)
            items = root.iterchildren(f"{{{_RSS1_NS}}}item")
        else:
            raise MalformedResponse(f"not an OpenSearch RSS answer: <{root.tag}>", member=self.member)
        hits = _total(channel)
        records = [
            opensearch_record(item, self.member, f"{self.member}:{position}")
            for position, item in enumerate(items, start=start)
        ]
        return SearchResult(records=records, hits=hits)


def _total(channel: etree._Element) -> int | None:
    for namespace in _OPENSEARCH_NAMESPACES:
        text = channel.findtext(f"{{{namespace}}}totalResults")
        if text is not None:
            try:
                return int(text)
            except ValueError:
                return None
    return None


def opensearch_record(item: etree._Element, member: str, fallback_id: str = "") -> Record:
    """Map one RSS item (NDL's DC-NDL-in-RSS or CiNii's RSS 1.0) onto a Record."""
    link = item.get(_RDF_ABOUT) or ""  # RSS 1.0 names the item; RSS 2.0 has link/guid
    dc_title = rss_title = title_reading = publisher = volume = edition = jpno = ""
    issued_text = date_text = ""
    authors: list[str] = []
    author_readings: list[str] = []
    isbn_texts: list[str] = []
    ndc_by_edition: dict[str, str] = {}
    material: MaterialType | None = None

    for child in item:
        field = _ITEM_FIELDS.get(child.tag)  # None for unread elements (and for entity nodes' non-str tags)
        if field is None:
            continue
        text = child.text
        if field == "identifier":
            kind = (child.get(_XSI_TYPE) or "").rpartition(":")[2]
            if kind in ("ISBN", "ISBN13"):
                isbn_texts.append(text or "")
            elif kind == "JPNO":
                jpno = jpno or (text or "").strip()
        elif field == "dc_title":
            dc_title = dc_title or clean_isbd(text)
        elif field == "title":
            rss_title = rss_title or clean_isbd(text)
        elif field == "title_reading":
            title_reading = title_reading or clean_isbd(text)
        elif field == "creator":
            if name := clean_isbd(text):
                authors.append(name)
        elif field == "creator_reading":
            if reading := clean_isbd(text):
                author_readings.append(reading)
        elif field == "publisher":
            publisher = publisher or clean_isbd(text)
        elif field == "issued":
            issued_text = issued_text or (text or "")
        elif field == "date":
            date_text = date_text or (text or "")
        elif field == "subject":
            scheme = (child.get(_XSI_TYPE) or "").rpartition(":")[2].lower()
            if scheme and text:
                ndc_by_edition.setdefault(scheme, text.strip())
        elif field == "volume":
            volume = volume or clean_isbd(text)
        elif field == "edition":
            edition = edition or clean_isbd(text)
        elif field == "category":
            material = material or MATERIAL_TYPES.get((text or "").strip())
        elif field == "has_part":
            resource = child.get(_RDF_RESOURCE) or ""
            if resource.lower().startswith("urn:isbn:"):
                isbn_texts.append(resource[9:])
        elif not link:  # field == "link"
            link = (text or "").strip()

    isbns: list[str] = []
    invalid: list[str] = []
    for text in dict.fromkeys(isbn_texts):  # NDL repeats one ISBN as ISBN and ISBN13; parse it once
        valid, bad = find_isbns(text)
        isbns.extend(i for i in valid if i not in isbns)
        invalid.extend(b for b in bad if b not in invalid)
    return trusted(
        Record,
        {
            "member": member,
            "local_id": local_id_of(link) or fallback_id,
            "title": dc_title or rss_title or "[no title]",
            "title_reading": title_reading or None,
            "authors": authors,
            "author_readings": author_readings,
            "publisher": publisher or None,
            # NDL: dcterms:issued '2005.11' beside dc:date '2005'; CiNii: dc:date / prism:publicationDate.
            "year": year_of(issued_text) or year_of(date_text),
            "isbns": isbns,
            "isbn_invalid": invalid,
            "volume": volume or None,
            "edition": edition or None,
            "material_type": material or MaterialType.BOOK,
            "ndc": best_ndc(ndc_by_edition),
            "jpno": jpno or None,
            "source_format": "opensearch",
            "holdings": [],
        },
    )
