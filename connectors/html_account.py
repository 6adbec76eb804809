"""Patron-side operations of an HTML OPAC: login, my-account page, holds.

Sessions: one login per patron (card + PIN) is reused until the profile's
`session_ttl_s`; when a page shows the OPAC ended it (redirect to the login
page, or a marker text), the operation logs in again *once* and is re-run.

Holds are never re-sent blindly. HTML OPACs carry no idempotency key, so a placement
starts with a `HoldIntent` (`prepare_hold`): the request plus the hold ids the patron
already had. The caller (the ledger) keeps it, so `find_hold(patron, intent)` works in
any process, after any restart: it is the newest hold on that record and pickup that
was not there before. When a placement's answer is lost (timeout, broken or
expired-session page), the connector looks with the intent at once:
  found              -> that is the hold (the OPAC placed it before the answer got lost);
  not found, and the OPAC said the session had ended -> it did not act on the form:
                        send it once more in a fresh session;
  not found otherwise -> OutcomeUnknown: the caller reconciles later with the intent.
Limit: a slow OPAC may still place the hold after the lookup found nothing; its
one-hold-per-title rule then turns a later retry into `already_held`, not a second hold.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lxml import etree

from yokodan import Hold, HoldRequest, HoldState, PatronCredentials, PatronStatus, RefusalReason
from yokodan.holds import HoldIntent, PickupOption
from connectors.errors import (
    AuthenticationFailed,
    ConnectorError,
    HoldRefused,
    MalformedResponse,
    OutcomeUnknown,
    SessionExpired,
)
from connectors.html_client import OpacClient
from connectors.html_page import Extractor, Page, clean, compile_optional, parse_count, parse_date
from connectors.html_session import OpacSession, SessionCache
from connectors.status_words import normalize_word, shared_hold_words

T = TypeVar("T")
_MEMBER_VERDICTS = (HoldRefused, AuthenticationFailed)


class OpacAccount:
    def __init__(self, client: OpacClient) -> None:
        profile = client.profile
        assert profile.login is not None
        self.client = client
        self.profile = profile
        self.member = client.member
        self.login_spec = profile.login
        self.sessions = SessionCache()
        if profile.hold_list is not None:
            listing = profile.hold_list
            self._hold_rows = etree.XPath(listing.rows)
            self._hold_id = Extractor(listing.hold_id)
            self._hold_record = Extractor(listing.record_id)
            self._hold_word = Extractor(listing.status)
            self._hold_pickup = compile_optional(listing.pickup)
            self._hold_queue = compile_optional(listing.queue_position)
            self._hold_ready = compile_optional(listing.ready_until)
            self._hold_states = {
                **shared_hold_words(),
                **{normalize_word(word): state for word, state in listing.states.items()},
            }
        if profile.patron is not None:
            patron = profile.patron
            self._counts = {
                name: compile_optional(getattr(patron, name)) for name in ("holds_count", "loans_count", "overdue_count")
            }
            self._loan_rows = etree.XPath(patron.loan_rows) if patron.loan_rows else None
            self._loan_id = compile_optional(patron.loan_record_id)
            self._blocks = [(re.compile(rule.pattern), rule.reason) for rule in patron.blocks]
        if profile.hold is not None:
            self._pickup_options = etree.XPath(profile.hold.pickup_options)
            self._placed_id = compile_optional(profile.hold.hold_id)

    # --- sessions -------------------------------------------------------------------------------

    async def _login(self, patron: PatronCredentials) -> OpacSession:
        spec = self.login_spec
        session = OpacSession({}, time.monotonic() + spec.session_ttl_s)
        fields: dict[str, str] = {}
        if spec.form_url is not None:
            form = await self.client.fetch("GET", self.client.url(spec.form_url), session=session, check_expiry=False)
            fields.update(self.client.form_state(form, spec))
        pin = patron.pin.get_secret_value() if patron.pin is not None else ""
        fields.update(self.client.fields(spec, card_number=patron.card_number, pin=pin))
        page = await self.client.fetch(
            spec.method, self.client.url(spec.url), fields, session=session, check_expiry=False, attempts=1
        )
        if (refusal := self.client.refusal(page)) is not None:
            raise refusal
        if spec.session_cookie not in session.cookies:
            raise MalformedResponse(f"login answer set no {spec.session_cookie!r} cookie", member=self.member)
        if spec.success_marker and spec.success_marker not in page.text:
            raise MalformedResponse(f"login answer lacks {spec.success_marker!r}", member=self.member)
        return session

    async def _with_session(self, patron: PatronCredentials, operation: Callable[[OpacSession], Awaitable[T]]) -> T:
        """Run `operation` logged in; if the OPAC ended the session, log in again once and re-run it."""
        session = await self.sessions.get(patron, self._login)
        try:
            return await operation(session)
        except SessionExpired:
            self.sessions.drop(patron, session)
        return await operation(await self.sessions.get(patron, self._login))

    # --- reading the patron's holds --------------------------------------------------------------

    async def _holds(self, session: OpacSession) -> list[Hold]:
        assert self.profile.hold_list is not None
        page = await self.client.fetch("GET", self.client.url(self.profile.hold_list.url), session=session)
        return [self._hold(row) for row in self._hold_rows(page.root)]

    def _hold(self, row: etree._Element) -> Hold:
        word = self._hold_word.first(row)
        state = self._hold_states.get(normalize_word(word))
        if state is None:
            raise MalformedResponse(
                f"hold status word {word!r} is not in hold_list.states of profile {self.profile.name}", member=self.member
            )
        pickup = self._hold_pickup.first(row) if self._hold_pickup is not None else ""
        queue = self._hold_queue.first(row) if self._hold_queue is not None else ""
        ready = self._hold_ready.first(row) if self._hold_ready is not None else ""
        return Hold(
            member=self.member,
            hold_id=self._hold_id.first(row),
            record_id=self._hold_record.first(row),
            pickup_branch_id=self.client.branch_id(pickup) if pickup else None,
            state=state,
            status_text=word,
            queue_position=parse_count(queue) if queue else None,
            ready_until=parse_date(ready) if ready else None,
        )

    async def list_holds(self, patron: PatronCredentials) -> list[Hold]:
        return await self._with_session(patron, self._holds)

    async def hold_status(self, patron: PatronCredentials, hold_id: str) -> Hold:
        holds = await self._with_session(patron, self._holds)
        found = next((h for h in holds if h.hold_id == hold_id), None)
        if found is None:
            raise HoldRefused("hold_not_found", f"no hold {hold_id} for this card", member=self.member)
        return found

    async def lookup_patron(self, patron: PatronCredentials) -> PatronStatus:
        spec = self.profile.patron
        assert spec is not None

        async def read(session: OpacSession) -> tuple[Page, list[Hold]]:
            page = await self.client.fetch("GET", self.client.url(spec.url), session=session)
            return page, await self._holds(session) if self.profile.hold_list is not None else []

        page, holds = await self._with_session(patron, read)

        def count(name: str) -> int | None:
            extractor = self._counts[name]
            return parse_count(extractor.first(page.root)) if extractor is not None else None

        said = self.client.messages(page)
        reasons: list[str] = list(dict.fromkeys(reason for pattern, reason in self._blocks if pattern.search(said)))
        loans: list[str] = []
        if self._loan_rows is not None and self._loan_id is not None:
            loans = [value for row in self._loan_rows(page.root) if (value := self._loan_id.first(row))]
        holds_count = count("holds_count")
        return PatronStatus(
            member=self.member,
            blocked=bool(reasons),
            block_reasons=reasons,
            holds_count=holds_count if holds_count is not None else len(holds),
            loans_count=count("loans_count") or len(loans),
            overdue_count=count("overdue_count") or 0,
            loan_record_ids=loans,
            hold_record_ids=[h.record_id for h in holds],
        )

    # --- placing ---------------------------------------------------------------------------------

    async def _hold_form(self, session: OpacSession, record_id: str, item_id: str | None) -> Page:
        assert self.profile.hold is not None
        url = self.client.url(self.profile.hold.form_url, record_id=record_id, item_id=item_id or "", pickup_code="")
        form = await self.client.fetch("GET", url, session=session)
        if (refusal := self.client.refusal(form)) is not None:
            raise refusal  # the OPAC refuses before the form (unknown record, not holdable …)
        return form

    def _pickup_code(self, form: Page, branch_id: str) -> str:
        for option in self._pickup_options(form.root):
            code = option.get("value") or ""
            if branch_id in (self.client.branch_id(code), self.client.branch_id(clean(option.text_content()))):
                if option.get("disabled") is not None:  # shown, but the OPAC would not take it
                    raise HoldRefused("branch_closed", f"{branch_id} is not taking holds now", member=self.member)
                return code
        raise HoldRefused("invalid_pickup", f"{branch_id} is not offered as a pickup library", member=self.member)

    async def pickup_locations(self, patron: PatronCredentials, record_id: str) -> list[PickupOption]:
        """The hold form's pickup <select>: `selected` is the OPAC's default, `disabled` a
        branch it shows but will not deliver to; the member's branches missing from it are
        excluded as invalid pickups."""
        form = await self._with_session(patron, lambda session: self._hold_form(session, record_id, None))
        offered: dict[str, PickupOption] = {}
        for option in self._pickup_options(form.root):
            label = clean(option.text_content())
            branch = self.client.branch_id(option.get("value") or "") or self.client.branch_id(label)
            if branch is None or branch in offered:
                continue
            disabled = option.get("disabled") is not None
            offered[branch] = PickupOption(
                branch_id=branch,
                label=label or option.get("value") or branch,
                is_default=option.get("selected") is not None and not disabled,
                excluded_reason=RefusalReason.BRANCH_CLOSED if disabled else None,
            )
        missing = [
            PickupOption(branch_id=branch, label=self.client.branch_label(branch), excluded_reason=RefusalReason.INVALID_PICKUP)
            for branch in self.client.settings.member_codes
            if branch not in offered
        ]
        return sorted(offered.values(), key=lambda option: not option.allowed) + missing

    async def prepare_hold(self, patron: PatronCredentials, request: HoldRequest) -> HoldIntent:
        """The intent to keep before placing: the patron's hold ids at the OPAC right now."""
        if self.profile.hold_list is None:  # nothing to look in later: find_hold is not supported either
            return HoldIntent(request=request)
        holds = await self._with_session(patron, self._holds)
        return HoldIntent(request=request, holds_before=frozenset(h.hold_id for h in holds))

    async def place_hold(self, patron: PatronCredentials, request: HoldRequest, *, intent: HoldIntent | None = None) -> Hold:
        if intent is None:
            intent = await self.prepare_hold(patron, request)
        form = await self._with_session(patron, lambda session: self._hold_form(session, request.record_id, request.item_id))
        code = self._pickup_code(form, request.pickup_branch_id)
        return await self._submit(patron, intent, form, code, resend_allowed=True)

    async def _submit(self, patron: PatronCredentials, intent: HoldIntent, form: Page, code: str, *, resend_allowed: bool) -> Hold:
        request = intent.request
        spec = self.profile.hold
        assert spec is not None
        session = await self.sessions.get(patron, self._login)
        values = {"record_id": request.record_id, "pickup_code": code, "item_id": request.item_id or ""}
        fields = {**self.client.form_state(form, spec), **self.client.fields(spec, **values)}
        try:
            page = await self.client.fetch(
                spec.method, self.client.url(spec.url, **values), fields, session=session, attempts=1, idempotent=False
            )
            if (refusal := self.client.refusal(page)) is not None:
                raise refusal
            if spec.success_marker not in page.text:
                raise MalformedResponse(f"hold answer lacks {spec.success_marker!r} and names no refusal", member=self.member)
        except _MEMBER_VERDICTS:
            raise
        except ConnectorError as lost:
            # The OPAC may have placed the hold before its answer got lost: look before deciding.
            self.sessions.drop(patron, session)
            try:
                found = await self.find_hold(patron, intent)
            except ConnectorError:
                raise _unknown(lost) from None  # could not look: the caller reconciles with the intent
            if found is not None:
                return found
            if resend_allowed and isinstance(lost, SessionExpired):
                # The OPAC refused the form because the login had ended, and the hold is not there.
                fresh = await self._with_session(patron, lambda s: self._hold_form(s, request.record_id, request.item_id))
                return await self._submit(patron, intent, fresh, code, resend_allowed=False)
            raise _unknown(lost) from None
        placed_id = self._placed_id.first(page.root) if self._placed_id is not None else ""
        hold = await self.hold_status(patron, placed_id) if placed_id else await self.find_hold(patron, intent)
        if hold is None:
            raise MalformedResponse("the OPAC confirmed the hold but does not list it", member=self.member)
        return hold.model_copy(update={"idempotency_key": request.idempotency_key})

    # --- finding a placed hold without a key ------------------------------------------------------

    async def find_hold(self, patron: PatronCredentials, intent: HoldIntent) -> Hold | None:
        holds = await self._with_session(patron, self._holds)
        return _newest_match(holds, intent)

    # --- cancelling ------------------------------------------------------------------------------

    async def cancel_hold(self, patron: PatronCredentials, hold_id: str) -> Hold:
        spec = self.profile.cancel
        assert spec is not None
        seen: Hold | None = None

        async def cancel(session: OpacSession) -> Hold:
            nonlocal seen
            current = next((h for h in await self._holds(session) if h.hold_id == hold_id), None)
            if current is None:
                if seen is not None:  # gone since the first try: that cancel went through before the session ended
                    return seen.model_copy(update={"state": HoldState.CANCELLED, "queue_position": None})
                raise HoldRefused("hold_not_found", f"no hold {hold_id} for this card", member=self.member)
            seen = current
            state: dict[str, str] = {}
            if spec.form_url is not None:
                state = self.client.form_state(await self.client.fetch("GET", self.client.url(spec.form_url), session=session), spec)
            fields = {**state, **self.client.fields(spec, hold_id=hold_id)}
            page = await self.client.fetch(
                spec.method, self.client.url(spec.url, hold_id=hold_id), fields, session=session, attempts=1, idempotent=False
            )
            if (refusal := self.client.refusal(page)) is not None:
                raise refusal
            if spec.success_marker not in page.text:
                raise MalformedResponse(f"cancel answer lacks {spec.success_marker!r} and names no refusal", member=self.member)
            said = self.client.messages(page) or current.status_text
            return current.model_copy(update={"state": HoldState.CANCELLED, "status_text": said, "queue_position": None})

        # Re-running after an expired session is safe: a hold already cancelled is no longer listed.
        return await self._with_session(patron, cancel)


def _unknown(lost: ConnectorError) -> OutcomeUnknown:
    return lost if isinstance(lost, OutcomeUnknown) else OutcomeUnknown(lost)


def _newest_match(holds: list[Hold], intent: HoldIntent) -> Hold | None:
    """The newest hold on the intent's record and pickup that was not there before it."""
    request = intent.request
    candidates = [
        h
        for h in holds
        if h.record_id == request.record_id
        and h.hold_id not in intent.holds_before
        and h.pickup_branch_id in (None, request.pickup_branch_id)
    ]
    return candidates[-1].model_copy(update={"idempotency_key": request.idempotency_key}) if candidates else None
