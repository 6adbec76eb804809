"""The JSON the HTTP API sends and accepts, as pydantic models: one definition for three readers.

`broker/openapi.py` turns these into the OpenAPI document's schemas, the tests validate every live
answer against them (`extra="forbid"`: a field the handlers add or drop without saying so fails),
and `yokodan.client` parses answers with them (`extra="ignore"`, so an older client keeps working
when the server adds a field). The handlers build plain dicts for speed (broker/views.py,
MEASUREMENTS.md); these models describe those dicts, they are not on the hot path.

Dates travel as ISO strings ("2026-12-01"), as orjson writes them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from yokodan.holds import HoldState, RefusalReason
from yokodan.models import Availability, TargetStatus


class WireModel(BaseModel):
    """Strict by default: the document says exactly which fields a response carries."""

    model_config = ConfigDict(extra="forbid")


# --- problems (RFC 9457) ---------------------------------------------------------------------


class ParameterError(WireModel):
    parameter: str = Field(description="the parameter or body field path, e.g. 'page_size' or 'patron.cards.0.member'")
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem+json body. Refusals add `reason` and the parameters a page needs
    (`library`, `phone`, `limit` …), so extra members are allowed."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank", "title": "Invalid request", "status": 400,
                    "detail": "invalid search parameters",
                    "errors": [{"parameter": "page_size", "detail": "Input should be less than or equal to 100"}],
                }
            ]
        },
    )  # fmt: skip

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ParameterError] | None = None
    reason: str | None = Field(default=None, description="a RefusalReason code, where the problem is a refusal")


# --- search ----------------------------------------------------------------------------------


class CopyView(WireModel):
    call_number: str | None
    item_id: str | None
    availability: Availability
    status_text: str = Field(description="the member's own word for the copy's state (貸出可, 貸出中 …)")
    due_date: date | None
    collection: str | None


class BranchHoldings(WireModel):
    branch_id: str | None = Field(description="the consortium's branch id; null when the member's location maps to none")
    branch_name: str | None
    copies: list[CopyView]


class MemberHoldings(WireModel):
    member: str
    member_name: str
    local_ids: list[str]
    branches: list[BranchHoldings]


class _WorkDescription(WireModel):
    """What a work is (the fields a live and a cached work share, in this order)."""

    work_id: str
    title: str
    title_reading: str | None
    authors: list[str]
    publisher: str | None
    year: int | None
    isbns: list[str]
    volume: str | None


class WorkView(_WorkDescription):
    """One work: records of several members merged, holdings grouped member → branch → copies."""

    match_reasons: list[str] = Field(description="why records were merged: isbn, jpno, title+author+year")
    matched_by_title: list[str] = Field(default_factory=list, description="members whose copies joined by the second stage's title look-up")
    member_count: int
    copies: int
    available_copies: int
    holdings: list[MemberHoldings]


class TargetStatusView(TargetStatus):
    """How one member answered, with its display name."""

    model_config = ConfigDict(extra="forbid")

    member_name: str


class FacetsView(WireModel):
    members: dict[str, int]
    municipalities: dict[str, int]
    decades: dict[str, int] = Field(description="'1990' -> works published 1990–1999")
    ndc_classes: dict[str, int]
    available_now: int


class SearchResponse(WireModel):
    query: dict[str, Any] = Field(description="the structured query as understood (SearchQuery, nulls left out)")
    elapsed_ms: float
    work_count: int
    works: list[WorkView]
    facets: FacetsView
    targets: list[TargetStatusView]


class CachedBranchLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch: str | None
    location: str | None
    copies: int
    available: int
    availability: Availability
    status_text: str
    call_number: str | None = None
    due_date: date | None = None
    queue_length: int | None = None


class CachedMemberHoldings(WireModel):
    seen: int = Field(description="epoch seconds when this member last reported these holdings")
    municipality: str | None
    branches: list[CachedBranchLine]


class CachedWorkView(_WorkDescription):
    """A work as the union index stored it: one summary line per branch, with its age."""

    ndc: str | None
    members: list[str]
    holdings: dict[str, CachedMemberHoldings]
    match_reasons: list[str]
    cached: Literal[True]
    age_s: int


class CachedLine(WireModel):
    """First line of a stream: what the union index already knew (empty without an index)."""

    type: Literal["cached"]
    total: int
    works: list[CachedWorkView]
    facets: FacetsView | None


class MemberLine(WireModel):
    """One member answered: its status and the works changed since the line before (each whole, re-merged).

    Members that answer together get a line each, one right after another; the last of those lines
    lists the works all of them changed, the others an empty `works`.
    """

    type: Literal["member"]
    works: list[WorkView]
    target: TargetStatusView | None = None


class FinalLine(WireModel):
    """Last line: the final ordered page and every member's status."""

    type: Literal["final"]
    works: list[WorkView]
    target: TargetStatusView | None = None
    targets: list[TargetStatusView]


