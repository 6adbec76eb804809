"""The pages in Debian's Chromium, driven by Playwright: the patron's whole path and the librarian's export.

Playwright's own browser download is not available here: the tests launch /usr/bin/chromium
(scripts/test.sh installs Debian's `chromium` when it is missing) and skip when it is absent.
Every page is checked at 375 px and 1280 px for horizontal scroll, and screenshotted into
var/screenshots/ (gitignored); docs/screenshots/ keeps two of them for the README.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.patrons import patron_named
from sandbox.spec import FaultConfig
from tests.test_pages import HOSTILE_TITLE, STAFF_PASSWORD, Site, pages_site  # noqa: F401  (fixture)

CHROMIUM = "/usr/bin/chromium"
# Outside CI a machine without Chromium skips; in CI (scripts/test.sh installs it) a missing browser fails.
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and os.environ.get("CI") != "true", reason="needs Debian's chromium (scripts/test.sh installs it)"
)
playwright_api = pytest.importorskip("playwright.async_api")

SCREENSHOTS = Path(__file__).parent.parent / "var" / "screenshots"
WIDTHS = (375, 1280)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Pages:
    """One browser context (Japanese, as a patron in Okayama would have it) that records every document's CSP."""

    def __init__(self, context: object, page: object) -> None:
        self.context = context
        self.page = page
        self.documents: list[tuple[str, str | None]] = []
        page.on("response", self._record)

    def _record(self, response: object) -> None:
        if response.request.resource_type == "document":
            self.documents.append((response.url, response.headers.get("content-security-policy")))

    async def check_widths(self, name: str) -> None:
        """No horizontal scroll at either width; a screenshot at each."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for width in WIDTHS:
            await self.page.set_viewport_size({"width": width, "height": 900})
            scroll, inner = await self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, f"{name} at {width}px scrolls sideways: {scroll} > {inner}"
            await self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        await self.page.set_viewport_size({"width": 375, "height": 900})


@pytest.fixture
async def pages(browser: object) -> AsyncIterator[Pages]:
    context = await browser.new_context(locale="ja-JP", viewport={"width": 375, "height": 900}, accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield Pages(context, page)
    finally:
        await context.close()
    assert errors == [], f"script errors on the pages: {errors}"


async def test_patron_searches_opens_the_work_logs_in_places_and_cancels_a_hold(pages_site: Site, pages: Pages) -> None:  # noqa: F811
    page = pages.page
    # One member answers late: results from the others must be on screen while it is still pending.
    pages_site.sandbox.set_faults("okayama-pref", FaultConfig(delay_ms=2500))
    await page.goto(f"{pages_site.url}/")
    await page.fill("#q", "こころ")
    started = time.perf_counter()
    await page.press("#q", "Enter")
    await page.wait_for_selector("#results .work-card")
    first_s = time.perf_counter() - started
    assert await page.locator('#targets li.pending[data-member="okayama-pref"]').count() == 1
    assert await page.locator("#targets li.state-ok").count() >= 1
    assert await page.get_attribute("#progress", "aria-live") == "polite"
    await page.wait_for_selector('#targets li.state-ok[data-member="okayama-pref"]', timeout=10_000)
    print(f"first work on screen {first_s * 1000:.0f} ms, the held-back member {(time.perf_counter() - started) * 1000:.0f} ms")
    await page.wait_for_selector('#results[aria-busy="false"]', state="attached")
    await pages.check_widths("search")
    pages_site.sandbox.set_faults("okayama-pref", FaultConfig())

    await page.click("#results .work-card h3 a >> text=こころ")
    await page.wait_for_selector("table.holdings tbody tr")
    assert "こころ" in await page.inner_text("h1")
    assert await page.locator("table.holdings tbody tr").count() >= 2
    await pages.check_widths("work")

    await page.click("a.button >> text=予約する")
    await page.wait_for_url("**/login?**")
    card = patron_named("okayama", "okayama-reader").card("okayama-pref")
    await page.select_option("#member", "okayama-pref")
    await page.fill("#card_number", card.card_number)
    await page.fill("#pin", card.pin)
    await pages.check_widths("login")
    await page.click("button[type=submit] >> text=ログイン")
    await page.wait_for_selector("text=予約の確認")
    assert await page.locator('input[name="option"]').count() >= 1
    await pages.check_widths("plan")

    await page.click("text=この内容で予約する")
    await page.wait_for_selector("text=予約しました。")
    assert await page.locator("li.hold").count() == 1
    await pages.check_widths("holds")
    # The prefectural library takes pickup changes online: move the hold to a municipal library.
    await page.select_option("li.hold select[name=pickup_branch_id]", "okayama-city/chuo")
    await page.click("li.hold button >> text=受取館を変更する")
    await page.wait_for_selector("text=受取館を変更しました。")
    assert (await page.inner_text("li.hold .pickup")).strip() == "岡山市立中央図書館"
    await page.click("li.hold button >> text=取り消す")
    await page.wait_for_selector("text=予約を取り消しました。")
    assert "取り消し済み" in await page.inner_text("li.hold .state")

    assert pages.documents, "no documents were recorded"
    assert all(csp and "script-src 'self'" in csp for _, csp in pages.documents), pages.documents


async def test_hostile_title_runs_no_script(pages_site: Site, pages: Pages) -> None:  # noqa: F811
    page = pages.page
    await page.goto(f"{pages_site.url}/?q=悪意の書名")
    await page.wait_for_selector('#results[aria-busy="false"]', state="attached")
    titles = await page.locator("#results .work-card h3").all_inner_texts()
    assert any(HOSTILE_TITLE in t for t in titles), titles
    await page.click("#results .work-card h3 a")
    await page.wait_for_selector("table.holdings tbody tr")
    assert HOSTILE_TITLE in await page.inner_text("h1")
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert await page.locator("main script, main img").count() == 0
    assert all(csp and "script-src 'self'" in csp for _, csp in pages.documents), pages.documents


async def test_librarian_exports_csv_and_sees_member_health(pages_site: Site, pages: Pages) -> None:  # noqa: F811
    page = pages.page
    await page.goto(f"{pages_site.url}/staff")
    await page.wait_for_url("**/staff/login")
    await page.fill("#password", STAFF_PASSWORD)
    await page.click("button[type=submit] >> text=ログイン")
    await page.fill("#staff-q", "9784101010137")
    await page.press("#staff-q", "Enter")
    await page.wait_for_selector("table.holdings tbody tr")
    assert await page.locator("table.health tbody tr").count() == 13
    await pages.check_widths("staff")
    async with page.expect_download() as info:
        await page.click("text=CSVで保存")
    download = await info.value
    raw = Path(await download.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:3] == ["書名", "ISBN", "図書館"]
    on_page = await page.locator("table.holdings tbody tr").count()
    assert len(rows) - 1 == on_page and all(r[1] == "9784101010137" for r in rows[1:])


AXE_DIR = Path(__file__).parent.parent / "var" / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def axe_js() -> Path:
    """axe-core's axe.min.js from the npm package, installed into var/axe at test time (never fetched by a page)."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            _skip_or_fail("axe-core needs npm to install the axe-core package into var/axe")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        import subprocess

        done = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR), "axe-core@4"],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 0 or not AXE_JS.exists():
            _skip_or_fail(f"npm could not install axe-core: {done.stderr[-300:]}")
    return AXE_JS


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs what the tests need)")
    pytest.skip(reason)


