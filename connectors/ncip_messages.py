"""NCIP 2.0 messages: building requests with lxml and reading answers parsed by `parse_xml`.

Requests are built as element trees, never by string formatting, so a card number or a
record id can never break out of its element. Answers are read by local structure only:
`Scheme` attributes (qualified or not) are kept for diagnostics but never required, since
responders disagree about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lxml import etree
from lxml.builder import ElementMaker

from yokodan import Diagnostic, PatronCredentials

NCIP_NS = "http://www.niso.org/2008/ncip"
NCIP_VERSION = "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"
E = ElementMaker(namespace=NCIP_NS, nsmap={None: NCIP_NS})
_SCHEME = f"{{{NCIP_NS}}}Scheme"


def q(local: str) -> str:
    """The qualified tag of an NCIP element."""
    return f"{{{NCIP_NS}}}{local}"


def path(*locals_: str) -> str:
    """An ElementPath through NCIP elements: path("ItemId", "ItemIdentifierValue")."""
    return "/".join(q(local) for local in locals_)


def message(service: etree._Element) -> bytes:
    """One service request wrapped in its NCIPMessage, serialised as UTF-8 XML."""
    root = E.NCIPMessage(service, version=NCIP_VERSION)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def initiation_header(from_agency: str, to_agency: str) -> etree._Element:
    return E.InitiationHeader(E.FromAgencyId(E.AgencyId(from_agency)), E.ToAgencyId(E.AgencyId(to_agency)))


def patron_elements(patron: PatronCredentials) -> list[etree._Element]:
    """The patron as NCIP 2 names one: card + PIN as AuthenticationInput (in the body), else UserId."""
    if patron.pin is None:
        return [E.UserId(E.UserIdentifierValue(patron.card_number))]
    return [
        _authentication_input(patron.card_number, "Barcode Id"),
        _authentication_input(patron.pin.get_secret_value(), "PIN"),
    ]


def _authentication_input(value: str, kind: str) -> etree._Element:
    return E.AuthenticationInput(
        E.AuthenticationInputData(value),
        E.AuthenticationDataFormatType("text/plain"),
        E.AuthenticationInputType(kind),
    )


def request_id(agency: str, value: str) -> etree._Element:
    return E.RequestId(E.AgencyId(agency), E.RequestIdentifierValue(value))


def bibliographic_id(record_id: str, agency: str) -> etree._Element:
    return E.BibliographicId(E.BibliographicRecordId(E.BibliographicRecordIdentifier(record_id), E.AgencyId(agency)))


def item_id(value: str, agency: str) -> etree._Element:
    return E.ItemId(E.AgencyId(agency), E.ItemIdentifierValue(value))


@dataclass(frozen=True, slots=True)
class Problem:
    """One NCIP <Problem>: ProblemType is the machine-readable part."""

    type: str
    scheme: str | None
    detail: str | None
    element: str | None
    value: str | None

    def diagnostic(self) -> Diagnostic:
        where = ", ".join(f"{name} {text}" for name, text in (("element", self.element), ("value", self.value)) if text)
        details = "; ".join(part for part in (self.detail, where) if part) or None
        return Diagnostic(uri=self.scheme or "ncip:problem", message=self.type, details=details)


def problems(element: etree._Element) -> list[Problem]:
    """Every Problem in an answer (set answers such as LookupItemSet nest them per record)."""
    found = []
    for problem in element.iter(q("Problem")):
        type_element = problem.find(q("ProblemType"))
        found.append(
            Problem(
                type=text(problem, "ProblemType") or "unspecified problem",
                scheme=scheme(type_element) if type_element is not None else None,
                detail=text(problem, "ProblemDetail"),
                element=text(problem, "ProblemElement"),
                value=text(problem, "ProblemValue"),
            )
        )
    return found


def scheme(element: etree._Element) -> str | None:
    return element.get(_SCHEME) or element.get("Scheme")


def text(element: etree._Element, *locals_: str) -> str | None:
    """Stripped text at a path below `element`; None when absent or empty."""
    found = element.findtext(path(*locals_)) if locals_ else element.text
    return (found.strip() or None) if found else None


def descendant_text(element: etree._Element, local: str) -> str | None:
    """Text of the first `local` element anywhere below `element` (responders nest ids differently)."""
    found = next(element.iter(q(local)), None)
    return text(found) if found is not None else None


def count(element: etree._Element, container: str, value: str) -> int | None:
    """The sum of the count values of all `container` elements, or None when there are none."""
    values = [int(v) for c in element.iterfind(q(container)) if (v := text(c, value)) and v.isdigit()]
    return sum(values) if values else None


def ncip_date(value: str | None) -> date | None:
    """An xs:dateTime or xs:date ("2025-06-01T23:59:00+09:00") as a date."""
    if value is None or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
