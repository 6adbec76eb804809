"""The pages over real sockets: the Okayama network on the sandbox, the ledger on SQLite.

`pages_site` is shared with tests/test_pages_browser.py: one broker app built by `build_app`
with a ledger config (pages and hold endpoints included, `app[HOLDS_KEY]` set on start-up), a staff password, and a sandbox catalogue with one hostile title from every member.
"""

from __future__ import annotations

import csv
import html
import dataclasses
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from broker.api import build_app
from broker.consortium import load_consortium
from broker.demo import consortium_file, on_sandbox, sandbox_members
from broker.ledger.runtime import LedgerConfig
from broker.pages.i18n import EN, JA
from broker.pages.security import CONTENT_SECURITY_POLICY
from sandbox import SandboxHost
from sandbox.catalogue import Catalogue, generate_catalogue
from sandbox.patrons import patron_named

HOSTILE_TITLE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">悪意の書名'
STAFF_PASSWORD = "staff-secret-1"


def hostile_catalogue() -> Catalogue:
    base = generate_catalogue()
    # Popular enough that every member holds it: each member's connector has to carry it through.
    hostile = dataclasses.replace(
        base.works[0], work_id="hostile-title", title=HOSTILE_TITLE, title_reading=None, isbn=None, popularity=50.0, set_id=None
    )
    return Catalogue(seed=0, works=(*base.works, hostile))


@dataclass
class Site:
    url: str
    app: web.Application
    sandbox: SandboxHost


