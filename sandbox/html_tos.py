"""The `tos` ASP OPAC (OPAC_BEHAVIOUR_NOTES.md §1): Shift_JIS, table layout, toslist.asp / tosmok.asp.

Query parameters and forms are Shift_JIS-encoded, as the pages are. An ended
login redirects to the login page. Some libraries leave the status cell of an
available copy empty (`<td><br></td>`): the member's protocol option
`empty_available = "1"`.
"""

from __future__ import annotations

from typing import ClassVar

from yokodan import Availability
from sandbox.accounts import SandboxHold, SandboxPatron
from sandbox.holdings import HeldWork
from sandbox.html_style import OpacStyle, Operation, e, full_title, pickup_options, slash_date
from sandbox.spec import SandboxBranch


def _page(title: str, body: str) -> str:
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
        f"<title>{e(title)}</title></head><body><h1>{e(title)}</h1>{body}"
        "<hr><address>TOS-OPAC</address></body></html>\n"
    )


def _notes(css: str, *texts: str | None) -> str:
    return "".join(f'<p class="{css}">{e(t)}</p>' for t in texts if t)


_LOGGED_IN = '<p class="login">ログイン中　<a href="tosmypage.asp">利用状況</a>　<a href="tosyoyakulist.asp">予約一覧</a></p>'


