"""The one contract every connector family implements (cf. VuFind's ILS drivers).

A connector talks to exactly one member system and knows nothing of the others.
It declares what it can do as `capabilities`; the broker asks for a capability,
never for a class. Every operation a family does not declare raises `NotSupported`,
and `NotSupported` means only that: this family (or this member's profile) cannot.

Errors every operation may raise (connectors.errors), by what the caller should do:
  RequestNotSent (ConnectError, ConnectTimeout)  nothing reached the member: try again later
  TargetTimeout / TargetUnreachable (ReadTimeout, AnswerLost) a read failed after sending
  OutcomeUnknown   a request with effects may have reached the member: reconcile with find_hold
  TargetHTTPError, MalformedResponse, UndecodableResponse, ResponseTooLarge, ProtocolDiagnostic
                   the member answered, but not with anything usable
  AuthenticationFailed (PatronNotFound)  bad credentials: ask the patron, not another member
  HoldRefused      the member's named verdict (`reason`: a yokodan.RefusalReason)
  NotSupported     this family cannot
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from yokodan import Availability, Diagnostic, Hold, HoldRequest, Holding, PatronCredentials, PatronStatus, Record, RefusalReason, SearchQuery
from yokodan.holds import CancelOutcome, CancelResult, HoldCheck, HoldIntent, PickupOption, Placed, PlacementResult, Refused, Unknown
from connectors.options import PickupCodeOptions
from connectors.settings import TargetSettings
from connectors.errors import AuthenticationFailed, ConnectorError, HoldRefused, NotSupported, OutcomeUnknown

from connectors.http import HttpClient


class Capability(StrEnum):
    SEARCH = "search"  # records (with holdings where the protocol carries them) for a query
    HOLDINGS = "holdings"  # live holdings for a known record or ISBN
    LOOKUP_PATRON = "lookup_patron"
    PLACE_HOLD = "place_hold"
    HOLD_STATUS = "hold_status"  # hold_status and find_hold
    LIST_HOLDS = "list_holds"  # every current hold of a patron (the poller)
    CANCEL_HOLD = "cancel_hold"  # cancel_hold and cancel_holds
    PICKUP_LOCATIONS = "pickup_locations"
    CHANGE_PICKUP = "change_pickup"  # move a placed hold's pickup branch


# Copies no hold can be placed on (the member's own rule, read off its holdings).
_NOT_HOLDABLE = frozenset({Availability.LIBRARY_USE_ONLY, Availability.NOT_FOR_LOAN})


@dataclass(slots=True)
class SearchResult:
    """One member's answer to one search."""

    records: list[Record]
    hits: int | None  # the member's total, when it reports one
    diagnostics: list[Diagnostic] = field(default_factory=list)  # non-fatal ones


@dataclass(slots=True)
class ReadAnswer:
    """A member's search answer read off its socket and not parsed yet (`Connector.search_read`).

    `parse()` is what `search` would have answered, or raises what it would have raised. Only an
    answer the connector would parse on the event loop anyway comes back like this: the parse
    costs the same CPU wherever it runs, but the search runs it in its own order, so that of many
    answers that land in one loop turn the first is merged and published before the rest are
    parsed (issue 14: first results waited ~300 µs behind each answer of their batch).
    """

    parse: Callable[[], SearchResult]


def pickup_codes(settings: TargetSettings) -> dict[str, str]:
    """Consortium branch id -> the library code the member expects in requests.

    The `pickup_codes` option (families with `PickupCodeOptions`) when the member's request codes
    differ from its catalogue codes; otherwise each branch's first code (`TargetSettings.member_codes`).
    """
    options = settings.options
    if isinstance(options, PickupCodeOptions) and options.pickup_codes:
        return dict(options.pickup_codes)
    return dict(settings.member_codes)


def pickup_branches(settings: TargetSettings) -> dict[str, str]:
    """The way back: the code a member answers for a hold's pickup -> consortium branch id.

    The member's catalogue codes first (`branch_codes`), then the pickup codes it was sent, so a
    pickup at a library outside the member's own branches (a prefectural library lending to the
    municipal libraries) maps back to that library instead of to nothing.
    """
    return {**{code: branch for branch, code in pickup_codes(settings).items()}, **settings.branch_codes}


