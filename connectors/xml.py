"""Safe parsing of member XML.

lxml's default parser expands internal entities (MEASUREMENTS.md), so a
billion-laughs body would eat the process. One hardened parser is shared: no
entity resolution, no DTD loading, no network, no huge-tree mode. No catalogue
protocol we speak needs a DTD, so any DOCTYPE is refused outright as a hostile
document rather than parsed around.
"""

from __future__ import annotations

from lxml import etree

from connectors.errors import HostileDocument, MalformedResponse, UndecodableResponse

_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)
# A DOCTYPE must precede the root element; looking at the head is enough to
# refuse the common bombs before lxml sees them. docinfo below catches the rest.
_PROLOG_SCAN_BYTES = 4096


def parse_xml(body: bytes, *, member: str) -> etree._Element:
    """Parse `body` into an element tree, or raise a named ConnectorError."""
    head = body[:_PROLOG_SCAN_BYTES]
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise HostileDocument("document declares a DTD or entities; refused", member=member)
    if not body.strip():
        raise MalformedResponse("empty body where XML was expected", member=member)
    try:
        root = etree.fromstring(body, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "encoding" in text.lower() or "not proper utf-8" in text.lower() or "utf-8" in text.lower():
            raise UndecodableResponse(f"body is not in its declared charset: {text}", member=member) from None
        raise MalformedResponse(f"malformed XML: {text}", member=member) from None
    if root is None:
        raise MalformedResponse("no XML root element", member=member)
    if root.getroottree().docinfo.doctype:
        raise HostileDocument("document declares a DTD; refused", member=member)
    return root