async def test_axe_finds_no_serious_or_critical_violation_on_any_page(pages_site: Site, browser: object, axe_js: Path) -> None:  # noqa: F811
    # bypass_csp only so that the test can inject axe itself; the pages' own CSP is tested above.
    context = await browser.new_context(locale="ja-JP", viewport={"width": 375, "height": 900}, bypass_csp=True)
    page = await context.new_page()
    found: dict[str, list[str]] = {}

    async def audit(name: str) -> None:
        await page.add_script_tag(path=str(axe_js))
        result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}" for v in result["violations"] if v["impact"] in ("serious", "critical")]
        found[name] = bad

    try:
        url = pages_site.url
        # The audit can fail: an image without alt text on a blank page is a critical violation.
        await page.set_content('<html lang="ja"><head><title>x</title></head><body><main><img src="data:,"></main></body></html>')
        await audit("known_bad")
        assert any(v.startswith("image-alt") for v in found.pop("known_bad")), "axe did not run"
        await page.goto(f"{url}/?q=こころ")
        await page.wait_for_selector('#results[aria-busy="false"]', state="attached")
        await audit("search")
        await page.goto(f"{url}/work?isbn=9784101010137")
        await audit("work")
        await page.goto(f"{url}/hold?isbn=9784101010137")
        await audit("login")
        card = patron_named("okayama", "okayama-reader").card("okayama-pref")
        await page.select_option("#member", "okayama-pref")
        await page.fill("#card_number", card.card_number)
        await page.fill("#pin", card.pin)
        await page.click("button[type=submit] >> text=ログイン")
        await page.wait_for_selector("text=予約の確認")
        await audit("plan")
        await page.click("text=この内容で予約する")
        await page.wait_for_selector("li.hold")
        await audit("holds")
        await page.goto(f"{url}/hold/series?isbn={await _series_isbn(pages_site, '上')}&scope=all")
        await page.wait_for_selector("li.series-step")
        await audit("series")
        await page.goto(f"{url}/staff/login")
        await audit("staff_login")
        await page.fill("#password", STAFF_PASSWORD)
        await page.click("button[type=submit] >> text=ログイン")
        await page.goto(f"{url}/staff?q=9784101010137")
        await audit("staff")
        await page.goto(f"{url}/?lang=en")
        await audit("search_en")
    finally:
        await context.close()
    assert len(found) == 9
    assert {name: bad for name, bad in found.items() if bad} == {}