class Connector(ABC):
    """Base class for one member system's adapter."""

    kind: ClassVar[str]
    # Each family lists what it can do; nothing is assumed (NCIP, for one, cannot search).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Families whose answers may be parsed in the app's ingest pool take `ingest=` (connectors.ingest_pool).
    uses_ingest_pool: ClassVar[bool] = False

    def __init__(self, settings: TargetSettings, http: HttpClient) -> None:
        self.settings = settings
        self.http = http
        # A plain attribute, not a property over settings: read ~10 times per member of every search.
        self.member = settings.member

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def _unsupported(self, capability: Capability) -> NotSupported:
        return NotSupported(f"{self.kind} connector cannot {capability.value}", member=self.member)

    # --- catalogue --------------------------------------------------------------------------

    async def search(self, query: SearchQuery) -> SearchResult:
        """Search the member (Capability.SEARCH). UnsupportedQuery when the query does not fit it."""
        raise self._unsupported(Capability.SEARCH)

    async def search_read(self, query: SearchQuery) -> SearchResult | ReadAnswer:
        """`search`, but an answer that would be parsed on the event loop may come back unparsed
        (a `ReadAnswer`, for the caller to parse when it takes it). Families that do not say
        otherwise parse as `search` does."""
        return await self.search(query)

    async def holdings(self, record_id: str) -> list[Holding]:
        """Live holdings of one of the member's records (Capability.HOLDINGS).
        HoldRefused(record_not_found) for a record the member does not have."""
        raise self._unsupported(Capability.HOLDINGS)

    # --- patrons ----------------------------------------------------------------------------

    async def lookup_patron(self, patron: PatronCredentials) -> PatronStatus:
        """Blocks, loans and hold counts (Capability.LOOKUP_PATRON).
        AuthenticationFailed on a wrong PIN, PatronNotFound (a subclass) for an unknown card."""
        raise self._unsupported(Capability.LOOKUP_PATRON)

    # --- before placing ---------------------------------------------------------------------

    async def pickup_locations(self, patron: PatronCredentials, record_id: str) -> list[PickupOption]:
        """Where this patron may collect this record (Capability.PICKUP_LOCATIONS): the allowed
        branches first (at most one `is_default`), then the member's branches it excludes, each
        with its `excluded_reason`. Branches the consortium does not know are left out.
        HoldRefused(record_not_found), AuthenticationFailed."""
        raise self._unsupported(Capability.PICKUP_LOCATIONS)

    async def check_hold(self, patron: PatronCredentials, request: HoldRequest) -> HoldCheck:
        """Would the member refuse this hold? (cf. VuFind's checkRequestIsValid). Places nothing.

        Asks what the family can answer: the patron's blocks, holds and loans
        (LOOKUP_PATRON), the pickup options (PICKUP_LOCATIONS) and the copies (HOLDINGS). A
        family with none of them answers an empty check. Limits are the consortium's policy,
        checked by the planner. AuthenticationFailed on bad credentials; transport errors as
        the underlying reads raise them.
        """
        reasons: list[RefusalReason] = []
        messages: list[str] = []
        if self.supports(Capability.LOOKUP_PATRON):
            status = await self.lookup_patron(patron)
            if status.blocked:
                reasons.append(RefusalReason.PATRON_BLOCKED)
                messages.append(", ".join(status.block_reasons))
            if request.record_id in status.hold_record_ids:
                reasons.append(RefusalReason.ALREADY_HELD)
            if request.record_id in status.loan_record_ids:
                reasons.append(RefusalReason.ALREADY_ON_LOAN)
        try:
            if self.supports(Capability.PICKUP_LOCATIONS):
                offered = {o.branch_id: o for o in await self.pickup_locations(patron, request.record_id)}
                chosen = offered.get(request.pickup_branch_id)
                if chosen is None:
                    reasons.append(RefusalReason.INVALID_PICKUP)
                elif chosen.excluded_reason is not None:
                    reasons.append(chosen.excluded_reason)
                    messages.extend(filter(None, [chosen.message]))
            if self.supports(Capability.HOLDINGS):
                copies = await self.holdings(request.record_id)
                wanted = [c for c in copies if request.item_id is None or c.item_id == request.item_id]
                if not wanted:
                    reasons.append(RefusalReason.RECORD_NOT_FOUND)
                elif all(c.availability in _NOT_HOLDABLE for c in wanted):
                    reasons.append(RefusalReason.NOT_HOLDABLE)
        except HoldRefused as refused:
            reasons.append(RefusalReason(refused.reason))
            messages.append(refused.message)
        return HoldCheck(reasons=list(dict.fromkeys(reasons)), messages=messages)

    # --- placing ----------------------------------------------------------------------------

    async def prepare_hold(self, patron: PatronCredentials, request: HoldRequest) -> HoldIntent:
        """The intent the caller records before placing, and later passes to `find_hold`.

        Families whose protocol carries the idempotency key need nothing more than the
        request; the HTML OPAC family notes the patron's current holds (see HoldIntent)."""
        return HoldIntent(request=request)

    async def place_hold(self, patron: PatronCredentials, request: HoldRequest, *, intent: HoldIntent | None = None) -> Hold:
        """Place one hold (Capability.PLACE_HOLD); sent once, never retried.

        HoldRefused(reason) or AuthenticationFailed: nothing placed. OutcomeUnknown: the member
        may have placed it; `find_hold(patron, intent)` says, and nothing is sent again before.
        RequestNotSent, or an error the member answered (4xx, 503): nothing placed."""
        raise self._unsupported(Capability.PLACE_HOLD)

    async def place(self, patron: PatronCredentials, intent: HoldIntent) -> PlacementResult:
        """`place_hold` as a typed result: Placed | Refused(reason) | Unknown.

        Still raises the errors that mean the member certainly did not act and did not decide
        (RequestNotSent, an HTTP error answer, a malformed refusal) and NotSupported."""
        try:
            return Placed(hold=await self.place_hold(patron, intent.request, intent=intent))
        except (HoldRefused, AuthenticationFailed) as refused:
            return Refused(reason=RefusalReason(refused.reason), message=refused.message)
        except OutcomeUnknown as unknown:
            return Unknown(idempotency_key=intent.idempotency_key, message=unknown.message)

    # --- following holds --------------------------------------------------------------------

    async def find_hold(self, patron: PatronCredentials, intent: HoldIntent) -> Hold | None:
        """The hold a placement with this intent made, if the member has it; None if it has not
        (then the placement did not happen, and may be sent again). Capability.HOLD_STATUS."""
        raise self._unsupported(Capability.HOLD_STATUS)

    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold:
        """One hold of this patron by the member's id; HoldRefused(hold_not_found) for another's."""
        raise self._unsupported(Capability.HOLD_STATUS)

    async def list_holds(self, patron: PatronCredentials) -> list[Hold]:
        """Every current hold of this patron at the member, in the member's order
        (Capability.LIST_HOLDS: the poller). Finished holds may or may not be listed."""
        raise self._unsupported(Capability.LIST_HOLDS)

    # --- changing ---------------------------------------------------------------------------

    async def change_pickup(self, patron: PatronCredentials, hold_id: str, pickup_branch_id: str) -> Hold:
        """Move one of this patron's holds to another pickup branch (Capability.CHANGE_PICKUP); the hold
        as it now stands. HoldRefused('not_changeable') once the member is processing it (secured, in
        transit, on the shelf), 'invalid_pickup', 'hold_not_found'. Sent once: OutcomeUnknown after a
        lost answer — read the hold back (`hold_status`) to see whether the move landed. Setting the same
        pickup again is harmless, so unlike a placement it may simply be sent again once it did not."""
        raise self._unsupported(Capability.CHANGE_PICKUP)

    # --- cancelling -------------------------------------------------------------------------

    async def cancel_hold(self, patron: PatronCredentials, hold_id: str) -> Hold:
        """Cancel one hold (Capability.CANCEL_HOLD); HoldRefused('not_cancellable') once it is
        secured or later, HoldRefused('hold_not_found'); OutcomeUnknown after a lost answer."""
        raise self._unsupported(Capability.CANCEL_HOLD)

    async def cancel_holds(self, patron: PatronCredentials, hold_ids: list[str]) -> list[CancelResult]:
        """Cancel several holds: one result per distinct id, in the order given (cf. VuFind's
        cancelHolds). One at a time: members count a patron's requests, and an OPAC session is
        one browser. Errors become per-item results; NotSupported and AuthenticationFailed,
        which would fail every item alike, are raised."""
        if not self.supports(Capability.CANCEL_HOLD):
            raise self._unsupported(Capability.CANCEL_HOLD)
        results: list[CancelResult] = []
        for hold_id in dict.fromkeys(hold_ids):
            try:
                hold = await self.cancel_hold(patron, hold_id)
            except HoldRefused as refused:
                results.append(CancelResult(hold_id=hold_id, outcome=CancelOutcome.REFUSED, reason=RefusalReason(refused.reason), message=refused.message))
            except OutcomeUnknown as unknown:
                results.append(CancelResult(hold_id=hold_id, outcome=CancelOutcome.UNKNOWN, error=unknown.cause.reason, message=unknown.message))
            except (NotSupported, AuthenticationFailed):
                raise
            except ConnectorError as failed:
                results.append(CancelResult(hold_id=hold_id, outcome=CancelOutcome.FAILED, error=failed.reason, message=failed.message))
            else:
                results.append(CancelResult(hold_id=hold_id, outcome=CancelOutcome.CANCELLED, hold=hold))
        return results
