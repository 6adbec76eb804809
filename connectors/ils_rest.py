"""Koha-style ILS REST connector (kind "ils_rest"): search, copies, patrons and holds as JSON.

Paths are relative to `settings.endpoint` (e.g. http://host/{member}/api/v1) and follow Koha's REST API:

  GET    /biblios?q=<JSON>&_page=&_per_page=      search; `q` is Koha's SQL::Abstract-style JSON
                                                   (`-and`/`-or`, `{"title": {"-like": "%猫%"}}`), the
                                                   total comes in X-Total-Count; `x-koha-embed: items`
                                                   asks for the copies in the same answer
  GET    /biblios/{biblio_id}/items                copies with Koha's coded statuses
  GET    /biblios/{biblio_id}/pickup_locations?patron_id=   with `x-koha-override: any`: every
                                                   library, `needs_override` on those the rules exclude
  POST   /auth/password/validation                {"identifier", "password"}: the PIN only ever
                                                   travels in a request body, never in a URL
  GET    /patrons?cardnumber=                      expiry_date, restricted
  GET    /checkouts?patron_id=   (x-koha-embed: item, for the loan's biblio_id)
  GET    /holds?patron_id=[&idempotency_key=]
  POST   /holds                                    sent once, with our key in an `Idempotency-Key` header
  GET    /holds/{hold_id}      DELETE /holds/{hold_id}
  PUT    /holds/{hold_id}/pickup_location          {"pickup_library_id"}: 200 with the new pickup;
                                                   409 `hold_waiting` / `hold_in_processing` once it
                                                   is on the shelf or being processed; 400 for a
                                                   library that is not a pickup location

Where stock Koha falls short of what the broker needs, the member (and the sandbox) is expected to:
  * store the `Idempotency-Key` of a placement, echo it as `idempotency_key` in the hold and
    filter `GET /holds` by it, so a placement whose answer was lost can be found, not re-sent;
  * keep answering `GET /holds/{id}` for finished holds (Koha moves them to old_reserves):
    `status` "F" = collected, `cancellation_date` set = cancelled (reason "EXPIRED" = expired);
  * answer refusals as JSON `{"error": …, "error_code": …}` (Koha >= 22.11); an older Koha's
    "Hold cannot be placed. Reason: tooManyReserves" text is understood too.

A copy's status: the member's own word, where it sends one in `public_notes` (952$z, as the
MARC 952 mapper reads it) and the word is known; otherwise Koha's coded fields decide.

Options (`connectors.options.IlsRestOptions`): pickup_codes, {consortium branch id: member
library_id} for pickup; by default each branch's first code (`TargetSettings.member_codes`).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any, ClassVar

import orjson

from yokodan.isbn import find_isbns, to_isbn10
from yokodan import Availability, Hold, Holding, HoldRequest, HoldState, PatronCredentials, PatronStatus, Record, RefusalReason, SearchQuery
from yokodan.holds import HoldIntent, PickupOption
from yokodan.terms import TermRules, member_terms
from connectors.settings import TargetSettings
from connectors.base import Capability, Connector, SearchResult, pickup_branches, pickup_codes
from connectors.errors import (
    HOLD_REFUSAL_REASONS,
    ConnectorError,
    HoldRefused,
    MalformedResponse,
    PatronNotFound,
    TargetHTTPError,
    UndecodableResponse,
    UnsupportedQuery,
    member_refusal,
    outcome_unknown_after_sending,
)
from connectors.http import HttpClient, HttpResponse
from connectors.options import IlsRestOptions
from connectors.query_terms import term_rules
from connectors.status_words import StatusMapper

_JSON_HEADERS = {"Accept": "application/json"}
# Koha's default page size is 20; a card has at most ~25 holds and loans together.
_LIST_PAGE_SIZE = "100"

# Koha's refusal codes (C4::Reserves::CanBookBeReserved, Koha::Patron::can_place_holds and the
# REST controllers) -> the broker's named reasons. Codes already named as ours pass through.
KOHA_REFUSALS: dict[str, str] = {
    "invalid_credentials": "authentication_failed",
    "expired": "patron_blocked",
    "restricted": "patron_blocked",
    "debarred": "patron_blocked",
    "debt_limit": "patron_blocked",
    "card_lost": "patron_blocked",
    "bad_address": "patron_blocked",
    "tooManyReserves": "too_many_holds",
    "tooManyReservesToday": "too_many_holds",
    "hold_limit": "too_many_holds",
    "tooManyHoldsForThisRecord": "already_held",
    "alreadyReserved": "already_held",
    "itemAlreadyOnHold": "already_held",
    "alreadypossession": "already_on_loan",
    "notReservable": "not_holdable",
    "noReservesAllowed": "not_holdable",
    "recordHoldsNotAllowed": "not_holdable",
    "damaged": "not_holdable",
    "ageRestricted": "not_holdable",
    "libraryNotPickupLocation": "invalid_pickup",
    "pickupNotInHoldGroup": "invalid_pickup",
    "cannotBeTransferred": "invalid_pickup",
    # PUT /holds/{id}/pickup_location (Koha::REST::V1::Holds::update_pickup_location)
    "hold_waiting": "not_changeable",
    "hold_in_processing": "not_changeable",
    "hold_in_transit": "not_changeable",  # this sandbox's (and some members') word for Koha's "T"
}
_KOHA_REASON_PREFIX = "Reason: "

# Koha's hold `status` (reserves.found). Koha has no "submitted": a hold is queued from the start.
KOHA_HOLD_STATES: dict[str | None, HoldState] = {
    None: HoldState.WAITING,  # in the queue, `priority` = position
    "P": HoldState.SECURED,  # a copy is being processed for this patron
    "T": HoldState.IN_TRANSIT,
    "W": HoldState.READY,  # waiting on the hold shelf until `expiration_date`
    "F": HoldState.COLLECTED,  # finished (old_reserves)
}
_EXPIRED_REASON = "EXPIRED"
_ACTIVE_HOLD_STATES = frozenset({HoldState.SUBMITTED, HoldState.WAITING, HoldState.SECURED, HoldState.IN_TRANSIT, HoldState.READY})


ILS_REST_RULES = term_rules("ils_rest")


def like(word: str) -> dict[str, str]:
    """A `-like` condition matching `word` anywhere; LIKE's own wildcards in it are escaped."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"-like": f"%{escaped}%"}


