"""The member registry: the one owner of what the broker holds per member system.

Search, holds and the hold poller share one `MemberRegistry` per app: each
member's connectors (one per protocol it speaks: a member may search over SRU
and take holds over NCIP), its circuit breaker, its maintenance windows, a cap
on concurrent operations against it, and the app's unknown-status-word counter.
Sharing matters: a member that times out on searches must be skipped by the
poller too, and a poller must not starve patrons' searches of the member.

`admit(member, capability)` is the one place that decides whether a member is
asked now, and why not (`SkipReason`); `record(member, status)` is the one place
that turns an outcome into circuit-breaker health.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from broker.consortium import Consortium, MaintenanceWindow, Member
from broker.member_operations import GuardedConnector, MemberOperation
from broker.member_slots import MEMBER_BUSY_REASON, MemberSlots, SlotLimits
from connectors import Capability, Connector, HttpClient, IngestPool, UnknownWords, connector_for
from connectors.circuit import CircuitBreaker, CircuitState
from connectors.settings import TargetSettings
from yokodan.errors import BadRequest, YokodanError
from yokodan import TargetState, TargetStatus

# A request whose time was cut short by the search's total deadline after it queued for a slot:
# its timeout says that the search ran out of time, not that the member is slow.
SEARCH_DEADLINE_REASON = "search_deadline"
# The process-wide outbound gate (broker.outbound) had no slot within the member's timeout: not contacted.
BROKER_BUSY_REASON = "broker_busy"
# Failures that say nothing about the member's health: the query did not fit it, the broker
# itself had no slot free for it (`member_busy`, see broker.member_slots), or the search's
# deadline, not the member's, ran out.
_NOT_HEALTH_FAILURES = frozenset(
    {"diagnostic", "unsupported_query", "not_supported", MEMBER_BUSY_REASON, SEARCH_DEADLINE_REASON, BROKER_BUSY_REASON}
)
# A timeout says something about the member only while the broker itself keeps time: with the
# event loop lagging, the member's answer may have sat unread in our socket buffer.
_TIMEOUT_REASONS = frozenset({"timeout"})
# Answers we could not read: the member's fault for a clean request, ours for a request that
# carried control characters or broken text the member then echoed into its document.
_GARBLE_REASONS = frozenset({"malformed", "undecodable", "hostile_document"})


def counts_against_member(
    state: TargetState, reason: str | None, *, request_clean: bool = True, broker_saturated: bool = False
) -> bool:
    """Whether one failed outcome says something about the member (and so feeds its breaker).

    Counted: connect errors, 5xx and other HTTP errors, timeouts while the broker is not
    saturated, unreadable answers to clean requests. Not counted: query diagnostics, our own
    full queue (`member_busy`), timeouts cut short by the search's deadline, timeouts while the broker is saturated, garble answering a dirty request.
    """
    if state not in (TargetState.ERROR, TargetState.TIMEOUT) or reason in _NOT_HEALTH_FAILURES:
        return False
    if broker_saturated and (state is TargetState.TIMEOUT or reason in _TIMEOUT_REASONS):
        return False
    return request_clean or reason not in _GARBLE_REASONS


def _slot_limits(member: Member, operations: int | None) -> SlotLimits:
    table = member.connector
    return SlotLimits(
        capacity=table.max_operations if operations is None else operations,
        max_waiting=table.queue_length,
        max_wait_s=table.queue_wait_s,
    )


class UnknownMembers(BadRequest):
    """The caller named members the consortium does not have."""

    def __init__(self, unknown: Sequence[str]) -> None:
        super().__init__(f"unknown member ids: {', '.join(unknown)}")
        self.unknown = list(unknown)


class CapabilityMissing(YokodanError):
    """None of the member's connectors declares the capability asked for."""

    def __init__(self, member: str, capability: Capability) -> None:
        super().__init__(f"member {member}: no connector offers {capability.value}")
        self.member = member
        self.capability = capability


