"""Errors a connector raises, one class per named outcome.

Each carries `reason`: the machine-readable code that ends up in
`TargetStatus.reason`, so a portal can act on it without parsing messages.
`state` says which `TargetState` the failure is reported as.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
    """The member did not finish answering within its deadline (hang or slow-drip body).

    Base of the two timeouts: `ConnectTimeout` (never sent) and `ReadTimeout` (sent).
    Search reports either as `timeout`.
    """

    reason = "timeout"
    state = TargetState.TIMEOUT


class TargetUnreachable(ConnectorError):
    """Connection refused, reset or DNS failure, or the connection broke mid-answer.

    Base of `ConnectError` (never sent) and `AnswerLost` (sent). Search reports either as
    `unreachable`.
    """

    reason = "unreachable"


# "Sent or not", as httpx splits its transport errors (ConnectError / ConnectTimeout versus
# ReadError / ReadTimeout / RemoteProtocolError). A hold ledger needs to know whether a request
# may have reached the member: only then can the member have acted on it.


class RequestNotSent(ConnectorError):
    """Mixin: the request never left this machine (no connection was made): safe to try again."""


class ConnectError(TargetUnreachable, RequestNotSent):
    """No connection could be made (refused, DNS, TLS): the member never saw the request."""


class ConnectTimeout(TargetTimeout, RequestNotSent):
    """The deadline passed before a connection was made (or a connection slot was free)."""


class ReadTimeout(TargetTimeout):
    """The request was sent, and no complete answer came within the deadline."""


class AnswerLost(TargetUnreachable):
    """The request was sent, and the connection broke (or the answer was garbled) before it ended."""


class OutcomeUnknown(ConnectorError):
    """A request with effects (placing or cancelling a hold) may have reached the member, and
    no answer says what it did. The ledger reconciles exactly these: it looks the hold up
    (`Connector.find_hold`) and never sends the request again blindly.

    `cause` is the error underneath (ReadTimeout, AnswerLost, a gateway error, an unreadable
    answer); `state` follows it, so a status report still says timeout or error.
    """

    reason = "outcome_unknown"

    def __init__(self, cause: ConnectorError, *, member: str | None = None) -> None:
        super().__init__(f"the member may have acted on the request: {cause.message}", member=member or cause.member)
        self.cause = cause
        self.state = cause.state


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
    """This connector family (or this member's profile) cannot do this at all: a capability it
    does not declare. Never a transient or per-request condition."""

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


class AuthenticationFailed(ConnectorError):
    """The member does not accept these credentials (wrong PIN, or a card it does not know).

    Its own error, not a hold refusal: nothing about the hold was decided, and a caller must
    ask the patron again rather than try another member or branch.
    """

    reason = RefusalReason.AUTHENTICATION_FAILED.value


class PatronNotFound(AuthenticationFailed):
    """The member has no patron with this card number."""

    reason = RefusalReason.PATRON_NOT_FOUND.value


_CREDENTIAL_ERRORS: dict[str, type[AuthenticationFailed]] = {
    AuthenticationFailed.reason: AuthenticationFailed,
    PatronNotFound.reason: PatronNotFound,
}


def member_refusal(reason: str, message: str, *, member: str | None = None) -> AuthenticationFailed | HoldRefused:
    """The error for a member's named verdict: bad credentials are their own error, the rest HoldRefused."""
    credential_error = _CREDENTIAL_ERRORS.get(reason)
    if credential_error is not None:
        return credential_error(message, member=member)
    return HoldRefused(reason, message, member=member)


# Answers to a request with effects that leave its outcome open: a gateway that lost the
# member's answer (502, 504) or a member that failed mid-way (500). 503 says "not processed".
OUTCOME_UNKNOWN_STATUSES = frozenset({500, 502, 504})


@contextmanager
def outcome_unknown_after_sending(member: str) -> Iterator[None]:
    """Inside: the member has received a request with effects; any failure to read what it did
    (an unreadable answer, a failed follow-up read) leaves the outcome open -> OutcomeUnknown.
    The member's own verdicts (refusals, bad credentials, a fatal protocol diagnostic) pass
    through unchanged: each says the member did not act."""
    try:
        yield
    except (HoldRefused, AuthenticationFailed, ProtocolDiagnostic, OutcomeUnknown):
        raise
    except ConnectorError as error:
        raise OutcomeUnknown(error, member=member) from error
