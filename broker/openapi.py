"""The OpenAPI 3.1 document, generated from the pydantic models and the routes the app really has.

Each operation is declared once in `OPERATIONS` (method, path, parameters model, body model,
response models, problem responses, an example each); `openapi_document(app)` keeps the
operations whose route is registered on the app, so a broker without the ledger describes no
hold endpoints, and `tests/test_openapi.py` fails when a route has no declaration. Schemas come
from `models_json_schema` (JSON Schema 2020-12, which OpenAPI 3.1 uses as is).

  GET /api/v1/openapi.json   the document
  GET /api/v1/docs           the same, as a page rendered here (broker/docs_page.py); nothing from the internet
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from broker.api import CONSORTIUM_KEY, SearchParams, json_response
from broker.calil_check import CheckParams
from broker.docs_page import render_docs
from broker.holds.routes import PlanRequest
from broker.ledger.routes import ChangePickupBody, HoldsQuery, LoginBody, PlaceHoldBody
from broker.ledger.series_routes import SeriesHoldBody
from broker.sessions.routes import SessionEventsQuery, SessionPoll
from yokodan import wire

__all__ = ["OPERATIONS", "Operation", "Reply", "add_openapi_routes", "openapi_document"]

API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
OPENAPI_JSON = "/api/v1/openapi.json"
DOCS = "/api/v1/docs"


@dataclass(frozen=True)
class Reply:
    """One documented response: a model (or a raw schema), its media type and an example."""

    description: str
    model: Any = None  # a pydantic model or a type TypeAdapter understands (a union)
    media_type: str = "application/json"
    example: Any = None
    headers: dict[str, str] = field(default_factory=dict)  # name -> description
    also: dict[str, str] = field(default_factory=dict)  # another media type of the same answer -> an example (a string)
    links: dict[str, str] = field(default_factory=dict)  # operationId -> the answer's field holding its path parameter


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    example: str = "portal-7f3a9c21"
    pattern: str | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    description: str = ""
    query: type[BaseModel] | None = None
    query_examples: dict[str, Any] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    body_example: Any = None
    headers: Sequence[Header] = ()
    replies: dict[int, Reply] = field(default_factory=dict)
    problems: dict[int, str] = field(default_factory=dict)  # status -> when it is sent (problem+json)
    bearer: bool = False
    portal_key: bool = False  # a search surface: a portal key may (or, per consortium, must) come with it

    @property
    def path_parameters(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


# --- examples (shaped as the handlers answer; tests validate them against their models) -------


def _json_line(value: Any) -> str:
    return orjson.dumps(value).decode()


_COPY = {"call_number": "913.6/ナ", "item_id": "1000123", "availability": "available", "status_text": "貸出可",
         "due_date": None, "collection": "文庫"}  # fmt: skip
_WORK = {
    "work_id": "isbn:9784101010137", "title": "こころ", "title_reading": "ココロ", "authors": ["夏目漱石"],
    "publisher": "新潮社", "year": 2004, "isbns": ["9784101010137"], "volume": None, "match_reasons": ["isbn"],
    "member_count": 1, "copies": 1, "available_copies": 1,
    "holdings": [{"member": "okayama-city", "member_name": "岡山市立図書館", "local_ids": ["b0001"],
                  "branches": [{"branch_id": "okayama-city/chuo", "branch_name": "岡山市立中央図書館", "copies": [_COPY]}]}],
}  # fmt: skip
_TARGET = {"member": "okayama-city", "member_name": "岡山市立図書館", "state": "ok", "reason": None, "hits": 1,
           "returned": 1, "elapsed_ms": 41.2, "message": None, "diagnostics": [], "circuit": "closed"}  # fmt: skip
_FACETS = {"members": {"okayama-city": 1}, "municipalities": {"岡山市": 1}, "decades": {"2000": 1},
           "ndc_classes": {"9": 1}, "available_now": 1}  # fmt: skip
_SEARCH = {"query": {"text": "こころ 夏目漱石", "start": 1, "page_size": 20}, "elapsed_ms": 52.3, "work_count": 1,
           "works": [_WORK], "facets": _FACETS, "targets": [_TARGET]}  # fmt: skip
_STREAM = [
    {"type": "cached", "total": 0, "works": [], "facets": None},
    {"type": "member", "works": [_WORK], "target": _TARGET},
    {"type": "final", "works": [_WORK], "target": None, "targets": [_TARGET]},
]
_BRANCH = {"id": "okayama-city/chuo", "name": "岡山市立中央図書館", "municipality": "岡山市", "phone": "086-223-3373",
           "lat": 34.645233, "lon": 133.928451, "coordinates_source": "MLIT P27 2013", "codes": ["CHUO"],
           "pickup_point": True, "accepts_returns": True, "holds_stock": True, "mobile": False}  # fmt: skip
_MEMBERS = {"consortium": {"id": "okayama", "name": "岡山連携中枢都市圏図書館相互利用"}, "members": [{
    "id": "okayama-city", "name": "岡山市立図書館", "municipality": "岡山市", "phone": "086-223-3373",
    "connector": "sru", "connectors": [{"kind": "sru", "capabilities": ["search"]}],
    "circuit": {"state": "closed", "consecutive_failures": 0, "retry_in_s": 0.0}, "maintenance": [],
    "in_maintenance": False, "unknown_status_words": {}, "unknown_status_words_dropped": 0, "branches": [_BRANCH]}]}  # fmt: skip
_OPTION = {"member": "okayama-pref", "member_name": "岡山県立図書館", "record_id": "b0001", "item_id": "1000123",
           "copy_branch": "okayama-pref/main", "pickup_branch": "okayama-pref/main", "pickup_name": "岡山県立図書館",
           "availability": "available", "route": "at_owner", "queue_ahead": 0, "processed": "2026-12-02",
           "notice": "2026-12-02", "ready": "2026-12-03", "deadline": "2026-12-10", "schedule": "next_open_day",
           "assumptions": [], "preference_rank": None, "distance_km": 1.2}  # fmt: skip
_PLAN = {"work": {"work_id": "isbn:9784101010137", "title": "こころ", "authors": ["夏目漱石"], "isbns": ["9784101010137"],
                  "volume": None},
         "plan": {"today": "2026-12-01", "choice": _OPTION, "alternatives": [], "alternatives_total": 0, "refusals": [],
                  "advice": [], "assumptions": [], "loans": None},
         "stale_holdings": []}  # fmt: skip
_PLAN_BODY = {"isbn": "9784101010137", "patron": {"cards": [{"member": "okayama-pref", "card_number": "10000001",
              "pin": "1234"}], "home_municipality": "津山市"}}  # fmt: skip
_HOLD = {"id": "5f0c8a1e2b7d4c3a9e6f1b2c3d4e5f60", "member": "okayama-pref", "member_name": "岡山県立図書館",
         "record_id": "b0001", "item_id": None, "title": "こころ", "author": "夏目漱石", "volume": None,
         "pickup_branch_id": "okayama-pref/main", "pickup_branch_name": "岡山県立図書館", "outcome": "placed",
         "state": "waiting", "state_label": "予約中（確保待ち）", "status_text": "予約中",
         "queue_position": 1, "ready_until": None, "promised_ready": "2026-12-03", "promised_until": None,
         "refusal": None, "series": None, "created_at": "2026-12-01T10:00:00+00:00",
         "updated_at": "2026-12-01T10:00:01+00:00"}  # fmt: skip
_HOLD_SHOWN = {**_HOLD, "transitions": [{"from": None, "to": "waiting", "member_word": "予約中", "at": "2026-12-01T10:00:01+00:00"}]}
_SERIES = {"series_id": "s-1f2e3d", "holds": [
    {**_HOLD, "title": "ノルウェイの森", "author": "村上春樹", "volume": "上", "series": {"id": "s-1f2e3d", "position": 1}},
    {**_HOLD, "id": "6a1d9b2f3c8e4d5a0f7b2c3d4e5f6a71", "title": "ノルウェイの森", "author": "村上春樹", "volume": "下",
     "outcome": "deferred", "state": None, "state_label": "前の巻が届いてから予約します", "status_text": None,
     "queue_position": None, "promised_ready": None, "series": {"id": "s-1f2e3d", "position": 2}}]}  # fmt: skip
_LOGIN = {"member": "okayama-pref", "card_number": "10000001", "pin": "1234"}
_PLACE = {"member": "okayama-pref", "record_id": "b0001", "pickup_branch_id": "okayama-pref/main", "title": "こころ",
          "author": "夏目漱石"}

PROBLEM = "application/problem+json"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

_SEARCH_EXAMPLES = {"q": "夏目漱石 こころ", "title": "こころ", "author": "夏目漱石", "isbn": "9784101010137", "year": 2004,
                    "members": ["okayama-city", "tsuyama-city"], "near": "34.6552,133.9195", "start": 1, "page_size": 20,
                    "prefecture": "33", "region": "中国", "near_prefecture": "岡山県"}  # fmt: skip
_KEY_PROBLEM = ("`invalid_api_key`: the portal key sent is unknown, revoked or for another consortium; "
                "`api_key_required`: this consortium allows no anonymous search (`WWW-Authenticate` says how)")  # fmt: skip
_SEARCH_PROBLEMS = {
    400: "an invalid, repeated or unknown parameter, an empty query, an unknown member, branch, prefecture or region, "
    "or places that leave no member (`errors` names each parameter)",
    401: _KEY_PROBLEM,
    403: "`members_not_allowed`: the portal key may search only some members (`errors` names the others)",
    429: "too many searches from this portal key (its own bucket) or, without a key, from this client address: "
    "`Retry-After`, `RateLimit-Policy`/`RateLimit` and `RateLimit-*` headers say when",
    503: "the broker runs as many federated searches as it admits: `Retry-After` says when to try again",
}
_AUTH_PROBLEMS = {401: "no bearer token, or a token that expired or was revoked (log in first)"}
_LANG_PROBLEM = {400: "`lang` is neither ja nor en (`errors` names it)"}
_HOLD_PROBLEMS = {
    404: "no such hold for this patron (another patron's hold id answers the same)",
    409: "the hold changed meanwhile (`reason`)",
    422: "refused by the member or the consortium's rules: `reason` is a RefusalReason, with `library` and `phone`",
    503: "the member system cannot be reached now (`reason`: member_unreachable)",
}

_HOLD_LINKS = {"showHold": "id", "cancelHold": "id", "changePickup": "id"}

# --- search sessions -------------------------------------------------------------------------

_SESSION_ID = "kT3v9QeXb2mLr8Zp"
_CREATED = {"id": _SESSION_ID, "version": 0,
            "links": {"self": f"/api/v1/searches/{_SESSION_ID}", "events": f"/api/v1/searches/{_SESSION_ID}/events"}}  # fmt: skip
_DIFF = {"id": _SESSION_ID, "version": 3, "since": 1, "reset": False, "done": False, "running": ["tsuyama-city"],
         "inserted": [_WORK], "updated": [{"members": ["okayama-city"], "whole": False, "work": _WORK}],
         "removed": [{"work_id": "w5c1e0b7d9a3f", "merged_into": "isbn:9784101010137"}], "finished": [_TARGET], "order": None}  # fmt: skip
_DIFF_DONE = {**_DIFF, "version": 4, "since": 3, "done": True, "running": [], "inserted": [], "updated": [], "removed": [],
              "finished": [], "order": ["isbn:9784101010137"]}  # fmt: skip
_SSE_EXAMPLE = f"id: 3\r\nevent: diff\r\ndata: {_json_line(_DIFF)}\r\n\r\nid: 4\r\nevent: diff\r\ndata: {_json_line(_DIFF_DONE)}\r\n\r\n"
_SESSION_LINKS = {"pollSearch": "id", "searchEvents": "id", "deleteSearch": "id"}
_PER_PROCESS = ("Sessions live in the memory of the broker process that created them: behind a load balancer, route a "
                "session's requests to the same node (sticky sessions; with `node` set, an id begins with the node's name "
                "and a dot).")  # fmt: skip
_SESSION_GONE = {404: "no such session: never created, expired after its idle time without a poll, or deleted"}
_PATH_PARAMETERS = {
    "hold_id": ("the hold id, as answered by POST /api/v1/holds", _HOLD["id"]),
    "search_id": ("the session id, as answered by POST /api/v1/searches", _SESSION_ID),
}


class SruQuery(BaseModel):
    """SRU 1.2 / 2.0 request parameters (broker/sru_server.py); unknown ones are ignored, as SRU allows."""

    version: str | None = Field(default=None, description="1.1, 1.2 (zing namespaces) or 2.0 (OASIS; the default)")
    operation: str | None = Field(default=None, description="explain or searchRetrieve (2.0: implied by `query`)")
    query: str | None = Field(default=None, max_length=2000, description="CQL: title, author, isbn, any, year; and/or/not")
    startRecord: int | None = Field(default=None, description="1-based position of the first record")
    maximumRecords: int | None = Field(default=None, description="records in this answer (at most 50)")
    recordSchema: str | None = Field(default=None, description="marcxml (default, with 852 holdings) or dc")
    recordPacking: str | None = Field(default=None, description="xml (default) or string")


_SRU_EXAMPLE = (
    '<?xml version="1.0" encoding="UTF-8"?><zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/">'
    "<zs:version>1.2</zs:version><zs:numberOfRecords>1</zs:numberOfRecords>…</zs:searchRetrieveResponse>"
)
_CHECK_SESSION = "5f0c8a1e2b7d4c3a9e6f1b2c3d4e5f60"
_CHECK = {"session": _CHECK_SESSION, "continue": 0, "books": {"4101010137": {
    "Okayama_Okayama": {"status": "OK", "reserveurl": "http://127.0.0.1:8400/work?isbn=9784101010137",
                        "libkey": {"中央図書館": "貸出可", "幸町図書館": "貸出中"}},
    "tsuyama-city": {"status": "Running", "reserveurl": ""}}}}  # fmt: skip
_CHECK_XML = ('<?xml version="1.0" encoding="UTF-8"?><result><session>' + _CHECK_SESSION + "</session><continue>0</continue>"
              '<books><book isbn="4101010137" calilurl=""><system systemid="Okayama_Okayama"><status>OK</status>'
              "<reserveurl>…</reserveurl><libkeys><libkey name=\"中央図書館\">貸出可</libkey></libkeys></system></book></books></result>")  # fmt: skip
_SRU_REPLY = {
    200: Reply("an SRU explain or searchRetrieve answer; diagnostics are inside it, never an HTTP error", str, "text/xml", example=_SRU_EXAMPLE)
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get", "/sru", "sru", "SRU 1.2/2.0: explain and searchRetrieve over the merged works", "sru",
        description="Yokodan as one SRU target of a larger federation: MARCXML with one 852 per copy, or Dublin Core.",
        query=SruQuery, query_examples={"version": "1.2", "operation": "searchRetrieve", "query": "title=こころ", "startRecord": 1,
                                        "maximumRecords": 10, "recordSchema": "marcxml", "recordPacking": "xml"},
        replies=_SRU_REPLY, portal_key=True, problems={401: _KEY_PROBLEM, 403: _SEARCH_PROBLEMS[403]},
    ),
    Operation(
        "post", "/sru", "sruPost", "SRU over POST: the same parameters, form-encoded", "sru",
        description="The GET parameters as an application/x-www-form-urlencoded body (SRU 2.0 POST binding).",
        replies=_SRU_REPLY, portal_key=True,
        problems={400: "the body is not form-encoded parameters", 401: _KEY_PROBLEM, 403: _SEARCH_PROBLEMS[403]},
    ),
    Operation(
        "get", "/api/v1/search", "search", "Search every member; merged works and one status per member", "search",
        description="Waits for every member (each under its own deadline). Members in maintenance or with an open "
        "circuit are skipped without contact and reported as `skipped`.",
        query=SearchParams, query_examples=_SEARCH_EXAMPLES, replies={200: Reply("merged works, facets and every member's status", wire.SearchResponse, example=_SEARCH)},
        problems=_SEARCH_PROBLEMS, portal_key=True,
    ),
    Operation(
        "get", "/api/v1/search/stream", "searchStream", "The same search, progressively, as NDJSON", "search",
        description="One JSON object per line (each is a `StreamLine`): first `cached` (what the union index knew), "
        "then one `member` line as each member answers, then `final`; a stream that fails after it began ends "
        "with an `error` line instead of `final`.",
        query=SearchParams, query_examples=_SEARCH_EXAMPLES,
        replies={200: Reply("newline-delimited JSON, one StreamLine per line", wire.StreamLine, NDJSON, example=_STREAM)},
        problems=_SEARCH_PROBLEMS, portal_key=True,
    ),
    Operation(
        "get", "/api/v1/check", "calilCheck", "Calil's check API (カーリル): availability by ISBN × system, polled", "search",
        description="Answers in Calil's shape, so a site written for Calil's check API can point here: start with `isbn` "
        "and `systemid` (member ids, or the Calil system ids the consortium file declares), then poll with `session` "
        "every 1–2 s while `continue` is 1. `format=xml` gives Calil's XML; JSON is JSONP unless `callback=no`. "
        "Starting a check takes a search token; polls do not. `appkey` is a portal key when it starts with `yk_`.",
        query=CheckParams,
        query_examples={"appkey": "a-calil-appkey", "isbn": "4101010137", "systemid": "Okayama_Okayama,tsuyama-city",
                        "session": _CHECK_SESSION, "format": "json", "callback": "no"},  # fmt: skip
        replies={200: Reply("the check so far (every system `Running`, `OK` or `Error`)", wire.CalilCheckResponse, example=_CHECK,
                            also={"application/javascript": "/**/callback(" + orjson.dumps(_CHECK).decode() + ");", "application/xml": _CHECK_XML})},
        problems={400: "an unknown systemid, a bad ISBN, more than 100 ISBN × system pairs, a bad `format`, "
                       "a `callback` that is not a JavaScript identifier (`errors` names each)",
                  401: _KEY_PROBLEM, 403: _SEARCH_PROBLEMS[403],
                  404: "`unknown_session`: the session ended or was idle too long; start a new check",
                  429: _SEARCH_PROBLEMS[429],
                  503: "too many check sessions open, or the broker runs as many searches as it admits: `Retry-After`"},
        portal_key=True,
    ),
    Operation(
        "post", "/api/v1/searches", "startSearch", "Start a progressive search session", "search sessions",
        description="The parameters of GET /api/v1/search, as a JSON object (`members` a list or a comma-separated "
        "string). The fan-out starts at once and goes on while nobody polls; read it with `pollSearch` (long-poll "
        "diffs since a version) or `searchEvents` (the same diffs as Server-Sent Events). A session ends after its "
        "idle time without a poll, or with `deleteSearch`. " + _PER_PROCESS,
        body=SearchParams, body_example={"q": "夏目漱石 こころ", "members": ["okayama-city", "tsuyama-city"], "page_size": 20},
        replies={201: Reply("the session: its id, version 0 and where to read it", wire.SearchSessionCreated,
                            example=_CREATED, headers={"Location": "the session's URL"}, links=_SESSION_LINKS)},
        problems={**_SEARCH_PROBLEMS, 413: "the body is larger than 16 KiB",
                  429: "too many searches from this client address, or as many sessions open as this broker holds: "
                       "`Retry-After` says when"},
    ),
    Operation(
        "get", "/api/v1/searches/{search_id}", "pollSearch", "Long-poll a session: the diff since a version", "search sessions",
        description="Answers at once when the session is past `version` (or done), else waits up to `timeout` seconds "
        "(at most 30) and answers what changed meanwhile, perhaps nothing. Works inserted, works updated with the "
        "members whose holdings changed (and only their holdings, unless `whole`), works removed (merged by dedup), members still running and members "
        "finished. A version the session no longer keeps gets the whole state with `reset: true`. " + _PER_PROCESS,
        query=SessionPoll, query_examples={"version": 1, "timeout": 10},
        replies={200: Reply("the diff since `version`", wire.SearchDiff, example=_DIFF)},
        problems={400: "an invalid or unknown parameter", **_SESSION_GONE},
    ),
    Operation(
        "get", "/api/v1/searches/{search_id}/events", "searchEvents", "The session's diffs as Server-Sent Events", "search sessions",
        description="`text/event-stream`: one `diff` event per version (`id:` is the version, `data:` a SearchDiff), "
        "the first one at once when there is news; the stream ends after the diff with `done: true`. A reconnecting "
        "client sends `Last-Event-ID` and gets exactly what it missed. " + _PER_PROCESS,
        query=SessionEventsQuery, query_examples={"version": 0},
        headers=(Header("Last-Event-ID", "the last version the client has (an EventSource sends it when it reconnects)",
                        example="3", pattern="^[0-9]{1,10}$"),),
        replies={200: Reply("an event stream of SearchDiff events", str, SSE, example=_SSE_EXAMPLE)},
        problems={400: "an invalid parameter or Last-Event-ID", **_SESSION_GONE},
    ),
    Operation(
        "delete", "/api/v1/searches/{search_id}", "deleteSearch", "End a session (its fan-out stops)", "search sessions",
        replies={204: Reply("ended", media_type="")}, problems=_SESSION_GONE,
    ),
    Operation(
        "get", "/api/v1/members", "members", "Members, branches, connectors, circuits, maintenance", "consortium",
        replies={200: Reply("the consortium and its members", wire.MembersResponse, example=_MEMBERS)},
    ),
    Operation(
        "get", "/healthz", "health", "Liveness", "consortium",
        replies={200: Reply("the broker is up", wire.HealthResponse, example={"status": "ok", "consortium": "okayama",
                                                               "event_loop": {"lag_ms": 1.2, "max_lag_ms": 14.0, "saturated": False},
                                                               "searches": {"running": 0, "queued": 0, "refused_busy": 0},
                                                               "memory": {"allocator": "jemalloc 5.3.0", "rss_mib": 97.4},
                                                               "union_index": {"works": 1520, "writer": "process", "writer_pid": 4242,
                                                                               "writer_restarts": 0, "queued_works": 0, "dropped_batches": 0,
                                                                               "resubmitted_batches": 0, "lost_batches": 0, "failed_batches": 0,
                                                                               "last_error": None}})},
    ),
    Operation(
        "post", "/api/v1/holds/plan", "planHold", "Plan a hold (dry run): choice, alternatives, refusals, card advice", "holds",
        description="Nothing is placed. With `isbns` the answer is a series plan (`SeriesPlanResponse`) in reading order. "
        "Refusals and card-gap advice carry `message` in the language of `lang=` (else Accept-Language, else ja) beside "
        "`message_ja` and `message_en`. "
        "The PIN is passed to the member and dropped; it is never echoed or logged.",
        body=PlanRequest, body_example=_PLAN_BODY, query=HoldsQuery, query_examples={"lang": "en"},
        replies={200: Reply("the plan (a series plan when `isbns` was given)", wire.PlanResponse | wire.SeriesPlanResponse, example=_PLAN)},
        problems={400: "the body is not JSON or not a valid plan request, or names an unknown member or branch, or `lang` is neither ja nor en",
                  404: "no member's catalogue has the work", 413: "the body is larger than 64 KiB"},
    ),
    Operation(
        "post", "/api/v1/auth/login", "login", "Log in with a library card; answers a bearer token (shown once)", "account",
        description="With an `Authorization` header the card is added to the account already logged in.",
        body=LoginBody, body_example=_LOGIN,
        replies={200: Reply("a bearer token", wire.TokenResponse, example={"token": "y0k0…", "token_type": "Bearer", "expires_in": 43200})},
        problems={400: "the body is not valid", 401: "the member refused the card or PIN (`reason`: authentication_failed …)",
                  503: "the member system cannot be reached now"},
    ),
    Operation(
        "post", "/api/v1/auth/logout", "logout", "Revoke the presented token", "account", bearer=True,
        replies={204: Reply("revoked", media_type="")}, problems=_AUTH_PROBLEMS,
    ),
    Operation(
        "get", "/api/v1/auth/cards", "cards", "The account's cards (numbers masked)", "account", bearer=True,
        replies={200: Reply("the cards", wire.CardsResponse, example={"cards": [{"id": "c1", "member": "okayama-pref", "card_number": "…001"}]})},
        problems=_AUTH_PROBLEMS,
    ),
    Operation(
        "post", "/api/v1/holds", "placeHold", "Place a hold, exactly once per Idempotency-Key", "holds", bearer=True, query=HoldsQuery, query_examples={"lang": "ja"},
        description="201: placed or refused now; 200: the same key again (the first answer, replayed); 202: sent "
        "but the member's answer is not known yet — poll `Location`.",
        body=PlaceHoldBody, body_example=_PLACE,
        headers=(Header("Idempotency-Key", "the portal's key for this placement: the same key never places twice", min_length=8, max_length=255),),
        replies={
            201: Reply("placed, or refused by the member (`outcome`)", wire.HoldView, example=_HOLD, links=_HOLD_LINKS),
            200: Reply("a replay of the key's first answer", wire.HoldView, example=_HOLD),
            202: Reply("not settled yet; poll the hold", wire.HoldView, example={**_HOLD, "outcome": "unknown", "state": None},
                       headers={"Location": "the hold's URL", "Retry-After": "seconds before polling"}),
        },
        problems={400: "the body or the Idempotency-Key is not valid", **_AUTH_PROBLEMS,
                  422: "the Idempotency-Key was used for another body, or the consortium's rules refuse (`reason`)",
                  503: "the member system cannot be reached now"},
    ),
    Operation(
        "post", "/api/v1/holds/series", "placeSeries", "Hold the next volumes of a series (or all of them), in reading order", "holds",
        bearer=True, query=HoldsQuery, query_examples={"lang": "ja"},
        description="The series is found from one volume (`isbn`: same title and author, a volume designation) or named "
        "volume by volume (`isbns`). Every volume is planned with the account's cards; the first is placed now, each next "
        "one when the one before is ready (`outcome` deferred until then). One Idempotency-Key for the whole series: "
        "the same key again answers the series it made (200) without planning again.",
        body=SeriesHoldBody, body_example={"isbn": "9784062748681", "scope": "from_this"},
        headers=(Header("Idempotency-Key", "the portal's key for this series: the same key never places it twice", min_length=8, max_length=255),),
        replies={
            201: Reply("the volumes, in reading order", wire.SeriesHoldsResponse, example=_SERIES),
            200: Reply("a replay of the key's series", wire.SeriesHoldsResponse, example=_SERIES),
        },
        problems={400: "the body, `lang` or the Idempotency-Key is not valid", **_AUTH_PROBLEMS, 404: "no member holds a named volume",
                  422: "a volume cannot be held now (`reason`, `volume`): nothing was placed; or the key was used for another body",
                  503: "the member system cannot be reached now"},
    ),
    Operation(
        "get", "/api/v1/holds", "listHolds", "The patron's holds", "holds", bearer=True, query=HoldsQuery, query_examples={"lang": "ja"},
        replies={200: Reply("the holds, oldest first", wire.HoldsResponse, example={"holds": [_HOLD]})}, problems={**_LANG_PROBLEM, **_AUTH_PROBLEMS},
    ),
    Operation(
        "get", "/api/v1/holds/{hold_id}", "showHold", "One hold with its transitions", "holds", bearer=True, query=HoldsQuery, query_examples={"lang": "ja"},
        replies={200: Reply("the hold", wire.HoldView, example=_HOLD_SHOWN)}, problems={**_LANG_PROBLEM, **_AUTH_PROBLEMS, 404: _HOLD_PROBLEMS[404]},
    ),
    Operation(
        "delete", "/api/v1/holds/{hold_id}", "cancelHold", "Cancel (online only while submitted or waiting)", "holds", bearer=True, query=HoldsQuery, query_examples={"lang": "ja"},
        replies={200: Reply("the hold, cancelled", wire.HoldView, example={**_HOLD, "state": "cancelled", "state_label": "取り消し済み"})},
        problems={**_LANG_PROBLEM, **_AUTH_PROBLEMS, **_HOLD_PROBLEMS},
    ),
    Operation(
        "patch", "/api/v1/holds/{hold_id}", "changePickup", "Change the pickup branch", "holds", bearer=True, query=HoldsQuery, query_examples={"lang": "ja"},
        body=ChangePickupBody, body_example={"pickup_branch_id": "okayama-pref/main"},
        replies={200: Reply("the hold with its new pickup", wire.HoldView, example=_HOLD)},
        problems={400: "the body is not valid", **_AUTH_PROBLEMS, **_HOLD_PROBLEMS},
    ),
    Operation(
        "get", OPENAPI_JSON, "openapi", "This document (OpenAPI 3.1)", "meta",
        replies={200: Reply("the OpenAPI document", None)},
    ),
    Operation(
        "get", DOCS, "docs", "This document as a page", "meta",
        replies={200: Reply("HTML", None, "text/html")},
    ),
)


BY_OPERATION_ID = {op.operation_id: op for op in OPERATIONS}


# The machine interfaces the document describes; the pages (broker/pages: HTML for people, with their
# own CSRF-protected forms) are not part of the portal API.
_MACHINE_PREFIXES = ("/api/", "/sru", "/healthz")


def _registered(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(_MACHINE_PREFIXES):
            routes.add((route.method.lower(), path))
    return routes


def described_routes(app: web.Application) -> tuple[list[Operation], list[tuple[str, str]]]:
    """The operations whose route is on the app, and the app's routes nobody described (HEAD aside)."""
    registered = _registered(app)
    operations = [op for op in OPERATIONS if (op.method, op.path) in registered]
    known = {(op.method, op.path) for op in OPERATIONS}
    undescribed = sorted(r for r in registered if r not in known and r[0] != "head")
    return operations, undescribed


