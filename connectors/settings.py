"""Connector configuration: what one adapter needs to talk to one member (pazpar2-style settings as data).

Built by `broker.consortium` from the consortium file; connectors see only this.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from yokodan import Availability


class TargetSettings(BaseModel):
    """What a connector needs to talk to one member: pazpar2-style settings as data.

    Built by `broker.consortium` from the consortium file; connectors see only this.
    """

    model_config = ConfigDict(frozen=True)

    member: str
    kind: str  # connector family: 'sru', later 'opensearch', 'html_opac', 'ils_rest', 'ncip', 'calil'
    endpoint: str
    timeout_s: float = Field(default=8.0, gt=0, le=120)
    max_records: int = Field(default=20, ge=1, le=100)
    # Location label or code as the member sends it -> the consortium's branch id.
    branch_codes: dict[str, str] = Field(default_factory=dict)
    # The other way: consortium branch id -> the code the member expects in requests (pickup library).
    member_codes: dict[str, str] = Field(default_factory=dict)
    # Member-specific status words that override the shared vocabulary.
    status_words: dict[str, Availability] = Field(default_factory=dict)
    # Family-specific options (SRU version, record schema, CQL index names …).
    options: dict[str, Any] = Field(default_factory=dict)
