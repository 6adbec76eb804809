"""The `wopc` JSF "WebOPAC" (OPAC_BEHAVIOUR_NOTES.md §1): UTF-8 XHTML under /opac/wopc/pc/pages/.

Every form carries a `javax.faces.ViewState` hidden field that a POST must
echo (the server rejects it with a ViewExpiredException page otherwise).
Search is a POST of the `searchDetailForm`; paging is a row offset. An ended
login shows a "session expired" page at the requested URL.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from yokodan import Availability
from sandbox.accounts import SandboxHold, SandboxPatron
from sandbox.holdings import HeldWork
from sandbox.html_style import OpacStyle, Operation, e, full_title, pickup_options
from sandbox.spec import SandboxBranch

VIEW_STATE = "javax.faces.ViewState"
_BASE = "wopc/pc/pages/"
_LOGGED_IN = '<div id="loginUser">ログイン中 <a href="MyLibrary.jsp">マイライブラリ</a> <a href="ReserveList.jsp">予約状況</a></div>'


def _page(title: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="ja" xml:lang="ja"><head>'
        '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />'
        f'<title>{e(title)} | WebOPAC</title></head><body><div id="header">WebOPAC</div>'
        f'<div id="contents"><h2>{e(title)}</h2>{body}</div></body></html>\n'
    )


def _message(css: str, text: str | None) -> str:
    return f'<div class="{css}">{e(text)}</div>' if text else ""


def _view_state(token: str | None) -> str:
    return f'<input type="hidden" name="{VIEW_STATE}" id="{VIEW_STATE}" value="{e(token or "")}" />'


def _kanji_date(value: date | None) -> str:
    return value.strftime("%Y年%m月%d日") if value else ""


class WopcStyle(OpacStyle):
    name = "wopc"
    charset_label = "UTF-8"
    codec = "utf-8"
    wrong_codec = "cp932"
    session_cookie = "JSESSIONID"
    page_size = 20
    pages: ClassVar[dict[str, Operation]] = {
        _BASE + "SearchDetail.jsp": "search",
        _BASE + "SearchDetailBib.jsp": "detail",
        _BASE + "Login.jsp": "login",
        _BASE + "MyLibrary.jsp": "mypage",
        _BASE + "ReserveEntry.jsp": "hold",
        _BASE + "ReserveList.jsp": "holds",
    }
    query_params: ClassVar[dict[str, str]] = {
        "searchDetailForm:freeword": "any",
        "searchDetailForm:title": "title",
        "searchDetailForm:author": "author",
        "searchDetailForm:isbn": "isbn",
    }
    paging_param = "searchDetailForm:first"
    paging_is_offset = True
    record_param = "bibid"
    login_card = "loginForm:userId"
    login_pin = "loginForm:password"
    hold_record = "reserveForm:bibid"
    hold_pickup = "reserveForm:receiptLibrary"
    hold_item = "reserveForm:itemNo"
    cancel_field = "reserveListForm:cancelNo"
    view_state_field = VIEW_STATE
    messages: ClassVar[dict[str, str]] = {
        "authentication_failed": "利用者IDまたはパスワードに誤りがあります。",
        "patron_not_found": "ご指定の利用者IDは登録されていません。",
        "patron_blocked": "利用制限中のため予約できません。",
        "too_many_holds": "予約可能件数を超えています。",
        "already_held": "ご指定の資料は既に予約済みです。",
        "already_on_loan": "ご指定の資料は現在お借りになっています。",
        "not_holdable": "ご指定の資料は予約対象外です。",
        "record_not_found": "ご指定の資料が見つかりません。",
        "invalid_pickup": "受取館の指定に誤りがあります。",
        "hold_not_found": "ご指定の予約が見つかりません。",
        "not_cancellable": "ご指定の予約は取消できない状態です。",
    }
    cancelled_message = "予約を取り消しました。"

    def _search_fields(self, params: dict[str, str], view_state: str | None, visible: bool) -> str:
        kind = "text" if visible else "hidden"
        labels = {"freeword": "フリーワード", "title": "書名", "author": "著者名", "isbn": "ISBN"}
        inputs = "".join(
            f'<tr><th>{labels[name.split(":")[1]]}</th><td><input type="{kind}" name="{name}" value="{e(params.get(name, ""))}" /></td></tr>'
            for name in self.query_params
        )
        return (
            '<form id="searchDetailForm" name="searchDetailForm" method="post" action="SearchDetail.jsp">'
            '<input type="hidden" name="searchDetailForm" value="searchDetailForm" />'
            f'<table class="searchTable">{inputs}</table>'
            f'<input type="hidden" name="{self.paging_param}" value="{e(params.get(self.paging_param, "0"))}" />'
            '<input type="submit" name="searchDetailForm:search" value="検索" />'
            + _view_state(view_state)
            + "</form>"
        )

    def search_form(self, view_state: str | None) -> str:
        return _page("詳細検索", self._search_fields({}, view_state, visible=True))

    def results(self, hits: int, rows: list[HeldWork], first: int, params: dict[str, str], view_state: str | None) -> str:
        count = f'<div class="hitCount">検索結果：<span class="count">{hits}</span>件</div>'
        if not hits:
            return _page("検索結果", count + _message("infoMessage", "該当する資料はありませんでした。"))
        lines = []
        for number, held in enumerate(rows, start=first + 1):
            work = held.work
            authors = "".join(f"<li>{e(a.heading)}</li>" for a in work.authors)
            reading = f'<div class="kana">{e(held.title_reading)}</div>' if held.title_reading else ""
            isbn = f'<div class="isbn">ISBN:{e(held.isbn_text)}</div>' if held.isbn_text else ""
            available = any(c.availability is Availability.AVAILABLE for c in held.copies)
            lines.append(
                f'<tr class="resultRow"><td class="no">{number}</td><td class="bib">'
                f'<a class="title" href="SearchDetailBib.jsp?bibid={e(held.local_id)}">{e(full_title(held))}</a>{reading}'
                f'<ul class="authors">{authors}</ul><div class="pub"><span class="publisher">{e(work.publisher)}</span> '
                f'<span class="pubyear">{work.year}年</span></div>{isbn}</td>'
                f'<td class="avail">{"○" if available else "×"}</td></tr>'
            )
        body = (
            count
            + '<table class="resultList" id="resultList"><thead><tr><th>No.</th><th>資料情報</th><th>貸出</th></tr></thead><tbody>'
            + "".join(lines)
            + "</tbody></table>"
            + self._search_fields(params, view_state, visible=False)
        )
        return _page("検索結果", body)

    def detail(self, held: HeldWork, empty_available: bool) -> str:
        lines = "".join(
            f'<tr><td>{n}</td><td class="lib">{e(c.branch.name)}</td><td class="shelf">{e(c.collection)}</td>'
            f'<td class="callNo">{e(c.call_number)}</td><td class="itemNo">{e(c.barcode)}</td>'
            f'<td class="status">{e(c.status_word)}</td><td class="due">{_kanji_date(c.due_date)}</td></tr>'
            for n, c in enumerate(held.copies, start=1)
        )
        body = (
            f'<table class="bibInfo"><tr><th>書名</th><td>{e(full_title(held))}</td></tr>'
            f"<tr><th>著者</th><td>{e(held.work.responsibility)}</td></tr></table>"
            '<table id="holdingTable" class="holding"><thead><tr><th>No.</th><th>所蔵館</th><th>配架場所</th>'
            "<th>請求記号</th><th>資料番号</th><th>資料状態</th><th>返却予定日</th></tr></thead><tbody>"
            + lines
            + f'</tbody></table><a href="ReserveEntry.jsp?bibid={e(held.local_id)}">予約する</a>'
        )
        return _page("資料詳細", body)

    def login_form(self, view_state: str | None, error: str | None = None, timed_out: bool = False) -> str:
        body = (
            _message("errorMessage", error)
            + '<form id="loginForm" name="loginForm" method="post" action="Login.jsp">'
            '<input type="hidden" name="loginForm" value="loginForm" />'
            '<table><tr><th>利用者ID</th><td><input type="text" name="loginForm:userId" /></td></tr>'
            '<tr><th>パスワード</th><td><input type="password" name="loginForm:password" /></td></tr></table>'
            '<input type="submit" name="loginForm:login" value="ログイン" />' + _view_state(view_state) + "</form>"
        )
        return _page("ログイン", body)

    def login_done(self) -> str:
        return _page("マイライブラリ", _LOGGED_IN + _message("infoMessage", "ログインしました。"))

    def mypage(self, patron: SandboxPatron, loans: list[HeldWork], holds_count: int) -> str:
        warnings = _message("warnMessage", "延滞資料があるため、予約・貸出が制限されています。" if patron.overdue else None)
        warnings += _message("warnMessage", "利用者カードの有効期限が切れています。" if patron.card_expired else None)
        loan_lines = "".join(f'<tr><td class="bibid">{e(h.local_id)}</td><td class="title">{e(full_title(h))}</td></tr>' for h in loans)
        body = (
            _LOGGED_IN
            + warnings
            + f'<dl class="usage"><dt>貸出中</dt><dd id="loanCount">{len(loans)}件</dd>'
            f'<dt>予約中</dt><dd id="reserveCount">{holds_count}件</dd>'
            f'<dt>延滞</dt><dd id="overdueCount">{patron.overdue}件</dd></dl>'
            f'<table id="lendList"><tbody>{loan_lines}</tbody></table>'
        )
        return _page("マイライブラリ", body)

    def hold_form(
        self, held: HeldWork, branches: list[SandboxBranch], view_state: str | None, closed: frozenset[str] = frozenset()
    ) -> str:
        options = pickup_options(branches, closed)
        body = (
            _LOGGED_IN
            + '<form id="reserveForm" name="reserveForm" method="post" action="ReserveEntry.jsp">'
            f'<input type="hidden" name="reserveForm:bibid" value="{e(held.local_id)}" />'
            f'<table><tr><th>書名</th><td>{e(full_title(held))}</td></tr>'
            f'<tr><th>受取館</th><td><select name="reserveForm:receiptLibrary">{options}</select></td></tr></table>'
            '<input type="submit" name="reserveForm:reserve" value="予約する" />' + _view_state(view_state) + "</form>"
        )
        return _page("予約申込", body)

    def hold_done(self, hold: SandboxHold, held: HeldWork, pickup: SandboxBranch | None) -> str:
        body = (
            _LOGGED_IN
            + _message("infoMessage", "予約が完了しました。")
            + f'<dl class="reserveResult"><dt>予約番号</dt><dd id="reserveNo">{e(hold.hold_id)}</dd>'
            f"<dt>書名</dt><dd>{e(full_title(held))}</dd></dl>"
        )
        return _page("予約完了", body)

    def holds(
        self,
        holds: list[tuple[SandboxHold, HeldWork | None, SandboxBranch | None]],
        view_state: str | None,
        message: str | None = None,
        error: str | None = None,
    ) -> str:
        lines = "".join(
            f'<tr><td class="reserveNo">{e(hold.hold_id)}</td>'
            f'<td class="title"><a href="SearchDetailBib.jsp?bibid={e(hold.record_id)}">{e(full_title(held) if held else hold.record_id)}</a></td>'
            f'<td class="receipt">{e(hold.pickup_code)}</td><td class="status">{e(hold.status_word)}</td>'
            f'<td class="order">{hold.queue_position or ""}</td><td class="limit">{_kanji_date(hold.ready_until)}</td>'
            f'<td><input type="checkbox" name="{self.cancel_field}" value="{e(hold.hold_id)}" /></td></tr>'
            for hold, held, _ in holds
        )
        body = (
            _LOGGED_IN
            + _message("errorMessage", error)
            + _message("infoMessage", message)
            + '<form id="reserveListForm" name="reserveListForm" method="post" action="ReserveList.jsp">'
            f'<table id="reserveList"><tbody>{lines}</tbody></table>'
            '<input type="submit" name="reserveListForm:cancel" value="取消" />' + _view_state(view_state) + "</form>"
        )
        return _page("予約状況", body)

    def error(self, message: str) -> str:
        return _page("エラー", _message("errorMessage", message))

    def expired_page(self) -> str | None:
        return _page("エラー", _message("errorMessage", "セッションの有効期限が切れました。再度ログインしてください。") + '<a href="Login.jsp">ログイン</a>')

    def view_expired(self) -> str:
        return self.error("javax.faces.application.ViewExpiredException: 画面の有効期限が切れました。最初からやり直してください。")