def _schemas(operations: list[Operation]) -> tuple[dict[str, Any], dict[Any, dict[str, Any]]]:
    """components.schemas for every model used, and the reference (or inline schema) of each."""
    models: set[type[BaseModel]] = {wire.Problem}
    for op in operations:
        models |= {m for m in (op.query, op.body) if m is not None}
        models |= {r.model for r in op.replies.values() if isinstance(r.model, type) and issubclass(r.model, BaseModel)}
    ordered = sorted(models, key=lambda m: m.__name__)
    modes = [(m, "validation" if m in {op.body for op in operations} | {op.query for op in operations} else "serialization") for m in ordered]
    refs, defs = models_json_schema(modes, ref_template=REF)
    references: dict[Any, dict[str, Any]] = {m: refs[(m, mode)] for m, mode in modes}
    schemas = dict(defs.get("$defs", {}))
    # Unions (the stream's lines, plan or series plan) become named or inline oneOf schemas.
    for op in operations:
        for reply in op.replies.values():
            if reply.model is not None and reply.model not in references:
                adapter = TypeAdapter(reply.model)
                schema = adapter.json_schema(ref_template=REF, mode="serialization")
                schemas.update(schema.pop("$defs", {}))
                references[reply.model] = schema
    return schemas, references


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 64},
         "description": _PATH_PARAMETERS[name][0], "example": _PATH_PARAMETERS[name][1]}
        for name in op.path_parameters
    ]  # fmt: skip
    if op.query is not None:
        schema = op.query.model_json_schema(mode="validation")
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            prop = dict(prop)
            description = prop.pop("description", None)
            prop.pop("title", None)
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if prop.get("type") == "array":
                param |= {"style": "form", "explode": False}  # members=a,b
            if description:
                param["description"] = description
            if name in op.query_examples:
                param["example"] = op.query_examples[name]
            params.append(param)
    for header in op.headers:
        schema: dict[str, Any] = {"type": "string"}
        if header.pattern is not None:
            schema["pattern"] = header.pattern
        if header.min_length is not None:
            schema["minLength"] = header.min_length
        if header.max_length is not None:
            schema["maxLength"] = header.max_length
        params.append({"name": header.name, "in": "header", "required": header.required, "schema": schema,
                       "description": header.description, "example": header.example})  # fmt: skip
    return params


