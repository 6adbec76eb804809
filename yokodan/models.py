"""The search half of the shared vocabulary (pydantic v2): records, holdings, works, target status.

Every room imports these names: connectors turn a member's answers into
`Record`/`Holding`/`TargetStatus`, the index clusters records into `Work`s, the
broker plans searches and holds with them and the API serialises them.
Keep this module small and stable; new fields get defaults so old callers keep working.

Two status layers are never mixed (ARCHITECTURE.md): `TargetState` says how a
*member system* answered a request, `Availability` says where one *copy* is.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from yokodan import isbn as _isbn


class Availability(StrEnum):
    """Where one copy is, in the broker's words; the member's own word is kept beside it."""

    AVAILABLE = "available"  # on the shelf, may be borrowed / reserved
    LIBRARY_USE_ONLY = "library_use_only"  # 館内のみ / 禁帯出: read in the building only
    ON_LOAN = "on_loan"  # 貸出中
    RESERVED = "reserved"  # held for another patron (予受待, 予約中 on a copy)
    IN_TRANSIT = "in_transit"  # 予回送, 配送中
    ON_ORDER = "on_order"  # 注文中
    NOT_FOR_LOAN = "not_for_loan"  # 研究用, withdrawn from circulation
    CLOSED = "closed"  # the holding branch is closed (休館中)
    UNKNOWN = "unknown"  # a word we have no mapping for: the raw word is kept and counted


class TargetState(StrEnum):
    """How one member system answered one request."""

    PENDING = "pending"
    OK = "ok"
    CACHED = "cached"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


class MaterialType(StrEnum):
    BOOK = "book"
    SERIAL = "serial"
    AUDIOVISUAL = "audiovisual"
    MAP = "map"
    SCORE = "score"
    ELECTRONIC = "electronic"
    OTHER = "other"


def _require_isbn13(value: str) -> str:
    isbn13 = _isbn.to_isbn13(value)
    if isbn13 is None:
        raise ValueError(f"not a valid ISBN-10 or ISBN-13: {value!r}")
    return isbn13


ISBN13 = Annotated[str, AfterValidator(_require_isbn13)]
"""An ISBN given as 10 or 13 digits (hyphens allowed), stored as ISBN-13."""


class Holding(BaseModel):
    """One copy (or one location line) of a record at one branch of one member."""

    model_config = ConfigDict(frozen=True)

    member: str
    branch_id: str | None = None  # the consortium's branch id, when the location maps to one
    location: str | None = None  # the member's own location label, as sent
    call_number: str | None = None
    item_id: str | None = None  # barcode / item number
    availability: Availability = Availability.UNKNOWN
    status_text: str = ""  # the member's own word (貸出可, 貸出中 …), always kept
    due_date: date | None = None
    queue_length: int | None = Field(default=None, ge=0)
    collection: str | None = None  # shelf / collection label (文庫, 児童 …)


class Record(BaseModel):
    """One bibliographic record as one member catalogued it."""

    model_config = ConfigDict(frozen=True)

    member: str
    local_id: str
    title: str
    title_reading: str | None = None  # katakana reading (ヨミ) where the member gives one
    authors: list[str] = Field(default_factory=list)
    author_readings: list[str] = Field(default_factory=list)
    publisher: str | None = None
    year: int | None = Field(default=None, ge=0, le=9999)
    isbns: list[ISBN13] = Field(default_factory=list)
    isbn_invalid: list[str] = Field(default_factory=list)  # ISBN-shaped strings with a bad check digit
    volume: str | None = None  # 上 / 下 / 第1巻 as catalogued
    edition: str | None = None
    material_type: MaterialType = MaterialType.BOOK
    ndc: str | None = None
    jpno: str | None = None  # JP number (全国書誌番号)
    source_format: str = "marcxml"  # marcxml / dc / dcndl / html / json …
    holdings: list[Holding] = Field(default_factory=list)

    @field_validator("isbns", mode="after")
    @classmethod
    def _dedupe_isbns(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class Diagnostic(BaseModel):
    """A protocol-level diagnostic from a member (SRU diagnostic, NCIP Problem …)."""

    model_config = ConfigDict(frozen=True)

    uri: str
    message: str | None = None
    details: str | None = None

    @property
    def code(self) -> str:
        """The trailing number of an SRU diagnostic URI ('info:srw/diagnostic/1/10' -> '10')."""
        return self.uri.rsplit("/", 1)[-1]


class SecondStage(BaseModel):
    """The one extra request a member that came back empty got (issue 11: ISBN or reading found elsewhere).

    `by` says what it was asked by ('title+author+year', 'title'); `merged` counts the records
    dedup accepted as the same manifestation as a work already found (the rest are dropped).
    """

    by: str
    state: TargetState = TargetState.PENDING
    reason: str | None = None
    hits: int | None = None
    returned: int = 0
    merged: int = 0
    elapsed_ms: float | None = None
    message: str | None = None


class TargetStatus(BaseModel):
    """How one member answered one search: shown beside every result list."""

    member: str
    state: TargetState = TargetState.PENDING
    reason: str | None = None  # machine-readable: 'maintenance', 'http_500', 'malformed_xml', 'diagnostic' …
    hits: int | None = None  # the member's total hit count, when it reports one
    returned: int = 0  # records received in this answer
    elapsed_ms: float | None = None
    message: str | None = None  # human-readable detail
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    circuit: str | None = None  # the member's circuit breaker: closed / open / half_open
    second_stage: SecondStage | None = None  # the extra look-up after an empty answer, when one was made


class SearchQuery(BaseModel):
    """A structured query; each connector maps it onto its own protocol (CQL, URL params …)."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    text: str | None = Field(default=None, max_length=500)  # all words, any field
    title: str | None = Field(default=None, max_length=500)
    author: str | None = Field(default=None, max_length=200)
    isbn: ISBN13 | None = None
    year: int | None = Field(default=None, ge=0, le=9999)
    start: int = Field(default=1, ge=1, le=10_000)  # 1-based, as SRU
    page_size: int = Field(default=20, ge=1, le=100)

    def is_empty(self) -> bool:
        return not any((self.text, self.title, self.author, self.isbn, self.year))


