"""CORS over real sockets: only the consortium's origins and the presented key's, preflight, Vary: Origin."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.edge_helpers import running_broker
from tests.test_portal_keys import SEARCH, create

CONSORTIUM_ORIGIN = "https://portal.example.jp"
KEY_ORIGIN = "https://school.example.jp"
EVIL = "https://evil.example.com"
CORS_HEADERS = {"access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-expose-headers", "access-control-max-age"}  # fmt: skip


def cors_of(headers) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k.lower(): v for k, v in headers.items() if k.lower() in CORS_HEADERS}


async def test_cors_echoes_only_configured_origins(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key = create(path, "school", origin=KEY_ORIGIN)
    access = {"cors_origins": [CONSORTIUM_ORIGIN + "/"]}  # written with a slash; browsers send none
    async with running_broker(access=access, portal_keys=path) as broker, aiohttp.ClientSession() as session:
        search = f"{broker.url}/api/v1/search"

        async def preflight(origin: str, method: str = "GET", url: str = search) -> aiohttp.ClientResponse:
            headers = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "x-api-key"}
            async with session.options(url, headers=headers) as response:
                await response.read()
                return response

        allowed = await preflight(CONSORTIUM_ORIGIN)
        assert allowed.status == 204
        assert cors_of(allowed.headers) == {
            "access-control-allow-origin": CONSORTIUM_ORIGIN,
            "access-control-allow-methods": "GET, HEAD",
            "access-control-allow-headers": "Authorization, X-Api-Key, Content-Type, Idempotency-Key, Last-Event-ID",
            "access-control-max-age": "600",
        }
        assert allowed.headers["Vary"] == "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        # a preflight carries no key: a live key's origin is answered too
        assert (await preflight(KEY_ORIGIN)).headers["Access-Control-Allow-Origin"] == KEY_ORIGIN
        for denied in (await preflight(EVIL), await preflight("null"), await preflight("https://portal.example.jp.evil.example")):
            assert (denied.status, cors_of(denied.headers), denied.headers["Content-Type"]) == (403, {}, "application/problem+json")
        # a method the path has not: refused, named
        wrong_method = await preflight(CONSORTIUM_ORIGIN, "DELETE")
        assert wrong_method.status == 403
        # POST routes list their own methods
        plan = await preflight(CONSORTIUM_ORIGIN, "POST", f"{broker.url}/api/v1/holds/plan")
        assert (plan.status, plan.headers["Access-Control-Allow-Methods"]) == (204, "POST")

        async def actual(origin: str | None, key_header: str | None = None) -> aiohttp.ClientResponse:
            headers = {"Origin": origin} if origin else {}
            if key_header:
                headers["X-Api-Key"] = key_header
            async with session.get(search, params=SEARCH, headers=headers) as response:
                await response.read()
                assert response.status == 200
                return response

        from_portal = await actual(CONSORTIUM_ORIGIN)
        assert cors_of(from_portal.headers)["access-control-allow-origin"] == CONSORTIUM_ORIGIN
        assert "RateLimit-Remaining" in from_portal.headers["Access-Control-Expose-Headers"]
        assert "access-control-allow-credentials" not in cors_of(from_portal.headers)
        assert from_portal.headers["Vary"] == "Origin"
        # the key's origin: only with the key
        assert cors_of((await actual(KEY_ORIGIN)).headers) == {}
        assert cors_of((await actual(KEY_ORIGIN, key)).headers)["access-control-allow-origin"] == KEY_ORIGIN
        # another origin, even with a key: no CORS headers at all, but still Vary for caches
        for response in (await actual(EVIL), await actual(EVIL, key)):
            assert cors_of(response.headers) == {} and response.headers["Vary"] == "Origin"
        # a stream gets its headers too (set before its status line)
        async with session.get(f"{broker.url}/api/v1/search/stream", params=SEARCH, headers={"Origin": CONSORTIUM_ORIGIN}) as response:
            await response.read()
            assert response.headers["Access-Control-Allow-Origin"] == CONSORTIUM_ORIGIN
        # pages are first-party: no CORS on them
        async with session.get(f"{broker.url}/", headers={"Origin": CONSORTIUM_ORIGIN}) as response:
            assert cors_of(response.headers) == {} and "Origin" not in response.headers["Vary"]


async def test_without_configured_origins_no_origin_gets_cors() -> None:
    async with running_broker() as broker, aiohttp.ClientSession() as session:
        headers = {"Origin": CONSORTIUM_ORIGIN, "Access-Control-Request-Method": "GET"}
        async with session.options(f"{broker.url}/api/v1/search", headers=headers) as response:
            assert response.status == 403 and cors_of(response.headers) == {}
        async with session.get(f"{broker.url}/api/v1/members", headers={"Origin": CONSORTIUM_ORIGIN}) as response:
            assert response.status == 200 and cors_of(response.headers) == {}


def test_access_settings_are_validated_with_their_path() -> None:
    import pytest
    from pydantic import ValidationError

    from broker.consortium import Consortium, load_consortium

    data = load_consortium().model_dump()
    for bad in ("https://portal.example.jp/search", "*.example.jp", "ftp://portal.example.jp", "https://*.example.jp"):
        with pytest.raises(ValidationError) as caught:
            Consortium.model_validate({**data, "access": {"cors_origins": [bad]}})
        assert [e["loc"] for e in caught.value.errors()] == [("access", "cors_origins", 0)], bad
    good = Consortium.model_validate({**data, "access": {"cors_origins": ["HTTPS://Portal.Example.JP:8443/", "http://[::1]:8080"]}})
    assert good.access.cors_origins == ["https://portal.example.jp:8443", "http://[::1]:8080"]
    with pytest.raises(ValidationError):
        Consortium.model_validate({**data, "access": {"anonymous_search": True, "origins": []}})  # a typo is an error
    twice = {**data, "members": [{**m, "calil_systemid": "Okayama_Okayama"} if m["id"] == "tsuyama-city" else m for m in data["members"]]}
    with pytest.raises(ValidationError) as caught:
        Consortium.model_validate(twice)
    assert "'Okayama_Okayama' already names member 'okayama-city'" in str(caught.value)
