"""DC-NDL (NDL's Dublin Core application profile) -> `Record`.

NDL Search sends DC-NDL twice over: as RDF/XML inside SRU `recordData`
(`recordSchema=dcndl`: `rdf:RDF` holding `dcndl:BibResource`s, values nested in
`rdf:Description`/`foaf:Agent` with `dcndl:transcription` readings and identifiers
typed by `rdf:datatype`), and flattened into OpenSearch RSS items (`xsi:type`,
`dcndl:titleTranscription`, see `connectors.opensearch`). The vocabulary both share
(identifier types, NDC editions, material types, NDL's date forms) lives here.
NDL is a union catalogue: a DC-NDL record carries no copy status, so no holdings.
"""

from __future__ import annotations

import re

from lxml import etree

from yokodan.isbn import find_isbns
from yokodan import MaterialType, Record, trusted
from connectors.marc import clean_isbd

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC_NS = "http://purl.org/dc/elements/1.1/"
DCTERMS_NS = "http://purl.org/dc/terms/"
DCNDL_NS = "http://ndl.go.jp/dcndl/terms/"
FOAF_NS = "http://xmlns.com/foaf/0.1/"

_RDF_ABOUT = f"{{{RDF_NS}}}about"
_RDF_RESOURCE = f"{{{RDF_NS}}}resource"
_RDF_DATATYPE = f"{{{RDF_NS}}}datatype"
_RDF_VALUE = f"{{{RDF_NS}}}value"
_BIB_RESOURCE = f"{{{DCNDL_NS}}}BibResource"
_TRANSCRIPTION = f"{{{DCNDL_NS}}}transcription"
_FOAF_NAME = f"{{{FOAF_NS}}}name"

# Best classification first: NDC10 and NDC9 are what Japanese public libraries shelve by.
NDC_EDITIONS = ("ndc10", "ndc9", "ndc8", "ndc")
# NDL publishes years as W3CDTF ('2008', '2005-11') or catalogue text ('2008.12', 'c2001.',
# '[2007]', '1972-1994'): the first four-digit run that is not part of a longer number.
_YEAR = re.compile(r"(?<![0-9])([12][0-9]{3})(?![0-9])")

# dcndl:materialType resource (last path segment) and OpenSearch <category> -> MaterialType.
# Labels of another facet ('GovernmentPublication', '紙', 'デジタル') are absent on purpose:
# they say nothing about the kind of material, so the record's next label decides.
MATERIAL_TYPES: dict[str, MaterialType] = {
    "Book": MaterialType.BOOK,
    "図書": MaterialType.BOOK,
    "Journal": MaterialType.SERIAL,
    "Newspaper": MaterialType.SERIAL,
    "雑誌": MaterialType.SERIAL,
    "新聞": MaterialType.SERIAL,
    "MovingImage": MaterialType.AUDIOVISUAL,
    "DVD": MaterialType.AUDIOVISUAL,
    "Sound": MaterialType.AUDIOVISUAL,
    "SoundDisc": MaterialType.AUDIOVISUAL,
    "Music": MaterialType.AUDIOVISUAL,
    "映像資料": MaterialType.AUDIOVISUAL,
    "録音資料": MaterialType.AUDIOVISUAL,
    "Map": MaterialType.MAP,
    "地図": MaterialType.MAP,
    "MusicScore": MaterialType.SCORE,
    "楽譜": MaterialType.SCORE,
    "ElectronicResource": MaterialType.ELECTRONIC,
    "電子資料": MaterialType.ELECTRONIC,
    "StillImage": MaterialType.OTHER,
    "Photograph": MaterialType.OTHER,
    "Painting": MaterialType.OTHER,
    "PicturePostcard": MaterialType.OTHER,
    "MicroForm": MaterialType.OTHER,
    "静止画資料": MaterialType.OTHER,
}


def year_of(text: str | None) -> int | None:
    match = _YEAR.search(text) if text else None
    return int(match.group(1)) if match else None


def local_id_of(uri: str | None) -> str:
    """'https://ndlsearch.ndl.go.jp/books/R100000002-I000009899346#material' -> 'R100000002-I000009899346'.

    The same id appears as the OpenSearch item's link and the SRU record's rdf:about,
    so one book found through either API keeps one id.
    """
    if not uri:
        return ""
    return uri.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def best_ndc(by_edition: dict[str, str]) -> str | None:
    return next((by_edition[e] for e in NDC_EDITIONS if by_edition.get(e)), None)


def _text(element: etree._Element) -> str:
    """An RDF property's literal: its text, or the rdf:value of a nested rdf:Description."""
    text = element.text
    if text and text.strip():
        return clean_isbd(text)
    for value in element.iter(_RDF_VALUE):
        return clean_isbd(value.text)
    return ""


def _reading(element: etree._Element) -> str:
    for reading in element.iter(_TRANSCRIPTION):
        return clean_isbd(reading.text)
    return ""


def _agent_name(element: etree._Element) -> str:
    for name in element.iter(_FOAF_NAME):
        return clean_isbd(name.text)
    return _text(element)


