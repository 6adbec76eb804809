"""Typed options of each connector family: the one place that names every option, its type and default.

A consortium file's `[members.connector]` table carries `options = {…}` whose meaning depends on
the connector `kind`, as pazpar2's target settings depend on the target's protocol. Each family
has one model here; every model forbids unknown names, so `sru_verison = "2.0"` is an error at
load time instead of a setting nobody reads. `broker.consortium` builds its connector table as a
discriminated union on `kind` over `OPTIONS_BY_KIND`; `TargetSettings` validates a plain dict into
the kind's model (what tests and benchmarks pass). Connectors read attributes, never keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from yokodan.errors import ConfigError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from yokodan import HoldState, RefusalReason
from yokodan.terms import TermRules

__all__ = [
    "DEFAULT_CQL_INDEXES",
    "DEFAULT_OPENSEARCH_PARAMS",
    "OPTIONS_BY_KIND",
    "CalilOptions",
    "ConnectorOptions",
    "HtmlOpacOptions",
    "IlsRestOptions",
    "InvalidOptions",
    "NcipOptions",
    "OpenSearchOptions",
    "PickupCodeOptions",
    "SruOptions",
    "allowed_names",
    "parse_options",
]

NonEmpty = Annotated[str, Field(min_length=1)]


def _number_as_text(value: object) -> object:
    # TOML writes `count = 20` as an integer; as a URL parameter it is the text "20".
    # A bool has no obvious spelling on the wire (true? 1? on?), so it stays a type error.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


# A value sent as a URL query parameter.
ParamValue = Annotated[str, BeforeValidator(_number_as_text)]


class ConnectorOptions(BaseModel):
    """Base of every family's options; `kind` is the connector kind they belong to."""

    # frozen: one TargetSettings is shared by every request to the member.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    kind: ClassVar[str]


class QueryTermOptions(ConnectorOptions):
    """For families that send the patron's words as terms: how this member cuts text.

    Keys of `connectors/query_terms.toml` (fold_width, joiners, keep) over the family's
    defaults; checked by `connectors.query_terms.term_rules` when the connector is built.
    """

    query_terms: dict[str, Any] | None = None

    @field_validator("query_terms")
    @classmethod
    def _check_query_terms(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            TermRules.from_mapping(value, where="query_terms")  # a typo fails when the file loads
        return value


class PickupCodeOptions(ConnectorOptions):
    """For families that place holds with a pickup library code (`connectors.base.pickup_codes`)."""

    # Consortium branch id -> the code the member expects, when its request codes differ from
    # its catalogue codes. Empty: each branch's first code in the consortium file.
    pickup_codes: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)


# --- sru ------------------------------------------------------------------------------------------

CqlField = Literal["text", "title", "author", "isbn", "year"]  # the SearchQuery fields SRU maps
DEFAULT_CQL_INDEXES: dict[CqlField, str] = {
    "text": "any",
    "title": "title",
    "author": "author",
    "isbn": "isbn",
    "year": "year",
}


class SruOptions(QueryTermOptions):
    kind: ClassVar[str] = "sru"

    sru_version: Literal["1.1", "1.2", "2.0"] = "1.2"
    # Sent as recordSchema; the answer is parsed by its payload's namespace (MARCXML, DC, DC-NDL),
    # so any name the server knows ("marcxml", "dc", "dcndl", "info:srw/schema/1/marcxml-v1.1") works.
    record_schema: NonEmpty = "marcxml"
    # SearchQuery field -> the server's CQL index; given entries replace the defaults one by one.
    cql_indexes: dict[CqlField, NonEmpty] = Field(default_factory=lambda: dict(DEFAULT_CQL_INDEXES))
    # Sent with every request (Zebra refuses unknown parameters without "x-").
    extra_params: dict[NonEmpty, ParamValue] = Field(default_factory=dict)

    @field_validator("cql_indexes")
    @classmethod
    def _over_default_indexes(cls, value: dict[CqlField, str]) -> dict[CqlField, str]:
        return {**DEFAULT_CQL_INDEXES, **value}


# --- opensearch -----------------------------------------------------------------------------------

OpenSearchField = Literal["text", "title", "author", "isbn", "year_from", "year_until", "count", "start"]
# NDL Search's parameter names; SearchQuery.year is sent as a one-year range.
DEFAULT_OPENSEARCH_PARAMS: dict[OpenSearchField, str | None] = {
    "text": "any",
    "title": "title",
    "author": "creator",
    "isbn": "isbn",
    "year_from": "from",
    "year_until": "until",
    "count": "cnt",
    "start": "idx",
}


