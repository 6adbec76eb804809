"""Connector configuration: what one adapter needs to talk to one member (pazpar2-style settings as data).

Built by `broker.consortium` from the consortium file; connectors see only this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, model_validator

from yokodan import Availability
from connectors.options import ConnectorOptions, InvalidOptions, parse_options

_O = TypeVar("_O", bound=ConnectorOptions)


class TargetSettings(BaseModel):
    """What a connector needs to talk to one member: pazpar2-style settings as data.

    Built by `broker.consortium` from the consortium file; connectors see only this.
    """

    model_config = ConfigDict(frozen=True)

    member: str
    kind: str  # connector family, a key of `connectors.options.OPTIONS_BY_KIND`
    endpoint: str
    timeout_s: float = Field(default=8.0, gt=0, le=120)
    max_records: int = Field(default=20, ge=1, le=100)
    # Location label or code as the member sends it -> the consortium's branch id.
    branch_codes: dict[str, str] = Field(default_factory=dict)
    # The other way: consortium branch id -> the code the member expects in requests (pickup library).
    member_codes: dict[str, str] = Field(default_factory=dict)
    # Member-specific status words that override the shared vocabulary.
    status_words: dict[str, Availability] = Field(default_factory=dict)
    # The family's typed options (`connectors.options`); a mapping given here validates into the
    # kind's model, so `TargetSettings(kind="sru", options={"sru_version": "2.0"})` stays easy.
    # SerializeAsAny: dump the family's fields, not those of the (empty) base class.
    options: SerializeAsAny[ConnectorOptions]

    @model_validator(mode="before")
    @classmethod
    def _options_of_kind(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("kind"), str):
            try:
                return {**data, "options": parse_options(data["kind"], data.get("options"))}
            except InvalidOptions as exc:
                raise ValueError(str(exc)) from None  # pydantic reports ValueErrors with the field path
        return data

    def options_as(self, model: type[_O]) -> _O:
        """The options as `model`, the connector's own family; another family's settings fail here."""
        if not isinstance(self.options, model):
            # A dict here came in through model_copy(update=…), which skips validation.
            raise TypeError(
                f"member {self.member}: a {model.kind} connector cannot use {self.kind} settings ({type(self.options).__name__})"
            )
        return self.options
