"""MARCXML (MARC21, incl. NDL's JAPAN/MARC MARC21) -> `Record` with holdings.

This runs for every record of every member on the search path (budget: 100 µs
of CPU per record, parse included). A compiled XSLT (`marc_flatten.xsl`)
flattens all records of a response into one string in C, and the mapper
splits strings: creating an lxml proxy per field and subfield cost twice as much.
Readings follow NDL practice: an 880 linked to 245 whose $6 ends in "/$1"
holds the katakana reading (the "/(B" twin holds the romanisation).
Holdings come from 852 (location lines) or Koha-style 952 (items).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from lxml import etree

from yokodan.isbn import find_isbns
from yokodan import Availability, Holding, MaterialType, Record, trusted
from connectors.status_words import StatusMapper

MARC_NS = "http://www.loc.gov/MARC21/slim"
_FLATTEN = etree.XSLT(etree.parse(str(Path(__file__).with_name("marc_flatten.xsl"))))
# Delimiters written by marc_flatten.xsl (Unicode noncharacters).
_RECORD, _FIELD, _SUBFIELD, _TAG_END = "\ufdd0", "\ufdd1", "\ufdd2", "\ufdd3"
_AUTHOR_TAGS = frozenset({"100", "110", "111", "700", "710", "711"})
_READING_LINKS = frozenset({"245", "100", "110", "700", "710"})
# Fields the mapper reads; everything else is skipped before its subfields are touched.
_WANTED_TAGS = frozenset({"001", "008", "015", "020", "084", "245", "250", "260", "264", "852", "952", "880"}) | _AUTHOR_TAGS
# ISBD punctuation that MARC leaves at the end of a subfield ("吾輩は猫である /").
_TRAILING = " /:;,.=　"

_MATERIAL_BY_LEADER6 = {
    "a": MaterialType.BOOK,
    "t": MaterialType.BOOK,
    "g": MaterialType.AUDIOVISUAL,
    "i": MaterialType.AUDIOVISUAL,
    "j": MaterialType.AUDIOVISUAL,
    "k": MaterialType.AUDIOVISUAL,
    "e": MaterialType.MAP,
    "f": MaterialType.MAP,
    "c": MaterialType.SCORE,
    "d": MaterialType.SCORE,
    "m": MaterialType.ELECTRONIC,
}


def is_katakana_reading(text: str) -> bool:
    """True for a reading such as 'コレカラ ノ ホン' or '「 デンシ ショセキ 」'; False for the
    original script ('こころ', '吾輩'): a reading has katakana and no kanji or hiragana."""
    has_katakana = False
    for ch in text:
        if "ァ" <= ch <= "ヺ":
            has_katakana = True
        elif "぀" <= ch <= "ゟ" or "一" <= ch <= "鿿" or "㐀" <= ch <= "䶿":
            return False
    return has_katakana


def clean_isbd(value: str | None) -> str:
    return value.strip().rstrip(_TRAILING).strip() if value else ""


def _subfields(parts: list[str]) -> dict[str, str]:
    """First value of each subfield code, from a flattened field's subfield parts."""
    # Reversed, so the first occurrence of a repeated code is the one kept.
    return {part[:1]: part[1:] for part in reversed(parts)}


def flatten(root: etree._Element) -> list[str]:
    """Every MARC record under `root`, in document order, as a flattened string."""
    return str(_FLATTEN(root)).split(_RECORD)[1:]


def _parse_due(text: str) -> date | None:
    text = text.strip().replace("/", "-")[:10]
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _year_from(text: str) -> int | None:
    digits = ""
    for char in text:
        if char.isdigit() and char.isascii():
            digits += char
            if len(digits) == 4:
                return int(digits)
        else:
            digits = ""
    return None


