"""HTML OPAC connector (kind "html_opac"): screen-reads a vendor OPAC through a product profile.

Per-member settings (`connectors.options.HtmlOpacOptions`): a shipped `profile` ("tos", "wopc")
or a site-local `profile_file`, and `profile_overrides` merged over it (e.g. an empty-cell rule).
`status_words` of the member are layered over the profile's words, which are layered
over the shared vocabulary. The endpoint is the OPAC's root; profile URLs are relative to it.

Search reads the result list (the first OPAC page, then the further pages the window needs
only when the hit count says they have rows) and, for holdings, the detail page of each
record — concurrently, at most `search.max_detail_pages` per search, within the member's
deadline. Records whose detail page is skipped, late or failing come without holdings and the
search says so in a diagnostic.
Patron and hold operations live in `connectors.html_account`.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from functools import partial
from collections.abc import Coroutine
from typing import Any, ClassVar
from urllib.parse import urljoin

from lxml import etree

from yokodan.isbn import find_isbns
from yokodan import Diagnostic, Hold, Holding, HoldRequest, MaterialType, PatronCredentials, PatronStatus, Record, SearchQuery, trusted
from connectors.options import HtmlOpacOptions
from yokodan.holds import HoldIntent, PickupOption
from connectors.settings import TargetSettings
from connectors.base import Capability, Connector, SearchResult
from connectors.coalesce import Coalescer
from connectors.errors import ConnectorError, MalformedResponse, UnsupportedQuery
from connectors.html_account import OpacAccount
from connectors.html_client import OpacClient
from connectors.html_form_state import FormState
from connectors.html_page import Extractor, Page, compile_optional, input_value, parse_count, parse_date
from connectors.html_profile import OpacProfile, load_profile, load_profile_file
from connectors.http import HttpClient
from connectors.status_words import StatusMapper

_QUERY_FIELDS = ("text", "title", "author", "isbn", "year")
_MAX_LIST_PAGES = 10  # OPAC result pages read for one search
_DETAIL_BUDGET_SHARE = 0.8  # of the member's deadline; the rest is for parsing and answering
_DIAGNOSTIC = "info:yokodan/diagnostic/html_opac/"
# Which profile sections each capability needs.
_SECTIONS: dict[Capability, tuple[str, ...]] = {
    Capability.SEARCH: (),
    Capability.HOLDINGS: ("holdings",),
    Capability.LOOKUP_PATRON: ("patron",),
    Capability.PLACE_HOLD: ("hold",),
    Capability.HOLD_STATUS: ("hold_list",),
    Capability.LIST_HOLDS: ("hold_list",),
    Capability.CANCEL_HOLD: ("cancel",),
    Capability.PICKUP_LOCATIONS: ("hold",),
}


def profile_for(settings: TargetSettings) -> OpacProfile:
    """The member's profile with its overrides; OpacProfileError names the file and field."""
    options = settings.options_as(HtmlOpacOptions)
    overrides = options.profile_overrides
    context = f"member {settings.member}" + (" with its profile_overrides" if overrides else "")
    if options.profile_file is not None:
        return load_profile_file(options.profile_file, overrides, context=context)
    assert options.profile is not None  # HtmlOpacOptions requires exactly one of the two
    return load_profile(options.profile, overrides, context=context)


@dataclass(slots=True)
class _Row:
    """One result-list row, before its holdings are known."""

    local_id: str
    title: str
    title_reading: str | None
    authors: list[str]
    publisher: str | None
    year: int | None
    isbns: list[str]
    isbn_invalid: list[str]
    detail_link: str  # as written on the page: joined with page_url only for the rows whose details are read
    page_url: str


