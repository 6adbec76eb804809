"""What the sandbox hosts: member systems, their branches and their misbehaviour.

These models are the whole interface between the broker (which knows the
consortium) and the sandbox (which only pretends to be member systems): the
broker builds a list of `SandboxMember`s, the sandbox serves them. They are
plain data so `python -m sandbox --spec FILE.json` can read the same thing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Named status vocabularies; the words themselves live in `sandbox.holdings`.
StatusStyle = Literal["standard", "tos", "plain", "legacy"]
IsbnStyle = Literal["13", "10", "hyphenated13", "mixed", "none"]  # none: catalogued without ISBNs


class SandboxBranch(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # the consortium's branch id, e.g. "okayama-city/chuo"
    name: str  # as the member's catalogue writes it (852$a), e.g. "岡山市立中央図書館"
    code: str  # the short code a Koha-style catalogue uses (952$a/$b), e.g. "CHUO"


class FaultConfig(BaseModel):
    """How a member misbehaves; every fault is off by default.

    Faults model what real catalogue servers do to a broker: slow answers,
    5xx pages, half-written XML, connections that never answer, hostile or
    huge bodies and mislabelled encodings.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    delay_ms: float = Field(default=0, ge=0)
    jitter_ms: float = Field(default=0, ge=0)  # uniform extra delay in [0, jitter_ms)
    error_rate: float = Field(default=0, ge=0, le=1)  # fraction of requests answered HTTP 500
    http_status: int | None = Field(default=None, ge=100, le=599)  # always answer this status
    malformed_xml: bool = False  # 200 with a truncated, unparsable body
    hang: bool = False  # accept the request and never answer
    slow_drip_s: float = Field(default=0, ge=0)  # spread the body over this many seconds
    entity_bomb: bool = False  # a billion-laughs DOCTYPE instead of the answer
    huge_body_mb: float = Field(default=0, ge=0)  # stream a valid-looking body of this size
    wrong_charset: bool = False  # declare UTF-8, send Shift_JIS
    seed: int = 0  # seeds the error_rate / jitter dice, so a run is repeatable


# The wire protocol a simulated member speaks besides SRU; each has its own module
# `sandbox/<protocol>_server.py` exposing `add_routes(app)` (see sru_server.build_app).
Protocol = Literal["sru", "opensearch", "html_opac", "ils_rest", "ncip", "calil"]
# Protocols that place holds and can be served beside a member's search protocol.
HoldProtocol = Literal["ils_rest", "ncip"]


class PatronCard(BaseModel):
    """One test patron's card at one simulated member, as `sandbox.patrons` defines them.

    Counts, not record ids: the member picks concrete titles from its own holdings when it
    loads the card (books and audiovisual material apart), so the same card works on any catalogue.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    card_number: str = Field(pattern=r"^[0-9]{6,16}$")
    pin: str = Field(min_length=4)  # the simulated ILS checks it; the broker only passes it on
    book_loans: int = Field(default=0, ge=0)
    av_loans: int = Field(default=0, ge=0)
    overdue: int = Field(default=0, ge=0)  # how many of the loans are past their due date
    card_expired: bool = False
    inactive: bool = False  # unused for 2 years or more (Okayama: stops working online until renewed)
    book_holds: int = Field(default=0, ge=0)  # holds already waiting when the member starts
    av_holds: int = Field(default=0, ge=0)


class SandboxMember(BaseModel):
    """One simulated member library system."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # one URL path segment
    name: str
    branches: list[SandboxBranch] = Field(min_length=1)
    holdings_field: Literal["852", "952"] = "852"
    status_style: StatusStyle = "standard"
    isbn_style: IsbnStyle = "13"
    readings: bool = True  # False: no title readings (880) in its records or its index
    latency_ms: float = Field(default=0, ge=0)  # the member's normal response time
    faults: FaultConfig = FaultConfig()
    # Roughly the fraction of the shared catalogue this member holds: a
    # prefectural or big-city library holds more than a town library.
    catalogue_share: float = Field(default=0.5, ge=0, le=1)
    protocol: Protocol = "sru"
    # A second face for holds over the same catalogue and hold ledger (an SRU-searched member's NCIP).
    hold_protocol: HoldProtocol | None = None
    # Protocol-specific settings (HTML OPAC style and charset, Calil system id …).
    protocol_options: dict[str, str] = Field(default_factory=dict)
    # Test patrons loaded into the member's hold ledger beside the default cards (sandbox.accounts).
    patrons: list[PatronCard] = Field(default_factory=list)

    @property
    def protocols(self) -> tuple[Protocol, ...]:
        """Every protocol this member answers (SRU search is served for every member regardless)."""
        return (self.protocol,) if self.hold_protocol in (None, self.protocol) else (self.protocol, self.hold_protocol)

    def speaks(self, protocol: str) -> bool:
        return protocol in self.protocols