class ErrorLine(WireModel):
    """Last line of a stream that failed after it began; the lines above it are incomplete."""

    type: Literal["error"]
    status: int
    title: str
    detail: str


StreamLine = Annotated[CachedLine | MemberLine | FinalLine | ErrorLine, Field(discriminator="type")]


# --- search sessions (progressive search for portals) ----------------------------------------


class SessionLinks(WireModel):
    self: str = Field(description="long-poll here: GET with ?version=N&timeout=S")
    events: str = Field(description="the same diffs as Server-Sent Events")


class SearchSessionCreated(WireModel):
    """A search session began; its fan-out runs whether or not anybody polls, until it ends or expires."""

    id: str
    version: int = Field(description="0: nothing answered yet")
    links: SessionLinks


class WorkUpdate(WireModel):
    """A work the client has, changed; `members` are those whose holdings in it changed.

    `work` is the work as it is now, except that unless `whole` its `holdings` are only those of
    `members`: replace the client's entries of those members (in place) and append the new ones; the
    other members' holdings are as the client has them (while members answer, a work only gains
    members, at the end). With `whole` (the settled answer, which may regroup) `work` replaces the
    client's work as it is.
    """

    members: list[str]
    whole: bool = Field(description="true: `work.holdings` are all the work's holdings; false: only those of `members`")
    work: WorkView


class WorkRemoved(WireModel):
    """A work the client has that no longer exists: dedup merged its records into `merged_into`."""

    work_id: str
    merged_into: str | None


class SearchDiff(WireModel):
    """What changed in a search session since version `since` (a client at version 0 gets everything).

    With `reset` the session no longer kept `since` (or never had it): this is the whole state,
    to replace what the client holds. `order` is the ranked list of work ids, once `done`.
    """

    id: str
    version: int
    since: int
    reset: bool
    done: bool
    running: list[str] = Field(description="members whose answer (or second-stage answer) is still awaited")
    inserted: list[WorkView]
    updated: list[WorkUpdate]
    removed: list[WorkRemoved]
    finished: list[TargetStatusView] = Field(description="members that answered (or failed, or were skipped) since `since`")
    order: list[str] | None = Field(description="every work id, most relevant first; null until done")


# --- members, health -------------------------------------------------------------------------


class BranchView(WireModel):
    id: str
    name: str
    municipality: str
    phone: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    coordinates_source: str | None = None
    coordinates_note: str | None = None
    codes: list[str]
    pickup_point: bool
    accepts_returns: bool
    holds_stock: bool
    mobile: bool
    calendar: dict[str, Any] | None = Field(default=None, description="the branch's own calendar rule (policy schema)")
    calil_libkey: str | None = Field(default=None, description="the branch's key in Calil's libkey map (GET /api/v1/check)")
    notes: str | None = None


class ConnectorFace(WireModel):
    kind: str
    capabilities: list[str]


class CircuitView(WireModel):
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    retry_in_s: float