class Work(BaseModel):
    """One book as the patron sees it: records from several members merged.

    `match_reasons` says why records were merged ('isbn', 'jpno', 'title+author+year'),
    so a librarian can check that two lines really are different books.
    """

    work_id: str
    title: str
    title_reading: str | None = None
    authors: list[str] = Field(default_factory=list)
    publisher: str | None = None
    year: int | None = None
    isbns: list[str] = Field(default_factory=list)
    volume: str | None = None
    records: list[Record] = Field(default_factory=list)
    match_reasons: list[str] = Field(default_factory=list)
    # Members whose records joined only through a second-stage look-up by title (their
    # records lack the ISBN or reading the query named); match_reasons then has 'second_stage:title'.
    matched_by_title: list[str] = Field(default_factory=list)

    @property
    def members(self) -> list[str]:
        return list(dict.fromkeys(r.member for r in self.records))

    @property
    def holdings(self) -> list[Holding]:
        return [h for r in self.records for h in r.holdings]


_Model = TypeVar("_Model", bound=BaseModel)
# cls.model_fields goes through a pydantic descriptor costing ~2 µs a call: look it up once.
_FIELD_NAMES: dict[type[BaseModel], frozenset[str]] = {}
_FROZEN: dict[type[BaseModel], bool] = {}


def trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """Build a model from values that are already typed and normalised, without validation.

    Only for per-record hot paths (connector mappers): validating a Record with its
    holdings costs ~25 µs and `model_construct` is slower still (8 µs per Holding vs
    4 µs validated, pydantic 2.13), against an ingest budget of 100 µs per record.
    `values` must name every field; tests check the result equals validated construction.
    """
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(cls.model_fields)
        _FROZEN[cls] = bool(cls.model_config.get("frozen"))
    if values.keys() != names:
        missing = sorted(names - values.keys())
        extra = sorted(values.keys() - names)
        raise TypeError(f"trusted {cls.__name__}: missing {missing}, unexpected {extra}")
    instance = cls.__new__(cls)
    object.__setattr__(instance, "__dict__", values)
    # Frozen models share one immutable set (pydantic never adds to it); a mutable model
    # (TargetStatus gets its circuit state after the answer) needs its own, as pydantic adds to it.
    object.__setattr__(instance, "__pydantic_fields_set__", names if _FROZEN[cls] else set(names))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance
