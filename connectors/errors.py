"""Errors a connector raises, one class per named outcome.

Each carries `reason`: the machine-readable code that ends up in
`TargetStatus.reason`, so a portal can act on it without parsing messages.
`state` says which `TargetState` the failure is reported as.
"""

from __future__ import annotations

from yokodan import Diagnostic, RefusalReason, TargetState
from yokodan.errors import YokodanError


class ConnectorError(YokodanError):
    """Base class: something went wrong talking to one member system."""

    reason = "error"
    state = TargetState.ERROR

    def __init__(self, message: str, *, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member
        self.message = message


class TargetTimeout(ConnectorError):
    """The member did not finish answering within its deadline (hang or slow-drip body)."""

    reason = "timeout"
    state = TargetState.TIMEOUT


class TargetUnreachable(ConnectorError):
    """Connection refused, reset or DNS failure."""

    reason = "unreachable"


class TargetHTTPError(ConnectorError):
    """The member answered with an HTTP error status."""

    def __init__(self, status: int, message: str, *, member: str | None = None, body: bytes = b"") -> None:
        super().__init__(message, member=member)
        self.status = status
        self.reason = f"http_{status}"
        self.body = body  # REST and NCIP members explain refusals in 4xx bodies


class ResponseTooLarge(ConnectorError):
    """The body exceeded the configured size cap; reading stopped at the cap."""

    reason = "too_large"


class UndecodableResponse(ConnectorError):
    """The body could not be decoded in any charset the member could mean."""

    reason = "undecodable"


class MalformedResponse(ConnectorError):
    """The body is not well-formed, or not the document the protocol promises."""

    reason = "malformed"


class HostileDocument(MalformedResponse):
    """The body declares a DTD or entities (billion laughs, external entities): refused unparsed."""

    reason = "hostile_document"


class ProtocolDiagnostic(ConnectorError):
    """The member answered with a fatal protocol diagnostic (SRU diagnostic, NCIP Problem)."""

    reason = "diagnostic"

    def __init__(self, diagnostics: list[Diagnostic], *, member: str | None = None) -> None:
        first = diagnostics[0] if diagnostics else Diagnostic(uri="unknown")
        text = first.message or first.uri
        if first.details:
            text = f"{text} ({first.details})"
        super().__init__(text, member=member)
        self.diagnostics = diagnostics


class UnsupportedQuery(ConnectorError):
    """The query uses something this member cannot search (e.g. Calil looks up ISBNs only).

    Reported as skipped, not failed: the member is fine, the question does not fit it.
    """

    reason = "unsupported_query"
    state = TargetState.SKIPPED


class NotSupported(ConnectorError):
    """The member's system cannot do this (a capability the connector does not declare)."""

    reason = "not_supported"


class SessionExpired(ConnectorError):
    """A logged-in session (HTML OPAC) expired; the connector may log in again once."""

    reason = "session_expired"


# Named refusal codes (cf. Koha's hold rules) live in the shared vocabulary: one closed list.
HOLD_REFUSAL_REASONS = frozenset(RefusalReason)


class HoldRefused(ConnectorError):
    """The member refused a hold operation for a named reason (see HOLD_REFUSAL_REASONS)."""

    def __init__(self, reason: str, message: str, *, member: str | None = None) -> None:
        if reason not in HOLD_REFUSAL_REASONS:
            raise ValueError(f"unknown hold refusal reason {reason!r}")
        super().__init__(message, member=member)
        self.reason = reason