def _subject(element: etree._Element, by_edition: dict[str, str]) -> None:
    """NDC from 'http://id.ndl.go.jp/class/ndc9/007.1' or a literal typed '.../NDC8'."""
    resource = element.get(_RDF_RESOURCE)
    if resource:
        scheme, _, number = resource.removeprefix("http://id.ndl.go.jp/class/").partition("/")
        if number and scheme in NDC_EDITIONS:
            by_edition.setdefault(scheme, number)
        return
    datatype = element.get(_RDF_DATATYPE)
    if datatype and element.text:
        scheme = datatype.rsplit("/", 1)[-1].lower()
        if scheme in NDC_EDITIONS:
            by_edition.setdefault(scheme, element.text.strip())


# BibResource properties the mapper reads, by tag -> field: one dict lookup per property
# decides (NDL lists dozens of holding-library links and descriptions that are never read).
_DC, _DCNDL, _DCTERMS = f"{{{DC_NS}}}", f"{{{DCNDL_NS}}}", f"{{{DCTERMS_NS}}}"
_PROPERTIES = {
    f"{_DCTERMS}identifier": "identifier",
    f"{_DC}title": "title",
    f"{_DCTERMS}title": "full_title",
    f"{_DCTERMS}creator": "creator",
    f"{_DC}creator": "statement",
    f"{_DCTERMS}publisher": "publisher",
    f"{_DCTERMS}issued": "issued",
    f"{_DCTERMS}date": "date",
    f"{_DCNDL}volume": "volume",
    f"{_DCNDL}volumeTitle": "volume_title",  # a part's own title ('じゃらん' + '関東・東北'), as MARC 245$p
    f"{_DCNDL}edition": "edition",
    f"{_DCTERMS}subject": "subject",
    f"{_DC}subject": "subject",
    f"{_DCNDL}materialType": "material",
}


def dcndl_record(rdf: etree._Element, member: str, fallback_id: str = "") -> Record:
    """Map one DC-NDL `rdf:RDF` (as NDL's SRU sends it for recordSchema=dcndl) onto a Record.

    The bibliographic description is the first `dcndl:BibResource` with a title; NDL follows
    it with one of the same rdf:about that only links the holding libraries' records.
    """
    local_id = ""
    title = title_reading = full_title = statement = volume = volume_title = edition = publisher = jpno = ""
    date_text = issued_text = ""
    authors: list[str] = []
    author_readings: list[str] = []
    isbn_texts: list[str] = []
    ndc_by_edition: dict[str, str] = {}
    material: MaterialType | None = None

    for resource in rdf.iterchildren(_BIB_RESOURCE):
        local_id = local_id or local_id_of(resource.get(_RDF_ABOUT))
        for prop in resource:
            field = _PROPERTIES.get(prop.tag)  # None for unread properties (and entity nodes)
            if field is None:
                continue
            if field == "identifier":
                kind = (prop.get(_RDF_DATATYPE) or "").rsplit("/", 1)[-1]
                value = (prop.text or "").strip()
                if kind in ("ISBN", "ISBN13"):
                    isbn_texts.append(value)
                elif kind == "JPNO":
                    jpno = jpno or value
            elif field == "title":
                title = title or _text(prop)
                title_reading = title_reading or _reading(prop)
            elif field == "full_title":
                full_title = full_title or clean_isbd(prop.text)
            elif field == "creator":
                if name := _agent_name(prop):
                    authors.append(name)
                if reading := _reading(prop):
                    author_readings.append(reading)
            elif field == "statement":
                statement = statement or clean_isbd(prop.text)
            elif field == "publisher":
                publisher = publisher or _agent_name(prop)
            elif field == "issued":
                issued_text = issued_text or (prop.text or "")
            elif field == "date":
                date_text = date_text or (prop.text or "")
            elif field == "volume":
                volume = volume or _text(prop)
            elif field == "volume_title":
                volume_title = volume_title or _text(prop)
            elif field == "edition":
                edition = edition or _text(prop)
            elif field == "subject":
                _subject(prop, ndc_by_edition)
            elif material is None:  # field == "material"
                material = MATERIAL_TYPES.get((prop.get(_RDF_RESOURCE) or "").rsplit("/", 1)[-1])
        if title or full_title:
            break  # the description is read; NDL's further BibResources only link holding libraries

    isbns: list[str] = []
    invalid: list[str] = []
    for text in dict.fromkeys(isbn_texts):  # an ISBN given twice (typed ISBN and ISBN13) is parsed once
        valid, bad = find_isbns(text)
        isbns.extend(i for i in valid if i not in isbns)
        invalid.extend(b for b in bad if b not in invalid)
    return trusted(
        Record,
        {
            "member": member,
            "local_id": local_id or fallback_id,
            "title": title or full_title or "[no title]",
            "title_reading": title_reading or None,
            # A record without an authority heading still has its statement of responsibility.
            "authors": authors or ([statement] if statement else []),
            "author_readings": author_readings,
            "publisher": publisher or None,
            # dcterms:issued is W3CDTF; dcterms:date may be '明39' where issued says 1906.
            "year": year_of(issued_text) or year_of(date_text),
            "isbns": isbns,
            "isbn_invalid": invalid,
            "volume": volume or volume_title or None,
            "edition": edition or None,
            "material_type": material or MaterialType.BOOK,
            "ndc": best_ndc(ndc_by_edition),
            "jpno": jpno or None,
            "source_format": "dcndl",
            "holdings": [],
        },
    )
