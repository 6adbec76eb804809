"""A member's record of a work, written as MARCXML (with holdings) or SRU Dublin Core.

The MARC shape follows what real Japanese catalogues send (NDL JAPAN/MARC in
MARC21, checked against shared/data/bibliographic/ndl_jpmarc21_enju_233.mrc):
ISBD punctuation left in 245 ("こころ /"), katakana readings in 880 fields
linked by $6 ("245-01/$1" pairs with 245 $6 "880-01"), NDC in 084 $2 njb/9.
Holdings are 852 fields or Koha-style 952 items, one per copy.
Strings are built by hand with escaping: it is several times faster than lxml
here and titles contain &, < and >.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from yokodan import Availability, MaterialType
from sandbox.holdings import Copy, HeldWork, unit_hash
from sandbox.spec import SandboxMember
from sandbox.works import CatalogueWork

MARC_NS = "http://www.loc.gov/MARC21/slim"
DC_NS = "http://purl.org/dc/elements/1.1/"
SRW_DC_NS = "info:srw/schema/1/dc-schema"

_LEADER_TYPE = {  # leader/06 type of record, leader/07 bibliographic level
    MaterialType.BOOK: "am",
    MaterialType.SERIAL: "as",
    MaterialType.AUDIOVISUAL: "jm",
    MaterialType.MAP: "em",
    MaterialType.SCORE: "cm",
    MaterialType.ELECTRONIC: "mm",
    MaterialType.OTHER: "am",
}
_PLACE_CODES = {"London": "enk", "Oxford": "enk", "New York": "nyu"}  # 008/15-17
_KOHA_COLLECTIONS = {"一般": "GEN", "文庫": "BUNKO", "児童": "CHILD", "参考": "REF", "視聴覚": "AV", "雑誌": "MAG"}
_NOT_FOR_LOAN = {Availability.LIBRARY_USE_ONLY, Availability.NOT_FOR_LOAN}

Subfields = list[tuple[str, str]]


def _datafield(tag: str, ind1: str, ind2: str, subfields: Subfields) -> str:
    inner = "".join(f'<subfield code="{code}">{escape(value)}</subfield>' for code, value in subfields if value)
    return f'<datafield tag="{tag}" ind1="{ind1}" ind2="{ind2}">{inner}</datafield>'


def publication_tag(member: SandboxMember) -> str:
    """260 (AACR2) or 264 (RDA): members catalogued under different rules, fixed per member."""
    return "260" if unit_hash("publication-tag", member.id) < 0.5 else "264"


def _fixed_008(work: CatalogueWork) -> str:
    place = _PLACE_CODES.get(work.place, "ja " if work.language == "jpn" else "xx ")
    entered = f"{work.year % 100:02d}0401"
    return f"{entered}s{work.year:04d}    {place:<3}{' ' * 17}{work.language} d"


def _nonfiling(title: str) -> str:
    """245 ind2: characters an English title's article adds before the sort word."""
    for article in ("The ", "A ", "An "):
        if title.startswith(article):
            return str(len(article))
    return "0"


def marcxml(member: SandboxMember, held: HeldWork) -> str:
    work = held.work
    fields: list[tuple[str, str]] = []  # (tag, xml), sorted by tag at the end
    readings: list[str] = []  # 880 fields, in link order
    links = iter(f"{n:02d}" for n in range(1, 100))

    def linked(tag: str, ind1: str, ind2: str, subfields: Subfields, reading: Subfields | None) -> None:
        if reading:
            link = next(links)
            subfields = [("6", f"880-{link}"), *subfields]
            readings.append(_datafield("880", ind1, ind2, [("6", f"{tag}-{link}/$1"), *reading]))
        fields.append((tag, _datafield(tag, ind1, ind2, subfields)))

    title_subfields: Subfields = [("a", work.title + (" /" if work.authors and not work.volume else ""))]
    if work.volume:
        title_subfields.append(("n", work.volume + (" /" if work.authors else "")))
    title_subfields.append(("c", work.responsibility))
    title_reading = [("a", held.title_reading), ("n", work.volume or "")] if held.title_reading else None
    linked("245", "1" if work.authors else "0", _nonfiling(work.title), title_subfields, title_reading)
    for index, author in enumerate(work.authors):
        reading = [("a", author.reading)] if author.reading else None
        linked("100" if index == 0 else "700", "1", " ", [("a", author.heading)], reading)

    if held.isbn_text:
        fields.append(("020", _datafield("020", " ", " ", [("a", held.isbn_text)])))
    fields.append(("084", _datafield("084", " ", " ", [("a", work.ndc), ("2", "njb/9")])))
    if work.edition:
        fields.append(("250", _datafield("250", " ", " ", [("a", work.edition)])))
    tag = publication_tag(member)
    imprint = [("a", f"{work.place} :"), ("b", f"{work.publisher},"), ("c", str(work.year))]
    fields.append((tag, _datafield(tag, " ", "1" if tag == "264" else " ", imprint)))
    holding = _field_852 if member.holdings_field == "852" else _field_952
    fields.extend((member.holdings_field, holding(copy)) for copy in held.copies)
    fields.sort(key=lambda item: item[0])  # stable: 700s keep author order

    type_level = _LEADER_TYPE[work.material_type]
    return (
        f'<record xmlns="{MARC_NS}">'
        f"<leader>00000n{type_level} a2200000 i 4500</leader>"
        f'<controlfield tag="001">{escape(held.local_id)}</controlfield>'
        f'<controlfield tag="008">{_fixed_008(work)}</controlfield>'
        + "".join(xml for _, xml in fields)
        + "".join(readings)
        + "</record>"
    )


def _field_852(copy: Copy) -> str:
    return _datafield(
        "852",
        " ",
        " ",
        [
            ("a", copy.branch.name),
            ("b", copy.collection),
            ("h", copy.call_number),
            ("p", copy.barcode),
            ("z", copy.status_word),
        ],
    )


def _field_952(copy: Copy) -> str:
    # Koha's not-for-loan code: 1 not for loan, -1 on order, 0 loanable.
    not_for_loan = (
        "1" if copy.availability in _NOT_FOR_LOAN else "-1" if copy.availability is Availability.ON_ORDER else "0"
    )
    return _datafield(
        "952",
        " ",
        " ",
        [
            ("a", copy.branch.code),
            ("b", copy.at_branch.code),
            ("c", _KOHA_COLLECTIONS.get(copy.collection, "GEN")),
            ("o", copy.call_number),
            ("p", copy.barcode),
            ("q", copy.due_date.isoformat() if copy.due_date else ""),
            ("7", not_for_loan),
            ("z", copy.status_word),
        ],
    )


def dublin_core(held: HeldWork) -> str:
    """SRU's `dc` schema: the bibliographic core only, no holdings (as Zebra's marc2dc)."""
    work = held.work
    title = f"{work.title} {work.volume}" if work.volume else work.title
    elements = [("title", title), *(("creator", a.heading) for a in work.authors)]
    elements += [("publisher", work.publisher), ("date", str(work.year))]
    if held.isbn_text:
        elements.append(("identifier", f"URN:ISBN:{held.isbn_text}"))
    body = "".join(f"<dc:{name}>{escape(value)}</dc:{name}>" for name, value in elements)
    return f'<srw_dc:dc xmlns:srw_dc="{SRW_DC_NS}" xmlns:dc="{DC_NS}">{body}</srw_dc:dc>'
