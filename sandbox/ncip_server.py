"""An NCIP 2.0 responder for sandbox members whose protocol is "ncip": `POST /{member_id}/ncip`.

Answers LookupItem, LookupItemSet, LookupUser, RequestItem, LookupRequest, CancelRequestItem and
UpdateRequestItem (a new PickupLocation only) from the member's holdings and hold ledger. Every refusal of the ledger is
a <Problem> inside HTTP 200, as NCIP responders answer; a body that is not an NCIP message gets
a message-level Problem. Faults act as on the SRU face (sandbox.faults).

protocol_options:
  agency_id          the member's AgencyId (default: the member id); a RequestId under any other
                     agency is the initiator's own id for the request (the broker's idempotency key)
  status_scheme      "member" (default): CirculationStatus and RequestStatusType are the member's
                     own words (貸出可, 準備中 …) in a local scheme; "ncip": NCIP's standard values,
                     where finished holds are no longer known ("Unknown Request")
  pickup_codes       "CHUO,KITA": only these branches are pickup points (default: every branch)
  lose_hold_answer   "hang" | "drop": RequestItem places the hold, then never answers / cuts the line

Every request line is kept in `app[ACCESS_LOG]`, as on the REST face.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from aiohttp import web
from lxml import etree
from lxml.builder import ElementMaker

from yokodan import Availability, HoldState
from sandbox.accounts import Refusal, SandboxHold
from sandbox.faults import before_answer, deliver, error_page, lose_answer, lost_answer_mode
from sandbox.holdings import Copy, HeldWork
from sandbox.member import MemberSystem
from sandbox.sru_server import MEMBERS

PROTOCOL = "ncip"
NS = "http://www.niso.org/2008/ncip"
VERSION = "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"
ACCESS_LOG = web.AppKey("ncip_access_log", deque[str])
_ACCESS_LOG_SIZE = 2000
_LOAN_DAYS = 14
_OVERDUE_DAYS = 7
E = ElementMaker(namespace=NS, nsmap={None: NS})
_SCHEME = f"{{{NS}}}Scheme"
# The sandbox is never production, but it parses what a client sends: no entities, no network.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

_SCHEMES = "http://www.niso.org/ncip/v1_0/schemes"
_CIRCULATION_SCHEME = f"{_SCHEMES}/circulationstatus/circulationstatus.scm"
_REQUEST_STATUS_SCHEME = f"{_SCHEMES}/requeststatustype/requeststatustype.scm"
_MESSAGING_SCHEME = f"{_SCHEMES}/messagingerrortype/messagingerrortype.scm"

# Ledger refusal code -> (ProblemType, the element it concerns).
_PROBLEMS: dict[str, tuple[str, str | None]] = {
    "authentication_failed": ("User Authentication Failed", "AuthenticationInput"),
    "patron_not_found": ("Unknown User", "UserIdentifierValue"),
    "patron_blocked": ("User Blocked", None),
    "too_many_holds": ("Maximum Requests Exceeded", None),
    "already_held": ("Duplicate Request", None),
    "already_on_loan": ("Item Already Loaned To User", None),  # local: NCIP has no standard type
    "not_holdable": ("Item Does Not Circulate", None),
    "record_not_found": ("Unknown Item", "BibliographicRecordIdentifier"),
    "invalid_pickup": ("Element Rule Violated", "PickupLocation"),
    "hold_not_found": ("Unknown Request", "RequestIdentifierValue"),
    "not_cancellable": ("Request Already Processed", "RequestIdentifierValue"),
    "not_changeable": ("Request Already Processed", "RequestIdentifierValue"),
}
_STANDARD_CIRCULATION = {
    Availability.AVAILABLE: "Available On Shelf",
    Availability.LIBRARY_USE_ONLY: "Available On Shelf",  # with ItemUseRestrictionType "In Library Use Only"
    Availability.NOT_FOR_LOAN: "Not Available",
    Availability.ON_LOAN: "On Loan",
    Availability.RESERVED: "Available For Pickup",
    Availability.IN_TRANSIT: "In Transit Between Library Locations",
    Availability.ON_ORDER: "On Order",
    Availability.CLOSED: "Not Available",
}
_STANDARD_REQUEST_STATUS = {
    HoldState.SUBMITTED: "In Process",
    HoldState.WAITING: "In Process",
    HoldState.SECURED: "In Process",
    HoldState.IN_TRANSIT: "In Process",
    HoldState.READY: "Available For Pickup",
    HoldState.EXPIRED: "Expired",
}
_BLOCK_WORDS = {"overdue": "Overdue Items", "card_expired": "Card Expired", "inactive": "Inactive"}
_QUEUED = {HoldState.SUBMITTED, HoldState.WAITING}
_FINISHED = {HoldState.COLLECTED, HoldState.EXPIRED, HoldState.CANCELLED}


class _MessageProblem(Exception):
    """A request the responder cannot process at all (not a refusal of the ledger)."""

    def __init__(self, problem_type: str, detail: str, element: str | None = None) -> None:
        super().__init__(detail)
        self.problem_type = problem_type
        self.detail = detail
        self.element = element


@dataclass(frozen=True)
class _Context:
    system: MemberSystem
    agency: str
    standard: bool  # NCIP's standard status values instead of the member's words

    def words(self, kind: str) -> dict[str, str]:
        """The Scheme attribute for a status value of `kind` (circulation / request)."""
        if self.standard:
            return {_SCHEME: _CIRCULATION_SCHEME if kind == "circulation" else _REQUEST_STATUS_SCHEME}
        return {_SCHEME: f"urn:yokodan:sandbox:{self.system.id}:{kind}status"}


def add_routes(app: web.Application) -> None:
    app[ACCESS_LOG] = deque(maxlen=_ACCESS_LOG_SIZE)
    app.router.add_post("/{member_id}/ncip", _ncip)


async def _ncip(request: web.Request) -> web.StreamResponse:
    request.app[ACCESS_LOG].append(f"{request.method} {request.path_qs}")
    system = request.app[MEMBERS].get(request.match_info["member_id"])
    if system is None or not system.spec.speaks(PROTOCOL):
        return error_page(404)
    if (refusal := await before_answer(system)) is not None:
        return refusal
    faults = system.faults
    options = system.spec.protocol_options
    context = _Context(system, options.get("agency_id", system.id), options.get("status_scheme") == "ncip")
    service, answer = _answer(context, await request.read())
    if service == "RequestItem" and answer.find(f"{{{NS}}}Problem") is None:
        await lose_answer(request, lost_answer_mode(system, "lose_hold_answer"))
    body = etree.tostring(E.NCIPMessage(answer, version=VERSION), xml_declaration=True, encoding="UTF-8")
    return await deliver(request, body, faults)


def _answer(context: _Context, body: bytes) -> tuple[str | None, etree._Element]:
    """(service name, the element inside the answer's NCIPMessage)."""
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as error:
        return None, _message_problem("Invalid Message Syntax Error", str(error))
    if root.tag != f"{{{NS}}}NCIPMessage":
        return None, _message_problem("Invalid Message Syntax Error", f"root is <{root.tag}>, not an NCIP 2 message")
    request = next((child for child in root if isinstance(child.tag, str)), None)
    if request is None:
        return None, _message_problem("Unsupported Service", "the message names no service")
    service = etree.QName(request).localname
    handler = _SERVICES.get(service)
    if handler is None:
        return service, _message_problem("Unsupported Service", f"service {service!r} is not offered")
    try:
        return service, handler(context, request)
    except Refusal as refusal:
        kind, element = _PROBLEMS[refusal.code]
        return service, E(f"{service}Response", _problem(kind, _scheme_for(service), refusal.message, element))
    except _MessageProblem as problem:
        return service, E(f"{service}Response", _problem(problem.problem_type, _MESSAGING_SCHEME, problem.detail, problem.element))


def _message_problem(kind: str, detail: str) -> etree._Element:
    return _problem(kind, _MESSAGING_SCHEME, detail, None)


def _problem(kind: str, scheme: str, detail: str, element: str | None) -> etree._Element:
    children = [E.ProblemType(kind, {_SCHEME: scheme}), E.ProblemDetail(detail)]
    if element:
        children.append(E.ProblemElement(element))
    return E.Problem(*children)


def _scheme_for(service: str) -> str:
    return f"{_SCHEMES}/processingerrortype/{service.lower()}processingerror.scm"


# --- reading requests ------------------------------------------------------------------


def _text(element: etree._Element, *path: str) -> str | None:
    found = element.findtext("/".join(f"{{{NS}}}{local}" for local in path))
    return (found.strip() or None) if found else None


def _patron(context: _Context, request: etree._Element) -> str:
    """The card the request names, authenticated by the ledger (PIN from AuthenticationInput)."""
    inputs = {
        _text(auth, "AuthenticationInputType"): _text(auth, "AuthenticationInputData") or ""
        for auth in request.iterfind(f"{{{NS}}}AuthenticationInput")
    }
    if inputs:
        card = inputs.get("Barcode Id") or inputs.get("User Id")
        if card is None or "PIN" not in inputs:
            raise Refusal("authentication_failed", "AuthenticationInput needs a Barcode Id and a PIN")
        context.system.ledger.authenticate(card, inputs["PIN"])
        return card
    card = _text(request, "UserId", "UserIdentifierValue")
    if card is None:
        raise _MessageProblem("Needed Data Missing", "no UserId or AuthenticationInput", "UserId")
    context.system.ledger.authenticate(card, None)
    return card


def _record(context: _Context, record_id: str | None) -> HeldWork:
    held = next((h for h in context.system.held if h.local_id == record_id), None)
    if held is None:
        raise Refusal("record_not_found", f"no record {record_id}")
    return held


def _copy(context: _Context, barcode: str | None) -> tuple[HeldWork, Copy]:
    for held in context.system.held:
        for copy in held.copies:
            if copy.barcode == barcode:
                return held, copy
    raise Refusal("record_not_found", f"no item {barcode}")


def _ledger_request(context: _Context, request: etree._Element, card: str) -> SandboxHold:
    """The hold a RequestId names: ours by hold id, the initiator's by its own id (the key)."""
    agency = _text(request, "RequestId", "AgencyId")
    value = _text(request, "RequestId", "RequestIdentifierValue")
    if value is None:
        raise _MessageProblem("Needed Data Missing", "no RequestId", "RequestId")
    ledger = context.system.ledger
    hold = ledger.get(card, value) if agency == context.agency else ledger.find_by_key(card, value)
    if hold is None or (context.standard and hold.state in (HoldState.CANCELLED, HoldState.COLLECTED)):
        raise Refusal("hold_not_found", f"no request {value}")
    return hold


# --- services --------------------------------------------------------------------------


def _lookup_item(context: _Context, request: etree._Element) -> etree._Element:
    held, copy = _copy(context, _text(request, "ItemId", "ItemIdentifierValue"))
    return E.LookupItemResponse(_item_id(context, copy), _item_fields(context, held, copy))


def _lookup_item_set(context: _Context, request: etree._Element) -> etree._Element:
    held = _record(context, _text(request, "BibliographicId", "BibliographicRecordId", "BibliographicRecordIdentifier"))
    items = [E.ItemInformation(_item_id(context, c), _item_fields(context, held, c)) for c in held.copies]
    return E.LookupItemSetResponse(E.BibInformation(_bibliographic_id(context, held.local_id), E.HoldingsSet(*items)))


def _lookup_user(context: _Context, request: etree._Element) -> etree._Element:
    card = _patron(context, request)
    ledger = context.system.ledger
    patron = ledger.patrons[card]
    loans = []
    for number, record_id in enumerate(patron.loans, start=1):
        overdue = number <= patron.overdue
        due = ledger.today + timedelta(days=-_OVERDUE_DAYS if overdue else _LOAN_DAYS)
        held = next((h for h in context.system.held if h.local_id == record_id), None)
        children = [_item_id(context, held.copies[0])] if held and held.copies else []
        children += [E.ReminderLevel("1" if overdue else "0"), E.DateDue(_datetime(due))]
        if held:
            children += [E.Title(held.work.title), E.Ext(_bibliographic_description(context, held))]
        loans.append(E.LoanedItem(*children))
    current = [h for h in ledger.holds_of(card) if h.state not in _FINISHED]
    requested = [
        E.RequestedItem(
            _request_id(context, hold),
            _bibliographic_id(context, hold.record_id),
            E.RequestType("Hold"),
            _request_status(context, hold),
            E.DatePlaced(_datetime(ledger.today)),
            E.PickupLocation(hold.pickup_code),
            *([E.HoldQueuePosition(str(hold.queue_position))] if hold.state in _QUEUED and hold.queue_position else []),
        )
        for hold in current
    ]
    blocks = [E.BlockOrTrap(E.AgencyId(context.agency), E.BlockOrTrapType(_BLOCK_WORDS[r])) for r in patron.block_reasons]
    return E.LookupUserResponse(
        _user_id(context, card),
        E.LoanedItemsCount(E.CirculationStatus("On Loan"), E.LoanedItemCountValue(str(len(loans)))),
        *loans,
        E.RequestedItemsCount(E.RequestType("Hold"), E.RequestedItemCountValue(str(len(requested)))),
        *requested,
        *([E.UserOptionalFields(*blocks)] if blocks else []),
    )


def _request_item(context: _Context, request: etree._Element) -> etree._Element:
    card = _patron(context, request)
    barcode = _text(request, "ItemId", "ItemIdentifierValue")
    record_id = (
        _copy(context, barcode)[0].local_id
        if barcode is not None
        else _text(request, "BibliographicId", "BibliographicRecordId", "BibliographicRecordIdentifier")
    )
    if record_id is None:
        raise _MessageProblem("Needed Data Missing", "no ItemId or BibliographicId", "BibliographicId")
    if _text(request, "RequestType") != "Hold":
        raise _MessageProblem("Element Rule Violated", "only RequestType Hold is offered", "RequestType")
    # A RequestId under another agency is the initiator's own id: kept, so a repeat finds this hold.
    key = _text(request, "RequestId", "RequestIdentifierValue")
    if _text(request, "RequestId", "AgencyId") == context.agency:
        key = None
    hold = context.system.ledger.place(card, record_id, barcode, _text(request, "PickupLocation") or "", key)
    return E.RequestItemResponse(
        _request_id(context, hold),
        _user_id(context, card),
        E.RequestType("Hold"),
        E.RequestScopeType("Item" if hold.item_id else "Bibliographic Item"),
    )


def _lookup_request(context: _Context, request: etree._Element) -> etree._Element:
    card = _patron(context, request)
    hold = _ledger_request(context, request, card)
    held = _record(context, hold.record_id)
    children = [_request_id(context, hold)]
    if hold.item_id:
        children.append(E.ItemId(E.AgencyId(context.agency), E.ItemIdentifierValue(hold.item_id)))
    children += [
        _user_id(context, card),
        E.RequestType("Hold"),
        E.RequestScopeType("Item" if hold.item_id else "Bibliographic Item"),
        _request_status(context, hold),
    ]
    if hold.state in _QUEUED and hold.queue_position:
        children.append(E.HoldQueuePosition(str(hold.queue_position)))
    children.append(E.PickupLocation(hold.pickup_code))
    if hold.ready_until:
        children.append(E.PickupExpiryDate(_datetime(hold.ready_until)))
    children.append(E.ItemOptionalFields(_bibliographic_description(context, held)))
    return E.LookupRequestResponse(*children)


def _cancel_request_item(context: _Context, request: etree._Element) -> etree._Element:
    card = _patron(context, request)
    hold = context.system.ledger.cancel(card, _ledger_request(context, request, card).hold_id)
    return E.CancelRequestItemResponse(_request_id(context, hold), _user_id(context, card))


def _update_request_item(context: _Context, request: etree._Element) -> etree._Element:
    """A new pickup for a queued request (AddRequestFields/PickupLocation); nothing else is updated."""
    card = _patron(context, request)
    hold = _ledger_request(context, request, card)
    pickup = _text(request, "AddRequestFields", "PickupLocation")
    if pickup is None:
        raise _MessageProblem("Needed Data Missing", "UpdateRequestItem adds no PickupLocation", "AddRequestFields")
    moved = context.system.ledger.change_pickup(card, hold.hold_id, pickup)
    return E.UpdateRequestItemResponse(_request_id(context, moved), _user_id(context, card))


_SERVICES: dict[str, Callable[[_Context, etree._Element], etree._Element]] = {
    "LookupItem": _lookup_item,
    "LookupItemSet": _lookup_item_set,
    "LookupUser": _lookup_user,
    "RequestItem": _request_item,
    "LookupRequest": _lookup_request,
    "CancelRequestItem": _cancel_request_item,
    "UpdateRequestItem": _update_request_item,
}


# --- writing answers -------------------------------------------------------------------


def _item_fields(context: _Context, held: HeldWork, copy: Copy) -> etree._Element:
    children = [_bibliographic_description(context, held)]
    if context.standard and copy.availability is Availability.LIBRARY_USE_ONLY:
        children.append(E.ItemUseRestrictionType("In Library Use Only"))
    word = _STANDARD_CIRCULATION[copy.availability] if context.standard else copy.status_word
    ledger = context.system.ledger
    queued = sum(1 for h in ledger.holds.values() if h.record_id == held.local_id and h.state in _QUEUED)
    children += [
        E.CirculationStatus(word, context.words("circulation")),
        E.HoldQueueLength(str(queued)),
        E.ItemDescription(E.CallNumber(copy.call_number)),
        _location("Permanent", copy.branch.code, copy.collection),
        _location("Current", copy.at_branch.code, None),
    ]
    if copy.due_date:
        children.append(E.DateDue(_datetime(copy.due_date)))  # NCIP 2.02
    return E.ItemOptionalFields(*children)


def _location(kind: str, code: str, collection: str | None) -> etree._Element:
    levels = [(1, code)] + ([(2, collection)] if collection else [])
    instances = [E.LocationNameInstance(E.LocationNameLevel(str(n)), E.LocationNameValue(v)) for n, v in levels]
    return E.Location(E.LocationType(kind), E.LocationName(*instances))


def _request_status(context: _Context, hold: SandboxHold) -> etree._Element:
    word = _STANDARD_REQUEST_STATUS[hold.state] if context.standard else hold.status_word
    return E.RequestStatusType(word, context.words("request"))


def _bibliographic_description(context: _Context, held: HeldWork) -> etree._Element:
    return E.BibliographicDescription(
        E.BibliographicRecordId(E.BibliographicRecordIdentifier(held.local_id), E.AgencyId(context.agency)),
        E.Title(held.work.title),
    )


def _bibliographic_id(context: _Context, record_id: str) -> etree._Element:
    return E.BibliographicId(E.BibliographicRecordId(E.BibliographicRecordIdentifier(record_id), E.AgencyId(context.agency)))


def _item_id(context: _Context, copy: Copy) -> etree._Element:
    return E.ItemId(E.AgencyId(context.agency), E.ItemIdentifierValue(copy.barcode))


def _request_id(context: _Context, hold: SandboxHold) -> etree._Element:
    return E.RequestId(E.AgencyId(context.agency), E.RequestIdentifierValue(hold.hold_id))


def _user_id(context: _Context, card: str) -> etree._Element:
    return E.UserId(E.AgencyId(context.agency), E.UserIdentifierValue(card))


def _datetime(day: date) -> str:
    return f"{day.isoformat()}T23:59:00+09:00"  # end of the library's day, Japan time