async def test_search_and_open_a_work_with_the_keyboard_only(pages_site: Site, pages: Pages) -> None:  # noqa: F811
    page = pages.page
    await page.goto(f"{pages_site.url}/")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Enter")  # the skip link moves focus past the navigation
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "q"
    await page.keyboard.type("こころ")
    await page.keyboard.press("Enter")
    await page.wait_for_selector('#results[aria-busy="false"]', state="attached")
    await page.focus("#results .work-card h3 a")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("table.holdings tbody tr")
    # every form control on the search page has a label a screen reader announces
    await page.goto(f"{pages_site.url}/")
    unlabelled = await page.evaluate(
        "[...document.querySelectorAll('input:not([type=hidden]), select')].filter(e => !e.labels || !e.labels.length).map(e => e.id || e.name)"
    )
    assert unlabelled == []
    assert await page.locator("header, nav, main").count() == 3


async def test_a_search_the_api_refuses_says_so_on_the_page(pages_site: Site, pages: Pages) -> None:  # noqa: F811
    page = pages.page
    await page.goto(f"{pages_site.url}/?q=こころ&members=no-such-member")
    await page.wait_for_selector("#progress:has-text('エラー')")
    assert await page.locator("#results .work-card").count() == 0


async def _series_isbn(site: Site, volume: str) -> str:
    from broker.api import SEARCH_KEY
    from yokodan import SearchQuery

    outcome = await site.app[SEARCH_KEY].search(SearchQuery(title="ノルウェイの森"))
    return next(w.isbns[0] for w in outcome.works if w.title == "ノルウェイの森" and w.volume == volume and w.isbns)


async def test_patron_holds_a_series_in_order_from_the_work_page(pages_site: Site, pages: Pages) -> None:  # noqa: F811
    page = pages.page
    await page.goto(f"{pages_site.url}/work?isbn={await _series_isbn(pages_site, '上')}")
    await page.click("a.button >> text=全巻を順に予約する")
    await page.wait_for_url("**/login?**")
    card = patron_named("okayama", "okayama-reader").card("okayama-pref")
    await page.select_option("#member", "okayama-pref")
    await page.fill("#card_number", card.card_number)
    await page.fill("#pin", card.pin)
    await page.click("button[type=submit] >> text=ログイン")
    await page.wait_for_selector("text=シリーズの予約の確認")
    assert await page.locator("li.series-step").evaluate_all("els => els.map(e => e.dataset.volume)") == ["上", "下"]
    await pages.check_widths("series")
    await page.click("text=この順番で予約する")
    await page.wait_for_selector("text=シリーズを予約しました。")
    titles = await page.locator("li.hold h2.hold-title").all_inner_texts()
    assert titles == ["ノルウェイの森 上", "ノルウェイの森 下"]
    states = await page.locator("li.hold .state").all_inner_texts()
    assert states[1] == "前の巻が届いてから予約します" and states[0] != states[1]
