"""Calil (カーリル) check API: live per-branch availability of one ISBN in one library system.

Calil asks each library's OPAC on the caller's behalf, so an answer takes seconds:
  GET {endpoint}/check?appkey=…&isbn=…&systemid=…&format=json&callback=no
  -> {"session": …, "continue": 1, "books": {ISBN: {SYSTEMID: {"status": "Running", …}}}}
  GET {endpoint}/check?appkey=…&session=…&format=json&callback=no   (every ≥ 2 s, while continue = 1)
  -> … {"status": "OK" | "Cache", "reserveurl": …, "libkey": {branch: word}} …, "continue": 0
Options (`connectors.options.CalilOptions`): systemid and appkey (required), poll_interval_s;
one Calil endpoint serves many members, each its own system.
Calil knows ISBNs only: `search` takes `SearchQuery.isbn` (or an ISBN typed as the keyword),
`holdings` an ISBN as record id. Branch keys (libkey) map to consortium branches through
`branch_codes`; the per-branch word through the shared status vocabulary (蔵書なし = no copy).

Outcomes: OK / Cache -> holdings (Cache is Calil's recent copy of the OPAC's answer);
Error -> TargetUnreachable (Calil could not query the library's OPAC: a health failure
of that member, so its circuit breaker counts it); still Running when the member's
deadline comes -> TargetTimeout. A Running system has sent no branch data yet, and each
member is one system, so a one-ISBN check has no partial answer: the member times out.
`check_many` (several ISBNs in one session) returns the ISBNs that finished and leaves
out those still Running; it times out only when none has finished.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from yokodan.isbn import to_isbn13
from yokodan import Availability, Holding, Record, SearchQuery
from connectors.options import CalilOptions
from connectors.settings import TargetSettings
from connectors.base import Capability, Connector, SearchResult
from connectors.errors import (
    MalformedResponse,
    TargetTimeout,
    TargetUnreachable,
    UnsupportedQuery,
)
from connectors.http import HttpClient
from connectors.status_words import StatusMapper

# Our availability -> Calil's one word per branch, for those who answer as Calil does (the broker's
# Calil-compatible check, the sandbox's Calil). IN_TRANSIT has no Calil word: a copy moving between
# branches is on its way to someone who asked for it, which Calil calls 予約中; 準備中 is Calil's
# "being prepared" (new, not yet shelved).
CALIL_WORDS: dict[Availability, str] = {
    Availability.AVAILABLE: "貸出可",
    Availability.LIBRARY_USE_ONLY: "館内のみ",
    Availability.NOT_FOR_LOAN: "館内のみ",
    Availability.ON_LOAN: "貸出中",
    Availability.RESERVED: "予約中",
    Availability.IN_TRANSIT: "予約中",
    Availability.ON_ORDER: "準備中",
    Availability.CLOSED: "休館中",
    Availability.UNKNOWN: "蔵書あり",
}

# Calil's limits: 100 ISBN x system pairs per session; each pair counts against the app key's
# hourly quota (polls do not), so a result page is checked in one session, not one per ISBN.
MAX_ISBNS_PER_SESSION = 100
NOT_HELD = "蔵書なし"  # Calil's word for "this branch has no copy": no Holding at all
# Give up this long before the member's deadline, so the broker hears a named timeout
# from the connector rather than cancelling it with its own timer of the same length.
_DEADLINE_MARGIN_S = 0.05
_JSONP_CALLBACK = re.compile(rb"[A-Za-z_$][\w$.]*")


@dataclass(frozen=True, slots=True)
class CalilAnswer:
    session: str
    continues: bool
    books: dict[str, Any]  # ISBN as sent -> systemid -> {"status", "reserveurl", "libkey"}

    def system(self, isbn13: str, systemid: str) -> dict[str, Any] | None:
        """The entry for one ISBN and system; Calil echoes the ISBN in the form it was sent."""
        systems = self.books.get(isbn13)
        if systems is None:
            systems = next((v for k, v in self.books.items() if to_isbn13(k) == isbn13), None)
        entry = systems.get(systemid) if isinstance(systems, dict) else None
        return entry if isinstance(entry, dict) else None


def _unwrap_jsonp(body: bytes, member: str) -> bytes:
    """`callback({...});` -> `{...}`: Calil wraps its JSON unless asked for callback=no."""
    text = body.strip()
    if text[:1] == b"{":
        return text
    call = text.rstrip(b";").rstrip()
    opening = call.find(b"(")
    if opening > 0 and call.endswith(b")") and _JSONP_CALLBACK.fullmatch(call[:opening].strip()):
        return call[opening + 1 : -1]
    raise MalformedResponse("Calil answer is neither JSON nor a JSONP callback", member=member)


def parse_answer(body: bytes, member: str) -> CalilAnswer:
    """A check answer from bytes already size-capped by the HTTP layer."""
    try:
        data = orjson.loads(_unwrap_jsonp(body, member))
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"Calil answer is not JSON: {exc}", member=member) from None
    if not isinstance(data, dict):
        raise MalformedResponse("Calil answer is not a JSON object", member=member)
    books, session, continues = data.get("books", {}), data.get("session", ""), data.get("continue", 0)
    if not isinstance(books, dict) or not isinstance(session, str) or continues not in (0, 1):
        raise MalformedResponse("Calil answer lacks books / session / continue", member=member)
    if continues and not session:
        raise MalformedResponse("Calil asks to poll but gives no session", member=member)
    return CalilAnswer(session, bool(continues), books)


def isbn_of(query: SearchQuery, member: str) -> str:
    """The one ISBN a query asks for: SearchQuery.isbn, or a keyword that is exactly an ISBN."""
    isbn = None
    if not (query.title or query.author or query.year is not None or (query.isbn and query.text)):
        isbn = query.isbn or (to_isbn13(query.text) if query.text else None)
    if isbn is None:
        raise UnsupportedQuery("Calil looks up ISBNs only", member=member)
    return isbn


class CalilConnector(Connector):
    kind = "calil"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEARCH, Capability.HOLDINGS})

    def __init__(self, settings: TargetSettings, http: HttpClient) -> None:
        super().__init__(settings, http)
        options = settings.options_as(CalilOptions)
        self.systemid = options.systemid
        self.appkey = options.appkey.get_secret_value()
        self.poll_interval_s = options.poll_interval_s
        self.check_url = settings.endpoint.rstrip("/") + "/check"
        self.status = StatusMapper(settings.member, settings.status_words)

    async def search(self, query: SearchQuery) -> SearchResult:
        isbn = isbn_of(query, self.member)
        holdings = await self.check(isbn)
        if not holdings:
            return SearchResult(records=[], hits=0)
        # Calil has no bibliographic data: the record is the ISBN and its copies; the merge
        # puts it beside other members' records of the same ISBN, whose titles show.
        record = Record(
            member=self.member, local_id=isbn, title="", isbns=[isbn], source_format="calil", holdings=holdings
        )
        return SearchResult(records=[record] if query.start == 1 else [], hits=1)

    async def holdings(self, record_id: str) -> list[Holding]:
        isbn = to_isbn13(record_id)
        if isbn is None:
            raise UnsupportedQuery(f"Calil looks up ISBNs only, not {record_id!r}", member=self.member)
        return await self.check(isbn)

    async def check(self, isbn13: str) -> list[Holding]:
        """Ask Calil and poll until this member's system has answered, within the member's deadline."""
        return (await self.check_many([isbn13]))[isbn13]

    async def check_many(self, isbns: Sequence[str]) -> dict[str, list[Holding]]:
        """Holdings of several ISBN-13s in one Calil session (`isbn=A,B`). At the deadline,
        ISBNs still Running are left out if others have finished; if none has, TargetTimeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s - _DEADLINE_MARGIN_S
        wanted = list(dict.fromkeys(isbns))
        if len(wanted) > MAX_ISBNS_PER_SESSION:
            raise ValueError(f"Calil checks at most {MAX_ISBNS_PER_SESSION} ISBN x system pairs per session")
        answer = await self._get(
            {"appkey": self.appkey, "isbn": ",".join(wanted), "systemid": self.systemid, "format": "json"}, deadline
        )
        done: dict[str, list[Holding]] = {}
        while True:
            for isbn in wanted:
                entry = answer.system(isbn, self.systemid) or {}
                status = entry.get("status")
                if status in ("OK", "Cache"):
                    done[isbn] = self._holdings(entry)
                elif status == "Error":
                    message = f"Calil could not query system {self.systemid} (status Error)"
                    raise TargetUnreachable(message, member=self.member)
            if len(done) == len(wanted):
                return done
            if not answer.continues:
                missing = ", ".join(i for i in wanted if i not in done)
                message = f"Calil finished without a result for {missing} in system {self.systemid}"
                raise MalformedResponse(message, member=self.member)
            if loop.time() + self.poll_interval_s >= deadline:
                if done:
                    return done
                message = f"Calil still checking system {self.systemid}; no result within {self.settings.timeout_s:g} s"
                raise TargetTimeout(message, member=self.member)
            await asyncio.sleep(self.poll_interval_s)
            try:
                answer = await self._get({"appkey": self.appkey, "session": answer.session, "format": "json"}, deadline)
            except TargetTimeout:
                # The last poll ran into the deadline (the sleep left it a sliver of time): what
                # finished before still answers, as when the deadline falls between polls.
                if done:
                    return done
                raise

    async def _get(self, params: dict[str, str], deadline: float) -> CalilAnswer:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TargetTimeout(f"no answer from Calil within {self.settings.timeout_s:g} s", member=self.member)
        params = {**params, "callback": "no"}  # plain JSON; a JSONP wrapper would still be stripped
        response = await self.http.get(self.check_url, member=self.member, timeout_s=remaining, params=params)
        return parse_answer(response.body, self.member)

    def _holdings(self, entry: dict[str, Any]) -> list[Holding]:
        libkey = entry.get("libkey") or {}
        if not isinstance(libkey, dict):
            raise MalformedResponse("Calil libkey is not an object", member=self.member)
        holdings = []
        for branch, word in libkey.items():
            if not isinstance(word, str):
                raise MalformedResponse(f"Calil status of {branch!r} is not text", member=self.member)
            if word.strip() == NOT_HELD:
                continue
            holdings.append(
                Holding(
                    member=self.member,
                    branch_id=self.settings.branch_codes.get(branch),
                    location=branch,
                    availability=self.status(word),
                    status_text=word,
                )
            )
        return holdings
