"""NDL-Search-style OpenSearch answers: RSS 2.0 with DC-NDL elements per item.

The shape follows real NDL Search responses (shared/data/opac_fixtures/enju_vcr_bodies,
`ndlsearch.ndl.go.jp/api/opensearch`): the title without the volume in dc:title,
the volume in dcndl:volume, readings in dcndl:*Transcription, identifiers typed by
xsi:type, the NDC edition in the subject's xsi:type. Like NDL, no copy status: an
OpenSearch member is a catalogue, not a circulation system.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import escape

from yokodan import MaterialType
from sandbox.holdings import HeldWork

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NAMESPACES = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:openSearch="http://a9.com/-/spec/opensearchrss/1.0/" '
    'xmlns:dcndl="http://ndl.go.jp/dcndl/terms/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
# NDL's first <category> names the kind of material.
_CATEGORIES = {
    MaterialType.BOOK: "図書",
    MaterialType.SERIAL: "雑誌",
    MaterialType.AUDIOVISUAL: "映像資料",
    MaterialType.MAP: "地図",
    MaterialType.SCORE: "楽譜",
    MaterialType.ELECTRONIC: "電子資料",
    MaterialType.OTHER: "その他",
}


def _element(name: str, value: str | None, xsi_type: str | None = None) -> str:
    if not value:
        return ""
    typed = f' xsi:type="{xsi_type}"' if xsi_type else ""
    return f"<{name}{typed}>{escape(value)}</{name}>"


def rss_item(held: HeldWork, link: str) -> str:
    """One held work as an NDL OpenSearch <item>; `link` is the record's page."""
    work = held.work
    headings = [a.heading for a in work.authors]
    parts = [
        _element("title", work.title),
        _element("link", link),
        _element("author", ",".join(headings)),
        _element("category", _CATEGORIES[work.material_type]),
        f'<guid isPermaLink="true">{escape(link)}</guid>',
        _element("dc:title", work.title),
        _element("dcndl:titleTranscription", held.title_reading),
    ]
    for author in work.authors:
        parts.append(_element("dc:creator", author.heading))
    parts += [_element("dcndl:creatorTranscription", a.reading) for a in work.authors]
    parts += [
        _element("dcndl:volume", work.volume),
        _element("dcndl:edition", work.edition),
        _element("dc:publisher", work.publisher),
        _element("dc:date", str(work.year), "dcterms:W3CDTF"),
        _element("dcterms:issued", str(work.year)),
        _element("dc:identifier", held.isbn_text, "dcndl:ISBN"),
        _element("dc:identifier", held.local_id, "dcndl:NDLBibID"),
        _element("dc:subject", work.ndc, "dcndl:NDC9"),
    ]
    return f"<item>{''.join(parts)}</item>"


def rss_response(*, title: str, link: str, total: int, start: int, count: int, items: Iterable[str]) -> bytes:
    channel = (
        f"<title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>Search results for {escape(title)}</description><language>ja</language>"
        f"<openSearch:totalResults>{total}</openSearch:totalResults>"
        f"<openSearch:startIndex>{start}</openSearch:startIndex>"
        f"<openSearch:itemsPerPage>{count}</openSearch:itemsPerPage>"
    )
    body = f'<rss {_NAMESPACES} version="2.0"><channel>{channel}{"".join(items)}</channel></rss>\n'
    return (XML_DECLARATION + body).encode()
