"""The pages in Debian's Chromium when the consortium allows no anonymous search: the patron's search
still runs (the pages' first-party pass), while the same API call without the pass is refused."""

from __future__ import annotations

import aiohttp

from tests.edge_helpers import running_broker
from tests.test_pages_browser import browser, pytestmark  # noqa: F401  (the fixture; skip without Chromium outside CI)


async def test_the_search_page_works_with_anonymous_search_off(browser: object) -> None:  # noqa: F811
    async with running_broker(access={"anonymous_search": False}) as broker:
        context = await browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/api/v1/search/stream" in r.url else None)
        try:
            await page.goto(f"{broker.url}/")
            await page.fill("#q", "こころ")
            await page.press("#q", "Enter")
            await page.wait_for_selector("#results .work-card", timeout=15_000)
            await page.wait_for_selector('#results[aria-busy="false"]', state="attached", timeout=15_000)
            assert await page.locator("#results .work-card").count() >= 1
            assert await page.locator("#targets li.state-ok").count() == len(broker.consortium.members)
        finally:
            await context.close()
        assert statuses and set(statuses) == {200} and errors == []
        async with aiohttp.ClientSession() as outsider:  # the same call, from outside the pages
            async with outsider.get(f"{broker.url}/api/v1/search/stream", params={"q": "こころ"}) as response:
                assert response.status == 401