def _operation(op: Operation, references: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        doc["description"] = op.description
    params = _parameters(op)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": references[op.body], "example": op.body_example}},
        }
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.replies.items()):
        entry: dict[str, Any] = {"description": reply.description}
        if reply.media_type:
            media: dict[str, Any] = {}
            if reply.model is not None:
                media["schema"] = references[reply.model]
            elif reply.media_type == "application/json":
                media["schema"] = {"type": "object"}
            else:
                media["schema"] = {"type": "string"}
            if reply.example is not None:
                # An NDJSON body is lines; its example is the list of lines a stream sends.
                media["example"] = "\n".join(_json_line(x) for x in reply.example) if reply.media_type == NDJSON else reply.example
            entry["content"] = {reply.media_type: media}
            for other, example in reply.also.items():
                entry["content"][other] = {"schema": {"type": "string"}, "example": example}
        if reply.links:
            # OpenAPI links: where a client (or schemathesis's stateful phase) finds the next call's ids.
            entry["links"] = {
                target: {"operationId": target, "parameters": {BY_OPERATION_ID[target].path_parameters[0]: f"$response.body#/{field_name}"}}
                for target, field_name in reply.links.items()
            }
        if reply.headers:
            entry["headers"] = {name: {"description": d, "schema": {"type": "string"}} for name, d in reply.headers.items()}
        responses[str(status)] = entry
    problems = {
        400: _PARSER_REFUSED,
        # Answered by the broker's request parser (broker/http_server.py) before any handler runs.
        414: "the request line is longer than the server reads (8190 bytes; a long query percent-encodes to 3 bytes per byte)",
        431: "a header, or all headers together, are larger than the server reads",
        # Any route: a portal key that is not valid here is refused, never taken for anonymous.
        401: "`invalid_api_key`: the portal key sent (`X-Api-Key`, `Authorization: Bearer yk_…`) is unknown, revoked or for another consortium",
        **op.problems,
        500: "the broker failed; the error is logged (no query or patron in the log)",
    }
    for status, when in sorted(problems.items()):
        example = {"type": "about:blank", "title": _PROBLEM_TITLES.get(status, "Error"), "status": status, "detail": when}
        entry = {"description": when, "content": {PROBLEM: {"schema": references[wire.Problem], "example": example}}}
        if status == 400:
            # aiohttp's HTTP parser answers these itself, before any handler or middleware runs.
            entry["description"] = f"{when}; {_PARSER_REFUSED}" if when != _PARSER_REFUSED else when
            entry["content"]["text/plain"] = {"schema": {"type": "string"}, "example": "400, message: Got more than 8190 bytes when reading"}
        responses[str(status)] = entry
    doc["responses"] = responses
    if op.bearer:
        doc["security"] = [{"bearer": []}]
    elif op.portal_key:
        # {}: anonymous, where the consortium allows it; else a portal key, in either header.
        doc["security"] = [{}, {"portalKey": []}, {"portalBearer": []}]
    return doc