class OpenSearchOptions(QueryTermOptions):
    """CiNii Books, for example: params = {text = "q", author = "author", year_from = "year_from",
    year_until = "year_to", count = "count", start = "p"}, paging = "page", extra_params = {format = "rss"}.
    """

    kind: ClassVar[str] = "opensearch"

    # SearchQuery field -> URL parameter, over NDL's names. A field mapped to "" (or None) cannot
    # be searched at this member: UnsupportedQuery.
    params: dict[OpenSearchField, str | None] = Field(default_factory=lambda: dict(DEFAULT_OPENSEARCH_PARAMS))
    # "index": `start` is the 1-based position (NDL's idx); "page": a 1-based page of `count` items (CiNii's p).
    paging: Literal["index", "page"] = "index"
    # Sent with every request (NDL: dpid, mediatype; CiNii: format=rss, appid).
    extra_params: dict[NonEmpty, ParamValue] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _over_default_params(cls, value: dict[OpenSearchField, str | None]) -> dict[OpenSearchField, str | None]:
        return {**DEFAULT_OPENSEARCH_PARAMS, **value}


# --- html_opac ------------------------------------------------------------------------------------


class HtmlOpacOptions(QueryTermOptions):
    kind: ClassVar[str] = "html_opac"

    profile: NonEmpty | None = None  # a shipped profile, connectors/opac_profiles/<name>.toml: "tos", "wopc"
    profile_file: NonEmpty | None = None  # or a site-local profile file
    # A nested table merged over the profile (e.g. this library's empty-cell rule); the profile's
    # own model validates it when the connector is built, naming the profile and the member.
    profile_overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_profile(self) -> HtmlOpacOptions:
        if (self.profile is None) == (self.profile_file is None):
            raise ValueError("give exactly one of profile (a shipped profile such as 'tos') or profile_file")
        return self


# --- ils_rest -------------------------------------------------------------------------------------


class IlsRestOptions(PickupCodeOptions, QueryTermOptions):
    kind: ClassVar[str] = "ils_rest"


# --- ncip -----------------------------------------------------------------------------------------


class NcipOptions(PickupCodeOptions):
    kind: ClassVar[str] = "ncip"

    agency_id: NonEmpty = "yokodan"  # our AgencyId: FromAgencyId, and the agency of our RequestIds
    member_agency_id: NonEmpty | None = None  # the member's AgencyId; None: the member id
    # The member's own RequestStatusType words (a local scheme) -> hold state.
    hold_words: dict[NonEmpty, HoldState] = Field(default_factory=dict)
    # A member-specific ProblemType (compared case-insensitively) -> the broker's refusal reason.
    problem_reasons: dict[NonEmpty, RefusalReason] = Field(default_factory=dict)
    # Whether the responder offers UpdateRequestItem (a pickup change on a queued request). NCIP
    # responders implement different subsets of the services; without it, pickup changes are by phone.
    update_request_item: bool = False


# --- calil ----------------------------------------------------------------------------------------


class CalilOptions(ConnectorOptions):
    """One Calil endpoint serves many members, each its own Calil system."""

    kind: ClassVar[str] = "calil"

    systemid: NonEmpty  # Calil's id of the member's system, e.g. "Okayama_Pref"
    appkey: SecretStr = Field(min_length=1)  # the consortium's application key: kept out of reprs and logs
    poll_interval_s: float = Field(default=2.0, gt=0, le=60)  # Calil asks clients to wait ≥ 2 s between polls


# kind in the consortium file -> its options model. A new family adds its model here.
OPTIONS_BY_KIND: Mapping[str, type[ConnectorOptions]] = {
    model.kind: model
    for model in (SruOptions, OpenSearchOptions, HtmlOpacOptions, IlsRestOptions, NcipOptions, CalilOptions)
}


class InvalidOptions(ConfigError):
    """Options that do not fit their kind's model; one `(path, reason)` per problem, paths below `options`."""

    def __init__(self, kind: str, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.kind = kind
        self.problems = problems
        super().__init__(
            "; ".join(f"options{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in loc)}: {msg}" for loc, msg in problems)
        )


def allowed_names(model: type[BaseModel]) -> str:
    """'a, b, c': the field names a model accepts, for "unknown name" messages."""
    return ", ".join(sorted(model.model_fields))


def parse_options(kind: str, raw: object) -> ConnectorOptions:
    """`raw` (a mapping, None, or already the kind's model) as the options model of `kind`.

    Raises ValueError naming the allowed kinds for an unknown kind, and `InvalidOptions`
    (naming the allowed option names for an unknown one) when the options do not fit.
    """
    model = OPTIONS_BY_KIND.get(kind)
    if model is None:
        raise ValueError(f"unknown connector kind {kind!r} (allowed: {', '.join(sorted(OPTIONS_BY_KIND))})")
    if isinstance(raw, model):
        return raw
    if isinstance(raw, ConnectorOptions):
        raise InvalidOptions(kind, [((), f"{type(raw).__name__} given to a {kind} connector")])
    try:
        return model.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        # "[key]" is pydantic's marker for "this dict key is wrong", not a key of the options.
        problems = [
            (
                tuple(part for part in err["loc"] if part != "[key]"),
                f"unknown {kind} option (allowed: {allowed_names(model)})"
                if err["type"] == "extra_forbidden" and len(err["loc"]) == 1
                else str(err["msg"]).removeprefix("Value error, "),
            )
            for err in exc.errors(include_url=False)
        ]
        raise InvalidOptions(kind, problems) from None

