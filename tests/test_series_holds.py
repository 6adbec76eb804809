"""Series holds through the API and the client (issue 9/13 follow-up): the next volumes of a series, in order.

The Okayama network on the sandbox with the ledger on SQLite (tests/test_pages.py's `pages_site`): the
series is found from one volume, every volume planned with the patron's cards, the first placed at its
member now and the others deferred (not at any member) until the one before is ready; then the poller
places the next. Cancelling the placed volume drops the ones not yet placed.
"""

from __future__ import annotations

import time

import aiohttp
import pytest

from broker.ledger.routes import LEDGER_KEY
from sandbox.patrons import patron_named
from sandbox.sru_server import MEMBERS
from tests.test_pages import Site, pages_site  # noqa: F401  (fixture)
from yokodan import HoldState, SearchQuery

SERIES_TITLE = "ノルウェイの森"


async def _auth(s: aiohttp.ClientSession, site: Site) -> dict[str, str]:
    """The okayama-reader patron with both their cards (岡山市 and the prefectural library) on one account."""
    token = None
    for member in ("okayama-pref", "okayama-city"):
        card = patron_named("okayama", "okayama-reader").card(member)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with s.post(f"{site.url}/api/v1/auth/login", json={"member": member, "card_number": card.card_number, "pin": card.pin}, headers=headers) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["token"]
    return {"Authorization": f"Bearer {token}"}


async def _volumes(site: Site) -> dict[str, str]:
    from broker.api import SEARCH_KEY

    outcome = await site.app[SEARCH_KEY].search(SearchQuery(title=SERIES_TITLE))
    found = {w.volume: w.isbns[0] for w in outcome.works if w.title == SERIES_TITLE and w.volume and w.isbns}
    assert set(found) == {"上", "下"}, found
    return found


def _member_holds(site: Site, key: str) -> list[tuple[str, str]]:
    return [(m, h.record_id) for m, system in site.sandbox.app[MEMBERS].items() for h in system.ledger.holds.values() if h.idempotency_key == key]


async def test_hold_all_volumes_from_the_second_places_the_first_now_and_defers_the_rest(pages_site: Site) -> None:  # noqa: F811
    volumes = await _volumes(pages_site)
    async with aiohttp.ClientSession() as s:
        auth = await _auth(s, pages_site)
        headers = auth | {"Idempotency-Key": "series-test-0001"}
        async with s.post(f"{pages_site.url}/api/v1/holds/series", json={"isbn": volumes["下"], "scope": "all"}, headers=headers) as r:
            assert r.status == 201, await r.text()
            placed = await r.json()
        holds = placed["holds"]
        assert [(h["title"], h["volume"], h["outcome"], h["series"]["position"]) for h in holds] == [
            (SERIES_TITLE, "上", "placed", 1), (SERIES_TITLE, "下", "deferred", 2)
        ]
        assert holds[0]["state"] == "waiting" and holds[0]["promised_ready"] is not None
        assert (holds[1]["state"], holds[1]["state_label"], holds[1]["promised_ready"]) == (None, "前の巻が届いてから予約します", None)
        assert {h["series"]["id"] for h in holds} == {placed["series_id"]}
        # At the members: the first volume only.
        assert len(_member_holds(pages_site, holds[0]["id"])) == 1 and _member_holds(pages_site, holds[1]["id"]) == []
        # The same key again: the series it made, nothing placed again.
        async with s.post(f"{pages_site.url}/api/v1/holds/series", json={"isbn": volumes["下"], "scope": "all"}, headers=headers) as r:
            assert r.status == 200 and [h["id"] for h in (await r.json())["holds"]] == [h["id"] for h in holds]
        async with s.post(f"{pages_site.url}/api/v1/holds/series", json={"isbn": volumes["上"], "scope": "all"}, headers=headers) as r:
            assert r.status == 422 and (await r.json())["title"] == "Idempotency-Key reused"

        # The first volume becomes ready at its member: the poller places the next one.
        first_member = holds[0]["member"]
        system = pages_site.sandbox.app[MEMBERS][first_member]
        [at_member] = [h for h in system.ledger.holds.values() if h.idempotency_key == holds[0]["id"]]
        system.ledger.advance(at_member.hold_id, HoldState.READY)
        poller = pages_site.app[LEDGER_KEY].poller
        poller.clock = lambda: time.time() + 86400  # a day on: the placed volume's status check is due
        await poller.run_once()
        async with s.get(f"{pages_site.url}/api/v1/holds", headers=auth) as r:
            listed = {h["id"]: h for h in (await r.json())["holds"]}
        assert (listed[holds[0]["id"]]["state"], listed[holds[1]["id"]]["outcome"]) == ("ready", "placed")
        assert len(_member_holds(pages_site, holds[1]["id"])) == 1