class MemberView(WireModel):
    id: str
    name: str
    municipality: str
    phone: str | None
    connector: str = Field(description="the search face's connector kind; `connectors` lists every face")
    connectors: list[ConnectorFace]
    circuit: CircuitView
    maintenance: list[str]
    in_maintenance: bool
    unknown_status_words: dict[str, int] = Field(description="member words with no mapping, with how often each was seen")
    unknown_status_words_dropped: int
    calil_systemid: str | None = Field(default=None, description="Calil's system id of this member, accepted as `systemid` by GET /api/v1/check")
    branches: list[BranchView]


class ConsortiumRef(WireModel):
    id: str
    name: str


class MembersResponse(WireModel):
    consortium: ConsortiumRef
    members: list[MemberView]


class EventLoopHealth(WireModel):
    lag_ms: float = Field(description="the last measured event-loop lag")
    max_lag_ms: float
    saturated: bool = Field(description="the broker itself is the bottleneck: member timeouts do not count against members")


class SearchLoad(WireModel):
    running: int = Field(description="federated searches running now")
    queued: int = Field(description="searches that waited for a place (every place taken) since start")
    refused_busy: int = Field(description="searches refused with 503 since start")


class UnionIndexHealth(WireModel):
    works: int = Field(description="works cached in the union index")
    writer: Literal["process", "thread"] = Field(description="where commits run: a writer process, or a thread of the broker")
    writer_pid: int | None = Field(description="the writer process, while one runs")
    writer_restarts: int = Field(description="writer processes started again after one died")
    queued_works: int
    dropped_batches: int = Field(description="batches dropped because the writer fell behind (oldest first)")
    resubmitted_batches: int = Field(description="batches put back once after the writer process died on them")
    lost_batches: int = Field(description="batches the writer process died on twice, dropped")
    failed_batches: int
    last_error: str | None


class MemoryHealth(WireModel):
    allocator: str = Field(description="what Python objects are allocated with: 'jemalloc 5.3.0', 'pymalloc' or 'malloc'")
    rss_mib: float | None = Field(description="the process's resident memory (None where /proc is not readable)")


class HealthResponse(WireModel):
    status: Literal["ok"]
    consortium: str
    event_loop: EventLoopHealth
    searches: SearchLoad
    memory: MemoryHealth
    union_index: UnionIndexHealth | None = Field(default=None, description="present while a union index is open")


# --- hold plans ------------------------------------------------------------------------------


class PlanOption(WireModel):
    member: str
    member_name: str
    record_id: str
    item_id: str | None
    copy_branch: str | None
    pickup_branch: str
    pickup_name: str
    availability: Availability
    route: str
    queue_ahead: int | None
    processed: date | None
    notice: date | None
    ready: date | None
    deadline: date | None
    schedule: str | None = Field(description="how the dates were estimated")
    assumptions: list[str]
    preference_rank: int | None
    distance_km: float | None


class PlanAlternative(PlanOption):
    lost_because: str
    days_later: int | None
    km_farther: float | None


class PlanRefusal(WireModel):
    reason: RefusalReason
    member: str
    member_name: str
    phone: str | None
    branch: str | None
    branch_name: str | None
    record_id: str | None
    item_ids: list[str]
    params: dict[str, Any] = Field(description="what a page needs to explain the refusal: limit, count, dates …")
    message: str | None = Field(default=None, description="in the language asked for (`lang=`, Accept-Language, else ja)")
    message_ja: str
    message_en: str


class CardAdviceView(WireModel):
    member: str
    member_name: str
    phone: str | None
    gain_days: int | None
    ready: date | None
    pickup_branch: str | None
    pickup_name: str | None
    eligibility: Any
    how_to_get: Any
    assumptions: list[str]
    message: str | None = Field(default=None, description="in the language asked for (`lang=`, Accept-Language, else ja)")
    message_ja: str
    message_en: str | None = None


