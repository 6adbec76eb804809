"""One member call outside a search: admitted, given one of the member's slots, its outcome fed to its breaker.

Search has its own path (broker.search: plan, launch gate, slot, record). Everything else that asks a
member something goes through here: the hold planner's patron look-ups and live holdings, and the
hold ledger's placements, look-ups, status polls, pickup changes and cancellations. So that:
- a member in its maintenance window or behind an open circuit is not contacted (`MemberNotContacted`,
  a RequestNotSent: the member never saw the request, so a placement may simply be tried again);
- the call takes one of the member's operation slots: searches and hold traffic share the member's
  politeness bound instead of each keeping a bound of its own;
- the outcome reaches the member's circuit breaker, and a call that carried the half-open probe always
  reports. Before this, the planner and the poller took the probe (`CircuitBreaker.allow()`) and never
  reported: the circuit stayed half-open, and every search skipped the member as `circuit_open` until
  the process restarted.
A refusal the member gives (hold limit, unknown card, not cancellable) is an answer: the member is up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.base import Capability, Connector
from connectors.errors import AuthenticationFailed, ConnectorError, HoldRefused, RequestNotSent, SessionExpired
from yokodan import TargetState
from yokodan.holds import Unknown

from broker.member_slots import MEMBER_BUSY_REASON, MemberBusy

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from broker.members import MemberRegistry

# Errors that are the member's answer, not its failure.
_ANSWERS = (HoldRefused, AuthenticationFailed, SessionExpired)


class MemberNotContacted(RequestNotSent):
    """The member was not contacted: maintenance, an open circuit, no free slot, or no such capability."""

    state = TargetState.SKIPPED

    def __init__(self, member: str, reason: str, message: str) -> None:
        super().__init__(message, member=member)
        self.reason = reason


class MemberOperation:
    """`async with registry.operation(member, capability) as connector:` one call to the member."""

    __slots__ = ("_registry", "_member", "_capability", "_wait_s", "_slot", "_probe", "_lost")

    def __init__(self, registry: MemberRegistry, member_id: str, capability: Capability, wait_s: float | None) -> None:
        self._registry = registry
        self._member = member_id
        self._capability = capability
        self._wait_s = wait_s
        self._slot: AbstractAsyncContextManager[float] | None = None
        self._probe = False
        self._lost = False

    async def __aenter__(self) -> Connector:
        admission = self._registry.admit(self._member, self._capability)  # may take the half-open probe
        if admission.connector is None:
            assert admission.skip is not None
            raise MemberNotContacted(self._member, admission.skip.value, admission.message or admission.skip.value)
        self._probe = admission.probe
        slot = self._registry.slot(self._member, wait_s=self._wait_s)
        try:
            await slot.__aenter__()
        except MemberBusy as busy:
            self._no_verdict()
            raise MemberNotContacted(self._member, MEMBER_BUSY_REASON, busy.message) from None
        except BaseException:  # cancelled while queued for a slot
            self._no_verdict()
            raise
        self._slot = slot
        return admission.connector

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if self._slot is not None:
            await self._slot.__aexit__(exc_type, exc, tb)
        registry = self._registry
        if exc is None and self._lost:
            registry.record(self._member, TargetState.ERROR, "outcome_unknown")
        elif exc is None or isinstance(exc, _ANSWERS):
            registry.record(self._member, TargetState.OK)
        elif isinstance(exc, ConnectorError):
            registry.record(self._member, exc.state, exc.reason)
        elif isinstance(exc, TimeoutError):  # the caller's own deadline (asyncio.wait_for) ran out
            registry.record(self._member, TargetState.TIMEOUT, "timeout")
        else:  # cancelled, or a bug of ours: nothing learnt about the member
            self._no_verdict()
        return False

    def note_lost_answer(self) -> None:
        """The call returned, but only to say its answer was lost (`Unknown`): the member's failure, not an answer."""
        self._lost = True

    def _no_verdict(self) -> None:
        if self._probe:
            self._registry.record_no_verdict(self._member)


# The connector calls that contact the member. `prepare_hold` is left out: for most families it
# only builds the intent, and a call that never reached the member must not close its circuit.
GUARDED_CALLS = frozenset({
    "lookup_patron", "holdings", "pickup_locations", "check_hold", "place", "place_hold", "find_hold",
    "hold_status", "list_holds", "change_pickup", "cancel_hold", "cancel_holds",
})  # fmt: skip


class GuardedConnector:
    """A member's connector whose calls in GUARDED_CALLS each run as one MemberOperation; the rest pass through.

    What the hold ledger is given (`gateway_for`): it keeps calling the connector's contract and
    does not need to know about slots and breakers.
    """

    __slots__ = ("_registry", "_member", "_connector", "_capability")

    def __init__(self, registry: MemberRegistry, member_id: str, connector: Connector, capability: Capability) -> None:
        self._registry = registry
        self._member = member_id
        self._connector = connector
        self._capability = capability

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._connector, name)
        if name not in GUARDED_CALLS:
            return value

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            operation = MemberOperation(self._registry, self._member, self._capability, None)
            async with operation:
                result = await value(*args, **kwargs)
                if isinstance(result, Unknown):
                    operation.note_lost_answer()
            return result

        return guarded
