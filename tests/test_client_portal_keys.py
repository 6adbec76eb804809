"""yokodan.client with a portal key: the header it sends (respx), the portal errors it raises, and
both clients against a broker that allows no anonymous search, over real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
import respx

from broker.admission import AdmissionSettings
from tests.edge_helpers import running_broker, wrong_key
from tests.test_portal_keys import create
from yokodan.client import AsyncClient, Client, Forbidden, RateLimited, Unauthorized

BASE = "http://broker.test"
PROBLEM = {"content-type": "application/problem+json"}


def problem(status: int, reason: str, **headers: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": "d", "reason": reason}
    return httpx.Response(status, content=orjson.dumps(body), headers={**PROBLEM, **headers})


def test_the_key_travels_in_x_api_key_and_leaves_authorization_to_the_patron() -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE, api_key="yk_0123456789ab_" + "s" * 43, token="patron-token") as client:
        route = mock.get("/api/v1/holds").mock(return_value=httpx.Response(200, json={"holds": []}))
        client.holds()
    sent = route.calls.last.request.headers
    assert (sent["X-Api-Key"], sent["Authorization"]) == ("yk_0123456789ab_" + "s" * 43, "Bearer patron-token")


@pytest.mark.parametrize(
    ("answer", "error_class", "reason", "retry_after"),
    [
        (problem(401, "invalid_api_key", **{"www-authenticate": 'Bearer realm="yokodan", error="invalid_token"'}), Unauthorized, "invalid_api_key", None),
        (problem(401, "api_key_required"), Unauthorized, "api_key_required", None),
        (problem(403, "members_not_allowed"), Forbidden, "members_not_allowed", None),
        (problem(429, "rate_limited", **{"retry-after": "12"}), RateLimited, "rate_limited", 12),
    ],
    ids=["invalid", "required", "members", "rate"],
)
def test_portal_problems_become_their_errors(answer: httpx.Response, error_class: type, reason: str, retry_after: int | None) -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE, api_key="yk_x") as client:
        mock.get("/api/v1/search").mock(return_value=answer)
        with pytest.raises(error_class) as caught:
            client.search("猫")
    assert type(caught.value) is error_class and caught.value.reason == reason
    assert getattr(caught.value, "retry_after_s", None) == retry_after


async def test_both_clients_with_a_key_against_a_broker_without_anonymous_search(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key = create(path, "portal", burst="3", rate="0.01")
    async with running_broker(AdmissionSettings(), access={"anonymous_search": False}, portal_keys=path) as broker:
        async with AsyncClient(broker.url, api_key=key) as client:
            found = await client.search("夏目漱石", members=["okayama-city"])
            assert found.works and [t.member for t in found.targets] == ["okayama-city"]
            lines = [line async for line in client.stream("夏目漱石", members=["okayama-city"])]
            assert [line.type for line in lines] == ["member", "final"]
        async with AsyncClient(broker.url) as anonymous:
            with pytest.raises(Unauthorized) as caught:
                await anonymous.search("夏目漱石")
            assert caught.value.reason == "api_key_required"
            assert (await anonymous.members()).consortium.id == "okayama"  # the rest stays open

        # the sync client blocks: run it beside the loop that serves the broker
        def sync_calls() -> tuple[int, str | None, int | None]:
            with Client(broker.url, api_key=key) as client:
                works = client.holdings("9784101010137", members=["okayama-city"])
                try:
                    client.search("猫", members=["okayama-city"])
                except RateLimited as exc:  # the key's burst of 3: two above, one holdings, this one
                    return len(works), exc.reason, exc.retry_after_s
            raise AssertionError("the fourth search with a 3-search key was not refused")

        count, reason, retry_after = await asyncio.to_thread(sync_calls)
        assert count >= 1 and reason == "rate_limited" and retry_after == 100
        with Client(broker.url, api_key=wrong_key(key)) as wrong:
            with pytest.raises(Unauthorized) as caught:
                await asyncio.to_thread(wrong.members)
            assert caught.value.reason == "invalid_api_key"