class PlanView(WireModel):
    today: date
    choice: PlanOption | None
    alternatives: list[PlanAlternative]
    alternatives_total: int
    refusals: list[PlanRefusal]
    advice: list[CardAdviceView]
    assumptions: list[str]
    loans: dict[str, Any] | None


class PlannedWork(WireModel):
    work_id: str
    title: str
    authors: list[str]
    isbns: list[str]
    volume: str | None


class PlanResponse(WireModel):
    work: PlannedWork
    plan: PlanView
    stale_holdings: Any = Field(description="members whose holdings could not be refreshed live")


class SeriesStep(WireModel):
    volume: str | None
    place_on: date | None
    after_collecting: Any
    plan: PlanView


class SeriesView(WireModel):
    in_order: bool
    steps: list[SeriesStep]


class SeriesPlanResponse(WireModel):
    series: SeriesView
    stale_holdings: Any



# --- the hold ledger -------------------------------------------------------------------------


class TokenResponse(WireModel):
    token: str = Field(description="a bearer token, shown once")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")


class CardView(WireModel):
    id: str
    member: str
    card_number: str = Field(description="masked: the last three digits only")


class CardsResponse(WireModel):
    cards: list[CardView]


class HoldRefusalView(WireModel):
    reason: str
    message: str | None


class SeriesRef(WireModel):
    id: str
    position: int | None


class HoldTransition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_state: HoldState | None = Field(alias="from")
    to: HoldState
    member_word: str | None
    at: str


class HoldView(WireModel):
    """One hold in the broker's ledger. `outcome` says whether the member has it yet.

    The display fields (title … state_label) default to null only so that this client still reads an
    older broker's answers; this broker always sends them."""

    id: str
    member: str
    member_name: str | None = Field(default=None, description="the owning library's name")
    record_id: str
    item_id: str | None
    title: str | None = Field(default=None, description="what the patron asked for; null for holds placed without one (shown by record id)")
    author: str | None = None
    volume: str | None = None
    pickup_branch_id: str
    pickup_branch_name: str | None = None
    outcome: Literal["intent", "unknown", "placed", "refused", "deferred"]
    state: HoldState | None
    state_label: str | None = Field(default=None, description="the state in words, in the language of `lang=` or Accept-Language (ja, en)")
    status_text: str | None = Field(description="the member's own word")
    queue_position: int | None = Field(description="place in the queue, when the member tells it")
    ready_until: date | None = Field(description="collect by (the member's date, once ready)")
    promised_ready: date | None = Field(description="the plan's estimated ready date")
    promised_until: date | None
    refusal: HoldRefusalView | None
    series: SeriesRef | None
    created_at: str
    updated_at: str
    transitions: list[HoldTransition] | None = Field(default=None, description="only on GET /api/v1/holds/{id}")


class HoldsResponse(WireModel):
    holds: list[HoldView]




# --- the Calil-compatible check (GET /api/v1/check) -------------------------------------------------


class CalilSystemView(WireModel):
    """One system (member) for one ISBN, in Calil's words."""

    status: Literal["Running", "OK", "Error"]
    reserveurl: str = Field(description="the broker's work page for the ISBN where the system holds it, else empty")
    libkey: dict[str, str] | None = Field(
        default=None, description="branch (its Calil libkey or name) -> 貸出可 | 館内のみ | 蔵書あり | 貸出中 | 予約中 | 準備中 | 休館中; only when OK"
    )


class CalilCheckResponse(WireModel):
    """Calil's check answer: poll with `session` while `continue` is 1."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    session: str
    continues: Literal[0, 1] = Field(alias="continue", description="1: poll again with `session`; 0: every system answered")
    books: dict[str, dict[str, CalilSystemView]] = Field(description="ISBN as sent -> systemid as sent -> the system's answer")


class SeriesHoldsResponse(WireModel):
    """A series placed in reading order: the first volume sent now, the others `deferred` until the one before is ready."""

    series_id: str | None
    holds: list[HoldView]
