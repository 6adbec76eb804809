"""The one contract every connector family implements (cf. VuFind's ILS drivers).

A connector talks to exactly one member system and knows nothing of the others.
It declares what it can do as `capabilities`; the broker asks for a capability,
never for a class. Search is the only capability every family has today; the
hold operations are named here so that the holds issue fills them in without
changing the contract's shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from yokodan import Diagnostic, Hold, HoldRequest, Holding, PatronCredentials, PatronStatus, Record, SearchQuery
from connectors.options import PickupCodeOptions
from connectors.settings import TargetSettings
from connectors.errors import NotSupported

from connectors.http import HttpClient


class Capability(StrEnum):
    SEARCH = "search"  # records (with holdings where the protocol carries them) for a query
    HOLDINGS = "holdings"  # live holdings for a known record or ISBN
    LOOKUP_PATRON = "lookup_patron"
    PLACE_HOLD = "place_hold"
    HOLD_STATUS = "hold_status"
    CANCEL_HOLD = "cancel_hold"
    PICKUP_LOCATIONS = "pickup_locations"


@dataclass(slots=True)
class SearchResult:
    """One member's answer to one search."""

    records: list[Record]
    hits: int | None  # the member's total, when it reports one
    diagnostics: list[Diagnostic] = field(default_factory=list)  # non-fatal ones


def pickup_codes(settings: TargetSettings) -> dict[str, str]:
    """Consortium branch id -> the library code the member expects in requests.

    The `pickup_codes` option (families with `PickupCodeOptions`) when the member's request codes
    differ from its catalogue codes; otherwise each branch's first code (`TargetSettings.member_codes`).
    """
    options = settings.options
    if isinstance(options, PickupCodeOptions) and options.pickup_codes:
        return dict(options.pickup_codes)
    return dict(settings.member_codes)


class Connector(ABC):
    """Base class for one member system's adapter."""

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEARCH})

    def __init__(self, settings: TargetSettings, http: HttpClient) -> None:
        self.settings = settings
        self.http = http

    @property
    def member(self) -> str:
        return self.settings.member

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    @abstractmethod
    async def search(self, query: SearchQuery) -> SearchResult:
        """Search the member; raise a `connectors.errors.ConnectorError` on failure."""

    # --- optional capabilities: a connector overrides those it declares -----------------

    def _unsupported(self, capability: Capability) -> NotSupported:
        return NotSupported(f"{self.kind} connector cannot {capability.value}", member=self.member)

    async def holdings(self, record_id: str) -> list[Holding]:
        """Live holdings of one of the member's records (Capability.HOLDINGS)."""
        raise self._unsupported(Capability.HOLDINGS)

    async def lookup_patron(self, patron: PatronCredentials) -> PatronStatus:
        """Blocks, loans and hold counts (Capability.LOOKUP_PATRON); HoldRefused on bad credentials."""
        raise self._unsupported(Capability.LOOKUP_PATRON)

    async def place_hold(self, patron: PatronCredentials, request: HoldRequest) -> Hold:
        """Place one hold (Capability.PLACE_HOLD). Never retried: after a timeout or a lost
        answer the caller must `find_hold(idempotency_key)` before trying again."""
        raise self._unsupported(Capability.PLACE_HOLD)

    async def find_hold(self, patron: PatronCredentials, idempotency_key: str) -> Hold | None:
        """The hold placed with this idempotency key, if the member has it (Capability.HOLD_STATUS)."""
        raise self._unsupported(Capability.HOLD_STATUS)

    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold:
        raise self._unsupported(Capability.HOLD_STATUS)

    async def cancel_hold(self, patron: PatronCredentials, hold_id: str) -> Hold:
        """Cancel one hold; HoldRefused('not_cancellable') once it is secured or later."""
        raise self._unsupported(Capability.CANCEL_HOLD)

    async def pickup_locations(self, patron: PatronCredentials, record_id: str) -> list[str]:
        """Consortium branch ids where this patron may collect this record (Capability.PICKUP_LOCATIONS)."""
        raise self._unsupported(Capability.PICKUP_LOCATIONS)
