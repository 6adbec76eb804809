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
IsbnStyle = Literal["13", "10", "hyphenated13", "mixed"]


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


class SandboxMember(BaseModel):
    """One simulated member library system."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # one URL path segment
    name: str
    branches: list[SandboxBranch] = Field(min_length=1)
    holdings_field: Literal["852", "952"] = "852"
    status_style: StatusStyle = "standard"
    isbn_style: IsbnStyle = "13"
    latency_ms: float = Field(default=0, ge=0)  # the member's normal response time
    faults: FaultConfig = FaultConfig()
    # Roughly the fraction of the shared catalogue this member holds: a
    # prefectural or big-city library holds more than a town library.
    catalogue_share: float = Field(default=0.5, ge=0, le=1)
    protocol: Protocol = "sru"
    # Protocol-specific settings (HTML OPAC style and charset, Calil system id …).
    protocol_options: dict[str, str] = Field(default_factory=dict)