def build_query(query: SearchQuery, rules: TermRules = ILS_REST_RULES) -> dict[str, Any]:
    """A structured query as Koha's JSON `q`: every term of every field ANDed, like a catalogue form.

    Terms are cut by `yokodan.terms` with the family's rules (an apostrophe separates: each
    term is a LIKE over the stored title), so punctuation is never part of a LIKE pattern.
    """
    clauses: list[dict[str, Any]] = []
    for word in member_terms(query.text, rules):
        clauses.append({"-or": [{"title": like(word)}, {"author": like(word)}, {"publisher": like(word)}]})
    clauses.extend({"title": like(word)} for word in member_terms(query.title, rules))
    clauses.extend({"author": like(word)} for word in member_terms(query.author, rules))
    if query.isbn:
        # Members catalogue an ISBN as 10 or 13 digits; asking for both finds either.
        forms = [query.isbn] + ([isbn10] if (isbn10 := to_isbn10(query.isbn)) else [])
        clauses.append({"-or": [{"isbn": like(form)} for form in forms]})
    if query.year is not None:
        clauses.append({"publication_year": query.year})
    if not clauses:
        raise UnsupportedQuery("empty query")
    return {"-and": clauses}


class ILSRestConnector(Connector):
    kind = "ils_rest"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.SEARCH,
            Capability.HOLDINGS,
            Capability.LOOKUP_PATRON,
            Capability.PLACE_HOLD,
            Capability.HOLD_STATUS,
            Capability.LIST_HOLDS,
            Capability.CANCEL_HOLD,
            Capability.PICKUP_LOCATIONS,
            Capability.CHANGE_PICKUP,
        }
    )

    def __init__(self, settings: TargetSettings, http: HttpClient) -> None:
        super().__init__(settings, http)
        self.base_url = settings.endpoint.rstrip("/")
        self.status = StatusMapper(settings.member, settings.status_words)
        self.term_rules = term_rules(self.kind, settings.options_as(IlsRestOptions).query_terms, member=settings.member)
        self.pickup_codes = pickup_codes(settings)
        self._pickup_branches = pickup_branches(settings)  # a hold's pickup code back to its branch

    # --- search and copies ----------------------------------------------------------------

    async def search(self, query: SearchQuery) -> SearchResult:
        per_page = min(query.page_size, self.settings.max_records)
        params = {
            "q": orjson.dumps(build_query(query)).decode(),
            # Koha pages rather than offsets: a start inside a page begins at that page.
            "_page": str((query.start - 1) // per_page + 1),
            "_per_page": str(per_page),
        }
        response = await self._get("/biblios", params=params, headers={"x-koha-embed": "items"})
        biblios = self._list(response)
        records = [self.record(biblio) for biblio in biblios]
        total = response.headers.get("X-Total-Count")
        return SearchResult(records=records, hits=int(total) if total and total.isdigit() else None)

    async def holdings(self, record_id: str) -> list[Holding]:
        response = await self._get(f"/biblios/{_koha_id(record_id, self.member)}/items", not_found="record_not_found")
        return [self.holding(item) for item in self._list(response)]

    def record(self, biblio: dict[str, Any]) -> Record:
        """One Koha biblio (with embedded `items`, if any) as a Record."""
        isbns, invalid = find_isbns(_text(biblio.get("isbn")) or "")
        year = biblio.get("publication_year") or biblio.get("copyright_date")
        author = _text(biblio.get("author"))
        return Record(
            member=self.member,
            local_id=_required_id(biblio, "biblio_id", self.member),
            title=_text(biblio.get("title")) or "[no title]",
            authors=[author] if author else [],
            publisher=_text(biblio.get("publisher")),
            year=year if isinstance(year, int) and 0 <= year <= 9999 else None,
            isbns=isbns,
            isbn_invalid=invalid,
            volume=_text(biblio.get("part_number")),
            edition=_text(biblio.get("edition_statement")),
            source_format="json",
            holdings=[self.holding(item) for item in biblio.get("items") or []],
        )

    def holding(self, item: dict[str, Any]) -> Holding:
        """One Koha item as a Holding: the member's word where known, else Koha's coded fields."""
        home = _text(item.get("home_library_id"))
        here = _text(item.get("holding_library_id")) or home
        due = _date(item.get("checked_out_date"))  # Koha: items.onloan, the due date of the loan
        availability, word = coded_status(item, due)
        note = _text(item.get("public_notes"))
        if note:
            noted = self.status(note)
            availability = noted if noted is not Availability.UNKNOWN else availability
            word = note
        return Holding(
            member=self.member,
            branch_id=self.settings.branch_codes.get(here or "") or self.settings.branch_codes.get(home or ""),
            location=here,
            call_number=_text(item.get("callnumber")),
            item_id=_text(item.get("item_id")),
            availability=availability,
            status_text=word,
            due_date=due,
            collection=_text(item.get("collection_code")),
        )

    # --- patrons ----------------------------------------------------------------------------

    async def lookup_patron(self, patron: PatronCredentials) -> PatronStatus:
        record = await self._checked_patron_record(patron)
        patron_id = _patron_id_of(record, self.member)
        checkouts, holds = await asyncio.gather(
            self._get("/checkouts", params={"patron_id": str(patron_id), "_per_page": _LIST_PAGE_SIZE}, headers={"x-koha-embed": "item"}),
            self._get("/holds", params={"patron_id": str(patron_id), "_per_page": _LIST_PAGE_SIZE}),
        )
        loans = self._list(checkouts)
        today = date.today()
        overdue = sum(1 for loan in loans if (due := _date(loan.get("due_date"))) is not None and due < today)
        active = [h for h in self._list(holds) if self.hold(h).state in _ACTIVE_HOLD_STATES]
        reasons: list[str] = []
        if overdue:
            reasons.append("overdue")
        if (expiry := _date(record.get("expiry_date"))) is not None and expiry < today:
            reasons.append("card_expired")
        if record.get("restricted"):
            reasons.append("restricted")  # a Koha debarment (manual, or automatic for overdues)
        return PatronStatus(
            member=self.member,
            blocked=bool(reasons),
            block_reasons=reasons,
            holds_count=len(active),
            loans_count=len(loans),
            overdue_count=overdue,
            loan_record_ids=[i for loan in loans if (i := _text((loan.get("item") or {}).get("biblio_id")))],
            hold_record_ids=[i for hold in active if (i := _text(hold.get("biblio_id")))],
        )

    async def _patron_id(self, patron: PatronCredentials) -> int:
        """The member's patron_id, checking the PIN when one is given."""
        validated = await self._check_pin(patron)
        if validated is not None:
            return validated
        return _patron_id_of(await self._patron_record(patron.card_number), self.member)

    async def _checked_patron_record(self, patron: PatronCredentials) -> dict[str, Any]:
        """The patron's record, after the PIN check when a PIN is given."""
        await self._check_pin(patron)  # first: a wrong PIN says nothing about the card
        return await self._patron_record(patron.card_number)

    async def _check_pin(self, patron: PatronCredentials) -> int | None:
        """The patron_id the member confirms for card + PIN; None when no PIN is given.

        The PIN goes in a POST body, never a URL; sent once, as members count failed checks.
        """
        if patron.pin is None:
            return None
        response = await self._send(
            "POST",
            "/auth/password/validation",
            json={"identifier": patron.card_number, "password": patron.pin.get_secret_value()},
            idempotent=True,  # a check: if its answer is lost, nothing was changed
        )
        return _patron_id_of(self._object(response), self.member)

    async def _patron_record(self, card_number: str) -> dict[str, Any]:
        found = self._list(await self._get("/patrons", params={"cardnumber": card_number}))
        if not found:
            raise PatronNotFound("the member has no patron with this card", member=self.member)
        return found[0]

    # --- holds ------------------------------------------------------------------------------

    async def place_hold(self, patron: PatronCredentials, request: HoldRequest, *, intent: HoldIntent | None = None) -> Hold:
        pickup = self.pickup_codes.get(request.pickup_branch_id)
        if pickup is None:
            raise HoldRefused("invalid_pickup", f"{request.pickup_branch_id} is not a pickup point of {self.member}", member=self.member)
        body: dict[str, Any] = {
            "patron_id": await self._patron_id(patron),
            "biblio_id": _koha_id(request.record_id, self.member),
            "pickup_library_id": pickup,
        }
        if request.item_id is not None:
            body["item_id"] = _koha_id(request.item_id, self.member)
        # Sent once; after a lost answer (OutcomeUnknown) the caller asks find_hold.
        response = await self._send(
            "POST", "/holds", json=body, headers={"Idempotency-Key": request.idempotency_key},
            not_found="record_not_found", idempotent=False,
        )
        with outcome_unknown_after_sending(self.member):  # a 201 we cannot read still placed a hold
            return self.hold(self._object(response), request.idempotency_key)

    async def find_hold(self, patron: PatronCredentials, intent: HoldIntent) -> Hold | None:
        key = intent.idempotency_key
        params = {"patron_id": str(await self._patron_id(patron)), "idempotency_key": key}
        found = [h for h in self._list(await self._get("/holds", params=params)) if h.get("idempotency_key") == key]
        return self.hold(found[0], key) if found else None

    async def list_holds(self, patron: PatronCredentials) -> list[Hold]:
        params = {"patron_id": str(await self._patron_id(patron)), "_per_page": _LIST_PAGE_SIZE}
        return [self.hold(data) for data in self._list(await self._get("/holds", params=params))]

    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold:
        return self.hold(await self._own_hold(await self._patron_id(patron), hold_id))

    async def cancel_hold(self, patron: PatronCredentials, hold_id: str) -> Hold:
        # Fetched first: DELETE answers 204 with no body, and the hold must be this patron's.
        data = await self._own_hold(await self._patron_id(patron), hold_id)
        await self._send(
            "DELETE", f"/holds/{_koha_id(hold_id, self.member, 'hold_not_found')}", not_found="hold_not_found", idempotent=False
        )
        return self.hold(data).model_copy(update={"state": HoldState.CANCELLED, "status_text": "", "queue_position": None})

    async def change_pickup(self, patron: PatronCredentials, hold_id: str, pickup_branch_id: str) -> Hold:
        pickup = self.pickup_codes.get(pickup_branch_id)
        if pickup is None:
            raise HoldRefused("invalid_pickup", f"{pickup_branch_id} is not a pickup point of {self.member}", member=self.member)
        # Fetched first: the hold must be this patron's (the API key sees everyone's), and Koha's answer
        # carries only the new pickup.
        data = await self._own_hold(await self._patron_id(patron), hold_id)
        response = await self._send(
            "PUT", f"/holds/{_koha_id(hold_id, self.member, 'hold_not_found')}/pickup_location",
            json={"pickup_library_id": pickup}, not_found="hold_not_found", bad_request="invalid_pickup", idempotent=False,
        )  # fmt: skip
        with outcome_unknown_after_sending(self.member):  # a 200 we cannot read may still have moved it
            answered = _text(self._object(response).get("pickup_library_id"))
        return self.hold(data | {"pickup_library_id": answered or pickup})

    async def pickup_locations(self, patron: PatronCredentials, record_id: str) -> list[PickupOption]:
        record = await self._checked_patron_record(patron)
        params = {"patron_id": str(_patron_id_of(record, self.member))}
        path = f"/biblios/{_koha_id(record_id, self.member)}/pickup_locations"
        # Koha lists only the allowed libraries unless overriding; with the override it lists
        # every library and flags those its rules exclude, which the planner wants to explain.
        headers = {"x-koha-override": "any"}
        libraries = self._list(await self._get(path, params=params, headers=headers, not_found="record_not_found"))
        home = _text(record.get("library_id"))
        offered: dict[str, PickupOption] = {}
        for library in libraries:
            code = _text(library.get("library_id")) or ""
            branch_id = self.settings.branch_codes.get(code)
            if branch_id is None or branch_id in offered:
                continue  # a library the consortium does not list cannot be chosen
            excluded = library.get("needs_override") is True or library.get("pickup_location") is False
            offered[branch_id] = PickupOption(
                branch_id=branch_id,
                label=_text(library.get("name")) or code,
                is_default=not excluded and code == home,
                excluded_reason=RefusalReason.INVALID_PICKUP if excluded else None,
            )
        return sorted(offered.values(), key=lambda option: not option.allowed)

    async def _own_hold(self, patron_id: int, hold_id: str) -> dict[str, Any]:
        data = self._object(await self._get(f"/holds/{_koha_id(hold_id, self.member, 'hold_not_found')}", not_found="hold_not_found"))
        # The broker's API key sees every patron's holds; a patron may only see their own.
        if data.get("patron_id") != patron_id:
            raise HoldRefused("hold_not_found", f"no hold {hold_id} for this card", member=self.member)
        return data

    def hold(self, data: dict[str, Any], idempotency_key: str | None = None) -> Hold:
        """One Koha hold as a Hold."""
        status = data.get("status")
        if data.get("cancellation_date"):
            reason = _text(data.get("cancellation_reason"))
            state = HoldState.EXPIRED if reason == _EXPIRED_REASON else HoldState.CANCELLED
            word = reason or "cancelled"
        elif status in KOHA_HOLD_STATES:
            state, word = KOHA_HOLD_STATES[status], status or ""
        else:
            raise MalformedResponse(f"unknown Koha hold status {status!r}", member=self.member)
        priority = data.get("priority")
        pickup = _text(data.get("pickup_library_id"))
        return Hold(
            member=self.member,
            hold_id=_required_id(data, "hold_id", self.member),
            record_id=_required_id(data, "biblio_id", self.member),
            item_id=_text(data.get("item_id")),
            pickup_branch_id=self._pickup_branches.get(pickup or ""),
            state=state,
            status_text=word,
            queue_position=priority if state is HoldState.WAITING and isinstance(priority, int) and priority > 0 else None,
            ready_until=_date(data.get("expiration_date")) if state is HoldState.READY else None,
            idempotency_key=_text(data.get("idempotency_key")) or idempotency_key,
        )

    # --- transport --------------------------------------------------------------------------

    async def _get(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        not_found: str | None = None,
    ) -> HttpResponse:
        try:
            return await self.http.get(
                self.base_url + path,
                member=self.member,
                timeout_s=self.settings.timeout_s,
                params=params,
                headers={**_JSON_HEADERS, **(headers or {})},
            )
        except TargetHTTPError as error:
            raise self._refusal(error, not_found) from None

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        not_found: str | None = None,
        bad_request: str | None = None,
        idempotent: bool,
    ) -> HttpResponse:
        """Sent exactly once (attempts=1), whatever happens; `idempotent=False` for effects, so
        that a failure after sending is OutcomeUnknown."""
        try:
            return await self.http.request(
                method,
                self.base_url + path,
                member=self.member,
                timeout_s=self.settings.timeout_s,
                json=json,
                headers={**_JSON_HEADERS, **(headers or {})},
                attempts=1,
                idempotent=idempotent,
            )
        except TargetHTTPError as error:
            raise self._refusal(error, not_found, bad_request) from None

    def _refusal(self, error: TargetHTTPError, not_found: str | None, bad_request: str | None = None) -> ConnectorError:
        """A 4xx with a Koha error body -> the named verdict (HoldRefused, AuthenticationFailed);
        anything else unchanged."""
        if not 400 <= error.status < 500 or error.status == 401:  # 401: the broker's own API credentials
            return error
        try:
            body = orjson.loads(error.body)
        except orjson.JSONDecodeError:
            body = None
        message = code = None
        if isinstance(body, dict):
            message, code = _text(body.get("error")), _text(body.get("error_code"))
        if code is None and message and _KOHA_REASON_PREFIX in message:
            code = message.rsplit(_KOHA_REASON_PREFIX, 1)[1].strip()
        reason = KOHA_REFUSALS.get(code or "") or (code if code in HOLD_REFUSAL_REASONS else None)
        if reason is None and error.status == 404:
            reason = not_found
        if reason is None and error.status == 400:
            reason = bad_request  # stock Koha answers a bad pickup with an error text and no code
        if reason is None:
            return error
        return member_refusal(reason, message or code or f"HTTP {error.status}", member=self.member)

    def _decode(self, response: HttpResponse) -> Any:
        try:
            response.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UndecodableResponse(f"JSON body is not UTF-8: {exc}", member=self.member) from None
        try:
            return orjson.loads(response.body)
        except orjson.JSONDecodeError as exc:
            raise MalformedResponse(f"malformed JSON: {exc}", member=self.member) from None

    def _list(self, response: HttpResponse) -> list[dict[str, Any]]:
        data = self._decode(response)
        if not isinstance(data, list) or not all(isinstance(entry, dict) for entry in data):
            raise MalformedResponse("expected a JSON array of objects", member=self.member)
        return data

    def _object(self, response: HttpResponse) -> dict[str, Any]:
        data = self._decode(response)
        if not isinstance(data, dict):
            raise MalformedResponse("expected a JSON object", member=self.member)
        return data