class SkipReason(StrEnum):
    """Why a member is not contacted now (the `reason` of a skipped TargetStatus)."""

    NOT_SUPPORTED = "not_supported"
    MAINTENANCE = "maintenance"
    CIRCUIT_OPEN = "circuit_open"
    MEMBER_BUSY = MEMBER_BUSY_REASON  # every operation slot taken and the short queue full or too slow


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to "may I ask this member for this now?": a connector, or why not."""

    member: str
    connector: Connector | None
    skip: SkipReason | None = None
    message: str | None = None
    probe: bool = False  # this caller carries the half-open probe: it must report an outcome

    def skipped_status(self, circuit: CircuitState) -> TargetStatus:
        assert self.skip is not None
        return TargetStatus(
            member=self.member, state=TargetState.SKIPPED, reason=self.skip.value, message=self.message,
            circuit=circuit.value,
        )


@dataclass(slots=True)
class Plan:
    """Who is asked, and who is skipped without being contacted (with the reason)."""

    ask: list[Connector] = field(default_factory=list)
    skipped: list[TargetStatus] = field(default_factory=list)
    probes: set[str] = field(default_factory=set)  # members whose half-open probe this plan carries


def member_target_settings(consortium: Consortium, member_id: str) -> list[TargetSettings]:
    """Every connector configuration of one member, in the order capabilities are looked up.

    The member's `[members.holds]` table (e.g. holds over NCIP beside search over SRU) comes
    first, so hold operations go to the connector the file names for them; search still goes
    to the `connector` table because a holds connector that could also search is asked for
    search only when the search connector cannot (see `MemberRegistry.connector`).
    """
    holds = consortium.holds_settings(member_id)
    search = consortium.target_settings(member_id)
    return [search] if holds is None else [holds, search]


class _LocalNow:
    """The consortium's local time, read from the registry's clock on first use only."""

    __slots__ = ("_registry", "_value")

    def __init__(self, registry: MemberRegistry) -> None:
        self._registry = registry
        self._value: datetime | None = None

    @property
    def value(self) -> datetime:
        if self._value is None:
            self._value = self._registry.clock().astimezone(self._registry.timezone)
        return self._value


# `_MemberEntry.by_capability` has not looked this capability up yet (None: the member has none).
_UNLOOKED: Any = object()


@dataclass(slots=True)
class _MemberEntry:
    member: Member
    connectors: tuple[Connector, ...]
    breaker: CircuitBreaker
    slots: MemberSlots
    by_capability: dict[Capability, Connector | None] = field(default_factory=dict)  # `connector()`'s answers


class MemberRegistry:
    """Connectors, circuit breakers, maintenance windows and operation slots, per member; one per app."""

    def __init__(
        self,
        consortium: Consortium,
        http: HttpClient,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        member_operations: int | None = None,
        unknown_words: UnknownWords | None = None,
        ingest: IngestPool | None = None,
    ) -> None:
        """`member_operations` overrides every member's `max_operations` (tests, benchmarks)."""
        if member_operations is not None and member_operations < 1:
            raise ValueError("member_operations must be >= 1")
        self.consortium = consortium
        self.http = http
        self.clock = clock
        self.timezone = ZoneInfo(consortium.timezone)
        self.unknown_words = UnknownWords() if unknown_words is None else unknown_words
        # Set by the app's event-loop lag monitor (broker.admission.LagMonitor.saturated);
        # never saturated without one (the CLI, tests of the registry alone).
        self.broker_saturated: Callable[[], bool] = lambda: False
        self._entries: dict[str, _MemberEntry] = {
            member.id: _MemberEntry(
                member=member,
                connectors=tuple(
                    connector_for(settings, http, unknown_words=self.unknown_words, ingest=ingest)
                    for settings in member_target_settings(consortium, member.id)
                ),
                breaker=CircuitBreaker(member.connector.circuit_failures, member.connector.circuit_reset_s),
                slots=MemberSlots(member.id, _slot_limits(member, member_operations)),
            )
            for member in consortium.members
        }

    # --- lookups ---------------------------------------------------------------------

    @property
    def member_ids(self) -> list[str]:
        return list(self._entries)

    def _entry(self, member_id: str) -> _MemberEntry:
        try:
            return self._entries[member_id]
        except KeyError:
            raise UnknownMembers([member_id]) from None

    def member(self, member_id: str) -> Member:
        return self._entry(member_id).member

    def connectors(self, member_id: str) -> tuple[Connector, ...]:
        return self._entry(member_id).connectors

    def connector(self, member_id: str, capability: Capability) -> Connector:
        """The member's first connector that declares `capability`; CapabilityMissing when none does.

        Search looks at the `connector` table (the last one) first: a dedicated holds face is
        there for holds, not to answer searches.
        """
        connectors = self._entry(member_id).connectors
        ordered = connectors[::-1] if capability is Capability.SEARCH else connectors
        for connector in ordered:
            if connector.supports(capability):
                return connector
        raise CapabilityMissing(member_id, capability)

    def breaker(self, member_id: str) -> CircuitBreaker:
        return self._entry(member_id).breaker

    def slot(self, member_id: str, *, wait_s: float | None = None) -> AbstractAsyncContextManager[float]:
        """Hold this while an operation against the member is in flight (yields the seconds queued).

        Waits in the member's FIFO queue for at most its `queue_wait_s` (or `wait_s`, when the
        caller's deadline is nearer); `MemberBusy` when the queue is full or the wait runs out.
        """
        return self._entry(member_id).slots.acquire(wait_s)

    def operation(self, member_id: str, capability: Capability, *, wait_s: float | None = None) -> MemberOperation:
        """`async with registry.operation(member, capability) as connector:` one call outside a search.

        Admitted (maintenance, open circuit: `MemberNotContacted`, nothing sent), in one of the member's
        slots, and its outcome fed to the breaker, the half-open probe included (broker.member_operations).
        """
        return MemberOperation(self, member_id, capability, wait_s)

    def guarded(self, member_id: str, capability: Capability) -> GuardedConnector:
        """The member's connector for `capability`, each call to the member run as `operation` (the hold ledger's gateway)."""
        return GuardedConnector(self, member_id, self.connector(member_id, capability), capability)

    def unavailable(self, member_id: str) -> str | None:
        """Why the member would be skipped now ("maintenance", "circuit_open"), or None; takes no probe.

        For callers that decide ahead whether to try (the hold poller); the call itself then goes
        through `operation`, which takes the probe and reports its outcome.
        """
        if self.maintenance_now(member_id) is not None:
            return SkipReason.MAINTENANCE.value
        breaker = self.breaker(member_id)
        if breaker.state is CircuitState.HALF_OPEN or breaker.retry_in_s() > 0:
            return SkipReason.CIRCUIT_OPEN.value  # open and cooling off, or its probe is out
        return None

    def slots(self, member_id: str) -> MemberSlots:
        """The member's slots and queue (in use, waiting, totals)."""
        return self._entry(member_id).slots

    def maintenance_now(self, member_id: str) -> MaintenanceWindow | None:
        """The maintenance window the member is in now (its consortium's local time), if any."""
        return self._maintenance(self._entry(member_id).member, _LocalNow(self))

    @staticmethod
    def _maintenance(member: Member, now: _LocalNow) -> MaintenanceWindow | None:
        # Most members have no window: the clock is read only for those that do, once per plan.
        return member.maintenance_at(now.value) if member.maintenance else None

    def chosen(self, members: Sequence[str] | None) -> list[str]:
        """The member ids a request names (all when none), without repeats; unknown names are an error."""
        if not members:
            return self.member_ids
        unknown = [m for m in members if m not in self._entries]
        if unknown:
            raise UnknownMembers(unknown)
        return list(dict.fromkeys(members))

    # --- admission and health --------------------------------------------------------

    def admit(self, member_id: str, capability: Capability) -> Admission:
        """May `capability` be asked of the member now? Checked in the order that costs nothing first.

        An admitted call on a circuit whose cool-off just ended carries the probe
        (`Admission.probe`): the caller must then `record` its outcome, or
        `record_no_verdict` when it gives up before an answer.
        """
        return self._admit(member_id, capability, _LocalNow(self))

    def _admit(self, member_id: str, capability: Capability, now: _LocalNow) -> Admission:
        # One look-up of the member's entry, and its connector per capability found once: a national
        # plan admits 1,700 members before the first request may go out.
        entry = self._entry(member_id)
        connector = entry.by_capability.get(capability, _UNLOOKED)
        if connector is _UNLOOKED:
            try:
                connector = self.connector(member_id, capability)
            except CapabilityMissing:
                connector = None
            entry.by_capability[capability] = connector
        if connector is None:
            return Admission(member_id, None, SkipReason.NOT_SUPPORTED, f"this member's system offers no {capability.value}")
        window = self._maintenance(entry.member, now)
        if window is not None:
            return Admission(member_id, None, SkipReason.MAINTENANCE, f"scheduled maintenance {window.describe()}; not contacted")
        breaker = entry.breaker
        if not breaker.allow():
            return Admission(
                member_id, None, SkipReason.CIRCUIT_OPEN,
                f"{breaker.consecutive_failures} failures in a row; next try in {breaker.retry_in_s():.0f} s",
            )
        return Admission(member_id, connector, probe=breaker.state is CircuitState.HALF_OPEN)

    def plan(self, capability: Capability, members: Sequence[str] | None = None) -> Plan:
        """Admit each chosen member for `capability`; the skipped ones carry their reason."""
        plan = Plan()
        now = _LocalNow(self)  # one reading of the clock for every member of the plan
        entries, ask = self._entries, plan.ask
        for member_id in self.chosen(members):
            # The usual member first, in one step (its connector found before, no maintenance window,
            # circuit closed): `_admit`'s Admission cost ~1 µs of the ~2 µs each of 1,700 members
            # spent before a national search's first request could go out.
            entry = entries[member_id]
            connector = entry.by_capability.get(capability)
            if connector is not None and not entry.member.maintenance and entry.breaker.state is CircuitState.CLOSED:
                ask.append(connector)
                continue
            admission = self._admit(member_id, capability, now)
            if admission.connector is None:
                plan.skipped.append(admission.skipped_status(self.breaker(member_id).state))
                continue
            plan.ask.append(admission.connector)
            if admission.probe:
                plan.probes.add(member_id)
        return plan

    def record(
        self, member_id: str, state: TargetState, reason: str | None = None, *, request_clean: bool = True
    ) -> CircuitState:
        """Feed one outcome (a TargetStatus's or a ConnectorError's state and reason) to the member's breaker.

        Only failures that say something about the member count (`counts_against_member`):
        `request_clean=False` (see broker.querytext.query_is_clean) when the request carried text
        the member may have garbled; the broker's saturation is read from `broker_saturated`.
        Returns the circuit's state after.
        """
        breaker = self.breaker(member_id)
        if counts_against_member(
            state, reason, request_clean=request_clean, broker_saturated=self.broker_saturated()
        ):
            breaker.record_failure()
        elif state is TargetState.OK:
            breaker.record_success()
        elif breaker.state is CircuitState.HALF_OPEN:
            # The probe ended without a word about the member (never sent: member_busy; cut by the
            # search's deadline; a query diagnostic): the next caller probes instead of none ever.
            breaker.record_no_verdict()
        return breaker.state

    def record_no_verdict(self, member_id: str) -> None:
        """The probe carried for this member was abandoned before an answer."""
        self.breaker(member_id).record_no_verdict()
