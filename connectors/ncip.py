"""NCIP 2.0 connector (kind "ncip"): copies, patrons and holds, XML over HTTP POST.

NCIP has no bibliographic search, so this connector does not declare SEARCH: a consortium pairs
such a member with a search connector (SRU, OPAC) for its catalogue and uses this one for holds.
NCIP has no service listing pickup locations either: like VuFind's XCNCIP2 driver, the pickup
options come from configuration (`pickup_codes`), with no default and no exclusions.

Services used (namespace http://www.niso.org/2008/ncip, one endpoint, application/xml):
  LookupItemSet     holdings of a record (BibliographicId -> ItemInformation per copy)
  LookupItem        one copy: CirculationStatus, HoldQueueLength, ItemDescription, Location
  LookupUser        BlockOrTrap, LoanedItem(s)Count, RequestedItem(s)Count; RequestedItem per
                    current hold (list_holds, for the poller)
  RequestItem       RequestType "Hold", RequestScopeType "Bibliographic Item" (or "Item" for a
                    copy), PickupLocation; our idempotency key is the RequestId under *our*
                    AgencyId, so LookupRequest finds the hold after a lost answer
  LookupRequest     by our RequestId (find_hold) or the member's (hold_status)
  CancelRequestItem
  UpdateRequestItem AddRequestFields/PickupLocation: a queued hold's new pickup (change_pickup), only
                    where the `update_request_item` option says the responder offers the service
The patron is named by AuthenticationInput (card "Barcode Id" + "PIN") in the message body, or by
UserId when no PIN is given; the PIN never appears in a URL. Refusals arrive as <Problem> inside
HTTP 200 and become HoldRefused with a named reason (AuthenticationFailed / PatronNotFound for
bad credentials); an unknown ProblemType becomes a ProtocolDiagnostic carrying the type, detail,
element and value. RequestItem and CancelRequestItem are sent once: a lost or unreadable answer
is OutcomeUnknown. A RequestItem the member confirmed whose LookupRequest then fails is reported
as placed, in state `submitted`, for the poller to follow.

Statuses: a standard NCIP value (circulationstatus.scm, requeststatustype.scm) maps by the tables
below; any other value is the member's own word (a local scheme, as Japanese ILSs use): copy words
go through the shared vocabulary (`status_words`), hold words through the `hold_words` option.

Options (`connectors.options.NcipOptions`): agency_id, member_agency_id, hold_words,
problem_reasons, pickup_codes, update_request_item.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from lxml import etree

from yokodan import Availability, Hold, Holding, HoldRequest, HoldState, PatronCredentials, PatronStatus
from yokodan.holds import HoldIntent, PickupOption
from connectors.options import NcipOptions
from connectors.settings import TargetSettings
from connectors.base import Capability, Connector, pickup_branches, pickup_codes
from connectors.errors import (
    HOLD_REFUSAL_REASONS,
    AuthenticationFailed,
    ConnectorError,
    HoldRefused,
    MalformedResponse,
    OutcomeUnknown,
    ProtocolDiagnostic,
    member_refusal,
    outcome_unknown_after_sending,
)
from connectors.http import DEFAULT_READ_ATTEMPTS, HttpClient
from connectors.ncip_messages import (
    E,
    Problem,
    bibliographic_id,
    count,
    descendant_text,
    initiation_header,
    item_id,
    message,
    ncip_date,
    path,
    patron_elements,
    problems,
    q,
    request_id,
    text,
)
from connectors.status_words import StatusMapper, normalize_word, shared_hold_words
from connectors.xml import parse_xml

# What a <Problem> becomes; a ProtocolDiagnostic is the member's answer too (it did not act).
_NamedProblem = HoldRefused | AuthenticationFailed | ProtocolDiagnostic
_XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8", "Accept": "application/xml"}

# ProblemType (any scheme, compared case-insensitively) -> the broker's named reason.
NCIP_PROBLEMS: dict[str, str] = {
    "user authentication failed": "authentication_failed",
    "unknown user": "patron_not_found",
    "user blocked": "patron_blocked",
    "maximum requests exceeded": "too_many_holds",
    "duplicate request": "already_held",
    # No standard type says "the patron has this on loan"; responders use a local one.
    "item already loaned to user": "already_on_loan",
    "item does not circulate": "not_holdable",
    "user ineligible to request this item": "not_holdable",
    "item not available by need before date": "not_holdable",
    "unknown item": "record_not_found",
    "unknown request": "hold_not_found",
    "request already processed": "not_cancellable",
}
# "Element Rule Violated" is generic; naming PickupLocation as the element makes it a bad pickup.
_RULE_VIOLATED = "element rule violated"
_PICKUP_ELEMENT = "PickupLocation"

# Standard CirculationStatus values (NCIP circulationstatus.scm).
NCIP_CIRCULATION: dict[str, Availability] = {
    "available on shelf": Availability.AVAILABLE,
    "waiting to be reshelved": Availability.AVAILABLE,
    "on loan": Availability.ON_LOAN,
    "recalled": Availability.ON_LOAN,
    "available for pickup": Availability.RESERVED,  # on the hold shelf for another patron
    "in transit between library locations": Availability.IN_TRANSIT,
    "pending transfer": Availability.IN_TRANSIT,
    "on order": Availability.ON_ORDER,
    "in process": Availability.ON_ORDER,
    "lost": Availability.NOT_FOR_LOAN,
    "missing": Availability.NOT_FOR_LOAN,
    "claimed returned or never borrowed": Availability.NOT_FOR_LOAN,
    "not available": Availability.NOT_FOR_LOAN,
    "circulation status undefined": Availability.UNKNOWN,
}
_LIBRARY_USE_ONLY = "in library use only"  # ItemUseRestrictionType on a copy that is on the shelf

# Standard RequestStatusType values (NCIP requeststatustype.scm). "In Process" covers every
# state before the hold shelf: a member that tells waiting from secured does so in its own words.
NCIP_REQUEST_STATES: dict[str, HoldState] = {
    "in process": HoldState.WAITING,
    "requested via ill": HoldState.WAITING,
    "need to accept conditions": HoldState.SUBMITTED,
    "available for pickup": HoldState.READY,
    "expired": HoldState.EXPIRED,
    "cannot fulfill request": HoldState.CANCELLED,
}

# BlockOrTrapType words -> the broker's named block reasons; others are kept as sent.
NCIP_BLOCKS: dict[str, str] = {
    "overdue items": "overdue",
    "card expired": "card_expired",
    "excessive fines": "fines",
    "excessive fees": "fines",
    "inactive": "inactive",
}


class NCIPConnector(Connector):
    kind = "ncip"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.HOLDINGS,
            Capability.LOOKUP_PATRON,
            Capability.PLACE_HOLD,
            Capability.HOLD_STATUS,
            Capability.LIST_HOLDS,
            Capability.CANCEL_HOLD,
            Capability.PICKUP_LOCATIONS,
        }
    )

    def __init__(self, settings: TargetSettings, http: HttpClient) -> None:
        super().__init__(settings, http)
        options = settings.options_as(NcipOptions)
        self.agency_id = options.agency_id
        self.member_agency_id = options.member_agency_id or settings.member
        self.status = StatusMapper(settings.member, settings.status_words)
        self.hold_words = {
            **shared_hold_words(),
            **{normalize_word(w): s for w, s in options.hold_words.items()},
        }
        # Configured reasons are RefusalReasons already (NcipOptions): nothing to check here.
        self.problem_reasons: dict[str, str] = {**NCIP_PROBLEMS, **{k.casefold(): v for k, v in options.problem_reasons.items()}}
        self.pickup_codes = pickup_codes(settings)
        self._pickup_branches = pickup_branches(settings)  # a hold's pickup code back to its branch
        self.updates_requests = options.update_request_item

    def supports(self, capability: Capability) -> bool:
        if capability is Capability.CHANGE_PICKUP:
            return self.updates_requests  # a service some responders offer and others do not (options)
        return super().supports(capability)

    # --- copies -----------------------------------------------------------------------------

    async def holdings(self, record_id: str) -> list[Holding]:
        answer = await self._exchange(
            "LookupItemSet", [bibliographic_id(record_id, self.member_agency_id), *_item_elements()]
        )
        return [self.holding(info) for info in answer.iter(q("ItemInformation"))]

    async def lookup_item(self, item: str) -> Holding:
        """One copy by its item id (barcode), as LookupItem reports it."""
        answer = await self._exchange("LookupItem", [item_id(item, self.member_agency_id), *_item_elements()])
        return self.holding(answer)

    def holding(self, element: etree._Element) -> Holding:
        """An ItemInformation or LookupItemResponse as a Holding."""
        fields = element.find(q("ItemOptionalFields"))
        if fields is None:
            fields = E.ItemOptionalFields()
        word = text(fields, "CirculationStatus") or ""
        availability = self.circulation(word)
        restrictions = {(r.text or "").strip().casefold() for r in fields.iterfind(q("ItemUseRestrictionType"))}
        if availability is Availability.AVAILABLE and _LIBRARY_USE_ONLY in restrictions:
            availability = Availability.LIBRARY_USE_ONLY
        locations = {text(loc, "LocationType"): loc for loc in fields.iterfind(q("Location"))}
        here = _location_level(locations.get("Current"), 1)
        home = _location_level(locations.get("Permanent"), 1)
        codes = self.settings.branch_codes
        queue = text(fields, "HoldQueueLength")
        return Holding(
            member=self.member,
            branch_id=codes.get(here or "") or codes.get(home or ""),
            location=here or home,
            call_number=text(fields, "ItemDescription", "CallNumber"),
            item_id=text(element, "ItemId", "ItemIdentifierValue"),
            availability=availability,
            status_text=word,
            due_date=ncip_date(descendant_text(fields, "DateDue")),
            queue_length=int(queue) if queue and queue.isdigit() else None,
            collection=_location_level(locations.get("Permanent"), 2),
        )

    def circulation(self, word: str) -> Availability:
        """A standard CirculationStatus by NCIP's table, the member's own word by the vocabulary."""
        if not word:
            return Availability.UNKNOWN
        return NCIP_CIRCULATION.get(word.casefold()) or self.status(word)

    # --- patrons ----------------------------------------------------------------------------

    async def _lookup_user(self, patron: PatronCredentials) -> etree._Element:
        return await self._exchange(
            "LookupUser",
            [*patron_elements(patron), E.UserElementType("Block Or Trap"), E.LoanedItemsDesired(), E.RequestedItemsDesired()],
        )

    async def lookup_patron(self, patron: PatronCredentials) -> PatronStatus:
        answer = await self._lookup_user(patron)
        loans = list(answer.iterfind(q("LoanedItem")))
        requests = list(answer.iterfind(q("RequestedItem")))
        today = date.today()
        overdue = sum(1 for loan in loans if (due := ncip_date(text(loan, "DateDue"))) is not None and due < today)
        reasons = []
        for block in answer.iterfind(path("UserOptionalFields", "BlockOrTrap")):
            word = text(block, "BlockOrTrapType")
            if word:
                reasons.append(NCIP_BLOCKS.get(word.casefold(), word))
        if overdue and "overdue" not in reasons:
            reasons.append("overdue")
        loans_count = count(answer, "LoanedItemsCount", "LoanedItemCountValue")
        holds_count = count(answer, "RequestedItemsCount", "RequestedItemCountValue")
        return PatronStatus(
            member=self.member,
            blocked=bool(reasons),
            block_reasons=list(dict.fromkeys(reasons)),
            holds_count=len(requests) if holds_count is None else holds_count,
            loans_count=len(loans) if loans_count is None else loans_count,
            overdue_count=overdue,
            loan_record_ids=[r for loan in loans if (r := descendant_text(loan, "BibliographicRecordIdentifier"))],
            hold_record_ids=[r for req in requests if (r := descendant_text(req, "BibliographicRecordIdentifier"))],
        )

    # --- holds ------------------------------------------------------------------------------

    async def pickup_locations(self, patron: PatronCredentials, record_id: str) -> list[PickupOption]:
        # From configuration: NCIP 2 has no pickup-location service to ask (see the module doc).
        return [PickupOption(branch_id=branch_id, label=code) for branch_id, code in self.pickup_codes.items()]

    async def place_hold(self, patron: PatronCredentials, request: HoldRequest, *, intent: HoldIntent | None = None) -> Hold:
        pickup = self.pickup_codes.get(request.pickup_branch_id)
        if pickup is None:
            raise HoldRefused("invalid_pickup", f"{request.pickup_branch_id} is not a pickup point of {self.member}", member=self.member)
        if request.item_id is not None:
            target, scope = item_id(request.item_id, self.member_agency_id), "Item"
        else:
            target, scope = bibliographic_id(request.record_id, self.member_agency_id), "Bibliographic Item"
        answer = await self._exchange(
            "RequestItem",
            [
                *patron_elements(patron),
                target,
                request_id(self.agency_id, request.idempotency_key),
                E.RequestType("Hold"),
                E.RequestScopeType(scope),
                E.PickupLocation(pickup),
            ],
            once=True,
        )
        member_request = text(answer, "RequestId", "RequestIdentifierValue")
        if member_request is None:  # confirmed without saying which request: the ledger must look
            raise OutcomeUnknown(MalformedResponse("RequestItemResponse has no RequestId", member=self.member))
        # RequestItemResponse carries no status or queue position; LookupRequest (a read) does.
        try:
            return await self._lookup_request(patron, self.member_agency_id, member_request, request.idempotency_key)
        except ConnectorError:
            # Placed (the member named the request), but its state could not be read: say so
            # rather than guess; the poller reads the state later.
            return Hold(
                member=self.member,
                hold_id=member_request,
                record_id=request.record_id,
                item_id=request.item_id,
                pickup_branch_id=request.pickup_branch_id,
                state=HoldState.SUBMITTED,
                idempotency_key=request.idempotency_key,
            )

    async def find_hold(self, patron: PatronCredentials, intent: HoldIntent) -> Hold | None:
        key = intent.idempotency_key
        try:
            return await self._lookup_request(patron, self.agency_id, key, key)
        except HoldRefused as refusal:
            if refusal.reason == "hold_not_found":
                return None
            raise

    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold:
        return await self._lookup_request(patron, self.member_agency_id, hold_id, None)

    async def list_holds(self, patron: PatronCredentials) -> list[Hold]:
        return [self._requested_item(item) for item in (await self._lookup_user(patron)).iterfind(q("RequestedItem"))]

    async def cancel_hold(self, patron: PatronCredentials, hold_id: str) -> Hold:
        # Looked up first: CancelRequestItemResponse names the request but not the record.
        hold = await self.hold_status(patron, hold_id)
        await self._exchange(
            "CancelRequestItem",
            [*patron_elements(patron), request_id(self.member_agency_id, hold_id), E.RequestType("Hold")],
            once=True,
        )
        return hold.model_copy(update={"state": HoldState.CANCELLED, "status_text": "", "queue_position": None})

    async def change_pickup(self, patron: PatronCredentials, hold_id: str, pickup_branch_id: str) -> Hold:
        if not self.updates_requests:
            raise self._unsupported(Capability.CHANGE_PICKUP)
        pickup = self.pickup_codes.get(pickup_branch_id)
        if pickup is None:
            raise HoldRefused("invalid_pickup", f"{pickup_branch_id} is not a pickup point of {self.member}", member=self.member)
        # Looked up first, as for a cancel: the hold must be this patron's, and UpdateRequestItemResponse
        # names the request but not the record.
        hold = await self.hold_status(patron, hold_id)
        try:
            await self._exchange(
                "UpdateRequestItem",
                [
                    *patron_elements(patron), request_id(self.member_agency_id, hold_id), E.RequestType("Hold"),
                    E.AddRequestFields(E.PickupLocation(pickup)),
                ],
                once=True,
            )  # fmt: skip
        except HoldRefused as refused:
            if refused.reason == "not_cancellable":  # "Request Already Processed": too late to move it as well
                raise HoldRefused("not_changeable", refused.message, member=self.member) from None
            raise
        return hold.model_copy(update={"pickup_branch_id": pickup_branch_id})

    async def _lookup_request(self, patron: PatronCredentials, agency: str, value: str, key: str | None) -> Hold:
        answer = await self._exchange("LookupRequest", [*patron_elements(patron), request_id(agency, value)])
        return self._request_hold(answer, key, "LookupRequestResponse")

    def _requested_item(self, item: etree._Element) -> Hold:
        """A LookupUser RequestedItem (the same fields as a LookupRequestResponse) as a Hold."""
        return self._request_hold(item, None, "RequestedItem")

    def _request_hold(self, answer: etree._Element, key: str | None, what: str) -> Hold:
        word = text(answer, "RequestStatusType") or ""
        state = self.request_state(word)
        hold_id = text(answer, "RequestId", "RequestIdentifierValue")
        record_id = descendant_text(answer, "BibliographicRecordIdentifier")
        if hold_id is None or record_id is None:
            raise MalformedResponse(f"{what} lacks RequestId or the record id", member=self.member)
        position = text(answer, "HoldQueuePosition")
        pickup = text(answer, "PickupLocation")
        return Hold(
            member=self.member,
            hold_id=hold_id,
            record_id=record_id,
            item_id=text(answer, "ItemId", "ItemIdentifierValue"),
            pickup_branch_id=self._pickup_branches.get(pickup or ""),
            state=state,
            status_text=word,
            queue_position=int(position) if position and position.isdigit() else None,
            ready_until=ncip_date(text(answer, "PickupExpiryDate")) if state is HoldState.READY else None,
            idempotency_key=key,
        )

    def request_state(self, word: str) -> HoldState:
        """The member's word first (it may be finer than NCIP's), then the standard values."""
        state = self.hold_words.get(normalize_word(word)) or NCIP_REQUEST_STATES.get(word.casefold())
        if state is None:
            raise MalformedResponse(
                f"request status {word!r} is neither a standard NCIP value nor in this member's hold_words",
                member=self.member,
            )
        return state

    # --- transport --------------------------------------------------------------------------

    async def _exchange(self, service: str, body: list[etree._Element], *, once: bool = False) -> etree._Element:
        """Send one service request; return its <…Response>, or raise the named error for its Problem.

        `once` for services with effects (RequestItem, CancelRequestItem): never re-sent. Lookups
        are reads and are retried on transient failures like any GET.
        """
        request = E(service, initiation_header(self.agency_id, self.member_agency_id), *body)
        response = await self.http.request(
            "POST",
            self.settings.endpoint,
            member=self.member,
            timeout_s=self.settings.timeout_s,
            data=message(request),
            headers=_XML_HEADERS,
            attempts=1 if once else DEFAULT_READ_ATTEMPTS,
            idempotent=not once,  # every NCIP service is a POST; only the lookups are reads
        )
        if once:
            # The member has the request: an answer we cannot read leaves open what it did.
            with outcome_unknown_after_sending(self.member):
                return self._answer(service, response.body)
        return self._answer(service, response.body)

    def _answer(self, service: str, body: bytes) -> etree._Element:
        root = parse_xml(body, member=self.member)
        if root.tag != q("NCIPMessage"):
            raise MalformedResponse(f"not an NCIP 2 message: <{root.tag}>", member=self.member)
        answer = root.find(q(f"{service}Response"))
        found = problems(root if answer is None else answer)
        if found:
            raise self._problem(found)
        if answer is None:
            raise MalformedResponse(f"NCIP answer has no {service}Response", member=self.member)
        return answer

    def _problem(self, found: list[Problem]) -> _NamedProblem:
        first = found[0]
        kind = first.type.casefold()
        reason = self.problem_reasons.get(kind)
        if reason is None and kind == _RULE_VIOLATED and first.element == _PICKUP_ELEMENT:
            reason = "invalid_pickup"
        if reason is None:
            return ProtocolDiagnostic([p.diagnostic() for p in found], member=self.member)
        message_text = first.type + (f": {first.detail}" if first.detail else "")
        return member_refusal(reason, message_text, member=self.member)


def _item_elements() -> list[etree._Element]:
    wanted = ("Bibliographic Description", "Circulation Status", "Hold Queue Length", "Item Description", "Location")
    return [E.ItemElementType(kind) for kind in wanted]


def _location_level(location: etree._Element | None, level: int) -> str | None:
    """The LocationNameValue at one LocationNameLevel (1 = branch code, 2 = collection)."""
    if location is None:
        return None
    for instance in location.iterfind(path("LocationName", "LocationNameInstance")):
        if text(instance, "LocationNameLevel") == str(level):
            return text(instance, "LocationNameValue")
    return None
