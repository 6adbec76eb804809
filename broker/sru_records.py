"""Merged works as SRU records: MARC21 slim (MARCXML) with one 852 per holding, and Dublin Core.

MARCXML, what a library system reading us needs:
  001 the work id; 020 $a each ISBN; 100 $a the first author, 700 $a the others;
  245 $a title ($n volume); 264 _1 $b publisher $c year (RDA) and 008/07-10 the year;
  852 one per holding: $a the branch's name (the member's name and its own location label
      when the location maps to no branch), $b collection, $h call number, $p item id,
      $z the member's own status word, $x our availability (`available`, `on_loan` …).
$z carries the member's word as sent, so a federating broker maps it with its own status
vocabulary, the way it maps any member's; $x is our reading of it for clients that prefer ours.
A holding with no word of its own (an OPAC showing an empty cell for "available") gets our
availability in $z too, so $z is never empty.
"""

from __future__ import annotations

from lxml import etree

from broker.views import DisplayNames
from yokodan import Holding, Work

MARC_NS = "http://www.loc.gov/MARC21/slim"
DC_NS = "http://purl.org/dc/elements/1.1/"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"

MARCXML_SCHEMA = "info:srw/schema/1/marcxml-v1.1"
DC_SCHEMA = "info:srw/schema/1/dc-v1.1"
# Names a client may send for each schema (the short names are what YAZ and most ILSs use).
SCHEMA_NAMES = {
    "marcxml": MARCXML_SCHEMA,
    "marc21": MARCXML_SCHEMA,
    "marc": MARCXML_SCHEMA,
    MARCXML_SCHEMA: MARCXML_SCHEMA,
    "dc": DC_SCHEMA,
    DC_SCHEMA: DC_SCHEMA,
}


def _m(local: str) -> str:
    return f"{{{MARC_NS}}}{local}"


def _datafield(record: etree._Element, tag: str, subfields: list[tuple[str, str | None]], ind2: str = " ") -> None:
    present = [(code, value) for code, value in subfields if value]
    if not present:
        return
    field = etree.SubElement(record, _m("datafield"), tag=tag, ind1=" ", ind2=ind2)
    for code, value in present:
        etree.SubElement(field, _m("subfield"), code=code).text = value


def holding_location(holding: Holding, names: DisplayNames) -> str:
    """852 $a: the branch's name, or the member's name and its own label for an unmapped location."""
    if holding.branch_id and holding.branch_id in names.branches:
        return names.branches[holding.branch_id]
    member = names.members.get(holding.member, holding.member)
    return f"{member} {holding.location}" if holding.location else member


def marcxml(work: Work, names: DisplayNames) -> etree._Element:
    record = etree.Element(_m("record"), nsmap={None: MARC_NS})
    etree.SubElement(record, _m("leader")).text = "     nam a22     4i 4500"
    etree.SubElement(record, _m("controlfield"), tag="001").text = work.work_id
    year = f"{work.year:04d}" if work.year is not None else "    "
    etree.SubElement(record, _m("controlfield"), tag="008").text = f"      s{year}    ja            000 0 jpn d"
    for isbn in work.isbns:
        _datafield(record, "020", [("a", isbn)])
    if work.authors:
        _datafield(record, "100", [("a", work.authors[0])])
    _datafield(record, "245", [("a", work.title), ("n", work.volume)])
    _datafield(record, "264", [("b", work.publisher), ("c", str(work.year) if work.year is not None else None)], ind2="1")
    for author in work.authors[1:]:
        _datafield(record, "700", [("a", author)])
    for holding in work.holdings:
        _datafield(
            record,
            "852",
            [
                ("a", holding_location(holding, names)),
                ("b", holding.collection),
                ("h", holding.call_number),
                ("p", holding.item_id),
                ("z", holding.status_text or holding.availability.value),
                ("x", holding.availability.value),
            ],
        )
    return record


def dublin_core(work: Work, names: DisplayNames) -> etree._Element:
    """oai_dc: title, creators, publisher, date, ISBNs as urn:isbn, and each holding member as a source."""
    root = etree.Element(f"{{{OAI_DC_NS}}}dc", nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS})

    def put(name: str, value: str | None) -> None:
        if value:
            etree.SubElement(root, f"{{{DC_NS}}}{name}").text = value

    put("title", work.title)
    for author in work.authors:
        put("creator", author)
    put("publisher", work.publisher)
    put("date", str(work.year) if work.year is not None else None)
    put("identifier", work.work_id)
    for isbn in work.isbns:
        put("identifier", f"urn:isbn:{isbn}")
    for member in work.members:
        put("source", names.members.get(member, member))
    return root


RENDERERS = {MARCXML_SCHEMA: marcxml, DC_SCHEMA: dublin_core}