class TosStyle(OpacStyle):
    name = "tos"
    charset_label = "Shift_JIS"
    codec = "cp932"
    wrong_codec = "utf-8"
    session_cookie = "ASPSESSIONIDTOS"
    page_size = 10
    pages: ClassVar[dict[str, Operation]] = {
        "toslist.asp": "search",
        "tosmok.asp": "detail",
        "toslogin.asp": "login",
        "tosmypage.asp": "mypage",
        "tosyoyaku.asp": "hold",
        "tosyoyakulist.asp": "holds",
    }
    query_params: ClassVar[dict[str, str]] = {
        "freekey1": "any",
        "titlekey1": "title",
        "authkey1": "author",
        "isbnkey1": "isbn",
    }
    paging_param = "page"
    paging_is_offset = False
    record_param = "mokno"
    login_card = "riyoid"
    login_pin = "passwd"
    hold_record = "mokno"
    hold_pickup = "uketori"
    hold_item = "shiryono"
    cancel_field = "torikeshi"
    messages: ClassVar[dict[str, str]] = {
        "authentication_failed": "パスワードが正しくありません。",
        "patron_not_found": "利用者番号が登録されていません。",
        "patron_blocked": "貸出停止中のため予約できません。",
        "too_many_holds": "予約の上限件数を超えています。",
        "already_held": "既に予約されている資料です。",
        "already_on_loan": "お借りになっている資料は予約できません。",
        "not_holdable": "この資料は予約できません。",
        "record_not_found": "該当する書誌がありません。",
        "invalid_pickup": "受取館が正しくありません。",
        "hold_not_found": "該当する予約がありません。",
        "not_cancellable": "準備済みの予約は取り消せません。図書館へお問い合わせください。",
    }
    cancelled_message = "予約を取り消しました。"

    def search_form(self, view_state: str | None) -> str:
        inputs = "".join(
            f'<tr><th>{label}</th><td><input type="text" name="{name}"></td></tr>'
            for name, label in (("freekey1", "キーワード"), ("titlekey1", "書名"), ("authkey1", "著者名"), ("isbnkey1", "ISBN"))
        )
        return _page("蔵書検索", f'<form method="get" action="toslist.asp"><table>{inputs}</table><input type="submit" value="検索"></form>')

    def results(self, hits: int, rows: list[HeldWork], first: int, params: dict[str, str], view_state: str | None) -> str:
        if not hits:
            return _page("検索結果一覧", _notes("err", "該当する資料はありませんでした。"))
        lines = []
        for number, held in enumerate(rows, start=first + 1):
            work = held.work
            reading = f'<br><span class="yomi">{e(held.title_reading)}</span>' if held.title_reading else ""
            lines.append(
                f'<tr><td>{number}</td><td><a href="tosmok.asp?mokno={e(held.local_id)}">{e(full_title(held))}</a>{reading}</td>'
                f"<td>{e(' ; '.join(a.heading for a in work.authors))}</td><td>{e(work.publisher)}</td>"
                f"<td>{work.year}</td><td>{e(held.isbn_text or '')}</td></tr>"
            )
        shown = f"{first + 1}～{first + len(rows)}件目を表示" if rows else ""
        body = (
            f'<p class="kensu">該当件数：<b>{hits:,}</b>件　{shown}</p>'
            '<table border="1" summary="検索結果一覧">'
            "<tr><th>No.</th><th>書名</th><th>著者名</th><th>出版者</th><th>出版年</th><th>ISBN</th></tr>"
            + "".join(lines)
            + "</table>"
        )
        return _page("検索結果一覧", body)

    def detail(self, held: HeldWork, empty_available: bool) -> str:
        work = held.work
        lines = []
        for number, copy in enumerate(held.copies, start=1):
            word = "" if empty_available and copy.availability is Availability.AVAILABLE else copy.status_word
            lines.append(
                f"<tr><td>{number}</td><td>{e(copy.branch.name)}</td><td>{e(copy.barcode)}</td>"
                f"<td>{e(copy.call_number)}</td><td>{e(word) or '<br>'}</td><td>{slash_date(copy.due_date) or '<br>'}</td></tr>"
            )
        body = (
            '<table border="1" summary="書誌事項">'
            f"<tr><th>書名</th><td>{e(full_title(held))}</td></tr>"
            f"<tr><th>著者</th><td>{e(work.responsibility)}</td></tr>"
            f"<tr><th>出版者</th><td>{e(work.publisher)} {work.year}</td></tr></table>"
            '<table border="1" summary="所蔵一覧">'
            "<tr><th>No.</th><th>所蔵館</th><th>資料番号</th><th>請求記号</th><th>状態</th><th>返却予定日</th></tr>"
            + "".join(lines)
            + f'</table><p><a href="tosyoyaku.asp?mokno={e(held.local_id)}">この資料を予約する</a></p>'
        )
        return _page("詳細表示", body)

    def login_form(self, view_state: str | None, error: str | None = None, timed_out: bool = False) -> str:
        notice = "一定時間操作がなかったため、ログインが解除されました。" if timed_out else None
        body = (
            _notes("err", error)
            + _notes("msg", notice)
            + '<form method="post" action="toslogin.asp"><table>'
            '<tr><th>利用者番号</th><td><input type="text" name="riyoid"></td></tr>'
            '<tr><th>パスワード</th><td><input type="password" name="passwd"></td></tr>'
            '</table><input type="submit" value="ログイン"></form>'
        )
        return _page("利用者ログイン", body)

    def login_done(self) -> str:
        return _page("利用者メニュー", _LOGGED_IN + _notes("msg", "ログインしました。"))

    def mypage(self, patron: SandboxPatron, loans: list[HeldWork], holds_count: int) -> str:
        notices = _notes(
            "notice",
            "延滞中の資料があります。返却されるまで新たな予約はできません。" if patron.overdue else None,
            "利用者カードの有効期限が切れています。窓口で更新してください。" if patron.card_expired else None,
        )
        loan_lines = "".join(f"<tr><td>{e(h.local_id)}</td><td>{e(full_title(h))}</td></tr>" for h in loans)
        body = (
            _LOGGED_IN
            + notices
            + '<table border="1" summary="利用状況">'
            f"<tr><th>貸出冊数</th><td>{len(loans)}冊</td></tr>"
            f"<tr><th>予約件数</th><td>{holds_count}件</td></tr>"
            f"<tr><th>延滞冊数</th><td>{patron.overdue}冊</td></tr></table>"
            '<table border="1" summary="貸出一覧"><tr><th>書誌番号</th><th>書名</th></tr>' + loan_lines + "</table>"
        )
        return _page("利用状況", body)

    def hold_form(
        self, held: HeldWork, branches: list[SandboxBranch], view_state: str | None, closed: frozenset[str] = frozenset()
    ) -> str:
        options = pickup_options(branches, closed)
        body = (
            _LOGGED_IN
            + '<form method="post" action="tosyoyaku.asp">'
            f'<input type="hidden" name="mokno" value="{e(held.local_id)}"><table>'
            f"<tr><th>書名</th><td>{e(full_title(held))}</td></tr>"
            f'<tr><th>受取館</th><td><select name="uketori">{options}</select></td></tr>'
            '</table><input type="submit" value="予約する"></form>'
        )
        return _page("予約申込", body)

    def hold_done(self, hold: SandboxHold, held: HeldWork, pickup: SandboxBranch | None) -> str:
        body = (
            _LOGGED_IN
            + _notes("msg", "予約を受け付けました。")
            + '<table border="1" summary="予約結果">'
            f'<tr><th>予約番号</th><td class="yoyakuno">{e(hold.hold_id)}</td></tr>'
            f"<tr><th>書名</th><td>{e(full_title(held))}</td></tr>"
            f"<tr><th>受取館</th><td>{e(pickup.name if pickup else hold.pickup_code)}</td></tr></table>"
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
            f"<tr><td>{e(hold.hold_id)}</td><td>{e(hold.record_id)}</td><td>{e(full_title(held) if held else '')}</td>"
            f"<td>{e(pickup.name if pickup else hold.pickup_code)}</td><td>{e(hold.status_word)}</td>"
            f"<td>{f'{hold.queue_position}位' if hold.queue_position else '<br>'}</td>"
            f"<td>{slash_date(hold.ready_until) or '<br>'}</td>"
            f'<td><input type="radio" name="torikeshi" value="{e(hold.hold_id)}"></td></tr>'
            for hold, held, pickup in holds
        )
        body = (
            _LOGGED_IN
            + _notes("err", error)
            + _notes("msg", message)
            + '<form method="post" action="tosyoyakulist.asp"><table border="1" summary="予約一覧">'
            "<tr><th>予約番号</th><th>書誌番号</th><th>書名</th><th>受取館</th><th>状態</th><th>順位</th><th>取置期限</th><th>取消</th></tr>"
            + lines
            + '</table><input type="submit" value="選択した予約を取り消す"></form>'
        )
        return _page("予約一覧", body)

    def error(self, message: str) -> str:
        return _page("エラー", _notes("err", message))
