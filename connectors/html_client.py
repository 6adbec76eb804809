"""Requests to one HTML OPAC as its profile describes them: URLs, form encoding, pages, messages.

Form values are percent-encoded in the OPAC's form charset, as its own pages
would submit them: a Shift_JIS OPAC reads `%82%B1` as こ and UTF-8 escapes as
garbage. A value the charset cannot carry is an UnsupportedQuery, not a '?'.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urljoin

from lxml import etree

from yokodan.terms import member_terms
from connectors.settings import TargetSettings
from connectors.options import HtmlOpacOptions
from connectors.query_terms import term_rules
from connectors.errors import AuthenticationFailed, HoldRefused, MalformedResponse, SessionExpired, UnsupportedQuery, member_refusal
from connectors.html_page import Page, clean, input_value, parse_page
from connectors.html_profile import FormAction, OpacProfile
from connectors.html_session import OpacSession
from connectors.http import DEFAULT_READ_ATTEMPTS, HttpClient

_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_TEXT_FIELDS = frozenset({"text", "title", "author"})


class OpacClient:
    def __init__(self, settings: TargetSettings, http: HttpClient, profile: OpacProfile) -> None:
        self.settings = settings
        self.http = http
        self.profile = profile
        self.member = settings.member
        # Profile URLs are relative to the member's OPAC root.
        self.base = settings.endpoint if settings.endpoint.endswith("/") else settings.endpoint + "/"
        self._messages = etree.XPath(profile.message_xpath) if profile.message_xpath else None
        self._refusals = [(re.compile(rule.pattern), rule.reason) for rule in profile.refusals]
        login = profile.login
        self._expired_url = re.compile(login.expired_url) if login and login.expired_url else None
        self._expired_marker = (login.expired_marker or None) if login else None
        # Location labels as the OPAC writes them, also in NFKC (full-width digits, spaces).
        self._branches = dict(settings.branch_codes)
        for label, branch_id in settings.branch_codes.items():
            self._branches.setdefault(_label_key(label), branch_id)
        self.term_rules = term_rules("html_opac", settings.options_as(HtmlOpacOptions).query_terms, member=settings.member)

    def form_value(self, field: str, value: object) -> str | None:
        """A query field as the search form gets it: text fields cut into the terms the OPAC's
        index can match (`yokodan.terms`), space-separated, punctuation left out; others as given."""
        if value is None:
            return None
        if field in _TEXT_FIELDS:
            return " ".join(member_terms(str(value), self.term_rules))
        return str(value)

    def url(self, template: str, **values: str) -> str:
        return urljoin(self.base, template.format(**{k: quote(v, safe="") for k, v in values.items()}))

    @staticmethod
    def fields(action: FormAction, **values: str) -> dict[str, str]:
        """The action's form fields filled in; a templated field that comes out empty is left out."""
        filled: dict[str, str] = {}
        for name, template in action.fields.items():
            value = template.format(**values)
            if value or "{" not in template:
                filled[name] = value
        return filled

    def form_state(self, form: Page, action: FormAction) -> dict[str, str]:
        """Hidden fields the OPAC wants echoed (javax.faces.ViewState), read off its form page."""
        state: dict[str, str] = {}
        for name in action.state_fields:
            value = input_value(form.root, name)
            if value is None:
                raise MalformedResponse(f"form page has no {name!r} field to echo (state_fields)", member=self.member)
            state[name] = value
        return state

    def branch_id(self, label: str) -> str | None:
        return self._branches.get(label) or self._branches.get(_label_key(label))

    def branch_label(self, branch_id: str) -> str:
        """A name for a consortium branch the OPAC did not show: its longest label (the name)."""
        labels = [label for label, branch in self.settings.branch_codes.items() if branch == branch_id and label != branch_id]
        return max(labels, key=len, default=branch_id)

    def _encode(self, fields: Mapping[str, str]) -> str:
        try:
            return urlencode(list(fields.items()), encoding=self.profile.form_codec)
        except UnicodeEncodeError as exc:
            raise UnsupportedQuery(
                f"{exc.object[exc.start:exc.end]!r} cannot be sent to this OPAC ({self.profile.form_codec} forms)",
                member=self.member,
            ) from None

    async def fetch(
        self,
        method: str,
        url: str,
        fields: Mapping[str, str] | None = None,
        *,
        session: OpacSession | None = None,
        check_expiry: bool = True,
        attempts: int = DEFAULT_READ_ATTEMPTS,
        idempotent: bool = True,
    ) -> Page:
        """One page. Reads are retried on transient errors; pass attempts=1 for anything that is
        not to be repeated (a login), and also idempotent=False for what acts (placing,
        cancelling): a failure after sending is then OutcomeUnknown.

        With a `session`, its cookies go out, new ones are kept, and a page saying the
        login has ended raises SessionExpired (off while logging in: the login page
        itself is where expired sessions are sent).
        """
        headers: dict[str, str] = {}
        data: bytes | None = None
        if session is not None and session.cookies:
            headers["Cookie"] = session.cookie_header()
        encoded = self._encode(fields) if fields else ""
        if method == "GET" and encoded:
            url = f"{url}{'&' if '?' in url else '?'}{encoded}"
        elif method == "POST":
            data = encoded.encode("ascii")
            headers["Content-Type"] = _FORM_CONTENT_TYPE
        response = await self.http.request(
            method, url, member=self.member, timeout_s=self.settings.timeout_s,
            data=data, headers=headers or None, attempts=attempts, idempotent=idempotent,
        )
        if session is not None:
            session.remember(response.cookies)
        page = parse_page(
            response, profile_codec=self.profile.charset, end_marker=self.profile.page_end_marker, member=self.member
        )
        if session is not None and check_expiry and self._expired(page):
            raise SessionExpired("the OPAC ended the login session", member=self.member)
        return page

    def _expired(self, page: Page) -> bool:
        if self._expired_url is not None and self._expired_url.search(page.url):
            return True
        return self._expired_marker is not None and self._expired_marker in page.text

    def messages(self, page: Page) -> str:
        """The OPAC's errors and notices on this page (message_xpath), as one line."""
        if self._messages is None:
            return ""
        found = self._messages(page.root)
        items = found if isinstance(found, list) else [found]
        return " ".join(filter(None, (clean(i.text_content() if isinstance(i, etree._Element) else str(i)) for i in items)))

    def refusal(self, page: Page) -> HoldRefused | AuthenticationFailed | None:
        """The named verdict the page's message matches (profile `refusals`), if any."""
        text = self.messages(page)
        if text:
            for pattern, reason in self._refusals:
                if pattern.search(text):
                    return member_refusal(reason, text, member=self.member)
        return None


def _label_key(label: str) -> str:
    return "".join(unicodedata.normalize("NFKC", label).split())