async def test_from_this_volume_and_cancelling_drops_the_unplaced(pages_site: Site) -> None:  # noqa: F811
    volumes = await _volumes(pages_site)
    async with aiohttp.ClientSession() as s:
        auth = await _auth(s, pages_site)
        async with s.post(f"{pages_site.url}/api/v1/holds/series?lang=en", json={"isbn": volumes["上"]}, headers=auth) as r:
            assert r.status == 201, await r.text()
            holds = (await r.json())["holds"]
        assert [(h["volume"], h["outcome"], h["state_label"]) for h in holds] == [
            ("上", "placed", "waiting"), ("下", "deferred", "placed when the volume before it is ready")
        ]
        async with s.delete(f"{pages_site.url}/api/v1/holds/{holds[0]['id']}", headers=auth) as r:
            assert r.status == 200
        async with s.get(f"{pages_site.url}/api/v1/holds", headers=auth) as r:
            listed = {h["id"]: h for h in (await r.json())["holds"]}
        assert listed[holds[0]["id"]]["state"] == "cancelled"
        assert (listed[holds[1]["id"]]["outcome"], listed[holds[1]["id"]]["refusal"]["reason"]) == ("refused", "cancelled")
        assert _member_holds(pages_site, holds[1]["id"]) == []
        # The last volume "from this one on" is a series of one, placed at once.
        async with s.post(f"{pages_site.url}/api/v1/holds/series", json={"isbn": volumes["下"]}, headers=auth) as r:
            assert r.status == 201
            alone = (await r.json())["holds"]
        assert [(h["volume"], h["outcome"], h["series"]["position"]) for h in alone] == [("下", "placed", 1)]
        assert len(_member_holds(pages_site, alone[0]["id"])) == 1


@pytest.mark.parametrize(
    ("body", "status", "parameter"),
    [({"isbn": "9784101010137", "isbns": ["9784101010137"]}, 400, "body"), ({}, 400, "body"), ({"isbn": "123"}, 400, "isbn"),
     ({"isbn": "9784101010137", "scope": "some"}, 400, "scope"), ({"isbn": "9780000000002"}, 404, None)],
)  # fmt: skip
async def test_bad_series_requests_are_named(pages_site: Site, body: dict[str, object], status: int, parameter: str | None) -> None:  # noqa: F811
    def at_members() -> int:
        return sum(len(system.ledger.holds) for system in pages_site.sandbox.app[MEMBERS].values())

    before = at_members()  # the sandbox's test patrons come with some holds of their own
    async with aiohttp.ClientSession() as s:
        auth = await _auth(s, pages_site)
        async with s.post(f"{pages_site.url}/api/v1/holds/series", json=body, headers=auth) as r:
            problem = await r.json()
            assert (r.status, r.content_type) == (status, "application/problem+json"), problem
        if parameter:
            assert parameter in [e["parameter"] for e in problem["errors"]], problem
    assert at_members() == before


async def test_the_client_holds_a_series_once_per_key(pages_site: Site) -> None:  # noqa: F811
    from yokodan.client import AsyncClient

    volumes = await _volumes(pages_site)
    async with aiohttp.ClientSession() as s:
        token = (await _auth(s, pages_site))["Authorization"].removeprefix("Bearer ")
    async with AsyncClient(pages_site.url, token=token) as client:
        first = await client.place_series(volumes["上"], idempotency_key="client-series-0001")
        again = await client.place_series(volumes["上"], idempotency_key="client-series-0001")
        assert [(h.volume, h.outcome) for h in first.holds] == [("上", "placed"), ("下", "deferred")]
        assert [h.id for h in again.holds] == [h.id for h in first.holds] and again.series_id == first.series_id
        listed = await client.holds()
        assert [(h.title, h.volume, h.series.position if h.series else None) for h in listed] == [
            (SERIES_TITLE, "上", 1), (SERIES_TITLE, "下", 2)
        ]
        with pytest.raises(TypeError):
            await client.place_series(volumes["上"], isbns=[volumes["下"]])