@pytest.fixture
async def pages_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    monkeypatch.setenv("YOKODAN_STAFF_PASSWORD", STAFF_PASSWORD)
    monkeypatch.setenv("YOKODAN_LEDGER_KEY", "")
    consortium = load_consortium(consortium_file("okayama"))
    async with SandboxHost(sandbox_members(consortium, latency_ms=5), catalogue=hostile_catalogue()) as sandbox:
        on = on_sandbox(consortium, sandbox.base_url)
        config = LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}", key_file=tmp_path / "ledger.key", node="pages-test")
        app = build_app(on, ledger=config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield Site(f"http://{host}:{port}", app, sandbox)
        finally:
            await runner.cleanup()


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # keeps cookies of 127.0.0.1


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


# --- catalogues -------------------------------------------------------------------------------


def test_both_catalogues_have_the_same_keys() -> None:
    assert sorted(JA) == sorted(EN)


def test_every_key_a_template_or_script_names_exists() -> None:
    here = Path(__file__).parent.parent / "broker" / "pages"
    used: set[str] = set()
    for path in [*here.glob("templates/*.html"), here / "routes.py", here / "static" / "search.js"]:
        used |= set(re.findall(r"""(?:\bt|msg)\(\s*["']([a-z_]+\.[a-z_.]+)["']""", path.read_text()))
    assert used, "the pattern found no keys"
    assert sorted(used - set(JA)) == []


# --- pages over HTTP ---------------------------------------------------------------------------


async def test_japanese_by_default_english_by_query_or_header(pages_site: Site) -> None:
    async with client() as s:
        ja = await s.get(f"{pages_site.url}/")
        body = await ja.text()
        assert ja.status == 200 and '<html lang="ja">' in body and JA["search.heading"] in body
        en = await (await s.get(f"{pages_site.url}/?lang=en")).text()
        assert '<html lang="en">' in en and EN["search.heading"] in en and JA["search.heading"] not in en
        header = await (await s.get(f"{pages_site.url}/", headers={"Accept-Language": "en-GB,en;q=0.8"})).text()
        assert EN["search.heading"] in header


async def test_every_page_carries_the_csp_and_no_inline_script(pages_site: Site) -> None:
    async with client() as s:
        for path in ["/", "/?q=こころ", "/work?isbn=9784101010137", "/login", "/staff/login", "/static/search.js"]:
            r = await s.get(pages_site.url + path)
            assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            if r.content_type == "text/html":
                html = await r.text()
                # every <script> either loads a file from 'self' or is an inert JSON data block
                for tag in re.findall(r"<script[^>]*>", html):
                    assert 'src="/static/' in tag or 'type="application/json"' in tag, (path, tag)


async def test_hostile_title_is_escaped_on_the_work_page(pages_site: Site) -> None:
    async with client() as s:
        r = await s.get(f"{pages_site.url}/work", params={"title": "悪意の書名"})
        html = await r.text()
        assert r.status == 200, html
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
        assert "<script>window.__pwned" not in html and "<img src=x" not in html


async def test_state_changing_forms_refuse_a_missing_or_wrong_csrf_token(pages_site: Site) -> None:
    patron = patron_named("okayama", "okayama-reader")
    card = patron.card("okayama-pref")
    async with client() as s:
        await s.get(f"{pages_site.url}/login")  # a session with a token exists now
        for form in ({}, {"csrf": "forged"}):
            r = await s.post(f"{pages_site.url}/login", data=form | {"member": "okayama-pref", "card_number": card.card_number, "pin": card.pin}, allow_redirects=False)
            assert r.status == 403, await r.text()
        for path in ["/logout", "/holds", "/holds/x/cancel", "/staff/login"]:
            assert (await s.post(pages_site.url + path, data={"csrf": "forged"}, allow_redirects=False)).status == 403, path


async def test_session_cookie_is_httponly_strict_and_holds_no_card_number(pages_site: Site) -> None:
    card = patron_named("okayama", "okayama-reader").card("okayama-pref")
    async with client() as s:
        token = csrf_of(await (await s.get(f"{pages_site.url}/login")).text())
        r = await s.post(
            f"{pages_site.url}/login", allow_redirects=False,
            data={"csrf": token, "member": "okayama-pref", "card_number": card.card_number, "pin": card.pin, "next": "/holds"},
        )  # fmt: skip
        assert r.status == 303 and r.headers["Location"] == "/holds"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert card.card_number not in cookie and card.pin not in cookie
        assert (await s.get(f"{pages_site.url}/holds")).status == 200


async def test_wrong_pin_shows_the_refusal_and_sets_no_login(pages_site: Site) -> None:
    card = patron_named("okayama", "okayama-reader").card("okayama-pref")
    async with client() as s:
        token = csrf_of(await (await s.get(f"{pages_site.url}/login")).text())
        r = await s.post(f"{pages_site.url}/login", data={"csrf": token, "member": "okayama-pref", "card_number": card.card_number, "pin": "0000"})
        assert r.status == 401 and JA["login.failed"].split(":")[0] in await r.text()
        r = await s.get(f"{pages_site.url}/holds", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/login?next=")


async def test_login_next_is_never_another_site(pages_site: Site) -> None:
    card = patron_named("okayama", "okayama-reader").card("okayama-pref")
    async with client() as s:
        token = csrf_of(await (await s.get(f"{pages_site.url}/login")).text())
        r = await s.post(
            f"{pages_site.url}/login", allow_redirects=False,
            data={"csrf": token, "member": "okayama-pref", "card_number": card.card_number, "pin": card.pin, "next": "//evil.example/"},
        )  # fmt: skip
        assert r.headers["Location"] == "/"


async def test_staff_pages_need_the_staff_password_and_export_csv_with_bom(pages_site: Site) -> None:
    async with client() as s:
        r = await s.get(f"{pages_site.url}/staff/holdings.csv?q=こころ", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/staff/login"
        token = csrf_of(await (await s.get(f"{pages_site.url}/staff/login")).text())
        bad = await s.post(f"{pages_site.url}/staff/login", data={"csrf": token, "password": "wrong"})
        assert bad.status == 401
        ok = await s.post(f"{pages_site.url}/staff/login", data={"csrf": token, "password": STAFF_PASSWORD}, allow_redirects=False)
        assert ok.status == 303
        page = await (await s.get(f"{pages_site.url}/staff?q=9784101010137")).text()
        assert "岡山県立図書館" in page and JA["staff.health"] in page
        r = await s.get(f"{pages_site.url}/staff/holdings.csv?q=9784101010137")
        raw = await r.read()
        assert r.headers["Content-Type"].startswith("text/csv") and "attachment" in r.headers["Content-Disposition"]
        assert raw.startswith(b"\xef\xbb\xbf")
        lines = raw.decode("utf-8-sig").splitlines()
        assert lines[0].split(",") == ["書名", "ISBN", "図書館", "所蔵館", "請求記号", "状態", "図書館の表示", "返却予定日", "予約数"]
        assert len(lines) > 2 and all(",9784101010137," in line for line in lines[1:])


def test_csv_cells_that_a_spreadsheet_would_run_stay_text() -> None:
    from broker.pages.views import HoldingRow, holdings_csv
    from yokodan import Availability

    row = HoldingRow("=HYPERLINK(\"http://x\")", "", "m", "館", None, "本館", "@SUM(1)", Availability.AVAILABLE, "", None, None)
    text = holdings_csv([row], ["a"] * 9, {"available": "貸出可"}).decode("utf-8-sig")
    cells = list(csv.reader(io.StringIO(text)))[1]
    assert cells[0] == "'=HYPERLINK(\"http://x\")" and cells[4] == "'@SUM(1)" and cells[2] == "館"


async def login(s: aiohttp.ClientSession, site: Site, patron_id: str = "okayama-reader", member: str = "okayama-pref") -> None:
    card = patron_named("okayama", patron_id).card(member)
    token = csrf_of(await (await s.get(f"{site.url}/login")).text())
    r = await s.post(f"{site.url}/login", data={"csrf": token, "member": member, "card_number": card.card_number, "pin": card.pin}, allow_redirects=False)
    assert r.status == 303, await r.text()


async def test_plan_place_list_and_cancel_a_hold(pages_site: Site) -> None:
    async with client() as s:
        r = await s.get(f"{pages_site.url}/hold?isbn=9784101010137", allow_redirects=False)
        assert r.status == 303 and parse_qs(urlsplit(r.headers["Location"]).query)["next"] == ["/hold?isbn=9784101010137"]
        await login(s, pages_site)
        plan = await (await s.get(f"{pages_site.url}/hold?isbn=9784101010137")).text()
        assert JA["plan.confirm"] in plan, plan
        options = re.findall(r'name="option" value="([^"]+)"', plan)
        assert options
        import html as html_lib, json

        first = json.loads(html_lib.unescape(options[0]))
        token = csrf_of(plan)
        placed = await s.post(f"{pages_site.url}/holds", data={"csrf": token, "option": html_lib.unescape(options[0])}, allow_redirects=False)
        assert placed.status == 303 and placed.headers["Location"].startswith("/holds?placed="), await placed.text()
        page = await (await s.get(pages_site.url + placed.headers["Location"])).text()
        assert JA["holds.placed"] in page
        # What the patron asked for, by name: the title (not the record id), the libraries, the state in words.
        assert re.findall(r'<h2 class="hold-title">([^<]+)</h2>', page) == [first["title"]] and first["title"] == "こころ"
        item = page.split('<li class="hold"', 1)[1].split("</li>", 1)[0]
        assert first["record_id"] not in item
        owner = re.search(rf'{JA["plan.owner"]}: ([^<]+)<br>', plan).group(1)
        assert re.findall(r'<dd class="owner">([^<]+)</dd>', page) == [owner] and owner == "岡山県立図書館"
        assert re.findall(r'<dd class="pickup">([^<]+)</dd>', page) == [re.search(r"<strong>[^:]+: ([^<]+)</strong>", plan).group(1)]
        english = await (await s.get(f"{pages_site.url}/holds?lang=en")).text()
        assert re.findall(r'<dd class="state">([^<（]+)', english)[0].strip() in (EN["hold.waiting"], EN["hold.submitted"])
        hold_ids = re.findall(r'data-hold="([^"]+)"', page)
        assert len(hold_ids) == 1
        assert JA["hold.waiting"] in page or JA["hold.submitted"] in page
        # a double-submitted form places once (the ledger derives the idempotency key from the body)
        again = await s.post(f"{pages_site.url}/holds", data={"csrf": token, "option": html_lib.unescape(options[0])}, allow_redirects=False)
        assert again.status == 303
        assert len(re.findall(r'data-hold="', await (await s.get(f"{pages_site.url}/holds")).text())) == 1
        cancelled = await s.post(f"{pages_site.url}/holds/{hold_ids[0]}/cancel", data={"csrf": token}, allow_redirects=False)
        assert cancelled.status == 303, await cancelled.text()
        after = await (await s.get(f"{pages_site.url}/holds?cancelled=1")).text()
        assert JA["hold.cancelled"] in after and JA["holds.cancel"] not in after


async def test_a_prefectural_hold_collected_at_a_municipal_library_is_placed_there(pages_site: Site) -> None:
    # Seed 001: the prefectural library lends to municipal libraries (受渡館); the plan offers them,
    # and the member's system must take the pickup (it once refused all but its own counter).
    import html as html_lib, json

    async with client() as s:
        await login(s, pages_site)
        plan = await (await s.get(f"{pages_site.url}/hold?isbn=9784101010137")).text()
        options = [html_lib.unescape(o) for o in re.findall(r'name="option" value="([^"]+)"', plan)]
        [municipal] = [o for o in options if json.loads(o)["pickup_branch"] == "okayama-city/chuo"]
        placed = await s.post(f"{pages_site.url}/holds", data={"csrf": csrf_of(plan), "option": municipal}, allow_redirects=False)
        assert placed.status == 303, await placed.text()
        page = await (await s.get(f"{pages_site.url}/holds")).text()
        assert JA["holds.refused"].split(":")[0] not in page, re.findall(r'<dd class="state">([^<]+)', page)
        assert re.findall(r'<dd class="pickup">([^<]+)</dd>', page) == ["岡山市立中央図書館"]
        assert re.findall(r'<dd class="owner">([^<]+)</dd>', page) == ["岡山県立図書館"]


async def test_a_queued_hold_moves_to_another_pickup_library_from_the_holds_page(pages_site: Site) -> None:
    import html as html_lib

    async with client() as s:
        await login(s, pages_site)
        plan = await (await s.get(f"{pages_site.url}/hold?isbn=9784101010137")).text()
        option = html_lib.unescape(re.findall(r'name="option" value="([^"]+)"', plan)[0])
        placed = await s.post(f"{pages_site.url}/holds", data={"csrf": csrf_of(plan), "option": option}, allow_redirects=False)
        assert placed.status == 303, await placed.text()
        page = await (await s.get(f"{pages_site.url}/holds")).text()
        [hold_id] = re.findall(r'data-hold="([^"]+)"', page)
        # The prefectural library (Koha-style REST) takes pickup changes online: the form is there,
        # with the current pickup selected among the consortium's pickup points.
        assert f'action="/holds/{hold_id}/pickup' in page
        choices = re.findall(r'<option value="([^"]+)"( selected)?>([^<]+)</option>', page)
        [current] = [(value, name) for value, selected, name in choices if selected]
        assert len(choices) > 10
        before = re.findall(r'<dd class="pickup">([^<]+)</dd>', page)
        assert before == [current[1]]
        target_id, target_name = next((value, name) for value, _, name in choices if value != current[0])
        token = csrf_of(page)
        moved = await s.post(f"{pages_site.url}/holds/{hold_id}/pickup", data={"csrf": token, "pickup_branch_id": target_id}, allow_redirects=False)
        assert (moved.status, moved.headers.get("Location")) == (303, "/holds?moved=1"), await moved.text()
        after = await (await s.get(f"{pages_site.url}/holds?moved=1")).text()
        assert JA["holds.pickup_changed"] in after
        assert re.findall(r'<dd class="pickup">([^<]+)</dd>', after) == [target_name]
        # A branch that is no pickup point (or no branch at all) is refused with the reason, nothing changed.
        bad = await s.post(f"{pages_site.url}/holds/{hold_id}/pickup", data={"csrf": token, "pickup_branch_id": "nowhere"}, allow_redirects=False)
        assert bad.status == 422 and re.findall(r'<dd class="pickup">([^<]+)</dd>', await bad.text()) == [target_name]


async def test_another_patrons_hold_cannot_be_cancelled(pages_site: Site) -> None:
    async with client() as s:
        await login(s, pages_site, "okayama-overdue", "okayama-pref")
        token = csrf_of(await (await s.get(f"{pages_site.url}/holds")).text())
        r = await s.post(f"{pages_site.url}/holds/no-such-hold/cancel", data={"csrf": token}, allow_redirects=False)
        assert r.status == 404


async def test_hold_pages_without_a_ledger_say_so_and_search_still_works(tmp_path: Path) -> None:
    consortium = load_consortium(consortium_file("okayama"))
    async with SandboxHost(sandbox_members(consortium, latency_ms=0)) as sandbox:
        app = build_app(on_sandbox(consortium, sandbox.base_url))  # no ledger config
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            async with client() as s:
                for path in ["/login", "/holds", "/hold?isbn=9784101010137"]:
                    r = await s.get(f"http://{host}:{port}{path}", allow_redirects=False)
                    assert r.status == 503 and "no ledger" in await r.text(), path
                assert (await s.get(f"http://{host}:{port}/?q=こころ")).status == 200
                r = await s.get(f"http://{host}:{port}/staff/login")
                assert r.status == 200  # no staff password in this environment: the page says so
        finally:
            await runner.cleanup()


async def test_bad_work_requests_get_a_page_not_a_traceback(pages_site: Site) -> None:
    async with client() as s:
        r = await s.get(f"{pages_site.url}/work")
        assert r.status == 400 and r.content_type == "text/html" and JA["error.heading"] in await r.text()
        r = await s.get(f"{pages_site.url}/work?isbn=9780000000002")
        assert r.status == 404 and JA["work.not_found"] in await r.text()


def test_every_planner_assumption_code_has_a_sentence() -> None:
    # The codes the planner writes (broker/holds): a new one shows as its code until it gets a sentence here.
    root = Path(__file__).parent.parent / "broker" / "holds"
    codes = set()
    for path in root.glob("*.py"):
        codes |= set(re.findall(r'assumptions?\.(?:add|append)\("([a-z_]+)"', path.read_text()))
    assert "walk_in_borrower_may_take_the_copy_first" in codes
    assert sorted(c for c in codes if f"assumption.{c}" not in JA) == []


async def test_work_page_ranks_copies_on_the_shelf_nearest_first_with_opening_days(pages_site: Site) -> None:
    async with client() as s:
        page = await (await s.get(f"{pages_site.url}/work?isbn=9784101010137&near=tsuyama-city/main")).text()
        assert JA["work.distance"] in page and JA["work.opening"] in page and "次の開館日" in page
        body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        rows = []
        for tr in body.split("<tr>")[1:]:
            km = re.search(r"<td>([0-9.]+) km</td>", tr)
            rows.append((re.search(r'class="avail avail-([a-z_]+)"', tr).group(1), float(km.group(1)) if km else None))
        assert len(rows) > 2
        states = [st for st, _ in rows]
        on_shelf = sum(st == "available" for st in states)
        assert 0 < on_shelf < len(rows) and states[:on_shelf] == ["available"] * on_shelf
        shelf_kms = [km for st, km in rows[:on_shelf] if km is not None]
        assert shelf_kms == sorted(shelf_kms) and len(shelf_kms) >= 2
        plain = await (await s.get(f"{pages_site.url}/work?isbn=9784101010137")).text()
        assert JA["work.distance"] not in plain
        bad = await s.get(f"{pages_site.url}/work?isbn=9784101010137&near=nowhere")
        assert bad.status == 400 and bad.content_type == "text/html"


async def test_a_tampered_hold_option_is_refused_with_a_page(pages_site: Site) -> None:
    async with client() as s:
        await login(s, pages_site)
        token = csrf_of(await (await s.get(f"{pages_site.url}/holds")).text())
        for option in ["not json", '{"member": "okayama-pref"}', "[]"]:
            r = await s.post(f"{pages_site.url}/holds", data={"csrf": token, "option": option}, allow_redirects=False)
            assert r.status == 400 and r.content_type == "text/html", option
        assert 'data-hold="' not in await (await s.get(f"{pages_site.url}/holds")).text()


async def test_card_gap_advice_is_in_the_pages_language(pages_site: Site) -> None:
    card = patron_named("okayama", "okayama-reader").card("okayama-pref")
    plan_body = {"isbn": "9784101010137", "patron": {"cards": [{"member": "okayama-pref", "card_number": card.card_number, "pin": card.pin}]}}
    async with client() as s:
        async with s.post(f"{pages_site.url}/api/v1/holds/plan", json=plan_body) as r:
            advice = (await r.json())["plan"]["advice"]
        assert advice, "the sandbox patron should be told of a municipal card that is faster"
        await login(s, pages_site)
        pages = {lang: await (await s.get(f"{pages_site.url}/hold?isbn=9784101010137&lang={lang}")).text() for lang in ("ja", "en")}
    shown = {lang: [html.unescape(p) for p in re.findall(r'<p class="advice">([^<]+)</p>', page)] for lang, page in pages.items()}
    assert shown == {"ja": [a["message_ja"] for a in advice], "en": [a["message_en"] for a in advice]}
    assert all(m.startswith("With a library card of ") for m in shown["en"])


async def test_a_volume_of_a_series_offers_to_hold_the_next_ones_in_order(pages_site: Site) -> None:
    from broker.api import SEARCH_KEY
    from yokodan import SearchQuery

    outcome = await pages_site.app[SEARCH_KEY].search(SearchQuery(title="ノルウェイの森"))
    isbn = {w.volume: w.isbns[0] for w in outcome.works if w.title == "ノルウェイの森" and w.volume and w.isbns}
    async with client() as s:
        work = await (await s.get(f"{pages_site.url}/work?isbn={isbn['上']}")).text()
        assert JA["work.hold_series_from"] in work and JA["work.hold_series_all"] in work
        plain = await (await s.get(f"{pages_site.url}/work?isbn=9784101010137")).text()  # こころ: not a volume
        assert JA["work.hold_series_from"] not in plain
        await login(s, pages_site)
        await login(s, pages_site, member="okayama-city")
        page = await (await s.get(f"{pages_site.url}/hold/series?isbn={isbn['下']}&scope=all")).text()
        assert re.findall(r'<li class="series-step" data-volume="([^"]*)"', page) == ["上", "下"]
        assert page.count(JA["series.now"]) == 1 and page.count(JA["series.later"]) == 1
        placed = await s.post(f"{pages_site.url}/holds/series", data={"csrf": csrf_of(page), "isbn": isbn["下"], "scope": "all"}, allow_redirects=False)
        assert placed.status == 303 and placed.headers["Location"] == "/holds?placed=series", await placed.text()
        holds = await (await s.get(pages_site.url + placed.headers["Location"])).text()
        assert JA["series.placed"] in holds
        assert re.findall(r'<h2 class="hold-title">([^<]+) <span class="volume">([^<]+)</span></h2>', holds) == [("ノルウェイの森", "上"), ("ノルウェイの森", "下")]
        assert JA["hold.deferred"] in holds
        # Sent twice (a double click): one series.
        await s.post(f"{pages_site.url}/holds/series", data={"csrf": csrf_of(page), "isbn": isbn["下"], "scope": "all"}, allow_redirects=False)
        assert len(re.findall(r'data-hold="', await (await s.get(f"{pages_site.url}/holds")).text())) == 2
        english = await (await s.get(f"{pages_site.url}/hold/series?isbn={isbn['上']}&lang=en")).text()
        assert EN["series.explain"] in english and EN["series.now"] in english
        bad = await s.get(f"{pages_site.url}/hold/series?isbn=nonsense")
        assert bad.status == 400 and bad.content_type == "text/html"