class MarcMapper:
    """Maps MARCXML records of one member onto the shared models."""

    def __init__(
        self,
        member: str,
        branch_codes: dict[str, str],
        status: StatusMapper,
        source_format: str = "marcxml",
    ) -> None:
        self.member = member
        self.branch_codes = branch_codes
        self.status = status
        self.source_format = source_format

    def record_from_flat(self, flat: str, fallback_id: str) -> Record:
        leader = local_id = ""
        year: int | None = None
        title = subtitle = volume = edition = publisher = ndc = jpno = ""
        title_reading = ""
        original_title = ""  # LoC practice: 245 romanised, 880 in the original script
        pub_year_text = ""
        isbn_fields: list[str] = []
        authors: list[str] = []
        author_readings: list[str] = []
        holdings: list[Holding] = []

        for field in flat.split(_FIELD)[1:]:
            # MARC tags are three characters, so the tag is a slice, not a search.
            if field[:1] == _TAG_END:  # the leader has no tag attribute
                leader = leader or field[1:]
                continue
            tag = field[:3]
            if tag not in _WANTED_TAGS:
                continue
            content = field[4:]
            if tag == "001":
                local_id = content.strip()
                continue
            if tag == "008":
                year = _year_from(content[7:11])
                continue
            parts = content.split(_SUBFIELD)[1:]  # [0] is whitespace before the first subfield
            if tag == "880":
                # $6 comes first; most 880s (subjects, places) are not readings we use.
                link = parts[0][1:] if parts and parts[0][:1] == "6" else ""
                if link[:3] not in _READING_LINKS or not link.endswith("/$1"):
                    continue  # "/(B" is romanisation; "/$1" is CJK: a reading (NDL) or the original (LoC)
                text = clean_isbd(_subfields(parts).get("a"))
                if not text:
                    continue
                if link[:3] == "245":
                    if is_katakana_reading(text):
                        title_reading = title_reading or text
                    else:
                        original_title = original_title or text
                elif is_katakana_reading(text):
                    author_readings.append(text)
                continue
            subs = _subfields(parts)
            if tag == "852":
                holdings.append(self._holding_852(subs))
            elif tag == "952":
                holdings.append(self._holding_952(subs))
            elif tag == "245":
                title = clean_isbd(subs.get("a"))
                subtitle = clean_isbd(subs.get("b"))
                volume = clean_isbd(subs.get("n")) or clean_isbd(subs.get("p"))
            elif tag == "020":
                isbn_fields.append(subs.get("a", ""))
            elif tag in _AUTHOR_TAGS:
                name = clean_isbd(subs.get("a"))
                if name:
                    authors.append(name)
            elif tag == "260" or tag == "264":
                publisher = publisher or clean_isbd(subs.get("b"))
                pub_year_text = pub_year_text or subs.get("c", "")
            elif tag == "084":
                if not ndc and subs.get("2", "").startswith("njb"):
                    ndc = clean_isbd(subs.get("a"))
            elif tag == "015":
                if subs.get("2") == "jnb":
                    jpno = subs.get("a", "").strip()
            elif tag == "250":
                edition = clean_isbd(subs.get("a"))

        if year is None and pub_year_text:
            year = _year_from(pub_year_text)
        isbns: list[str] = []
        invalid: list[str] = []
        for text in isbn_fields:
            valid, bad = find_isbns(text)
            isbns.extend(i for i in valid if i not in isbns)
            invalid.extend(bad)
        if original_title and title.isascii():
            title, subtitle = original_title, ""
        full_title = f"{title} : {subtitle}" if subtitle else title
        material = _MATERIAL_BY_LEADER6.get(leader[6:7], MaterialType.OTHER) if leader else MaterialType.BOOK
        if material is MaterialType.BOOK and leader[7:8] == "s":
            material = MaterialType.SERIAL
        # trusted(): every value above is typed and normalised here (ISBNs checked by
        # find_isbns); validation would double the mapping cost (see yokodan.models.trusted).
        return trusted(
            Record,
            {
                "member": self.member,
                "local_id": local_id or fallback_id,
                "title": full_title or "[no title]",
                "title_reading": title_reading or None,
                "authors": authors,
                "author_readings": author_readings,
                "publisher": publisher or None,
                "year": year,
                "isbns": isbns,
                "isbn_invalid": invalid,
                "volume": volume or None,
                "edition": edition or None,
                "material_type": material,
                "ndc": ndc or None,
                "jpno": jpno or None,
                "source_format": self.source_format,
                "holdings": holdings,
            },
        )

    def _holding_852(self, subs: dict[str, str]) -> Holding:
        location = subs.get("a", "").strip()
        sublocation = subs.get("b", "").strip()
        call_parts = [subs[code].strip() for code in "hijkm" if subs.get(code, "").strip()]
        word = subs.get("z", "").strip()
        return trusted(
            Holding,
            {
                "member": self.member,
                "branch_id": self.branch_codes.get(location) or self.branch_codes.get(sublocation),
                "location": location or sublocation or None,
                "call_number": "/".join(call_parts) or None,
                "item_id": subs.get("p", "").strip() or None,
                "availability": self.status(word) if word else Availability.UNKNOWN,
                "status_text": word,
                "due_date": None,
                "queue_length": None,
                "collection": sublocation or None,
            },
        )

    def _holding_952(self, subs: dict[str, str]) -> Holding:
        home = subs.get("a", "").strip()
        holding_branch = subs.get("b", "").strip()
        due = _parse_due(subs.get("q", ""))
        word = subs.get("z", "").strip()
        if word:
            availability = self.status(word)
        elif due is not None:  # Koha: 952$q is set while the item is on loan
            availability, word = Availability.ON_LOAN, "checked out"
        elif subs.get("1", "").strip() not in ("", "0"):
            availability, word = Availability.NOT_FOR_LOAN, "lost"
        elif subs.get("7", "").strip() not in ("", "0"):
            availability, word = Availability.LIBRARY_USE_ONLY, "not for loan"
        else:
            availability, word = Availability.AVAILABLE, "available"
        branch = holding_branch or home
        return trusted(
            Holding,
            {
                "member": self.member,
                "branch_id": self.branch_codes.get(branch) or self.branch_codes.get(home),
                "location": branch or None,
                "call_number": subs.get("o", "").strip() or None,
                "item_id": subs.get("p", "").strip() or None,
                "availability": availability,
                "status_text": word,
                "due_date": due,
                "queue_length": None,
                "collection": subs.get("c", "").strip() or None,
            },
        )