def coded_status(item: dict[str, Any], due: date | None) -> tuple[Availability, str]:
    """Availability from Koha's coded item fields, with the Koha word for it (as the 952 mapper)."""
    if _positive(item.get("lost_status")):
        return Availability.NOT_FOR_LOAN, "lost"
    if _positive(item.get("withdrawn")):
        return Availability.NOT_FOR_LOAN, "withdrawn"
    not_for_loan = item.get("not_for_loan_status")
    if isinstance(not_for_loan, int) and not_for_loan < 0:  # Koha: negative = ordered
        return Availability.ON_ORDER, "on order"
    if _positive(not_for_loan):
        return Availability.LIBRARY_USE_ONLY, "not for loan"
    if due is not None:
        return Availability.ON_LOAN, "checked out"
    return Availability.AVAILABLE, "available"


def _koha_id(value: str, member: str, missing: str = "record_not_found") -> int:
    # Koha ids (biblio, item, hold) are integers; anything else cannot exist at the member.
    if not value.isdigit():
        raise HoldRefused(missing, f"{value!r} is not a Koha id", member=member)
    return int(value)


def _patron_id_of(data: dict[str, Any], member: str) -> int:
    patron_id = data.get("patron_id")
    if not isinstance(patron_id, int):
        raise MalformedResponse("patron answer has no integer patron_id", member=member)
    return patron_id


def _required_id(data: dict[str, Any], field: str, member: str) -> str:
    value = _text(data.get(field))
    if value is None:
        raise MalformedResponse(f"answer has no {field}", member=member)
    return value


def _text(value: Any) -> str | None:
    """A JSON scalar as stripped text; None for null, empty and non-scalars."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _date(value: Any) -> date | None:
    """A Koha date or date-time ("2025-06-01", "2025-06-01T23:59:00+09:00") as a date."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
