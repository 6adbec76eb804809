"""What differs between simulated HTML OPAC products: page names, form fields, words, markup.

`sandbox.html_opac_server` runs the same operations (search, detail, login,
my page, hold, hold list/cancel) for every product; a style says how one
product names and draws them. Refusal messages are distinct per reason code,
so a profile can map message patterns back to the broker's named reasons.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date
from html import escape
from typing import ClassVar, Literal

from sandbox.accounts import SandboxHold, SandboxPatron
from sandbox.holdings import HeldWork
from sandbox.spec import SandboxBranch

Operation = Literal["search", "detail", "login", "mypage", "hold", "holds"]


def e(text: object) -> str:
    return escape(str(text), quote=True)


def full_title(held: HeldWork) -> str:
    work = held.work
    return f"{work.title} {work.volume}" if work.volume else work.title


class OpacStyle(ABC):
    name: ClassVar[str]
    charset_label: ClassVar[str]  # as the header and <meta> declare it
    codec: ClassVar[str]  # what the pages are really written in
    wrong_codec: ClassVar[str]  # the wrong_charset fault: bytes in this, labels unchanged
    session_cookie: ClassVar[str]
    page_size: ClassVar[int]
    pages: ClassVar[dict[str, Operation]]  # path under /{member}/opac/ -> operation
    query_params: ClassVar[dict[str, str]]  # form field -> sandbox CQL index
    paging_param: ClassVar[str]
    paging_is_offset: ClassVar[bool]  # 0-based row offset, else 1-based page number
    record_param: ClassVar[str]  # record id on the detail and hold-form pages
    login_card: ClassVar[str]
    login_pin: ClassVar[str]
    hold_record: ClassVar[str]
    hold_pickup: ClassVar[str]
    hold_item: ClassVar[str]
    cancel_field: ClassVar[str]
    view_state_field: ClassVar[str | None] = None  # JSF: POSTs must echo a current one
    messages: ClassVar[dict[str, str]]  # refusal code -> the product's message
    cancelled_message: ClassVar[str]

    def first_row(self, params: dict[str, str]) -> int:
        raw = params.get(self.paging_param, "")
        number = int(raw) if raw.isdigit() else (0 if self.paging_is_offset else 1)
        return number if self.paging_is_offset else max(0, number - 1) * self.page_size

    # --- pages (each returns the whole HTML document) ---

    @abstractmethod
    def search_form(self, view_state: str | None) -> str:
        ...

    @abstractmethod
    def results(self, hits: int, rows: list[HeldWork], first: int, params: dict[str, str], view_state: str | None) -> str:
        ...

    @abstractmethod
    def detail(self, held: HeldWork, empty_available: bool) -> str:
        ...

    @abstractmethod
    def login_form(self, view_state: str | None, error: str | None = None, timed_out: bool = False) -> str:
        ...

    @abstractmethod
    def login_done(self) -> str:
        ...

    @abstractmethod
    def mypage(self, patron: SandboxPatron, loans: list[HeldWork], holds_count: int) -> str:
        ...

    @abstractmethod
    def hold_form(self, held: HeldWork, branches: list[SandboxBranch], view_state: str | None) -> str:
        ...

    @abstractmethod
    def hold_done(self, hold: SandboxHold, held: HeldWork, pickup: SandboxBranch | None) -> str:
        ...

    @abstractmethod
    def holds(
        self,
        holds: list[tuple[SandboxHold, HeldWork | None, SandboxBranch | None]],
        view_state: str | None,
        message: str | None = None,
        error: str | None = None,
    ) -> str:
        ...

    @abstractmethod
    def error(self, message: str) -> str:
        ...

    def expired_page(self) -> str | None:
        """The page shown for an ended session; None: redirect to the login page instead."""
        return None

    def view_expired(self) -> str:
        """The page for a POST without a current view state (JSF styles only)."""
        return self.error("画面の有効期限が切れました。")


def slash_date(value: date | None) -> str:
    return value.strftime("%Y/%m/%d") if value else ""


def pickup_options(branches: list[SandboxBranch], closed: frozenset[str]) -> str:
    """A hold form's pickup <option>s: the first open branch preselected, closed ones disabled."""
    default = next((b.code for b in branches if b.code not in closed), None)
    return "".join(
        f'<option value="{e(b.code)}"{" disabled" if b.code in closed else ""}{" selected" if b.code == default else ""}>'
        f"{e(b.name)}</option>"
        for b in branches
    )