_PARSER_REFUSED = ("or (text/plain) the HTTP parser refused the request itself: a request line or header over 8190 bytes "
                   "(a long query percent-encodes to 3 bytes per byte of UTF-8), a NUL or control byte in a header")
_PROBLEM_TITLES = {400: "Invalid request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 413: "Request body too large",
                   414: "URI Too Long", 422: "Hold request refused", 429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def _json_line(value: Any) -> str:
    return orjson.dumps(value).decode()


def openapi_document(app: web.Application, *, title: str = "Yokodan 横断") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes registered on `app`."""
    operations, _ = described_routes(app)
    schemas, references = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, references)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": API_VERSION,
            "description": "Federated search and holds across a library consortium's member systems. "
            "Errors are RFC 9457 problem+json; refusals carry a `reason` code (RefusalReason).",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    schemes: dict[str, Any] = {}
    if any(op.bearer for op in operations):
        schemes["bearer"] = {"type": "http", "scheme": "bearer", "description": "a patron's token from POST /api/v1/auth/login"}
    if any(op.portal_key for op in operations):
        schemes["portalKey"] = {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                                "description": "a portal's API key (`yk_<id>_<secret>`, from `yokodan keys create`)"}  # fmt: skip
        schemes["portalBearer"] = {"type": "http", "scheme": "bearer", "bearerFormat": "yk_<id>_<secret>",
                                   "description": "the same portal key as a bearer token (not on the patron routes)"}  # fmt: skip
    if schemes:
        document["components"]["securitySchemes"] = schemes
    return document


_CACHE_KEY = web.AppKey("openapi_cache", dict)


def _document(app: web.Application) -> dict[str, Any]:
    # Built on first use: routes added after add_openapi_routes (the ledger's) are described too.
    cache = app[_CACHE_KEY]
    if "document" not in cache:
        consortium = app.get(CONSORTIUM_KEY)
        cache["document"] = openapi_document(app, title=f"Yokodan 横断: {consortium.name}" if consortium else "Yokodan 横断")
    return cache["document"]


async def openapi_handler(request: web.Request) -> web.Response:
    return json_response(_document(request.app))


async def docs_handler(request: web.Request) -> web.Response:
    return web.Response(text=render_docs(_document(request.app)), content_type="text/html", charset="utf-8")


def add_openapi_routes(app: web.Application) -> None:
    app[_CACHE_KEY] = {}
    app.router.add_get(OPENAPI_JSON, openapi_handler)
    app.router.add_get(DOCS, docs_handler)