class HtmlOpacConnector(Connector):
    kind = "html_opac"
    # What the family can do; `supports` narrows it to the sections this member's profile has.
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)

    def __init__(self, settings: TargetSettings, http: HttpClient) -> None:
        super().__init__(settings, http)
        self.profile = profile = profile_for(settings)
        self.client = OpacClient(settings, http, profile)
        self.status = StatusMapper(settings.member, {**profile.status.words, **settings.status_words})
        search = profile.search
        record = search.record
        self._rows = etree.XPath(search.rows)
        self._title = Extractor(record.title)
        self._local_id = Extractor(record.local_id)
        self._reading = compile_optional(record.reading)
        self._author = compile_optional(record.author)
        self._publisher = compile_optional(record.publisher)
        self._year = compile_optional(record.year)
        self._isbn = compile_optional(record.isbn)
        self._detail_link = compile_optional(record.detail_link)
        self._hits = compile_optional(search.hits)
        holdings = profile.holdings
        if holdings is not None:
            self._holding_rows = etree.XPath(holdings.rows)
            self._branch = Extractor(holdings.branch)
            self._status_word = Extractor(holdings.status)
            self._call_number = compile_optional(holdings.call_number)
            self._item_id = compile_optional(holdings.item_id)
            self._due_date = compile_optional(holdings.due_date)
            self._collection = compile_optional(holdings.collection)
        self.account = OpacAccount(self.client) if profile.login is not None else None
        # Searches in flight at once that list the same record (a burst of searches sharing a word)
        # read its detail page once. Only reads in flight are shared, never a finished one: the
        # holdings stay live; each caller maps the page into its own Holding objects.
        self._detail_pages: Coalescer[Page] = Coalescer()
        # The search form's echoed fields, reused across searches when the profile says how a stale
        # one is told (connectors.html_form_state); None: read before every search.
        self.form_state = FormState(self._read_form_state, search.state_max_age_s) if search.state_max_age_s > 0 else None

    def supports(self, capability: Capability) -> bool:
        return all(getattr(self.profile, section) is not None for section in _SECTIONS[capability])

    # --- search -----------------------------------------------------------------------------

    async def search(self, query: SearchQuery) -> SearchResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s * _DETAIL_BUDGET_SHARE
        spec = self.profile.search
        values = self._query_values(query)
        wanted = min(query.page_size, self.settings.max_records)
        first_row = query.start - 1
        per_page = spec.page_size
        if spec.paging is None:
            pages = [0] if first_row < per_page else []
        else:
            pages = list(range(first_row // per_page, (first_row + wanted - 1) // per_page + 1))[:_MAX_LIST_PAGES]
        if not pages:
            return SearchResult(records=[], hits=None)
        state: dict[str, str] = {}
        if self.form_state is not None:
            state = await self.form_state.get()
        elif spec.form_url is not None:
            state = await self._read_form_state()
        # The first result page says how many hits there are: the further pages of the window are
        # read only when they have rows (most searches fit on one page, and every page is a request
        # to the member), meanwhile the first page's detail pages are read.
        first_rows, hits, state = await self._list_page(values, state, pages[0])
        skip = first_row - pages[0] * per_page
        rows = first_rows[skip : skip + wanted]
        # Without a hit count, a full first page is the only sign that there are more.
        known = hits if hits is not None else (math.inf if len(first_rows) >= per_page else 0)
        more = [index for index in pages[1:] if index * per_page < known]
        cap = self.profile.search.max_detail_pages
        later, (holdings, diagnostics) = await asyncio.gather(
            self._rows_of(values, state, more), self._holdings_of(rows[:cap], deadline)
        )
        read = len(rows)
        rows = [*rows, *later][:wanted]
        if read < cap and len(rows) > read:  # a window that starts mid-page: details of its next rows too
            extra, late = await self._holdings_of(rows[read:cap], deadline)
            holdings.update({read + index: found for index, found in extra.items()})
            diagnostics += late
        if self.profile.holdings is not None and 0 < cap < len(rows):
            diagnostics.insert(0, self._diagnostic("holdings_capped", f"holdings read for the first {cap} of {len(rows)} records"))
        records = [self._record(row, holdings.get(index, [])) for index, row in enumerate(rows)]
        return SearchResult(records=records, hits=hits, diagnostics=diagnostics)

    async def _rows_of(self, values: dict[str, str], state: dict[str, str], pages: list[int]) -> list[_Row]:
        """The rows of result pages `pages` (indexes), read concurrently, in page order."""
        answers = await asyncio.gather(*(self._list_page(values, state, index) for index in pages))
        return [row for page_rows, _, _ in answers for row in page_rows]

    async def _read_form_state(self) -> dict[str, str]:
        spec = self.profile.search
        assert spec.form_url is not None
        return self.client.form_state(await self.client.fetch("GET", self.client.url(spec.form_url)), spec)

    def _query_values(self, query: SearchQuery) -> dict[str, str]:
        mapping = self.profile.search.query_fields
        values: dict[str, str] = {}
        for name in _QUERY_FIELDS:
            value = self.client.form_value(name, getattr(query, name))
            if value is None or value == "":
                continue
            field = mapping.get(name)  # type: ignore[call-overload]
            if field is None:
                raise UnsupportedQuery(f"the {self.profile.name} OPAC has no {name} search", member=self.member)
            values[field] = str(value)
        if not values:
            raise UnsupportedQuery("empty query", member=self.member)
        return values

    async def _list_page(
        self, values: dict[str, str], state: dict[str, str], index: int
    ) -> tuple[list[_Row], int | None, dict[str, str]]:
        """Rows and hit count of result page `index`, and the form state that got them (a reused
        state the OPAC found stale is replaced by a fresh one, and the page asked for once more)."""
        spec = self.profile.search
        page = await self._fetch_list(values, state, index)
        forms = self.form_state
        if forms is not None:
            assert spec.state_expired_marker is not None  # the profile requires it for reuse
            if spec.state_expired_marker in page.text:
                state = await forms.renew_stale(state)
                page = await self._fetch_list(values, state, index)
                if spec.state_expired_marker in page.text:
                    raise MalformedResponse("the OPAC says a form state read just now has expired", member=self.member)
            fresh = {name: value for name in spec.state_fields if (value := input_value(page.root, name)) is not None}
            if len(fresh) == len(spec.state_fields):
                forms.saw(fresh)
        return (*self.parse_list(page, index), state)

    def _fetch_list(self, values: dict[str, str], state: dict[str, str], index: int) -> Coroutine[Any, Any, Page]:
        """The fetch's own coroutine (no frame of its own: one coroutine less per page in flight)."""
        spec = self.profile.search
        fields = {**self.client.fields(spec), **state, **values}
        if spec.paging is not None:
            step = 1 if spec.paging.kind == "page" else spec.page_size
            fields[spec.paging.param] = str(spec.paging.first + index * step)
        return self.client.fetch(spec.method, self.client.url(spec.url), fields)

    def parse_list(self, page: Page, index: int = 0) -> tuple[list[_Row], int | None]:
        """Rows and hit count of one result page (`index`: its position in the result set)."""
        spec = self.profile.search
        hits = parse_count(self._hits.first(page.root)) if self._hits is not None else None
        elements = self._rows(page.root)
        if not elements:
            beyond_last = hits is not None and index * spec.page_size >= hits
            if beyond_last or (spec.no_hits_marker and spec.no_hits_marker in page.text):
                return [], hits if hits is not None else 0
            said = self.client.messages(page)
            raise MalformedResponse(
                f"result page has no rows matching search.rows {spec.rows!r}"
                + (f" although it reports {hits} hits" if hits else "")
                + (f"; the OPAC says: {said}" if said else ""),
                member=self.member,
            )
        rows = [row for element in elements if (row := self._row(element, page.url)) is not None]
        return rows, hits

    def _row(self, element: etree._Element, page_url: str) -> _Row | None:
        local_id = self._local_id.first(element)
        title = self._title.first(element)
        if not local_id or not title:
            return None  # a spacer or sub-heading row of the table
        year_text = self._year.first(element) if self._year is not None else ""
        isbns: list[str] = []
        invalid: list[str] = []
        if self._isbn is not None:
            for text in self._isbn.all(element):
                valid, bad = find_isbns(text)
                isbns.extend(i for i in valid if i not in isbns)
                invalid.extend(bad)
        return _Row(
            local_id=local_id,
            title=title,
            title_reading=(self._reading.first(element) or None) if self._reading is not None else None,
            authors=self._author.all(element) if self._author is not None else [],
            publisher=(self._publisher.first(element) or None) if self._publisher is not None else None,
            year=int(year_text) if year_text.isascii() and year_text.isdigit() and len(year_text) == 4 else None,
            isbns=isbns,
            isbn_invalid=invalid,
            detail_link=self._detail_link.first(element) if self._detail_link is not None else "",
            page_url=page_url,
        )

    def _record(self, row: _Row, holdings: list[Holding]) -> Record:
        # Values are typed and ISBNs validated above: skip pydantic on the per-record path.
        return trusted(
            Record,
            {
                "member": self.member,
                "local_id": row.local_id,
                "title": row.title,
                "title_reading": row.title_reading,
                "authors": row.authors,
                "author_readings": [],
                "publisher": row.publisher,
                "year": row.year,
                "isbns": row.isbns,
                "isbn_invalid": row.isbn_invalid,
                "volume": None,
                "edition": None,
                "material_type": MaterialType.BOOK,
                "ndc": None,
                "jpno": None,
                "source_format": "html",
                "holdings": holdings,
            },
        )

    async def _holdings_of(self, rows: list[_Row], deadline: float) -> tuple[dict[int, list[Holding]], list[Diagnostic]]:
        """Holdings from the detail pages of `rows` (the caller caps them), concurrently, until `deadline`."""
        if self.profile.holdings is None or not rows:
            return {}, []
        gate = asyncio.Semaphore(self.profile.search.detail_concurrency)

        async def one(row: _Row) -> list[Holding]:
            async with gate:
                url = urljoin(row.page_url, row.detail_link) if row.detail_link else self._detail_url(row.local_id)
                return await self._detail_holdings(url)

        tasks = {asyncio.ensure_future(one(row)): index for index, row in enumerate(rows)}
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        found: dict[int, list[Holding]] = {}
        failures: list[ConnectorError] = []
        for task in done:
            error = task.exception()
            if error is None:
                found[tasks[task]] = task.result()
            elif isinstance(error, ConnectorError):
                failures.append(error)
            else:
                raise error  # a bug, not a member failure
        diagnostics: list[Diagnostic] = []
        if pending:
            diagnostics.append(self._diagnostic("holdings_late", f"holdings of {len(pending)} records not read within the deadline"))
        if failures:
            diagnostics.append(
                self._diagnostic("holdings_failed", f"detail pages of {len(failures)} records failed: {failures[0].message}")
            )
        return found, diagnostics

    def _diagnostic(self, code: str, message: str) -> Diagnostic:
        return Diagnostic(uri=_DIAGNOSTIC + code, message=message)

    # --- holdings -----------------------------------------------------------------------------

    def _detail_url(self, record_id: str) -> str:
        assert self.profile.holdings is not None
        return self.client.url(self.profile.holdings.url, record_id=record_id)

    async def holdings(self, record_id: str) -> list[Holding]:
        if self.profile.holdings is None:
            raise self._unsupported(Capability.HOLDINGS)
        return await self._detail_holdings(self._detail_url(record_id))

    async def _detail_holdings(self, url: str) -> list[Holding]:
        return self.parse_holdings(await self._detail_pages.run(url, partial(self.client.fetch, "GET", url)))

    def parse_holdings(self, page: Page) -> list[Holding]:
        rows = self._holding_rows(page.root)
        if not rows and (said := self.client.messages(page)):
            # No copies and a message: an error page (unknown record …), not an empty table.
            raise MalformedResponse(f"detail page has no holdings rows; the OPAC says: {said}", member=self.member)
        return [self._holding(row) for row in rows]

    def _holding(self, row: etree._Element) -> Holding:
        label = self._branch.first(row)
        word = self._status_word.first(row)
        due = self._due_date.first(row) if self._due_date is not None else ""
        return trusted(
            Holding,
            {
                "member": self.member,
                "branch_id": self.client.branch_id(label) if label else None,
                "location": label or None,
                "call_number": (self._call_number.first(row) or None) if self._call_number is not None else None,
                "item_id": (self._item_id.first(row) or None) if self._item_id is not None else None,
                # An empty cell is a word too: some tos libraries write nothing for "on the shelf".
                "availability": self.status(word) if word else self.profile.status.empty_status_means,
                "status_text": word,
                "due_date": parse_date(due) if due else None,
                "queue_length": None,
                "collection": (self._collection.first(row) or None) if self._collection is not None else None,
            },
        )

    # --- patron and holds: connectors.html_account -------------------------------------------

    def _account(self, capability: Capability) -> OpacAccount:
        if self.account is None or not self.supports(capability):
            raise self._unsupported(capability)
        return self.account

    async def lookup_patron(self, patron: PatronCredentials) -> PatronStatus:
        return await self._account(Capability.LOOKUP_PATRON).lookup_patron(patron)

    async def prepare_hold(self, patron: PatronCredentials, request: HoldRequest) -> HoldIntent:
        return await self._account(Capability.PLACE_HOLD).prepare_hold(patron, request)

    async def place_hold(self, patron: PatronCredentials, request: HoldRequest, *, intent: HoldIntent | None = None) -> Hold:
        return await self._account(Capability.PLACE_HOLD).place_hold(patron, request, intent=intent)

    async def find_hold(self, patron: PatronCredentials, intent: HoldIntent) -> Hold | None:
        return await self._account(Capability.HOLD_STATUS).find_hold(patron, intent)

    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold:
        return await self._account(Capability.HOLD_STATUS).hold_status(patron, hold_id)

    async def list_holds(self, patron: PatronCredentials) -> list[Hold]:
        return await self._account(Capability.LIST_HOLDS).list_holds(patron)

    async def cancel_hold(self, patron: PatronCredentials, hold_id: str) -> Hold:
        return await self._account(Capability.CANCEL_HOLD).cancel_hold(patron, hold_id)

    async def pickup_locations(self, patron: PatronCredentials, record_id: str) -> list[PickupOption]:
        return await self._account(Capability.PICKUP_LOCATIONS).pickup_locations(patron, record_id)
